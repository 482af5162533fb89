"""The Inpainting lab's widgets: the drawing panel (canvas, pen tools, digit, mask preset, seed), the plots, and the
mean-field (phi) panel with its chart. They show what they are given; the lab binds them to its state."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.labs.inpainting.images import composite_rgb, phi_rgb, tile_rgb
from app.labs.inpainting.state import BRUSH_RANGE, MASK_CHOICES
from app.widgets.digit_canvas import DigitCanvas
from app.widgets.grid_lines import GridLines
from app.widgets.image_item import ImageItem
from app.widgets.lab_view import spin_box
from app.widgets.picture_clock import PaintReportingLayout


def qrect(rect: tuple[float, float, float, float]) -> QRectF:
    """An ``lvm.inpainting.local_posterior`` rectangle (x0, y0, width, height) as a QRectF."""
    return QRectF(*rect)


def image_view(
    layout: pg.GraphicsLayoutWidget, row: int, col: int, title: str, **kw
) -> tuple[pg.ViewBox, pg.ImageItem]:
    """A locked-aspect, y-down ViewBox holding one ImageItem (row-major images), with a title label above it."""
    layout.addLabel(title, row=row, col=col, **kw)
    vb = layout.addViewBox(row=row + 1, col=col, lockAspect=True, invertY=True, enableMouse=False, **kw)
    item = ImageItem(axisOrder="row-major")
    vb.addItem(item)
    vb.setMenuEnabled(False)
    return vb, item


def set_rgb(vb: pg.ViewBox, item: pg.ImageItem, rgb: np.ndarray) -> None:
    first = item.image is None or item.image.shape != rgb.shape
    item.setImage(rgb, autoLevels=False, levels=(0, 255))
    if first:
        vb.setRange(QRectF(0, 0, rgb.shape[1], rgb.shape[0]), padding=0.02)


class ElboChart:
    """ELBO(phi) for each phi as bars, with log p(x_O) as a dashed line and the numbers written on the bars."""

    def __init__(self, plot: pg.PlotItem):
        self.plot = plot
        plot.setLabel("left", "nats")
        plot.setLabel("bottom", "φ")
        self.grid_lines = GridLines(plot, x=False, alpha=0.3)
        plot.setMouseEnabled(False, False)
        plot.setMenuEnabled(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(90, 140, 210))
        plot.addItem(self.bars)
        self.line = pg.InfiniteLine(angle=0, pen=pg.mkPen((220, 60, 60), width=2, style=Qt.PenStyle.DashLine))
        plot.addItem(self.line)
        self.line_label = pg.TextItem("", color=(200, 40, 40), anchor=(0, 1))
        plot.addItem(self.line_label)
        self.texts: list[pg.TextItem] = []
        self._line_text: str | None = None
        self._extent: tuple[float, float | None] = (-1.0, None)  # (the lowest value shown, log p(x_O))
        plot.getViewBox().sigResized.connect(self._fit_y_range)

    def set_values(self, names: Sequence[str], elbos: Sequence[float | None], log_p_obs: float | None) -> None:
        xs = np.arange(len(names), dtype=float)
        h = np.array([np.nan if v is None else v for v in elbos], dtype=float)
        ok = np.isfinite(h)
        self.bars.setOpts(x=xs[ok], height=h[ok], width=0.6)
        self.plot.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(names)]])
        finite = list(h[ok]) + ([log_p_obs] if log_p_obs is not None else [])
        low = min(finite) if finite else -1.0
        while len(self.texts) < len(names):  # the value labels are reused, never recreated
            t = pg.TextItem("", color=(20, 20, 20), anchor=(0.5, 1.1))
            self.plot.addItem(t)
            self.texts.append(t)
        for k, t in enumerate(self.texts):
            if k < len(names) and np.isfinite(h[k]):
                t.setText(f"{h[k]:.1f}")
                t.setPos(xs[k], h[k])
                t.show()
            else:
                t.hide()
        if log_p_obs is not None:
            self.line.setValue(log_p_obs)
            self.line.show()
            text = f"log p(x<sub>O</sub>) = {log_p_obs:.1f}"
            if text != self._line_text:  # (laid out again only when it changes)
                self.line_label.setHtml(text)
                self._line_text = text
            self.line_label.setPos(-0.45, log_p_obs)
            self.line_label.show()
        else:
            self.line.hide()
            self.line_label.hide()
        self.plot.setXRange(-0.6, max(len(names), 1) - 0.4, padding=0)
        self._extent = (low, log_p_obs)
        self._fit_y_range()

    def _fit_y_range(self, *_) -> None:
        """From 12 % below the lowest value to 10 % of it above 0, and higher where the log p(x_O) label above its
        line needs it: the label's height in pixels, at this plot's height, in nats (a short plot: 720 px screens)."""
        low, log_p_obs = self._extent
        bottom, top = 1.12 * low, -0.1 * low
        height_px = self.plot.getViewBox().height()
        if log_p_obs is not None and height_px > 0:
            need = min((self.line_label.boundingRect().height() + 4) / height_px, 0.5)  # (a share of the height)
            top = max(top, (log_p_obs - need * bottom) / (1 - need))  # top - log p >= need * (top - bottom)
        self.plot.setYRange(bottom, top, padding=0)


# -- the lab's three parts -------------------------------------------------------------------------------------------
TOOL_BUTTONS = (
    ("brush", "Brush", "draw ink (right button: erase)"),
    ("eraser", "Eraser", "erase ink (right button: draw)"),
    ("observe", "Paint observed", "mark pixels as observed (right button: hide)"),
    ("hide", "Paint missing", "mark pixels as missing (right button: observe)"),
)
SEED_MAX = 2**31 - 1  # (a QSpinBox holds a C int)
SUMMARY_LINES = 3  # the ELBO summary: wraps within this many lines, never widens the window


def _row(*items: QWidget | tuple[QWidget, int]) -> QHBoxLayout:
    row = QHBoxLayout()
    for item in items:
        widget, stretch = item if isinstance(item, tuple) else (item, 0)
        row.addWidget(widget, stretch)
    return row


def set_quietly(box: QSpinBox, value: int) -> None:
    """Show ``value`` in ``box`` without its valueChanged."""
    if box.value() != value:
        was = box.blockSignals(True)
        box.setValue(value)
        box.blockSignals(was)


class DrawingPanel(QWidget):
    """The canvas and what is drawn with it: the pen tools, the digit, the missing-pixel preset and the seed."""

    def __init__(self, mask: np.ndarray, tool: str, brush: float, follow: bool, seed: int):
        super().__init__()
        self.canvas = DigitCanvas()
        self.canvas.setObjectName("inpainting-canvas")
        self.canvas.set_mask(mask)
        self.canvas.brush_radius = brush
        self.canvas.tool = tool
        tools = QGridLayout()
        self.tool_group = QButtonGroup(self)
        for i, (name, text, tip) in enumerate(TOOL_BUTTONS):
            b = QRadioButton(text)
            b.setToolTip(tip)
            b.setProperty("tool", name)
            self.tool_group.addButton(b, i)
            tools.addWidget(b, i // 2, i % 2)
        self.check_tool(tool)
        self.brush_spin = QDoubleSpinBox()
        self.brush_spin.setRange(*BRUSH_RANGE)
        self.brush_spin.setSingleStep(0.25)
        self.brush_spin.setValue(brush)
        self.brush_spin.setToolTip("brush radius in pixels")
        self.clear_button = QPushButton("Clear ink")
        self.clear_button.clicked.connect(self.canvas.clear)
        self.index_spin = QSpinBox()
        self.index_spin.setRange(0, 0)
        self.index_spin.setToolTip("index in the current dataset split")
        self.follow_check = QCheckBox("follow selection")
        self.follow_check.setChecked(follow)
        self.follow_check.setToolTip("load the image selected in the other labs")
        self.mask_combo = QComboBox()
        self.mask_combo.addItems(list(MASK_CHOICES))
        self.mask_combo.setToolTip("which pixels are hidden (then paint the mask to adjust)")
        self.seed_spin = spin_box(0, SEED_MAX, min(seed, SEED_MAX), "inpainting-seed")
        self.seed_spin.setToolTip(
            "seed of this lab's random numbers: the sampled completions, the ELBO estimates, the optimiser and "
            "the random masks (the same seed gives the same numbers)"
        )
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("inpainting-status")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(tools)
        layout.addLayout(_row(QLabel("size"), self.brush_spin, self.clear_button))
        layout.addLayout(_row(QLabel("digit #"), self.index_spin, self.follow_check))
        layout.addLayout(_row(QLabel("missing:"), (self.mask_combo, 1)))
        layout.addLayout(_row(QLabel("seed"), (self.seed_spin, 1)))
        layout.addWidget(self.status)

    def check_tool(self, tool: str) -> None:
        for b in self.tool_group.buttons():
            b.setChecked(b.property("tool") == tool)


class InpaintingPlots:
    """The completion, the sampled completions, the posterior heatmap with the samples' z, phi and ELBO(phi)."""

    def __init__(self, n_samples: int):
        self.glw = glw = PaintReportingLayout()
        glw.setBackground("w")
        glw.ci.setSpacing(4)
        self.completion_vb, self.completion_img = image_view(
            glw, 0, 0, "observed + predictive p(x<sub>j</sub>=1|x<sub>O</sub>)"
        )
        self.samples_vb, self.samples_img = image_view(glw, 0, 1, f"{n_samples} sampled completions")
        glw.addLabel("posterior p(z | x<sub>O</sub>)", row=0, col=2)
        self.post_plot = glw.addPlot(row=1, col=2)
        self.post_plot.setLabel("bottom", "z<sub>1</sub>")
        self.post_plot.setLabel("left", "z<sub>2</sub>")
        self.post_plot.setAspectLocked(True)
        for ax in ("left", "bottom"):
            self.post_plot.getAxis(ax).enableAutoSIPrefix(False)  # a narrow posterior: plain z, not "(x0.001)"
        self.post_img = ImageItem()
        self._post_rect: tuple[float, float, float, float] | None = None
        self.post_img.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.post_plot.addItem(self.post_img)
        self.post_scatter = pg.ScatterPlotItem(size=7, pen=pg.mkPen("k"), brush=pg.mkBrush(255, 255, 255, 220))
        self.post_plot.addItem(self.post_scatter)
        self.post_message = pg.TextItem("", color=(90, 90, 90), anchor=(0.5, 0.5))  # why no posterior is drawn
        self.post_plot.addItem(self.post_message, ignoreBounds=True)
        self.post_plot.getViewBox().sigRangeChanged.connect(self._centre_post_message)
        self.phi_vb, self.phi_img = image_view(glw, 2, 0, "mean-field φ (missing pixels)")
        glw.addLabel("ELBO(φ) against log p(x<sub>O</sub>)", row=2, col=1, colspan=2)
        self.elbo_plot = glw.addPlot(row=3, col=1, colspan=2)
        self.chart = ElboChart(self.elbo_plot)
        self.phi_lut = pg.colormap.get("inferno").getLookupTable(nPts=256)

    def show_completions(self, x: np.ndarray, mask: np.ndarray, predictive: np.ndarray, samples: np.ndarray) -> None:
        set_rgb(self.completion_vb, self.completion_img, composite_rgb(x, mask, predictive))
        set_rgb(self.samples_vb, self.samples_img, tile_rgb(composite_rgb(x, mask, samples), 4))

    def show_posterior(self, density: np.ndarray, rect: tuple[float, float, float, float], z: np.ndarray) -> None:
        self.post_img.setImage(density, autoLevels=False, levels=(0, 1))
        if rect != self._post_rect:  # (setRect re-lays out the item even when the rectangle is the same)
            self.post_img.setRect(qrect(rect))
            self._post_rect = rect
        self.post_scatter.setData(z[:, 0], z[:, 1])

    def show_phi(self, x: np.ndarray, mask: np.ndarray, phi: np.ndarray | None) -> None:
        set_rgb(self.phi_vb, self.phi_img, phi_rgb(x, mask, phi, self.phi_lut))

    def clear(self) -> None:
        """Nothing of a previous model: the completions, the posterior, phi and the ELBO bars go."""
        for item in (self.completion_img, self.samples_img, self.post_img, self.phi_img):
            item.clear()
        self._post_rect = None
        self.post_scatter.setData([], [])
        self.chart.set_values([], [], None)
        self.show_post_message("")

    def show_post_message(self, text: str) -> None:
        """Say in the posterior plot why it is empty (empty text: no message)."""
        self.post_message.setText(text)
        self._centre_post_message()

    def _centre_post_message(self, *_) -> None:
        if self.post_message.toPlainText():  # (kept in the middle of the plot whatever its range)
            (x0, x1), (y0, y1) = self.post_plot.getViewBox().viewRange()
            self.post_message.setPos((x0 + x1) / 2, (y0 + y1) / 2)


def _fixed_lines(name: str, lines: int) -> QLabel:
    """A rich-text readout wrapping within ``lines`` lines of a fixed height, so that no text (its entries, their
    lengths) changes the window's size; the whole text is also the tooltip."""
    label = QLabel("")
    label.setObjectName(name)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    label.setFixedHeight(lines * label.fontMetrics().lineSpacing() + 4)
    return label


UNCERTAINTY_TIP = (
    "<br><br>h(p) = −p log p − (1−p) log(1−p), the entropy of one pixel. q's pixels are independent, so H(q) is the "
    "sum of its pixels' entropies. The exact predictive p(x<sub>M</sub>|x<sub>O</sub>) is a mixture over z: summed "
    "pixel by pixel its entropy compares with q's; jointly (a Monte Carlo estimate with exact log p(x) per sampled "
    "completion) it is lower, since its pixels vary together through z. Maximising the ELBO minimises KL(q‖p), "
    "which makes q commit to one completion: its pixels look surer than the model's."
)


class MeanFieldPanel(QGroupBox):
    """The phi presets, Optimise / Cancel with progress, and the ELBO of each phi in a few wrapped lines."""

    def __init__(self, names: dict[str, str]):
        super().__init__("Mean-field q(x_M; φ)")
        self.phi_buttons: dict[str, QPushButton] = {}
        for key in ("half", "ones", "template", "predictive"):
            button = QPushButton(names[key])
            button.setObjectName(f"inpainting-phi-{key}")
            self.phi_buttons[key] = button
        self.phi_buttons["template"].setToolTip(
            "φ = another test-set 9 clipped to [0.02, 0.98] over the missing pixels"
        )
        self.optimise_button = QPushButton("Optimise φ")
        self.optimise_button.setObjectName("inpainting-optimise")
        self.optimise_button.setToolTip(
            "maximise ELBO(φ): natural-gradient steps logit φ ← logit φ + ρ(E_q[Δ] − logit φ)"
        )
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.summary = _fixed_lines("inpainting-elbo-summary", SUMMARY_LINES)
        self.uncertainty = _fixed_lines("inpainting-uncertainty", 2)  # q's uncertainty against the exact predictive's
        layout = QVBoxLayout(self)
        layout.addLayout(_row(*self.phi_buttons.values()))
        layout.addLayout(_row(self.optimise_button, self.cancel_button, (self.progress, 1)))
        layout.addWidget(self.summary)
        layout.addWidget(self.uncertainty)
        self.set_running(False)

    def set_running(self, running: bool) -> None:
        self.optimise_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def show_summary(self, html: str) -> None:
        self.summary.setText(html)
        self.summary.setToolTip(html)

    def show_uncertainty(self, html: str) -> None:
        self.uncertainty.setText(html)
        self.uncertainty.setToolTip(html + UNCERTAINTY_TIP if html else "")
