"""log p(x) = ELBO(q) + KL(q || p(z|x)) as a stacked horizontal bar on a nats axis, with the numbers.

The axis ends a little right of log p(x); the blue ELBO block runs from the axis' left end to ELBO(q), the red KL
block from ELBO(q) to log p(x), so the red length is the gap. The window is at least ``min_span`` nats wide so small
gaps stay visible, and widens with the gap.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.widgets.picture_clock import PaintReportingPlot

ELBO_COLOR = (70, 120, 200)
KL_COLOR = (220, 70, 50)


class ElboKLBar(QWidget):
    """``set_values(log_px, elbo, note)``; ``log_px`` may be None while it is being computed; ``note`` says what
    log p(x) is when it is an estimate (e.g. "AIS estimate ± 0.03"), shown beside it."""

    def __init__(self, min_span: float = 4.0, parent=None):
        super().__init__(parent)
        self.min_span = float(min_span)
        self.log_px: float | None = None
        self.elbo: float | None = None
        self.note: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.label = QLabel()
        self.label.setObjectName("elbo-kl-readout")
        self.plot = PaintReportingPlot(background="w")  # (its paints time drag-to-picture in the Inference lab)
        self.plot.setMaximumHeight(95)
        self.plot.setMinimumHeight(80)
        self.plot.setProperty("readable_size", (240, 80))  # a one-row strip (app.widgets.layout_check)
        self.plot.hideAxis("left")
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.getAxis("bottom").setLabel("nats")
        self.elbo_bar = pg.BarGraphItem(x0=[0], x1=[0], y0=[0], y1=[1], brush=pg.mkBrush(*ELBO_COLOR), pen=None)
        self.kl_bar = pg.BarGraphItem(x0=[0], x1=[0], y0=[0], y1=[1], brush=pg.mkBrush(*KL_COLOR), pen=None)
        self.px_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("k", width=2))
        self.elbo_text = pg.TextItem(color="w", anchor=(1, 0.5))
        self.kl_text = pg.TextItem(color="w", anchor=(1, 0.5))
        for item in (self.elbo_bar, self.kl_bar, self.px_line, self.elbo_text, self.kl_text):
            self.plot.addItem(item)
        layout.addWidget(self.label)
        layout.addWidget(self.plot)
        self._show_text()

    @property
    def kl(self) -> float | None:
        return None if self.log_px is None or self.elbo is None else self.log_px - self.elbo

    def set_values(self, log_px: float | None, elbo: float | None, note: str | None = None) -> None:
        """Show these values; what did not change is not set again (each setter re-lays out or repaints: the bar was
        set three times per selection in the Inference lab, 1.2 ms a time)."""
        self.log_px, self.elbo, self.note = log_px, elbo, note
        self._show_text()
        visible = elbo is not None and math.isfinite(elbo)
        for item in (self.elbo_bar, self.kl_bar, self.elbo_text, self.kl_text):
            item.setVisible(visible)
        self.px_line.setVisible(visible and log_px is not None)
        axis = self.plot.getAxis("bottom")
        if axis.style["showValues"] != visible:
            axis.setStyle(showValues=visible)
        if elbo is None or not visible:
            return
        if log_px is None:
            right = elbo + 0.1 * self.min_span
            span = self.min_span
        else:
            gap = max(log_px - elbo, 0.0)
            span = max(self.min_span, 1.25 * gap)
            right = log_px + 0.08 * span
        left = right - span * 1.08
        self.elbo_bar.setOpts(x0=[left], x1=[elbo], y0=[0], y1=[1])
        if log_px is None:
            self.kl_bar.setOpts(x0=[elbo], x1=[elbo], y0=[0], y1=[1])
            _set_text(self.kl_text, "")
        else:
            self.kl_bar.setOpts(x0=[elbo], x1=[log_px], y0=[0], y1=[1])
            self.px_line.setPos(log_px)
            _set_text(self.kl_text, "KL" if log_px - elbo > 0.12 * span else "")
            self.kl_text.setPos(log_px, 0.5)
        _set_text(self.elbo_text, "ELBO")
        self.elbo_text.setPos(elbo, 0.5)
        if self.plot.getViewBox().state["viewRange"] != [[left, right], [-0.15, 1.15]]:
            self.plot.setRange(xRange=(left, right), yRange=(-0.15, 1.15), padding=0)

    def _show_text(self) -> None:
        e, lp = self.elbo, self.log_px
        if e is None:
            self.label.setText("<i>no q yet</i>")
        elif lp is None:
            self.label.setText(f"ELBO(q) = <b>{e:.3f}</b> nats; log p(x) is being computed…")
        else:
            what = f"log p(x) ≈ <b>{lp:.3f}</b> ({self.note})" if self.note else f"log p(x) = <b>{lp:.3f}</b>"
            self.label.setText(
                f"{what} = <span style='color:rgb{ELBO_COLOR}'>ELBO(q) <b>{e:.3f}</b></span>"
                f" + <span style='color:rgb{KL_COLOR}'>KL(q‖p(z|x)) <b>{lp - e:.3f}</b></span> nats"
            )


def _set_text(item: pg.TextItem, text: str) -> None:
    """``item.setText(text)`` unless it shows ``text`` already (each call lays the text out again)."""
    if item.textItem.toPlainText() != text:
        item.setText(text)
