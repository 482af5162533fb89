"""The Mixture lab's right column: the log-likelihood curve, Bayes' rule for the selected point, the BIC/AIC grid.

Each panel draws what the lab's state gives it (``state.LLCurve``, a posterior, ``state.BICGrid``) and never reads
the lab. Every plot keeps at least ``PLOT_MIN`` pixels: on a 1280x720 laptop window (also at 150 % scaling) the
posterior's bars stay readable at K = 8 (they were squeezed to ~30 px by the K-row table under them, which now
scrolls) and their labels thin out (every 2nd, 5th...) where the plot is too narrow for one per bar.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from app.labs.mixture.state import BIC_KS, BIC_SEEDS, BICGrid, LLCurve
from app.widgets.axes import readable_axes
from app.widgets.flow_layout import flow
from app.widgets.palette import component_hex, qcolor
from app.widgets.palette import pen as line_pen
from app.widgets.steady_plots import growing_range, steady_ticks

PLOT_MIN = (180, 130)  # the smallest a plot of this column may become
BIC_TEXT = "Compute BIC/AIC"
BIC_PEN, AIC_PEN, STALE = (31, 119, 180), (214, 39, 40), (175, 175, 175)
NO_SELECTION = "Click a point (select mode) to see Bayes' rule at work."


def small_plot(title: str | None = None) -> pg.PlotWidget:
    """A plot of the column: at least PLOT_MIN, no buttons; a title only where the axes do not say it all."""
    plot = pg.PlotWidget(background="w")
    if title:
        plot.setTitle(title, color="k", size="10pt")
    plot.setMinimumSize(*PLOT_MIN)
    plot.hideButtons()
    return plot


def bar_tick_step(k: int, width_px: float, min_px: float = 26.0) -> int:
    """Label every 1st, 2nd, 5th or 10th bar so that labels stay ``min_px`` apart on a plot ``width_px`` wide."""
    for step in (1, 2, 5, 10):
        if width_px * step / max(k, 1) >= min_px:
            return step
    return 10


def tick_bars(plot: pg.PlotWidget, k: int) -> None:
    """Component numbers under k bars, thinned (every 2nd, 5th...) where the plot is too narrow for all."""
    step = bar_tick_step(k, plot.getViewBox().width())
    steady_ticks(plot.getAxis("bottom"), [[(i, str(i)) for i in range(0, k, step)], []])


def show_bars(plot: pg.PlotWidget, bars: pg.BarGraphItem, post: np.ndarray) -> None:
    """p(z=k | x) as one bar per component, in the components' colours."""
    K = len(post)
    bars.setOpts(
        x=np.arange(K),
        height=post,
        width=0.7,
        brushes=[pg.mkBrush(qcolor(k)) for k in range(K)],
        pens=[pg.mkPen("k")] * K,
    )
    if plot.getViewBox().state["viewRange"][0] != [-0.6, K - 0.4]:
        plot.setXRange(-0.6, K - 0.4, padding=0)
    tick_bars(plot, K)


class LogLikelihoodPlot(pg.PlotWidget):
    """Mean log p(x) after each stored half step (E-steps dots, M-steps squares); a dashed line at the shown one."""

    def __init__(self) -> None:
        super().__init__(background="w")
        self.setMinimumSize(*PLOT_MIN)
        self.hideButtons()
        self.setLabel("bottom", "half step")
        self.setLabel("left", "mean log p(x)")
        readable_axes(self, integer=("bottom",))  # half steps: no "half step (x0.001)", no 0.1 ticks
        self.setMouseEnabled(x=False, y=False)
        self.curve = self.plot(pen=pg.mkPen((60, 60, 60), width=1.5))
        self.after_e = pg.ScatterPlotItem(size=7, symbol="o", brush=pg.mkBrush(31, 119, 180), pen=None)
        self.after_m = pg.ScatterPlotItem(size=7, symbol="s", brush=pg.mkBrush(255, 127, 14), pen=None)
        legend = self.addLegend(offset=(-10, -10), labelTextColor="k")
        self.addItem(self.after_e)
        self.addItem(self.after_m)
        legend.addItem(self.after_e, "after E")
        legend.addItem(self.after_m, "after M")
        self.now = pg.InfiniteLine(angle=90, pen=pg.mkPen((200, 0, 0), width=1, style=Qt.PenStyle.DashLine))
        self.addItem(self.now)
        # the "compare with seed" run's final log-likelihood (hidden without one)
        self.reference = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen((120, 60, 160), width=1.5, style=Qt.PenStyle.DashLine),
            label="",
            labelOpts={"position": 0.15, "color": (120, 60, 160), "anchors": [(0, 1), (0, 1)]},
        )
        self.reference.setVisible(False)
        self.addItem(self.reference, ignoreBounds=True)
        self._shown_range: tuple = (None, None)  # (x, y) as last set

    def set_reference(self, value: float | None, label: str = "") -> None:
        """A dashed horizontal line at another run's final mean log p(x) (None: hide it)."""
        if value is None:
            self.reference.setVisible(False)
            return
        self.reference.setPos(value)
        self.reference.label.setFormat(label)
        self.reference.setVisible(True)

    def show_curve(self, c: LLCurve, growing: bool = False) -> None:
        """Draw the curve in an explicit range (auto-range runs in the paint and makes pyqtgraph paint the plot
        twice): the curve's own, or with ``growing`` (EM running) one that grows ahead of it (``growing_range``), so
        the axes are not redrawn for every half step."""
        self.curve.setData(c.x, c.ll)
        self.after_e.setData(c.x[c.after_e], c.ll[c.after_e])
        self.after_m.setData(c.x[c.after_m], c.ll[c.after_m])
        if c.y_range is not None:
            x_range = growing_range(self._shown_range[0], c.x_range) if growing else c.x_range
            y_range = growing_range(self._shown_range[1], c.y_range) if growing else c.y_range
            if (x_range, y_range) != self._shown_range:
                self._shown_range = (x_range, y_range)
                self.setRange(xRange=x_range, yRange=y_range, padding=0)


class PosteriorPanel(QWidget):
    """p(z=k | x) of the selected point as bars, and Bayes' rule's numbers in a table that scrolls (K rows)."""

    def __init__(self) -> None:
        super().__init__()
        self.plot = small_plot()
        self.plot.setLabel("bottom", "component k")
        self.plot.setLabel("left", "p(z=k | x)")
        readable_axes(self.plot, integer=("bottom",))
        self.plot.setYRange(0, 1.0)
        self.plot.setMouseEnabled(x=False, y=False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7)
        self.plot.addItem(self.bars)
        self.text = QLabel(NO_SELECTION)
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.table_scroll = QScrollArea()
        self.table_scroll.setWidget(self.text)
        self.table_scroll.setWidgetResizable(True)
        self.table_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.table_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table_scroll.setMinimumHeight(3 * self.fontMetrics().lineSpacing() + 6)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.table_scroll, 2)
        self.plot.getViewBox().sigResized.connect(lambda *_: self._tick())

    def clear(self) -> None:
        self.bars.setOpts(x=[], height=[])
        self.text.setText(NO_SELECTION)

    def show_posterior(self, x: np.ndarray, joint: np.ndarray, post: np.ndarray) -> None:
        """Bayes' rule at x: p(z=k|x) = pi_k N(x; mu_k, Sigma_k) / p(x), with p(x) = sum_k of the joints."""
        K = len(post)
        show_bars(self.plot, self.bars, post)
        rows = "".join(
            f"<tr><td><span style='color:{component_hex(k)}'>&#9632;</span> {k}</td>"
            f"<td align='right'>{joint[k]:.3g}</td><td align='right'><b>{post[k]:.3f}</b></td></tr>"
            for k in range(K)
        )
        self.text.setText(
            f"x = ({x[0]:.2f}, {x[1]:.2f}) &nbsp; p(z=k|x) = "
            "&pi;<sub>k</sub>N(x; &mu;<sub>k</sub>, &Sigma;<sub>k</sub>) / p(x), "
            f"&nbsp;p(x) = {joint.sum():.3g}"
            f"<table cellspacing='6'><tr><th>k</th><th>&pi;<sub>k</sub>N(x;&mu;<sub>k</sub>,&Sigma;<sub>k</sub>)</th>"
            f"<th>p(z=k|x)</th></tr>{rows}</table>"
        )

    def _tick(self) -> None:
        height = self.bars.opts.get("height")
        if height is not None and len(height):
            tick_bars(self.plot, len(height))


class BICPanel(QWidget):
    """BIC and AIC of K = 1..8 (every seed a marker, the best per K a line); greyed with a note when stale.

    ``k_chosen(k)``: a marker was clicked or "Use best K" pressed."""

    k_chosen = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.plot = small_plot("lower is better")  # (short: the column may be 180 px wide; the legend names them)
        self.plot.setLabel("bottom", "K")
        readable_axes(self.plot, integer=("bottom",))
        legend = self.plot.addLegend(offset=(-10, 4), labelTextColor="k", colCount=2)  # one row: clear of the curves
        self.bic_line = self.plot.plot()
        self.aic_line = self.plot.plot()
        self.bic_pts = pg.ScatterPlotItem(size=8, symbol="o", pen=None)
        self.aic_pts = pg.ScatterPlotItem(size=8, symbol="t", pen=None)
        self.plot.addItem(self.bic_pts)
        self.plot.addItem(self.aic_pts)
        legend.addItem(self.bic_pts, "BIC")
        legend.addItem(self.aic_pts, "AIC")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #7f7f7f; font-style: italic;")
        self.note.setVisible(False)
        self.button = QPushButton(BIC_TEXT)
        self.button.setToolTip(f"fit K = 1..{BIC_KS[-1]} with {len(BIC_SEEDS)} seeds each in the background")
        self.adopt_button = QPushButton("Use best K")
        self.adopt_button.setToolTip("adopt the K with the lowest BIC (or click a point in the plot)")
        self.adopt_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        layout.addWidget(flow(self.button, self.adopt_button))
        self._best: int | None = None
        self.adopt_button.clicked.connect(self._adopt_best)
        for pts in (self.bic_pts, self.aic_pts):
            pts.sigClicked.connect(self._on_points_clicked)

    def _adopt_best(self) -> None:
        if self._best is not None:
            self.k_chosen.emit(self._best)

    def _on_points_clicked(self, _item, points, *_args) -> None:
        if len(points):
            self.k_chosen.emit(int(points[0].data()))

    def draw(self, grid: BICGrid, stale: str | None, computing: bool) -> None:
        bic_rgb, aic_rgb = (STALE, STALE) if stale else (BIC_PEN, AIC_PEN)
        c = grid.curves()
        self.bic_pts.setData(c["k"] - 0.08, c["bic"], data=c["k"].astype(int), brush=pg.mkBrush(*bic_rgb, 160))
        self.aic_pts.setData(c["k"] + 0.08, c["aic"], data=c["k"].astype(int), brush=pg.mkBrush(*aic_rgb, 160))
        self.bic_line.setData(c["ks"], c["bic_min"], pen=line_pen(bic_rgb, width=2))
        self.aic_line.setData(c["ks"], c["aic_min"], pen=line_pen(aic_rgb, width=2, style=Qt.PenStyle.DashLine))
        self.note.setText(f"stale: {stale} \u2014 press {BIC_TEXT}" if stale else "")
        self.note.setVisible(bool(stale))
        self._best = None if stale else grid.best_k()
        self.adopt_button.setEnabled(self._best is not None and not computing)
        self.adopt_button.setText("Use best K" if self._best is None else f"Use best K = {self._best}")
        self.button.setText("computing\u2026" if computing else BIC_TEXT)
