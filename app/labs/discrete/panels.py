"""The Discrete latents lab's widgets: the exact sum (histograms, marginals, top configurations), the estimators'
convergence, the cost of enumeration, training, and the header over them. They show what they are given (the texts and
ranges come from ``state``); the lab binds them to its state."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.labs.discrete.state import (
    SETTING_RANGES,
    TOP_N,
    Analysis,
    CostCurve,
    DiscreteSettings,
    TrainHistory,
    convergence_view,
    cost_view,
    estimator_ks,
    objective_text,
    sample_histograms,
    train_status,
)
from app.widgets.estimate_band import add_estimate_band
from app.widgets.grid_lines import GridLines
from app.widgets.image_item import ImageItem
from app.widgets.lab_view import labelled_row
from app.widgets.lab_view import spin_box as _spin
from app.widgets.steady_plots import steady_tick_column
from lvm.estimators.discrete import ESTIMATOR_LABELS, ESTIMATORS
from lvm.models.binary_latent import MAX_LATENT_DIM

COLORS = {
    "uniform": (200, 120, 20),
    "is_encoder": (30, 110, 200),
    "is_marginals": (60, 160, 60),
    "elbo": (150, 60, 170),
}
EXACT_COLOR = (0, 0, 0)
CONFIG_COLOR = (120, 120, 120)
MASS_COLOR = (20, 60, 160)
TOP_PITCH = 34  # the top configurations: one row of 28 x 28 images, 6 units apart
GREY_LUT = np.array([[255 - i] * 3 for i in range(256)], dtype=np.uint8)  # white background, black ink


def _plot(
    title: str = "",
    bottom: str = "",
    left: str = "",
    legend: tuple[int, int] | None = None,
    log_x: bool = False,
    log_y: bool = False,
) -> pg.PlotWidget:
    """A white plot with grid lines, a steady tick column, axis labels and (at ``legend``) a legend."""
    w = pg.PlotWidget(background="w", title=title)
    w.grid_lines = GridLines(w, alpha=0.2)
    steady_tick_column(w)
    w.setMenuEnabled(False)
    if log_x or log_y:
        w.setLogMode(x=log_x, y=log_y)
    if bottom:
        w.setLabel("bottom", bottom)
    if left:
        w.setLabel("left", left)
    if legend is not None:
        w.addLegend(offset=legend, labelTextSize="8pt", brush=pg.mkBrush(255, 255, 255, 210))
    return w


def _run_controls(text: str, name: str) -> tuple[QPushButton, QProgressBar, QLabel]:
    """A run button, a progress bar and a status line (object names ``discrete-NAME-run``/``-status``)."""
    button = QPushButton(text)
    button.setObjectName(f"discrete-{name}-run")
    progress = QProgressBar()
    progress.setRange(0, 1000)
    return button, progress, wrapped_label(f"discrete-{name}-status")


def wrapped_label(name: str, text: str = "") -> QLabel:
    """A label whose text wraps to the width it is given: no text, however long, widens the window."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setObjectName(name)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    return label


SAMPLE_SEED_MAX = 10**6


def _setting_spin(key: str, name: str, step: int = 1) -> QSpinBox:
    """A spin box for the integer setting ``key`` of ``DiscreteSettings``: its range and default."""
    lo, hi = SETTING_RANGES[key]
    return _spin(int(lo), int(hi), getattr(DiscreteSettings, key), name, step)


def _image_item() -> pg.ImageItem:
    img = ImageItem(axisOrder="row-major")
    img.setLookupTable(GREY_LUT)
    return img


def _panel_layout(panel, spins) -> None:
    """Controls (labelled spin boxes, ``panel.run_button``, ``panel.progress``) over ``panel.plot``, then
    ``panel.status``."""
    ctl = QHBoxLayout()
    for label, w in spins:
        ctl.addWidget(QLabel(label))
        ctl.addWidget(w)
    ctl.addWidget(panel.run_button)
    ctl.addWidget(panel.progress, 1)
    layout = QVBoxLayout(panel)
    layout.addLayout(ctl)
    layout.addWidget(panel.plot, 1)
    layout.addWidget(panel.status)


class ExactPanel(QWidget):
    """The histogram of log p(x, z) over all configurations, the posterior mass and the samples, the exact marginals
    beside q's, and the top configurations."""

    title = "The exact sum"

    def __init__(self):
        super().__init__()
        self.hist_plot = _plot(
            "How many of the 2^K configurations have each log p(x, z)", left="log₁₀(1 + count)", legend=(8, 8)
        )
        self.count_curve = self.hist_plot.plot(
            [],
            [],
            stepMode="center",
            fillLevel=0,
            brush=pg.mkBrush(CONFIG_COLOR + (90,)),
            pen=pg.mkPen(CONFIG_COLOR),
            name="all configurations",
        )
        self.uniform_count = self.hist_plot.plot(
            [],
            [],
            stepMode="center",
            name="uniform samples × 2^K / n",
            pen=pg.mkPen(COLORS["uniform"], width=2, style=Qt.PenStyle.DashLine),
        )
        self.mass_plot = _plot(
            "Where the posterior mass is, and where samples land", "log p(x, z) (nats)", "fraction", legend=(8, 8)
        )
        self.mass_plot.setXLink(self.hist_plot)
        self.mass_curve = self.mass_plot.plot(
            [],
            [],
            stepMode="center",
            fillLevel=0,
            brush=pg.mkBrush(MASS_COLOR + (110,)),
            pen=pg.mkPen(MASS_COLOR),
            name="posterior mass p(z|x) (exact)",
        )
        self.uniform_frac = self.mass_plot.plot(
            [],
            [],
            stepMode="center",
            name="uniform samples",
            pen=pg.mkPen(COLORS["uniform"], width=2, style=Qt.PenStyle.DashLine),
        )
        self.q_frac = self.mass_plot.plot(
            [],
            [],
            stepMode="center",
            name="samples of the encoder's q",
            pen=pg.mkPen(COLORS["elbo"], width=2, style=Qt.PenStyle.DashLine),
        )
        self.px_lines = []
        for p in (self.hist_plot, self.mass_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(EXACT_COLOR, width=1.5, style=Qt.PenStyle.DotLine))
            line.setVisible(False)
            p.addItem(line)
            self.px_lines.append(line)

        self.marg_plot = _plot(
            'p(z<sub>k</sub> = 1 | x): <span style="color:#143ca0">exact</span>, '
            '<span style="color:#963caa">encoder q</span>',
            "feature k",
        )
        self.marg_plot.setYRange(0, 1.02, padding=0)
        self.exact_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=pg.mkBrush(MASS_COLOR))
        self.q_bars = pg.BarGraphItem(x=[], height=[], width=0.38, brush=pg.mkBrush(COLORS["elbo"] + (170,)))
        self.marg_plot.addItem(self.exact_bars)
        self.marg_plot.addItem(self.q_bars)

        self.top = pg.GraphicsLayoutWidget()
        self.top.setBackground("w")
        self.top.setObjectName("discrete-top")
        self.top_box = self.top.addViewBox(lockAspect=True, enableMouse=False)
        self.top_box.invertY(True)
        self.top_items = []
        for i in range(TOP_N):
            x0 = i * TOP_PITCH
            img = _image_item()
            img.setPos(x0, 0)
            strip = _image_item()  # z as a strip of K cells, black = feature on
            label = pg.TextItem("", color="k", anchor=(0.5, 1.0))
            label.setPos(x0 + 14, -0.5)
            label.setZValue(10)
            for it in (img, strip, label):
                self.top_box.addItem(it)
            self.top_items.append((label, img, strip))
        self.top_box.setRange(xRange=(0, TOP_N * TOP_PITCH - 6), yRange=(-7, 33), padding=0.01)
        self.top_caption = wrapped_label(
            "discrete-top-caption",
            "The most probable configurations z: their posterior mass p(z|x), the decoded "
            "image E[x|z] and z itself (a strip of K cells, black = feature on):",
        )
        self.top_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)  # (no extra space)

        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        grid.addWidget(self.hist_plot, 0, 0)
        grid.addWidget(self.mass_plot, 1, 0)
        grid.addWidget(self.marg_plot, 0, 1, 2, 1)
        grid.addWidget(self.top_caption, 2, 0, 1, 2)
        grid.addWidget(self.top, 3, 0, 1, 2)
        grid.setRowStretch(0, 4)
        grid.setRowStretch(1, 4)
        grid.setRowStretch(3, 3)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)

    def clear(self) -> None:
        for c in (self.count_curve, self.uniform_count, self.mass_curve, self.uniform_frac, self.q_frac):
            c.setData([], [])
        self.exact_bars.setOpts(x=[], height=[])
        self.q_bars.setOpts(x=[], height=[])
        for line in self.px_lines:
            line.setVisible(False)
        for label, img, strip in self.top_items:
            label.setText("")
            img.clear()
            strip.clear()

    def show_analysis(self, a: Analysis) -> None:
        edges, h = a.hist_edges, sample_histograms(a)
        self.count_curve.setData(edges, h.count_log10)
        self.uniform_count.setData(edges, h.uniform_count_log10)
        self.mass_curve.setData(edges, a.hist_mass)
        self.uniform_frac.setData(edges, h.uniform_fraction)
        self.q_frac.setData(edges, h.q_fraction)
        for line in self.px_lines:
            line.setValue(a.log_px)
            line.setVisible(True)
        self.hist_plot.setXRange(edges[0], max(edges[-1], a.log_px) + 5, padding=0.02)
        self.hist_plot.setYRange(0, h.count_top, padding=0)
        self.mass_plot.setYRange(0, 1.05, padding=0)
        k = np.arange(a.latent_dim)
        self.exact_bars.setOpts(x=k - 0.2, height=a.marginals)
        self.q_bars.setOpts(x=k + 0.2, height=a.q_probs)
        self.marg_plot.setXRange(-0.7, a.latent_dim - 0.3, padding=0)
        for i, (label, img, strip) in enumerate(self.top_items):
            if i < len(a.top_mass):
                label.setText(f"{a.top_mass[i]:.3g}")
                img.setImage(a.top_images[i], levels=(0.0, 1.0), autoLevels=False)
                strip.setImage(a.top_bits[i].reshape(1, -1).astype(np.float32), levels=(0.0, 1.0), autoLevels=False)
                strip.setRect(i * TOP_PITCH, 29.5, 28, 3)
            else:
                label.setText("")
                img.clear()
                strip.clear()


class EstimatorPanel(QWidget):
    """Estimates of log p(x) against k with 10-90 % bands over repeats, the exact value and the exact ELBO."""

    title = "Estimators vs the exact sum"

    def __init__(self):
        super().__init__()
        self.plot = _plot(
            "Estimates of log p(x) against the number of samples k",
            "k (samples per estimate)",
            "nats",
            legend=(-8, -8),
            log_x=True,
        )
        self.curves, self.bands = {}, {}
        for name in ESTIMATORS:
            c = COLORS[name]
            lo, hi, _, self.curves[name] = add_estimate_band(self.plot, c, ESTIMATOR_LABELS[name] + " (mean)", 50)
            self.bands[name] = (lo, hi)
        self.exact_line = self.plot.plot(
            [], [], pen=pg.mkPen(EXACT_COLOR, width=2), name="exact log p(x) (all 2^K terms)"
        )
        self.elbo_line = self.plot.plot(
            [], [], pen=pg.mkPen(COLORS["elbo"], width=2, style=Qt.PenStyle.DashLine), name="exact ELBO(encoder q)"
        )
        self.repeats = _setting_spin("repeats", "discrete-repeats")
        self.seed = _setting_spin("seed", "discrete-seed")
        self.kmax = _setting_spin("kmax", "discrete-kmax", 1000)
        self.run_button, self.progress, self.status = _run_controls("Recompute", "conv")
        _panel_layout(self, (("repeats", self.repeats), ("k max", self.kmax), ("seed", self.seed)))

    def ks(self) -> tuple[int, ...]:
        return estimator_ks(self.kmax.value())

    def clear(self) -> None:
        for name in ESTIMATORS:
            self.curves[name].setData([], [])
            for it in self.bands[name]:
                it.setData([], [])
        self.exact_line.setData([], [])
        self.elbo_line.setData([], [])
        self.progress.setValue(0)

    def show_snapshot(self, snap, a: Analysis) -> None:
        v = convergence_view(snap, a)
        for name in ESTIMATORS:
            self.curves[name].setData(v.ks, v.mean[name])
            band = v.band[name]
            if band is not None:
                self.bands[name][0].setData(v.ks, band[0])
                self.bands[name][1].setData(v.ks, band[1])
        self.exact_line.setData([v.ks[0], v.ks[-1]], [a.log_px] * 2)
        self.elbo_line.setData([v.ks[0], v.ks[-1]], [a.elbo_q] * 2)
        self.plot.setYRange(*v.y_range, padding=0)
        self.plot.setXRange(0, math.log10(v.ks[-1]), padding=0.03)
        self.progress.setValue(int(1000 * v.fraction))
        self.status.setText(v.text)


class CostPanel(QWidget):
    """Measured time per x against K on a log axis, the 2^K line through the measurements and the budget."""

    title = "What it costs"

    def __init__(self):
        super().__init__()
        self.plot = _plot(
            "Exact log p(x) for one x: measured wall time against K",
            "K (binary latent features)",
            "seconds per x",
            legend=(8, 8),
            log_y=True,
        )
        self.points = self.plot.plot(
            [], [], pen=None, symbol="o", symbolSize=8, symbolBrush=(30, 110, 200), name="measured (table a(z) + sum)"
        )
        self.line = self.plot.plot(
            [],
            [],
            pen=pg.mkPen((30, 110, 200), width=1.5, style=Qt.PenStyle.DashLine),
            name="c · 2^K through the measurements (K ≥ 12)",
        )
        self.budget = self.plot.plot(
            [], [], pen=pg.mkPen((200, 60, 40), width=2), name="budget: one gradient evaluation per training x"
        )
        self.plot.setXRange(0, MAX_LATENT_DIM + 1, padding=0)
        self.plot.setYRange(-5, 4, padding=0)
        self.run_button, self.progress, self.status = _run_controls("Measure again", "cost")
        _panel_layout(self, ())

    def clear(self) -> None:
        for c in (self.points, self.line, self.budget):
            c.setData([], [])
        self.progress.setValue(0)

    def show_curve(self, curve: CostCurve, n_ks: int) -> None:
        ks = np.array([p.k for p in curve.points], dtype=float)
        self.points.setData(ks, np.array([p.seconds for p in curve.points]))
        v = cost_view(curve, n_ks)
        if v.c is not None:
            kk = np.arange(1, MAX_LATENT_DIM + 1, dtype=float)
            self.line.setData(kk, v.c * 2.0**kk)
        if curve.budget_s:
            self.budget.setData([0, MAX_LATENT_DIM + 1], [curve.budget_s] * 2)
        self.progress.setValue(int(1000 * v.fraction))
        self.status.setText(v.text)


class TrainPanel(QWidget):
    """K, epochs, learning rate, VIMCO's k, seed; train in a worker with progress and stop; the objective used."""

    title = "Train"

    def __init__(self):
        super().__init__()
        self.k = _setting_spin("train_k", "discrete-k")
        self.epochs = _setting_spin("epochs", "discrete-epochs")
        self.samples = _setting_spin("samples", "discrete-samples")
        self.seed = _setting_spin("train_seed", "discrete-train-seed")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(4)
        self.lr.setRange(*SETTING_RANGES["lr"])
        self.lr.setSingleStep(1e-3)
        self.lr.setValue(DiscreteSettings.lr)
        self.lr.setKeyboardTracking(False)
        self.objective = wrapped_label("discrete-objective")
        self.train_button = QPushButton("Train a new model")
        self.train_button.setObjectName("discrete-train")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("discrete-stop")
        self.bundled_button = QPushButton("Use the bundled K = 20 model")
        self.bundled_button.setObjectName("discrete-bundled")
        _, self.progress, self.status = _run_controls("", "train")
        self.plot = _plot("Training objective (running mean over 50 steps)", "step", "nats per x")
        self.curve = self.plot.plot([], [], pen=pg.mkPen((30, 110, 200), width=2))
        row = labelled_row(
            ("K", self.k),
            ("epochs", self.epochs),
            ("lr", self.lr),
            ("VIMCO samples", self.samples),
            ("seed", self.seed),
        )
        row.addStretch(1)
        buttons = QHBoxLayout()
        for b in (self.train_button, self.stop_button, self.bundled_button):
            buttons.addWidget(b)
        buttons.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.objective)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)
        self.k.valueChanged.connect(self.update_objective)
        self.update_objective()
        self.set_running(False)

    def update_objective(self, *_args) -> None:
        k = self.k.value()
        self.objective.setText(
            "Objective for " + objective_text(k) + ". Training data: the current data set's images, thresholded at ½."
        )
        self.samples.setEnabled(k > 12)

    def set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.bundled_button.setEnabled(not running)
        for w in (self.k, self.epochs, self.lr, self.seed):
            w.setEnabled(not running)
        self.samples.setEnabled(not running and self.k.value() > 12)

    def reset(self) -> None:
        self.curve.setData([], [])
        self.progress.setValue(0)

    def show_history(self, history: TrainHistory, snap) -> None:
        """The curve so far and the latest snapshot (an ``lvm.training_discrete.DiscreteTrainSnapshot``)."""
        self.curve.setData(history.steps, history.bounds)
        self.plot.setXRange(0, max(10, snap.steps), padding=0.02)
        self.plot.setYRange(*history.y_range(), padding=0)
        self.progress.setValue(int(1000 * snap.fraction))
        self.status.setText(train_status(snap))


class HeaderPanel(QWidget):
    """The digit analysed, the model in words, the exact result in words, and the enumeration's progress and Stop."""

    def __init__(self):
        super().__init__()
        self.digit = pg.GraphicsLayoutWidget()
        self.digit.setProperty("readable_size", (56, 56))  # a thumbnail of x (app.widgets.layout_check)
        self.digit.setBackground("w")
        self.digit.setFixedSize(84, 84)
        vb = self.digit.addViewBox(lockAspect=True, enableMouse=False)
        vb.invertY(True)
        self.digit_image = _image_item()
        vb.addItem(self.digit_image)
        vb.setRange(xRange=(0, 28), yRange=(0, 28), padding=0.02)
        self.model_label = wrapped_label("discrete-model")
        self.exact_label = wrapped_label("discrete-exact")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setObjectName("discrete-progress")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("discrete-exact-stop")
        self.stop_button.setToolTip("stop the enumeration (large K takes minutes)")
        self.stop_button.setEnabled(False)
        self.sample_seed = _spin(0, SAMPLE_SEED_MAX, 0, "discrete-sample-seed")
        self.sample_seed.setToolTip("the seed of the uniform and posterior samples drawn for the histograms")
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.stop_button)
        bar.addWidget(QLabel("sample seed"))
        bar.addWidget(self.sample_seed)
        info = QVBoxLayout()
        info.addWidget(self.model_label)
        info.addWidget(self.exact_label)
        info.addLayout(bar)
        head = QHBoxLayout(self)
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.digit)
        head.addLayout(info, 1)

    def show_digit(self, x: np.ndarray) -> None:
        self.digit_image.setImage(x.reshape(28, 28), levels=(0.0, 1.0), autoLevels=False)
