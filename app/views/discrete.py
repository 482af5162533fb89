"""The Discrete latents lab: the lecture's "30 binary latent features, 2^30 terms" made literal.

A binary latent factor model (z in {0,1}^K, x | z Bernoulli with logits W z + b; its own model, the bundled K = 20
one or one trained here) and the selected digit: the exact log p(x) by enumerating all 2^K configurations, the
histogram of log p(x, z) over them with where uniform and q samples land, the top configurations, the exact
marginals beside q's; the estimators' convergence against the exact value; what enumeration costs as K grows; and
training for any K from 1 to 30. The computations live in ``discrete_state`` (Qt-free) and run in workers.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.views.base import LabView, restore_spin, spin_box as _spin
from app.views.discrete_state import (
    DEFAULT_KS,
    TOP_N,
    Analysis,
    CostCurve,
    DiscreteState,
    Progress,
    TrainUpdate,
    analyse_steps,
    binarize,
    convergence_job,
    cost_steps,
    fit_two_to_the_k,
    load_bundled,
    objective_text,
    train_job,
)
from app.widgets.grid_lines import GridLines
from app.widgets.steady_plots import steady_tick_column
from lvm.estimators.discrete import ESTIMATOR_LABELS, ESTIMATORS
from lvm.io import atomic_open_text
from lvm.models.binary_latent import MAX_LATENT_DIM

COLORS = {"uniform": (200, 120, 20), "is_encoder": (30, 110, 200), "is_marginals": (60, 160, 60),
          "elbo": (150, 60, 170)}
EXACT_COLOR = (0, 0, 0)
CONFIG_COLOR = (120, 120, 120)
MASS_COLOR = (20, 60, 160)
TOP_PITCH = 34  # the top configurations: one row of 28 x 28 images, 6 units apart
GREY_LUT = np.array([[255 - i] * 3 for i in range(256)], dtype=np.uint8)  # white background, black ink

EXPLANATION = r"""
<h3>Discrete latents: 30 binary features, 2<sup>30</sup> terms</h3>
<p><b>The model.</b> K binary features z ∈ {0,1}<sup>K</sup> with a factorised prior
p(z) = ∏<sub>k</sub> σ(a<sub>k</sub>)<sup>z<sub>k</sub></sup> (1 − σ(a<sub>k</sub>))<sup>1−z<sub>k</sub></sup>, and pixels
x<sub>d</sub> | z ~ Bernoulli(σ(l<sub>d</sub>)) with logits l = W z + b (a one-layer sigmoid belief net).
The digit is thresholded at ½.</p>
<p><b>The exact sum.</b> p(x) = Σ<sub>z</sub> p(z) p(x|z) has 2<sup>K</sup> terms. Here it is computed, all of them:
<br>&nbsp;&nbsp;$\log p(x, z) = x \cdot l(z) + a(z)$, &nbsp; $a(z) = \log p(z) - \sum_d \mathrm{softplus}(l_d(z))$.
<br>a(z) does not depend on x: it is computed once per z (a table of 2<sup>K</sup> numbers), and
x·l(z) = x·b + (xW)·z is one small matrix product. log p(x) is the logsumexp over all z, accumulated chunk by chunk.</p>
<p><b>"For most z, p(x, z) is very low."</b> The histogram counts the configurations by log p(x, z); the lower plot
shows where the posterior mass p(z|x) = p(x, z)/p(x) is, and where samples fall: uniform z land where the
configurations are (far left), the mass is in a handful of them (far right).</p>
<p><b>Naive Monte Carlo</b> (the slide): z<sub>i</sub> uniform on {0,1}<sup>K</sup>,
<br>&nbsp;&nbsp;$$\hat{p}(x) = |Z| \, \frac{1}{k} \sum_{i=1}^{k} p(x, z_i)$$, $|Z| = 2^K$. Unbiased, hopeless.</p>
<p><b>Importance sampling</b> with a mean-field Bernoulli q(z) = ∏<sub>k</sub> q<sub>k</sub><sup>z<sub>k</sub></sup>(1−q<sub>k</sub>)<sup>1−z<sub>k</sub></sup>:
<br>&nbsp;&nbsp;$$\hat{p}(x) = \frac{1}{k} \sum_{i=1}^{k} \frac{p(x, z_i)}{q(z_i)}$$, $z_i \sim q$; $\mathbb{E}[\hat{p}(x)] = p(x)$.
<br>Two q's: the encoder's q(z|x), and the product of the exact marginals p(z<sub>k</sub>=1|x) (the mean-field q
closest to the posterior in KL(p‖q): mass-covering, as a proposal should be).</p>
<p><b>IWAE</b>: $\mathcal{L}_k = \mathbb{E}[\log \hat{p}(x)] \leq \log p(x)$, rising with k (Jensen). <b>ELBO</b> =
$\mathcal{L}_1 = \mathbb{E}_q[\log p(x,z) - \log q(z)]$, and exactly, by enumeration,
$\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$.</p>
<p><b>Cost.</b> Enumeration costs 2<sup>K</sup> · D operations per x: the plot shows measured times and the 2<sup>K</sup>
line through them; the lecture's budget is one gradient evaluation per training data point.</p>
<p><b>Training.</b> For K ≤ 12: the exact log-likelihood by enumeration (exact gradient); the encoder is fitted to the
exact marginals. Above: VIMCO (Mnih &amp; Rezende, <i>Variational inference for Monte Carlo objectives</i>, ICML 2016):
the multi-sample bound L<sub>k</sub> with score-function gradients for q and leave-one-out baselines.</p>
<p><b>The mixture as a special case.</b> Restrict z to one-hot vectors (exactly one feature on): the sum has K terms,
$p(x) = \sum_k \pi_k\, p(x \mid z = e_k)$ — a mixture model, the Mixture lab's picture of the same sum
(with Gaussian components there).</p>
"""


def _plot(title: str = "", bottom: str = "", left: str = "", legend: tuple[int, int] | None = None,
          log_x: bool = False, log_y: bool = False) -> pg.PlotWidget:
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
    status = QLabel("")
    status.setWordWrap(True)
    status.setObjectName(f"discrete-{name}-status")
    return button, progress, status




def _image_item() -> pg.ImageItem:
    img = pg.ImageItem(axisOrder="row-major")
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
        self.hist_plot = _plot("How many of the 2^K configurations have each log p(x, z)", left="log₁₀(1 + count)",
                               legend=(8, 8))
        self.count_curve = self.hist_plot.plot([], [], stepMode="center", fillLevel=0,
                                               brush=pg.mkBrush(CONFIG_COLOR + (90,)), pen=pg.mkPen(CONFIG_COLOR),
                                               name="all configurations")
        self.uniform_count = self.hist_plot.plot([], [], stepMode="center", name="uniform samples × 2^K / n",
                                                 pen=pg.mkPen(COLORS["uniform"], width=2, style=Qt.DashLine))
        self.mass_plot = _plot("Where the posterior mass is, and where samples land", "log p(x, z) (nats)",
                               "fraction", legend=(8, 8))
        self.mass_plot.setXLink(self.hist_plot)
        self.mass_curve = self.mass_plot.plot([], [], stepMode="center", fillLevel=0,
                                              brush=pg.mkBrush(MASS_COLOR + (110,)), pen=pg.mkPen(MASS_COLOR),
                                              name="posterior mass p(z|x) (exact)")
        self.uniform_frac = self.mass_plot.plot([], [], stepMode="center", name="uniform samples",
                                                pen=pg.mkPen(COLORS["uniform"], width=2, style=Qt.DashLine))
        self.q_frac = self.mass_plot.plot([], [], stepMode="center", name="samples of the encoder's q",
                                          pen=pg.mkPen(COLORS["elbo"], width=2, style=Qt.DashLine))
        self.px_lines = []
        for p in (self.hist_plot, self.mass_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(EXACT_COLOR, width=1.5, style=Qt.DotLine))
            line.setVisible(False)
            p.addItem(line)
            self.px_lines.append(line)

        self.marg_plot = _plot('p(z<sub>k</sub> = 1 | x): <span style="color:#143ca0">exact</span>, '
                               '<span style="color:#963caa">encoder q</span>', "feature k")
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
        self.top_caption = QLabel("The most probable configurations z: their posterior mass p(z|x), the decoded "
                                  "image E[x|z] and z itself (a strip of K cells, black = feature on):")

        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        grid.addWidget(self.hist_plot, 0, 0)
        grid.addWidget(self.mass_plot, 1, 0)
        grid.addWidget(self.marg_plot, 0, 1, 2, 1)
        grid.addWidget(self.top_caption, 2, 0, 1, 2)
        grid.addWidget(self.top, 3, 0, 1, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 3)
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
        edges, n = a.hist_edges, 2**a.latent_dim
        self.count_curve.setData(edges, np.log10(1 + a.hist_counts))
        u_counts = np.histogram(a.uniform_lj, bins=edges)[0]
        q_counts = np.histogram(np.clip(a.q_lj, edges[0], edges[-1]), bins=edges)[0]
        self.uniform_count.setData(edges, np.log10(1 + u_counts * n / max(1, len(a.uniform_lj))))
        self.mass_curve.setData(edges, a.hist_mass)
        self.uniform_frac.setData(edges, u_counts / max(1, len(a.uniform_lj)))
        self.q_frac.setData(edges, q_counts / max(1, len(a.q_lj)))
        for line in self.px_lines:
            line.setValue(a.log_px)
            line.setVisible(True)
        self.hist_plot.setXRange(edges[0], max(edges[-1], a.log_px) + 5, padding=0.02)
        self.hist_plot.setYRange(0, math.log10(1 + max(1.0, a.hist_counts.max())) * 1.08, padding=0)
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
        self.plot = _plot("Estimates of log p(x) against the number of samples k", "k (samples per estimate)",
                          "nats", legend=(-8, -8), log_x=True)
        self.curves, self.bands = {}, {}
        for name in ESTIMATORS:
            c = COLORS[name]
            lo = pg.PlotDataItem(pen=pg.mkPen(c + (0,)))
            hi = pg.PlotDataItem(pen=pg.mkPen(c + (0,)))
            band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(c + (50,)))
            for it in (lo, hi, band):
                self.plot.addItem(it)
            self.bands[name] = (lo, hi)
            self.curves[name] = self.plot.plot([], [], pen=pg.mkPen(c, width=2.2), symbol="o", symbolSize=5,
                                               symbolBrush=c, symbolPen=None, name=ESTIMATOR_LABELS[name] + " (mean)")
        self.exact_line = self.plot.plot([], [], pen=pg.mkPen(EXACT_COLOR, width=2),
                                         name="exact log p(x) (all 2^K terms)")
        self.elbo_line = self.plot.plot([], [], pen=pg.mkPen(COLORS["elbo"], width=2, style=Qt.DashLine),
                                        name="exact ELBO(encoder q)")
        self.repeats = _spin(2, 100, 10, "discrete-repeats")
        self.seed = _spin(0, 10**6, 0, "discrete-seed")
        self.kmax = _spin(10, 100000, 10000, "discrete-kmax", 1000)
        self.run_button, self.progress, self.status = _run_controls("Recompute", "conv")
        _panel_layout(self, (("repeats", self.repeats), ("k max", self.kmax), ("seed", self.seed)))

    def ks(self) -> tuple[int, ...]:
        kmax = self.kmax.value()
        return tuple(sorted({k for k in DEFAULT_KS if k < kmax} | {kmax}))

    def clear(self) -> None:
        for name in ESTIMATORS:
            self.curves[name].setData([], [])
            for it in self.bands[name]:
                it.setData([], [])
        self.exact_line.setData([], [])
        self.elbo_line.setData([], [])
        self.progress.setValue(0)

    def show_snapshot(self, snap, a: Analysis) -> None:
        ks = np.array(snap.ks, dtype=float)
        done = snap.repeats_done
        parts = []
        for name in ESTIMATORS:
            v = snap.values[name][:, :done]
            finite = np.where(np.isfinite(v), v, np.nan)
            mean = np.nanmean(finite, 1)
            self.curves[name].setData(ks, mean)
            if done >= 2:
                self.bands[name][0].setData(ks, np.nanquantile(finite, 0.1, axis=1))
                self.bands[name][1].setData(ks, np.nanquantile(finite, 0.9, axis=1))
            parts.append(f"{ESTIMATOR_LABELS[name]}: {mean[-1]:.2f}")
        self.exact_line.setData([ks[0], ks[-1]], [a.log_px] * 2)
        self.elbo_line.setData([ks[0], ks[-1]], [a.elbo_q] * 2)
        gap = max(2.0, a.log_px - a.elbo_q)
        lo = min(a.elbo_q, float(np.nanmin(snap.values["is_encoder"][:, :done]))) - 0.3 * gap
        self.plot.setYRange(lo, a.log_px + 0.25 * gap, padding=0)
        self.plot.setXRange(0, math.log10(ks[-1]), padding=0.03)
        self.progress.setValue(int(1000 * done / snap.repeats))
        u = snap.values["uniform"][:, :done]
        self.status.setText(
            f"x #{a.index}, repeat {done}/{snap.repeats}, at k = {snap.ks[-1]:,}: " + "; ".join(parts)
            + f". Exact log p(x) = {a.log_px:.2f}, exact ELBO(q) = {a.elbo_q:.2f} (KL(q‖p(z|x)) = {a.kl_q:.2f}). "
            f"Naive MC with uniform z is off the plot: between {np.nanmin(u):.0f} and {np.nanmax(u):.0f} nats.")


class CostPanel(QWidget):
    """Measured time per x against K on a log axis, the 2^K line through the measurements and the budget."""

    title = "What it costs"

    def __init__(self):
        super().__init__()
        self.plot = _plot("Exact log p(x) for one x: measured wall time against K", "K (binary latent features)",
                          "seconds per x", legend=(8, 8), log_y=True)
        self.points = self.plot.plot([], [], pen=None, symbol="o", symbolSize=8, symbolBrush=(30, 110, 200),
                                     name="measured (table a(z) + sum)")
        self.line = self.plot.plot([], [], pen=pg.mkPen((30, 110, 200), width=1.5, style=Qt.DashLine),
                                   name="c · 2^K through the measurements (K ≥ 12)")
        self.budget = self.plot.plot([], [], pen=pg.mkPen((200, 60, 40), width=2),
                                     name="budget: one gradient evaluation per training x")
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
        ts = np.array([p.seconds for p in curve.points])
        self.points.setData(ks, ts)
        c = fit_two_to_the_k(curve.points)
        kk = np.arange(1, MAX_LATENT_DIM + 1, dtype=float)
        text = []
        if c is not None:
            self.line.setData(kk, c * 2.0**kk)
            text.append(f"2^K line: {c:.3g} s × 2^K, so K = 30 would take ≈ {c * 2**30:,.0f} s here")
        if curve.budget_s:
            self.budget.setData([0, MAX_LATENT_DIM + 1], [curve.budget_s] * 2)
            text.append(f"one gradient evaluation per x costs {curve.budget_s * 1e3:.2f} ms")
            if c is not None:
                text.append(f"the sum fits that budget up to K ≈ {math.log2(curve.budget_s / c):.1f}")
        self.progress.setValue(int(1000 * len(curve.points) / max(1, n_ks)) if not curve.done else 1000)
        self.status.setText("; ".join(text) + ". (`lvm bench discrete` measures K = 30 for real.)")


class TrainPanel(QWidget):
    """K, epochs, learning rate, VIMCO's k, seed; train in a worker with progress and stop; the objective used."""

    title = "Train"

    def __init__(self):
        super().__init__()
        self.k = _spin(1, MAX_LATENT_DIM, 20, "discrete-k")
        self.epochs = _spin(1, 500, 3, "discrete-epochs")
        self.samples = _spin(2, 100, 10, "discrete-samples")
        self.seed = _spin(0, 10**6, 0, "discrete-train-seed")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(4)
        self.lr.setRange(1e-4, 0.1)
        self.lr.setSingleStep(1e-3)
        self.lr.setValue(1e-3)
        self.lr.setKeyboardTracking(False)
        self.objective = QLabel("")
        self.objective.setWordWrap(True)
        self.objective.setObjectName("discrete-objective")
        self.train_button = QPushButton("Train a new model")
        self.train_button.setObjectName("discrete-train")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("discrete-stop")
        self.bundled_button = QPushButton("Use the bundled K = 20 model")
        self.bundled_button.setObjectName("discrete-bundled")
        _, self.progress, self.status = _run_controls("", "train")
        self.plot = _plot("Training objective (running mean over 50 steps)", "step", "nats per x")
        self.curve = self.plot.plot([], [], pen=pg.mkPen((30, 110, 200), width=2))
        row = QHBoxLayout()
        for label, w in (("K", self.k), ("epochs", self.epochs), ("lr", self.lr), ("VIMCO samples", self.samples),
                         ("seed", self.seed)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
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
        self._steps: list[int] = []
        self._bounds: list[float] = []

    def update_objective(self, *_args) -> None:
        k = self.k.value()
        self.objective.setText("Objective for " + objective_text(k) + ". Training data: the current data set's "
                               "images, thresholded at ½.")
        self.samples.setEnabled(k > 12)

    def set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.bundled_button.setEnabled(not running)
        for w in (self.k, self.epochs, self.lr, self.seed):
            w.setEnabled(not running)
        self.samples.setEnabled(not running and self.k.value() > 12)

    def reset(self) -> None:
        self._steps, self._bounds = [], []
        self.curve.setData([], [])
        self.progress.setValue(0)

    def add(self, snap) -> None:
        self._steps.append(snap.step)
        self._bounds.append(snap.bound)
        self.curve.setData(self._steps, self._bounds)
        lo, hi = min(self._bounds), max(self._bounds)
        self.plot.setXRange(0, max(10, snap.steps), padding=0.02)
        self.plot.setYRange(lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1), padding=0)
        self.progress.setValue(int(1000 * snap.fraction))
        what = "log p(x) (exact)" if snap.objective == "exact" else "VIMCO bound L_k"
        self.status.setText(f"{snap.objective}: epoch {snap.epoch}/{snap.epochs}, step {snap.step}/{snap.steps}, "
                            f"{what} {snap.bound:.2f} nats per x ({snap.seconds:.0f} s)")


class DiscreteLab(LabView):
    name = "discrete"
    title = "Discrete latents lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.state = DiscreteState()
        self.active = False
        self.loaded = False
        self.stale = True

        self.digit = pg.GraphicsLayoutWidget()
        self.digit.setBackground("w")
        self.digit.setFixedSize(84, 84)
        vb = self.digit.addViewBox(lockAspect=True, enableMouse=False)
        vb.invertY(True)
        self.digit_image = _image_item()
        vb.addItem(self.digit_image)
        vb.setRange(xRange=(0, 28), yRange=(0, 28), padding=0.02)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.model_label.setObjectName("discrete-model")
        self.exact_label = QLabel("")
        self.exact_label.setWordWrap(True)
        self.exact_label.setObjectName("discrete-exact")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setObjectName("discrete-progress")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("discrete-exact-stop")
        self.stop_button.setToolTip("stop the enumeration (large K takes minutes)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_analysis)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.stop_button)
        info = QVBoxLayout()
        info.addWidget(self.model_label)
        info.addWidget(self.exact_label)
        info.addLayout(bar)
        head = QHBoxLayout()
        head.addWidget(self.digit)
        head.addLayout(info, 1)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("discrete-tabs")
        self.exact = ExactPanel()
        self.estimators = EstimatorPanel()
        self.cost = CostPanel()
        self.train = TrainPanel()
        self.panels = {"exact": self.exact, "estimators": self.estimators, "cost": self.cost, "train": self.train}
        for p in self.panels.values():
            self.tabs.addTab(p, p.title)
        self.tabs.currentChanged.connect(self._on_tab)

        content = QWidget()
        col = QVBoxLayout(content)
        col.setContentsMargins(4, 4, 4, 4)
        col.addLayout(head)
        col.addWidget(self.tabs, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.with_explanation(content))

        self.estimators.run_button.clicked.connect(self.run_convergence)
        for s in (self.estimators.repeats, self.estimators.seed, self.estimators.kmax):
            s.valueChanged.connect(lambda _=None: self._convergence_inputs_changed())
        self.cost.run_button.clicked.connect(self.run_cost)
        self.train.train_button.clicked.connect(self.start_training)
        self.train.stop_button.clicked.connect(self.stop_training)
        self.train.bundled_button.clicked.connect(self.use_bundled)

        ev = workspace.events
        ev.selection.connect(self._on_selection)
        ev.dataset.connect(self._on_dataset)

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        self.active = True
        if not self.loaded:
            self.use_bundled()
            return
        if self._select_first_if_none():
            return
        if self.stale:
            self.request_analysis()
        else:
            self._on_tab(self.tabs.currentIndex())

    def deactivate(self) -> None:
        self.active = False
        for what in ("exact", "convergence", "cost"):  # training keeps going while the lab is hidden
            self.runner.cancel(self.channel(what))

    def is_busy(self) -> bool:
        return any(self.runner.is_busy(self.channel(w)) for w in ("exact", "convergence", "cost"))

    def is_training(self) -> bool:
        return self.runner.is_busy(self.channel("train"))


    def _on_tab(self, _index: int) -> None:
        if not self.active or self.state.analysis is None:
            return
        w = self.tabs.currentWidget()
        if w is self.estimators and self.state.convergence is None and not self.runner.is_busy(self.channel("convergence")):
            self.run_convergence()
        elif w is self.cost and self.state.cost is None and not self.runner.is_busy(self.channel("cost")):
            self.run_cost()

    # -- the model ---------------------------------------------------------------------------------------------------
    def use_bundled(self) -> None:
        model, info, source = load_bundled()
        self.loaded = True
        if model is None:
            self.workspace.message(f"Discrete latents lab: {source}")
            if self.state.model is None:
                from app.views.discrete_state import fresh_model

                self.set_model(fresh_model(8), {}, "untrained K = 8 model")
            return
        self.set_model(model, info, source)

    def set_model(self, model, info: dict, source: str) -> None:
        self.runner.cancel(self.channel("exact"))
        self.runner.cancel(self.channel("convergence"))
        self.runner.cancel(self.channel("cost"))
        self.state.set_model(model, info, source)
        self.model_label.setText(self.state.describe_model())
        self.exact.clear()
        self.estimators.clear()
        self.cost.clear()
        self.stale = True
        if self.active and not self._select_first_if_none():
            self.request_analysis()

    # -- the exact analysis of the selected x ------------------------------------------------------------------------
    def why_not(self) -> str:
        ws = self.workspace
        if ws.data is None:
            return "Load a data set of 28 × 28 digits."
        if ws.data.x.shape[1] != 784:
            return (f"This lab's model is over 28 × 28 binary images; the data set has {ws.data.x.shape[1]} features. "
                    "Load digits (File → Open dataset, or `digits`).")
        if ws.selected_x is None:
            return "Select a digit."
        return ""

    def request_analysis(self) -> None:
        why = self.why_not()
        model = self.state.model
        if why or model is None:
            self.exact_label.setText(why)
            return
        self.stale = False
        self.state.analysis = None
        self.state.convergence = None
        self.estimators.clear()
        x, index = self.workspace.selected_x, self.workspace.selected_index
        self.digit_image.setImage(binarize(x).reshape(28, 28), levels=(0.0, 1.0), autoLevels=False)
        table = self.state.table if self.state.table is not None and self.state.table.latent_dim == model.latent_dim \
            else None
        seed = self.workspace.seed("discrete")
        self.exact_label.setText(f"x #{index}: enumerating all 2^{model.latent_dim} = {2**model.latent_dim:,} "
                                 "configurations…")
        self.progress.setValue(0)
        self.stop_button.setEnabled(True)
        self.runner.submit(self.channel("exact"), lambda: analyse_steps(model, x, index, table, seed),
                           on_snapshot=lambda item: self._on_analysis_item(item, model), keep_all=True,
                           on_done=lambda: QTimer.singleShot(0, self, self._update_stop_button))

    def _update_stop_button(self) -> None:
        self.stop_button.setEnabled(self.runner.is_busy(self.channel("exact")))

    def stop_analysis(self) -> None:
        if self.runner.is_busy(self.channel("exact")):
            self.runner.cancel(self.channel("exact"))
            self.stale = True
            self.exact_label.setText(self.exact_label.text() + " — stopped.")

    def _on_analysis_item(self, item, model) -> None:
        if model is not self.state.model:
            return
        if isinstance(item, Progress):
            self.progress.setValue(int(1000 * item.fraction))
            part = f"; partial sum so far: log p(x) ≥ {item.partial_log_px:.2f}" if item.partial_log_px is not None \
                else ""
            self.exact_label.setText(f"x #{self.workspace.selected_index}: {item.text}{part}")
            return
        if isinstance(item, Analysis):
            if item.index != self.workspace.selected_index:
                return
            self.state.analysis = item
            self.progress.setValue(1000)
            table = f" (table a(z) {item.table_seconds:.2f} s, kept for the next x)" if item.table_seconds else ""
            self.exact_label.setText(
                f"x #{item.index}: <b>exact log p(x) = {item.log_px:.3f} nats</b>, the sum of all "
                f"2^{item.latent_dim} = {2**item.latent_dim:,} terms, in {item.seconds:.2f} s{table}. "
                f"Encoder q: exact ELBO {item.elbo_q:.2f}, KL(q‖p(z|x)) {item.kl_q:.2f}. "
                f"Top configuration holds {item.top_mass[0]:.1%} of p(z|x). "
                f"Only one-hot z (a mixture of {item.latent_dim} Bernoulli images, the Mixture lab's sum): "
                f"log p(x) = {item.log_px_one_hot:.1f}.")
            self.exact.show_analysis(item)
            self._on_tab(self.tabs.currentIndex())
            return
        self.state.table = item  # a ZTable built for this model

    # -- convergence -------------------------------------------------------------------------------------------------
    def _convergence_inputs_changed(self) -> None:
        self.runner.cancel(self.channel("convergence"))
        self.state.convergence = None
        if self.active and self.tabs.currentWidget() is self.estimators:
            self.run_convergence()

    def run_convergence(self) -> None:
        a, model = self.state.analysis, self.state.model
        if a is None or model is None:
            self.estimators.status.setText(self.why_not() or "waiting for the exact sum…")
            return
        self.estimators.clear()
        ks, repeats, seed = self.estimators.ks(), self.estimators.repeats.value(), self.estimators.seed.value()
        self.estimators.status.setText(f"computing {repeats} repeats × {max(ks):,} samples per estimator…")

        def show(snap):
            if self.state.analysis is a:
                self.state.convergence = snap
                self.estimators.show_snapshot(snap, a)

        self.runner.submit(self.channel("convergence"), lambda: convergence_job(model, a, ks, repeats, seed),
                           on_snapshot=show)

    # -- cost --------------------------------------------------------------------------------------------------------
    def run_cost(self) -> None:
        a, model = self.state.analysis, self.state.model
        if a is None or model is None:
            self.cost.status.setText(self.why_not() or "waiting for the exact sum…")
            return
        self.cost.clear()
        ks = tuple(k for k in (4, 8, 10, 12, 14, 16, 18, 20) if k <= max(20, model.latent_dim))
        if not model.is_linear:
            ks = (model.latent_dim,)
        self.cost.status.setText("measuring…")

        def show(curve):
            if self.state.model is model:
                self.state.cost = curve
                self.cost.show_curve(curve, len(ks))

        self.runner.submit(self.channel("cost"), lambda: cost_steps(model, a.x, ks), on_snapshot=show)

    # -- training ----------------------------------------------------------------------------------------------------
    def start_training(self) -> None:
        data = self.workspace.data
        if data is None or data.x.shape[1] != 784:
            self.workspace.message("Discrete latents lab: training needs a data set of 28 × 28 images. "
                                   + self.why_not())
            return
        if self.is_training():
            return
        k, epochs, lr = self.train.k.value(), self.train.epochs.value(), float(self.train.lr.value())
        samples, seed, x = self.train.samples.value(), self.train.seed.value(), data.x
        self.train.reset()
        self.train.set_running(True)
        self.train.status.setText(f"training K = {k} on {len(x):,} images…")

        def on_update(update: TrainUpdate) -> None:
            self.train.add(update.snapshot)
            if update.model is not None:
                snap = update.snapshot
                info = {"objective": snap.objective, "epochs": snap.epochs, "train_bound": snap.bound}
                self.set_model(update.model, info, f"trained here: {snap.epochs} epochs on {len(x):,} images")

        def done() -> None:
            self.train.set_running(False)

        self.runner.submit(self.channel("train"), lambda token: train_job(k, x, epochs, lr, samples, seed, token),
                           on_snapshot=on_update, on_done=done, keep_all=True)

    def stop_training(self) -> None:
        self.runner.cancel(self.channel("train"))
        self.train.status.setText("stopped; the previous model is kept")

    # -- workspace events --------------------------------------------------------------------------------------------
    def _on_selection(self, index) -> None:
        self.runner.cancel(self.channel("exact"))
        self.runner.cancel(self.channel("convergence"))
        self.state.analysis = None
        self.state.convergence = None
        self.stale = True
        if index is None:
            self._select_first_if_none()
            return
        if self.active and self.loaded:
            self.request_analysis()

    def _on_dataset(self, _ds) -> None:
        self.exact.clear()
        self.estimators.clear()
        self.stale = True

    # -- export and state --------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        a = self.state.analysis
        if a is None:
            raise ValueError("nothing computed yet: select a digit and wait for the exact sum")
        with atomic_open_text(path) as fh:
            w = csv.writer(fh)
            w.writerow(["quantity", "k", "value"])
            w.writerow(["log_px", "", a.log_px])
            w.writerow(["elbo_encoder_q", "", a.elbo_q])
            for k in range(a.latent_dim):
                w.writerow(["p(z_k=1|x)", k, float(a.marginals[k])])
                w.writerow(["q(z_k=1|x)", k, float(a.q_probs[k])])
            for i, m in enumerate(a.top_mass):
                w.writerow(["top_configuration_mass", "".join(map(str, a.top_bits[i])), float(m)])

    def view_state(self) -> dict:
        return {"panel": list(self.panels)[self.tabs.currentIndex()], "repeats": self.estimators.repeats.value(),
                "kmax": self.estimators.kmax.value(), "seed": self.estimators.seed.value(),
                "train_k": self.train.k.value(), "epochs": self.train.epochs.value()}

    def restore_view_state(self, state: dict) -> None:
        if not isinstance(state, dict):
            return
        for key, spin in (("repeats", self.estimators.repeats), ("kmax", self.estimators.kmax),
                          ("seed", self.estimators.seed), ("train_k", self.train.k), ("epochs", self.train.epochs)):
            restore_spin(spin, state.get(key), block_signals=True)
        panel = state.get("panel")
        if isinstance(panel, str) and panel in self.panels:
            self.tabs.setCurrentWidget(self.panels[panel])
