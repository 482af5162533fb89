"""The Mixture lab: a Gaussian mixture fitted by EM, one half step at a time, on 2-D points or handwritten digits.

Points are coloured by their posterior p(z=k|x) (colours blended by an N x K @ K x 3 product and rasterised into one
ImageItem by ``app.widgets.raster_scatter``, whose docstring has the figures); ellipses show the 1- and 2-sigma
contours; the means are draggable targets.
EM runs in the worker on channel ``mixture/em``; every half step is stored, so the history slider scrubs them all.
"""

from __future__ import annotations

import csv
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QHBoxLayout, QLabel, QPushButton, QRadioButton,
                               QSizePolicy, QSlider, QSpinBox, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from app.state import MAX_SESSION_POINTS
from app.views.base import LabView, restore_spin
from app.views.mixture_engine import (COV_TYPES, INITS, EMConfig, Step, bic_grid, blend_colours, detect_collapse,
                                      em_halfsteps, init_step, log_density_grid, posterior, posterior_colours,
                                      sample_model, step_full_covs)
from app.widgets.axes import readable_axes
from app.widgets.click_viewbox import ClickViewBox
from app.widgets.contours import ContourLines
from app.widgets.ellipses import EllipseSet
from app.widgets.grid_lines import GridLines
from app.widgets.steady_plots import steady_tick_column
from app.widgets.palette import component_colours, component_hex, qcolor
from app.widgets.raster_scatter import RasterScatter
from lvm.data.toy import TOY_SETS
from lvm.errors import LVMError

GREY = np.array([0.55, 0.55, 0.55], np.float32)
USER_POINTS, WORKSPACE, DIGITS = "your points (click to add)", "workspace dataset (2-D)", "digits (cluster images)"
SPEED_MAX = 61  # slider value meaning "as fast as possible"
# The lab keeps up to 9 cached (N x K) float32 responsibility tables and 9 colour tables: at K = 20 about 750 bytes a
# point, so a million points cost ~0.75 GB at most. A larger workspace dataset is subsampled, and the lab says so.
MAX_LAB_POINTS = 1_000_000
CONTOUR_DROPS = (1.0, 2.5, 4.5, 7.0, 10.0)  # log p(x) contours this far below the maximum in view

EXPLANATION = r"""
<h3>A mixture of Gaussians</h3>
<p><b>Generative model.</b> Pick a component, then a point from it:</p>
<p>&nbsp;&nbsp;$z \sim \mathrm{Cat}(\pi)$, &nbsp;$x \mid z = k \sim \mathcal{N}(\mu_k, \Sigma_k)$</p>
<p>so $p(x) = \sum_k \pi_k\, \mathcal{N}(x; \mu_k, \Sigma_k)$: simple pieces combine into a
complex density (choose <i>log p(x) heatmap</i> or <i>contours</i> in the box above the plot). <i>Sample</i> runs
this process; each sample has the colour of the component that produced it.</p>
<p><b>Posterior (Bayes' rule).</b> Which component made $x$?</p>
<p>$$p(z = k \mid x) = \frac{\pi_k\, \mathcal{N}(x; \mu_k, \Sigma_k)}{\sum_j \pi_j\, \mathcal{N}(x; \mu_j, \Sigma_j)}$$</p>
<p>Each point's colour mixes the component colours by these probabilities. Click a point (<i>select</i> mode) to see the
numbers.</p>
<p><b>EM</b> maximises the log-likelihood $\sum_n \log p(x_n)$ by alternating</p>
<ul>
<li><b>E-step</b>: responsibilities $r_{nk} = p(z = k \mid x_n)$ under the current parameters
(the colours change, the ellipses stay);</li>
<li><b>M-step</b>: $N_k = \sum_n r_{nk}$, $\pi_k = N_k / N$,
$\mu_k = \frac{1}{N_k} \sum_n r_{nk}\, x_n$,
$\Sigma_k = \frac{1}{N_k} \sum_n r_{nk}$ $(x_n - \mu_k)(x_n - \mu_k)^\top$
(the ellipses move, the colours stay).</li>
</ul>
<p>The log-likelihood <b>never decreases</b> from one iteration to the next (the curve on the right), but EM only finds a
local maximum: change the seed or drag a mean (a target) to restart from elsewhere.</p>
<p><b>Collapse.</b> A component that shrinks onto one point has $\Sigma_k \to 0$ and an unbounded
likelihood; it is flagged in red (a small ridge reg_covar keeps it finite).</p>
<p><b>How many components?</b> $\mathrm{BIC} = -2 \log L + p \log N$ and $\mathrm{AIC} = -2 \log L + 2p$ penalise the
$p$ free parameters; lower is better. Click a point of the BIC/AIC plot to adopt its $K$.</p>
<p><b>Digits.</b> Choose <i>digits</i> to cluster images: pixels with diagonal covariances, 50 principal components,
or the VAE's latent means. Purity and NMI compare clusters with the true labels.</p>
"""


def _spin(lo: int, hi: int, value: int, tip: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    s.setKeyboardTracking(False)
    return s


class MixtureLab(LabView):
    name = "mixture"
    title = "Mixture lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.X = np.zeros((0, 2), np.float32)
        self.labels: np.ndarray | None = None
        self.history: list[Step] = []
        self.shown = -1
        self.selected_point: int | None = None
        self.running = False
        self.follow = True  # the slider follows new snapshots
        self._resp_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._colour_cache: dict[int, np.ndarray] = {}  # history index -> (N, 3) point colours
        self._bic: list[tuple[int, int, float, float]] = []
        self._source = "blobs"
        self._activated = False
        self._first_fit = True
        self.timings: dict[str, float] = {}
        self._build()
        self._connect()
        self._load_source(refit=False)
        workspace.events.dataset.connect(self._on_workspace_dataset)
        self._on_workspace_dataset(workspace.dataset)

    # ------------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        # -- data row
        self.source_combo = QComboBox()
        self.source_combo.addItems([*TOY_SETS, USER_POINTS, WORKSPACE, DIGITS])
        self.source_combo.setToolTip("the points to fit; 'digits' clusters the workspace images")
        self.n_spin = _spin(10, 200000, 1500, "number of toy points")
        self.n_spin.setSingleStep(500)
        self.data_seed = _spin(0, 9999, 0, "seed of the toy data")
        self.mode_select = QRadioButton("select")
        self.mode_add = QRadioButton("add points")
        self.mode_select.setChecked(True)
        self.mode_select.setToolTip("click a point to see p(z=k|x)")
        self.mode_add.setToolTip("click to add a point; shift-click or right-click removes the nearest")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.mode_select)
        self.mode_group.addButton(self.mode_add)
        self.density_combo = QComboBox()
        self.density_combo.addItems(["no density", "log p(x) heatmap", "log p(x) contours"])
        self.density_combo.setToolTip("show the mixture density log p(x) = log sum_k pi_k N(x; mu_k, Sigma_k)")
        self.sample_button = QPushButton("Sample")
        self.sample_button.setCheckable(True)
        self.sample_button.setToolTip("draw points from the fitted model: z ~ Cat(pi), x ~ N(mu_z, Sigma_z)")
        row1 = QHBoxLayout()
        self._twod_widgets = [QLabel("n"), self.n_spin, QLabel("data seed"), self.data_seed, QLabel("  Click:"),
                              self.mode_select, self.mode_add, QLabel("  "), self.density_combo, self.sample_button]
        for w in (QLabel("Data:"), self.source_combo, *self._twod_widgets):
            row1.addWidget(w)
        row1.addStretch(1)

        # -- EM row
        self.k_spin = _spin(1, 20, 4, "number of components K")
        self.cov_combo = QComboBox()
        self.cov_combo.addItems(list(COV_TYPES))
        self.cov_combo.setToolTip("covariance type: full, tied (shared), diag (axis-aligned), spherical")
        self.init_combo = QComboBox()
        self.init_combo.addItems(list(INITS))
        self.init_combo.setCurrentText("random")
        self.init_combo.setToolTip("how the parameters start")
        self.seed_spin = _spin(0, 9999, 0, "seed of the initialisation")
        self.e_button = QPushButton("E-step")
        self.e_button.setToolTip("compute the responsibilities p(z=k|x) (recolours the points)")
        self.m_button = QPushButton("M-step")
        self.m_button.setToolTip("re-estimate pi, mu, Sigma from the responsibilities (moves the ellipses)")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("run EM until it converges; press again to pause")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("start again from a new initialisation")
        self.speed = QSlider(Qt.Horizontal)
        self.speed.setRange(1, SPEED_MAX)
        self.speed.setValue(24)
        self.speed.setFixedWidth(110)
        self.speed_label = QLabel()
        self.speed_label.setMinimumWidth(70)
        row2 = QHBoxLayout()
        for w in (QLabel("K"), self.k_spin, QLabel("covariance"), self.cov_combo, QLabel("init"), self.init_combo,
                  QLabel("seed"), self.seed_spin, QLabel("  "), self.e_button, self.m_button, self.run_button,
                  self.reset_button, QLabel("  speed"), self.speed, self.speed_label):
            row2.addWidget(w)
        row2.addStretch(1)

        # -- scatter
        self.scatter_widget = pg.GraphicsLayoutWidget()
        self.scatter_widget.setBackground("w")
        self.vb = ClickViewBox()
        self.plot = self.scatter_widget.addPlot(viewBox=self.vb)
        self.plot.setLabel("bottom", "x\u2081")
        self.plot.setLabel("left", "x\u2082")
        self.grid_lines = GridLines(self.plot, alpha=0.15)
        steady_tick_column(self.plot)  # panning, zooming and new data move the ticks, not the plot's layout
        self.vb.setAspectLocked(False)
        self.vb.disableAutoRange()
        self.heat = pg.ImageItem(axisOrder="col-major")
        self.heat.setZValue(-10)
        self.heat.setOpacity(0.85)
        self.heat.setLookupTable(pg.ColorMap([0.0, 1.0], [(255, 255, 255), (120, 135, 175)]).getLookupTable(nPts=256))
        self.vb.addItem(self.heat, ignoreBounds=True)
        self.contours = ContourLines(self.vb, [pg.mkPen((90, 100, 140), width=1)] * len(CONTOUR_DROPS), z=-5)
        self.points = RasterScatter(self.vb, z=0)
        self.ellipses = EllipseSet(self.vb, z=5)
        self.targets: list[pg.TargetItem] = []
        self.samples = pg.ScatterPlotItem(size=7, symbol="x", pxMode=True)
        self.samples.setZValue(8)
        self.vb.addItem(self.samples, ignoreBounds=True)
        self.sel_marker = pg.ScatterPlotItem(size=16, symbol="o", pen=pg.mkPen("k", width=2.5), brush=None)
        self.sel_marker.setZValue(12)
        self.vb.addItem(self.sel_marker, ignoreBounds=True)

        self.history_slider = QSlider(Qt.Horizontal)
        self.history_slider.setRange(0, 0)
        self.history_slider.setToolTip("scrub through every half step computed so far")
        self.step_label = QLabel()
        # its own line, as wide as the column: the text's length changes every half step, the slider's width must not
        self.step_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.warn_label = QLabel()
        self.warn_label.setStyleSheet("color: #c0392b; font-weight: bold;")
        self.warn_label.setWordWrap(True)
        hist_row = QHBoxLayout()
        hist_row.addWidget(QLabel("History"))
        hist_row.addWidget(self.history_slider, 1)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.scatter_widget, 1)
        lv.addLayout(hist_row)
        lv.addWidget(self.step_label)
        lv.addWidget(self.warn_label)

        # -- right column: log-likelihood, posterior bars, BIC/AIC
        self.ll_plot = pg.PlotWidget(background="w")
        self.ll_plot.setTitle("log-likelihood per point, each half step", color="k", size="10pt")
        self.ll_plot.setLabel("bottom", "half step")
        self.ll_plot.setLabel("left", "mean log p(x)")
        readable_axes(self.ll_plot, integer=("bottom",))  # half steps: no "half step (x0.001)", no 0.1 ticks
        self.ll_plot.setMouseEnabled(x=False, y=False)
        self.ll_plot.hideButtons()
        self.ll_curve = self.ll_plot.plot(pen=pg.mkPen((60, 60, 60), width=1.5))
        self.ll_e = pg.ScatterPlotItem(size=7, symbol="o", brush=pg.mkBrush(31, 119, 180), pen=None)
        self.ll_m = pg.ScatterPlotItem(size=7, symbol="s", brush=pg.mkBrush(255, 127, 14), pen=None)
        legend = self.ll_plot.addLegend(offset=(-10, -10), labelTextColor="k")
        self.ll_plot.addItem(self.ll_e)
        self.ll_plot.addItem(self.ll_m)
        legend.addItem(self.ll_e, "after E")
        legend.addItem(self.ll_m, "after M")
        self.ll_now = pg.InfiniteLine(angle=90, pen=pg.mkPen((200, 0, 0), width=1, style=Qt.DashLine))
        self.ll_plot.addItem(self.ll_now)

        self.post_plot = pg.PlotWidget(background="w")
        self.post_plot.setTitle("p(z=k | x) for the selected point", color="k", size="10pt")
        self.post_plot.setLabel("bottom", "component k")
        readable_axes(self.post_plot, integer=("bottom",))
        self.post_plot.setYRange(0, 1.0)
        self.post_plot.setMouseEnabled(x=False, y=False)
        self.post_plot.hideButtons()
        self.post_bars = pg.BarGraphItem(x=[], height=[], width=0.7)
        self.post_plot.addItem(self.post_bars)
        self.post_text = QLabel("Click a point (select mode) to see Bayes' rule at work.")
        self.post_text.setWordWrap(True)
        self.post_text.setTextFormat(Qt.RichText)

        self.bic_plot = pg.PlotWidget(background="w")
        self.bic_plot.setTitle("model selection (lower is better)", color="k", size="10pt")
        self.bic_plot.setLabel("bottom", "K")
        readable_axes(self.bic_plot, integer=("bottom",))
        self.bic_plot.hideButtons()
        bleg = self.bic_plot.addLegend(offset=(-10, 10), labelTextColor="k")
        self.bic_line = self.bic_plot.plot(pen=pg.mkPen((31, 119, 180), width=2))
        self.aic_line = self.bic_plot.plot(pen=pg.mkPen((214, 39, 40), width=2, style=Qt.DashLine))
        self.bic_pts = pg.ScatterPlotItem(size=8, symbol="o", brush=pg.mkBrush(31, 119, 180, 160), pen=None)
        self.aic_pts = pg.ScatterPlotItem(size=8, symbol="t", brush=pg.mkBrush(214, 39, 40, 160), pen=None)
        self.bic_plot.addItem(self.bic_pts)
        self.bic_plot.addItem(self.aic_pts)
        bleg.addItem(self.bic_pts, "BIC")
        bleg.addItem(self.aic_pts, "AIC")
        self.bic_button = QPushButton("BIC/AIC for K = 1..8 (3 seeds)")
        self.bic_button.setToolTip("fit K = 1..8 with 3 seeds each in the background")
        self.adopt_button = QPushButton("Use best K")
        self.adopt_button.setToolTip("adopt the K with the lowest BIC (or click a point in the plot)")
        self.adopt_button.setEnabled(False)
        bic_row = QHBoxLayout()
        bic_row.addWidget(self.bic_button)
        bic_row.addWidget(self.adopt_button)

        right = QSplitter(Qt.Vertical)
        post = QWidget()
        pv = QVBoxLayout(post)
        pv.setContentsMargins(0, 0, 0, 0)
        pv.addWidget(self.post_plot, 1)
        pv.addWidget(self.post_text)
        bic = QWidget()
        bv = QVBoxLayout(bic)
        bv.setContentsMargins(0, 0, 0, 0)
        bv.addWidget(self.bic_plot, 1)
        bv.addLayout(bic_row)
        for w in (self.ll_plot, post, bic):
            right.addWidget(w)
        right.setSizes([260, 300, 260])

        page2d = QSplitter(Qt.Horizontal)
        page2d.addWidget(left)
        page2d.addWidget(right)
        page2d.setStretchFactor(0, 3)
        page2d.setStretchFactor(1, 2)
        page2d.setSizes([640, 380])

        from app.views.mixture_digits import DigitsPanel

        self.digits = DigitsPanel(self)
        self.stack = QStackedWidget()
        self.stack.addWidget(page2d)
        self.stack.addWidget(self.digits)

        content = QWidget()
        cv = QVBoxLayout(content)
        cv.setContentsMargins(4, 4, 4, 4)
        cv.addLayout(row1)
        self.em_row = QWidget()
        self.em_row.setLayout(row2)
        row2.setContentsMargins(0, 0, 0, 0)
        cv.addWidget(self.em_row)
        cv.addWidget(self.stack, 1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        splitter = self.with_explanation(content)
        splitter.setSizes([1100, 260])
        outer.addWidget(splitter)
        self._update_speed_label()

    def _connect(self) -> None:
        self.source_combo.currentTextChanged.connect(lambda _t: self._load_source())
        self.n_spin.valueChanged.connect(lambda _v: self._load_source())
        self.data_seed.valueChanged.connect(lambda _v: self._load_source())
        for w in (self.k_spin, self.seed_spin):
            w.valueChanged.connect(lambda _v: self.reset(run=True))
        for w in (self.cov_combo, self.init_combo):
            w.currentTextChanged.connect(lambda _t: self.reset(run=True))
        self.e_button.clicked.connect(lambda: self.step_half("E"))
        self.m_button.clicked.connect(lambda: self.step_half("M"))
        self.run_button.clicked.connect(self.toggle_run)
        self.reset_button.clicked.connect(lambda: self.reset(run=False))
        self.speed.valueChanged.connect(lambda _v: self._update_speed_label())
        self.history_slider.valueChanged.connect(self._on_slider)
        self.vb.clicked.connect(self._on_click)
        self.vb.sigRangeChanged.connect(lambda *_: self._density_timer.start())
        self.density_combo.currentIndexChanged.connect(lambda _i: self._update_density())
        self.sample_button.toggled.connect(lambda _c: self._update_samples())
        self.bic_button.clicked.connect(self.compute_bic)
        self.adopt_button.clicked.connect(self.adopt_best_k)
        self.bic_pts.sigClicked.connect(self._on_bic_clicked)
        self.aic_pts.sigClicked.connect(self._on_bic_clicked)
        self._density_timer = QTimer(self)
        self._density_timer.setSingleShot(True)
        self._density_timer.setInterval(30)
        self._density_timer.timeout.connect(self._update_density)

    # ------------------------------------------------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------------------------------------------------
    def config(self) -> EMConfig:
        return EMConfig(k=self.k_spin.value(), cov_type=self.cov_combo.currentText(),
                        init=self.init_combo.currentText(), seed=self.seed_spin.value())

    def delay(self) -> float:
        v = self.speed.value()
        return 0.0 if v >= SPEED_MAX else 1.0 / v

    def _update_speed_label(self) -> None:
        v = self.speed.value()
        self.speed_label.setText("max" if v >= SPEED_MAX else f"{v} steps/s")

    # ------------------------------------------------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------------------------------------------------
    def _on_workspace_dataset(self, ds) -> None:
        model = self.source_combo.model()
        two_d = ds is not None and ds.dim == 2
        model.item(self.source_combo.findText(WORKSPACE)).setEnabled(two_d)
        model.item(self.source_combo.findText(DIGITS)).setEnabled(ds is not None and ds.is_image)
        if self._source == WORKSPACE:
            if two_d:
                self._load_source()
            else:
                self.source_combo.setCurrentText("blobs")
        self.digits.on_dataset(ds)

    def _load_source(self, refit: bool = True) -> None:
        source = self.source_combo.currentText()
        self._source = source
        is_toy = source in TOY_SETS
        self.n_spin.setEnabled(is_toy)
        self.data_seed.setEnabled(is_toy)
        if source == DIGITS:
            self.runner.cancel(self.channel("em"))
            self.stack.setCurrentIndex(1)
            self.em_row.setVisible(False)
            for w in self._twod_widgets:
                w.setVisible(False)
            self.digits.activate()
            return
        self.stack.setCurrentIndex(0)
        self.em_row.setVisible(True)
        for w in self._twod_widgets:
            w.setVisible(True)
        if is_toy:
            x, y = TOY_SETS[source](n=self.n_spin.value(), seed=self.data_seed.value())
        elif source == WORKSPACE:
            data = self.workspace.data
            if data is None or data.x.shape[1] != 2:
                self.workspace.message("the workspace dataset is not 2-D; load a toy set (File > Built-in datasets)")
                return
            x, y = data.x, data.y
            if len(x) > MAX_LAB_POINTS:  # before any (N x K) table is allocated
                seed = self.workspace.seed(self.name)
                keep = np.sort(np.random.default_rng(seed).choice(len(x), MAX_LAB_POINTS, replace=False))
                self.workspace.message(
                    f"the workspace dataset has {len(x):,} points; the Mixture lab fits and draws a random "
                    f"{MAX_LAB_POINTS:,} of them (seed {seed}): its step-by-step history of more would need several GB "
                    "of memory. lvm fit-gmm fits all of them (it keeps no history)")
                x, y = x[keep], None if y is None else y[keep]
        else:  # user points: start from what is shown
            x, y = self.X.copy(), None
        self.set_points(x, y, refit=refit)

    def set_points(self, x: np.ndarray, y: np.ndarray | None = None, refit: bool = True, keep_view: bool = False) -> None:
        """Replace the data; the model starts again (``refit``) or keeps the shown parameters on the new points."""
        self.X = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 2)
        self.labels = y
        self.selected_point = None
        self._resp_cache.clear()
        self._colour_cache.clear()
        self.points.set_data(self.X)
        if not keep_view:
            self._fit_view()
        self._show_selection()
        if refit:
            self.reset(run=True)

    def _fit_view(self) -> None:
        if len(self.X) == 0:
            self.vb.setRange(xRange=(-5, 5), yRange=(-5, 5), padding=0)
            return
        lo, hi = self.X.min(0).astype(float), self.X.max(0).astype(float)
        pad = 0.08 * np.maximum(hi - lo, 1e-3) + (0.5 if len(self.X) < 5 else 0.0)
        self.vb.setRange(xRange=(float(lo[0] - pad[0]), float(hi[0] + pad[0])),
                         yRange=(float(lo[1] - pad[1]), float(hi[1] + pad[1])), padding=0)

    def data_scale(self) -> float:
        return float(self.X.std()) if len(self.X) > 1 else 1.0

    # ------------------------------------------------------------------------------------------------------------
    # EM control
    # ------------------------------------------------------------------------------------------------------------
    def reset(self, run: bool = False) -> None:
        """Forget the history and start from a fresh initialisation (in the worker); ``run``: continue EM."""
        if self._source == DIGITS:
            return
        self.runner.cancel(self.channel("em"))
        self.history, self.shown = [], -1
        self._resp_cache.clear()
        self._colour_cache.clear()
        self._set_running(False)
        if len(self.X) < self.k_spin.value():
            self._refresh_controls()
            self._draw_empty(f"{len(self.X)} point(s): add at least K = {self.k_spin.value()} to fit")
            return
        self._submit(None, None if run else 0)

    def _draw_empty(self, text: str) -> None:
        self.ellipses.clear()
        for t in self.targets:
            t.setVisible(False)
        self.points.set_colours(np.tile(GREY, (len(self.X), 1)))
        self.ll_curve.setData([], [])
        self.ll_e.setData([], [])
        self.ll_m.setData([], [])
        self.step_label.setText(text)
        self.history_slider.setRange(0, 0)

    def _submit(self, start: Step | None, n_halves: int | None) -> None:
        """Run EM in the worker from ``start`` (None: initialise first) for ``n_halves`` half steps (None: converge)."""
        X, cfg, delay = self.X.copy(), self.config(), self.delay()

        def job(token):
            # (step, colours): the points' posterior colours are computed here, after each E-step, so the GUI
            # thread only rasterises them (for 100,000 points the posterior is ~10-20 ms of numpy)
            s = start
            if s is None:
                s = init_step(X, cfg)
                yield s, None
            if n_halves == 0:
                return
            for s in em_halfsteps(X, cfg, s, n_halves=n_halves, delay=delay, token=token):
                yield s, (posterior_colours(X, s, component_colours(s.k)) if s.half == "E" else None)

        self._set_running(n_halves is None)
        self.runner.submit(self.channel("em"), job, on_snapshot=self._on_step, on_error=self._on_em_error,
                           on_finished=self._em_finished, keep_all=True)
        self._refresh_controls()

    def _em_finished(self) -> None:
        self._set_running(False)
        if self._first_fit and self.history:
            # the first fit after opening: show Bayes' rule for the most ambiguous point and compare K by BIC/AIC
            self._first_fit = False
            if self.selected_point is None and len(self.X):
                resp = posterior(self.X, self.history[-1])[0]
                self.select_point(int(np.argmin(resp.max(1))))
            if not self._bic and len(self.X) <= 20000:
                self.compute_bic()

    def _branch_here(self) -> Step | None:
        """Drop the history after the shown step (new steps continue from what is on screen)."""
        if not self.history:
            return None
        del self.history[self.shown + 1:]
        self._resp_cache = {i: v for i, v in self._resp_cache.items() if i <= self.shown}
        self._colour_cache = {i: v for i, v in self._colour_cache.items() if i <= self.shown}
        self.follow = True
        return self.history[self.shown]

    def step_half(self, half: str) -> None:
        """One E-step or M-step from the shown step (an M-step right after an M or init first needs an E)."""
        if self.is_em_running() or not self.history:
            return
        start = self._branch_here()
        n = 1 if (half == "E") == (start.half != "E") else 2
        self._submit(start, n)

    def toggle_run(self) -> None:
        if self.is_em_running():
            self.pause()
            return
        start = self._branch_here()
        if start is None:
            self.reset(run=True)
        else:
            self._submit(start, None)

    def pause(self) -> None:
        self.runner.cancel(self.channel("em"))
        self._set_running(False)

    def is_em_running(self) -> bool:
        return self.runner.is_busy(self.channel("em"))

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.run_button.setText("Pause" if running else "Run")
        self._refresh_controls()

    def _refresh_controls(self) -> None:
        busy = self.is_em_running()
        have = bool(self.history)
        self.e_button.setEnabled(have and not busy)
        self.m_button.setEnabled(have and not busy)
        self.sample_button.setEnabled(have)

    def _on_em_error(self, message: str) -> None:
        self._set_running(False)
        self.step_label.setText(message)

    def _on_step(self, item: tuple[Step, np.ndarray | None]) -> None:
        step, colours = item
        self.history.append(step)
        if colours is not None and len(colours) == len(self.X):
            self._cache_put(self._colour_cache, len(self.history) - 1, colours)
        self.history_slider.blockSignals(True)
        self.history_slider.setRange(0, len(self.history) - 1)
        if self.follow or self.shown < 0:
            self.history_slider.setValue(len(self.history) - 1)
        self.history_slider.blockSignals(False)
        self._update_ll_curve()
        if self.follow or self.shown < 0:
            self.show_step(len(self.history) - 1)
        self._refresh_controls()

    def _on_slider(self, value: int) -> None:
        self.follow = value == len(self.history) - 1
        self.show_step(value)

    # ------------------------------------------------------------------------------------------------------------
    # drawing
    # ------------------------------------------------------------------------------------------------------------
    def _resp_for(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Responsibilities shown at history index i: after an E-step, its own; after an M-step, those of the E-step
        it used (the colours change only at E-steps); none for the very first initialisation."""
        j = self._resp_index(i)
        if j is None:
            return None
        if j not in self._resp_cache:
            self._cache_put(self._resp_cache, j, posterior(self.X, self.history[j]))
        return self._resp_cache[j]

    def _resp_index(self, i: int) -> int | None:
        """The history index whose responsibilities are shown at i (an M-step shows its E-step's; None: the very
        first initialisation, which has none)."""
        step = self.history[i]
        j = i - 1 if step.half == "M" and i > 0 else i
        if j == 0 and self.history[0].half == "init" and step.half != "M":
            return None
        return j

    @staticmethod
    def _cache_put(cache: dict, key: int, value) -> None:
        """A small bounded cache keyed by history index (the oldest entry goes first)."""
        if len(cache) > 8:
            cache.pop(next(iter(cache)))
        cache[key] = value

    def colours_at(self, i: int) -> np.ndarray:
        """The points' colours at history index i: sum_k p(z=k|x) colour_k under the responsibilities shown there
        (computed by the EM worker as it ran; when scrubbing back past the cache, here)."""
        j = self._resp_index(i)
        if j is None:
            return np.tile(GREY, (len(self.X), 1))
        if j in self._colour_cache:
            return self._colour_cache[j]
        resp = self._resp_for(i)[0]
        colours = blend_colours(resp, component_colours(resp.shape[1]))
        self._cache_put(self._colour_cache, j, colours)
        return colours

    def show_step(self, i: int) -> None:
        if not 0 <= i < len(self.history):
            return
        t0 = time.perf_counter()
        self.shown = i
        step = self.history[i]
        K = step.k
        self.points.set_colours(self.colours_at(i))
        self.timings["recolour_ms"] = (time.perf_counter() - t0) * 1000
        covs = step_full_covs(step)
        flagged = detect_collapse(step, len(self.X), self.data_scale())
        self.ellipses.set(step.means, covs, [qcolor(k) for k in range(K)], flagged)
        self._set_targets(step)
        self.ll_now.setValue(i)
        what = {"init": "initial parameters" if i == 0 else "parameters set by hand",
                "E": "after the E-step (responsibilities updated)",
                "M": "after the M-step (parameters updated)"}[step.half]
        self.step_label.setText(f"step {i}: iteration {step.iteration}, {what}; "
                                f"log-lik/point {step.log_likelihood:.4f}")
        if flagged:
            names = ", ".join(str(k) for k in flagged)
            self.warn_label.setText(f"\u26a0 component {names} collapsing: its covariance shrinks towards a single "
                                    "point (likelihood \u2192 \u221e). Reset with another seed or fewer components.")
        else:
            self.warn_label.setText("")
        self._show_selection()
        self._update_density()
        if self.sample_button.isChecked():
            self._update_samples()
        self._refresh_controls()
        self.timings["show_ms"] = (time.perf_counter() - t0) * 1000

    def _set_targets(self, step: Step) -> None:
        for k in range(step.k):
            if k >= len(self.targets):
                t = pg.TargetItem(size=16, symbol="crosshair", movable=True, label=str(k),
                                  labelOpts={"color": "k", "offset": (8, -6)})
                t.setZValue(10)
                t.sigPositionChangeFinished.connect(lambda item, k=k: self._on_mean_dragged(k, item))
                self.vb.addItem(t, ignoreBounds=True)
                self.targets.append(t)
            t = self.targets[k]
            t.setPen(pg.mkPen(QColor(component_hex(k)).darker(140), width=3))
            t.setBrush(pg.mkBrush(qcolor(k)))
            t.blockSignals(True)
            t.setPos(QPointF(float(step.means[k, 0]), float(step.means[k, 1])))
            t.blockSignals(False)
            t.setToolTip(f"mean of component {k}: drag it, EM continues from there")
            t.setVisible(True)
        for t in self.targets[step.k:]:
            t.setVisible(False)

    def _on_mean_dragged(self, k: int, item) -> None:
        if not self.history:
            return
        self.runner.cancel(self.channel("em"))
        base = self._branch_here()
        means = base.means.copy()
        p = item.pos()
        means[k] = (p.x(), p.y())
        moved = Step(iteration=base.iteration, half="init", weights=base.weights, means=means,
                     covariances=base.covariances, cov_type=base.cov_type, log_likelihood=0.0)
        ll = float(posterior(self.X, moved)[1].mean()) if len(self.X) else 0.0
        moved = Step(**{**moved.__dict__, "log_likelihood": ll})
        self._on_step((moved, None))
        self._submit(moved, None)

    def _update_ll_curve(self) -> None:
        ll = np.array([s.log_likelihood for s in self.history], float)
        x = np.arange(len(ll), dtype=float)
        halves = np.array([s.half for s in self.history])
        ok = np.isfinite(ll)
        self.ll_curve.setData(x[ok], ll[ok])
        e, m = (halves == "E") & ok, (halves == "M") & ok
        self.ll_e.setData(x[e], ll[e])
        self.ll_m.setData(x[m], ll[m])
        f = ll[ok]
        if f.size == 0:
            return
        lo, hi = float(f.min()), float(f.max())
        if f.size >= 5:
            rest = float(f[2:].min())
            if f[0] < rest - max(10 * (hi - rest), 1.0):  # a degenerate start (one point per component): clipped
                lo = rest
        # init and the first E-step share one log-likelihood (up to rounding): a range of 1e-16 would tick in 1e-17s
        pad = max(0.08 * (hi - lo), 0.01)
        # an explicit range, not auto-range: auto-range runs in the paint and makes pyqtgraph paint the plot twice
        self.ll_plot.setRange(xRange=(-0.5, max(len(ll) - 0.5, 0.5)), yRange=(lo - pad, hi + pad), padding=0)

    # -- selection: Bayes' rule for one point
    def select_point(self, index: int | None) -> None:
        self.selected_point = index
        self._show_selection()

    def selected_posterior(self):
        """(joint pi_k N(x; mu_k, Sigma_k) (K,), posterior (K,)) for the selected point under the shown step."""
        if self.selected_point is None or self.shown < 0 or self.selected_point >= len(self.X):
            return None
        from app.views.mixture_engine import model_from_step

        step = self.history[self.shown]
        lj = model_from_step(step).log_component_densities(self.X[self.selected_point:self.selected_point + 1])[0]
        joint = np.exp(lj)
        m = lj.max()
        post = np.exp(lj - m) / np.exp(lj - m).sum()
        return joint, post

    def _show_selection(self) -> None:
        res = self.selected_posterior()
        if res is None:
            self.sel_marker.setData([], [])
            self.post_bars.setOpts(x=[], height=[])
            self.post_text.setText("Click a point (select mode) to see Bayes' rule at work.")
            return
        joint, post = res
        K = len(post)
        x = self.X[self.selected_point]
        self.sel_marker.setData([float(x[0])], [float(x[1])])
        self.post_bars.setOpts(x=np.arange(K), height=post, width=0.7,
                               brushes=[pg.mkBrush(qcolor(k)) for k in range(K)], pens=[pg.mkPen("k")] * K)
        self.post_plot.setXRange(-0.6, K - 0.4, padding=0)
        self.post_plot.getAxis("bottom").setTicks([[(k, str(k)) for k in range(K)]])
        total = joint.sum()
        rows = "".join(f"<tr><td><span style='color:{component_hex(k)}'>&#9632;</span> {k}</td>"
                       f"<td align='right'>{joint[k]:.3g}</td><td align='right'><b>{post[k]:.3f}</b></td></tr>"
                       for k in range(K))
        self.post_text.setText(
            f"x = ({x[0]:.2f}, {x[1]:.2f}) &nbsp; p(z=k|x) = &pi;<sub>k</sub>N(x; &mu;<sub>k</sub>, &Sigma;<sub>k</sub>)"
            f" / p(x), &nbsp;p(x) = {total:.3g}"
            f"<table cellspacing='6'><tr><th>k</th><th>&pi;<sub>k</sub>N(x;&mu;<sub>k</sub>,&Sigma;<sub>k</sub>)</th>"
            f"<th>p(z=k|x)</th></tr>{rows}</table>")

    # -- density
    def _update_density(self) -> None:
        mode = self.density_combo.currentIndex()
        if mode == 0 or self.shown < 0:
            self.heat.setVisible(False)
            return
        step = self.history[self.shown]
        (x0, x1), (y0, y1) = self.vb.viewRange()
        n = 150
        lp = log_density_grid(step, (x0, x1), (y0, y1), n)
        top = float(np.max(lp))
        lo = top - 12.0
        clipped = np.clip(lp, lo, top)
        self.heat.setImage(clipped, autoLevels=False, levels=(lo, top))
        self.heat.setRect(pg.QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))
        self.heat.setVisible(True)
        self.heat.setOpacity(0.85 if mode == 1 else 0.0)
        if mode == 2:
            self.contours.set(clipped, [top - d for d in CONTOUR_DROPS], (x0, x1, y0, y1))
        else:
            self.contours.clear()

    # -- samples from the generative process
    def _update_samples(self) -> None:
        if not self.sample_button.isChecked() or self.shown < 0:
            self.samples.setData([], [])
            return
        step = self.history[self.shown]
        n = int(min(max(len(self.X), 200), 1000))
        x, z = sample_model(step, n, seed=self.seed_spin.value() + 7919 * self.shown)
        pens = [pg.mkPen(QColor(component_hex(k)).darker(130), width=2) for k in range(step.k)]
        self.samples.setData(x[:, 0], x[:, 1], pen=[pens[k] for k in z], brush=None)

    # -- clicks
    def _on_click(self, pos: QPointF, button, modifiers) -> None:
        x, y = pos.x(), pos.y()
        if self.mode_add.isChecked():
            if button == Qt.RightButton or modifiers & Qt.ShiftModifier:
                i = self.points.nearest(x, y, max_pixels=None)
                if i is not None:
                    self._edit_points(np.delete(self.X, i, axis=0))
            else:
                self._edit_points(np.concatenate([self.X, np.array([[x, y]], np.float32)]))
            return
        self.select_point(self.points.nearest(x, y))

    def _edit_points(self, x: np.ndarray) -> None:
        """The user changed the points: they become 'your points'; the shown model is kept and EM continues."""
        shown = self.history[self.shown] if self.shown >= 0 else None
        self.source_combo.blockSignals(True)
        self.source_combo.setCurrentText(USER_POINTS)
        self.source_combo.blockSignals(False)
        self._source = USER_POINTS
        self.n_spin.setEnabled(False)
        self.data_seed.setEnabled(False)
        self.runner.cancel(self.channel("em"))
        self.set_points(x, None, refit=False, keep_view=True)
        if shown is None or len(self.X) < shown.k:
            self.reset(run=True)
            return
        ll = float(posterior(self.X, shown)[1].mean())
        restart = Step(**{**shown.__dict__, "half": "init", "iteration": 0, "log_likelihood": ll, "collapsed": ()})
        self.history, self.shown = [], -1
        self._on_step((restart, None))
        self._submit(restart, None)

    # -- BIC / AIC
    def compute_bic(self) -> None:
        if len(self.X) < 2:
            return
        X, cov, init = self.X.copy(), self.cov_combo.currentText(), "kmeans"  # k-means starts: robust comparisons
        self._bic = []
        self.adopt_button.setEnabled(False)
        self.bic_button.setText("computing…")

        def job(token):
            yield from bic_grid(X, range(1, 9), (0, 1, 2), cov, init, token)

        def done():
            self.bic_button.setText("BIC/AIC for K = 1..8 (3 seeds)")

        self.runner.submit(self.channel("bic"), job, on_snapshot=self._on_bic, on_finished=done, keep_all=True)

    def _on_bic(self, item) -> None:
        self._bic.append(item)
        arr = np.array(self._bic, float)
        ks = np.unique(arr[:, 0])
        self.bic_pts.setData(arr[:, 0] - 0.08, arr[:, 2], data=arr[:, 0].astype(int))
        self.aic_pts.setData(arr[:, 0] + 0.08, arr[:, 3], data=arr[:, 0].astype(int))
        self.bic_line.setData(ks, [arr[arr[:, 0] == k, 2].min() for k in ks])
        self.aic_line.setData(ks, [arr[arr[:, 0] == k, 3].min() for k in ks])
        self.adopt_button.setEnabled(True)
        self.adopt_button.setText(f"Use best K = {self.best_k()}")

    def best_k(self) -> int | None:
        if not self._bic:
            return None
        arr = np.array(self._bic, float)
        return int(arr[np.argmin(arr[:, 2]), 0])

    def adopt_best_k(self) -> None:
        k = self.best_k()
        if k is not None:
            self.k_spin.setValue(k)

    def _on_bic_clicked(self, item, points, *args) -> None:
        if len(points):
            self.k_spin.setValue(int(points[0].data()))

    # ------------------------------------------------------------------------------------------------------------
    # LabView
    # ------------------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        if self._source == DIGITS:
            self.digits.activate()
            return
        if not self.history and not self.is_em_running() and len(self.X) >= self.k_spin.value():
            self.reset(run=True)

    def is_busy(self) -> bool:
        return super().is_busy()

    def export_csv(self, path: str) -> None:
        if self._source == DIGITS:
            self.digits.export_csv(path)
            return
        r = self._resp_for(self.shown) if self.shown >= 0 else None
        if r is None and self.shown >= 0:
            r = posterior(self.X, self.history[self.shown])
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as fh:
            w = csv.writer(fh)
            K = 0 if r is None else r[0].shape[1]
            w.writerow(["x1", "x2", *[f"p_z{k}" for k in range(K)], "label", *(["true_label"] if self.labels is not None else [])])
            for n in range(len(self.X)):
                row = [f"{self.X[n, 0]:.6g}", f"{self.X[n, 1]:.6g}"]
                if r is not None:
                    row += [f"{p:.6g}" for p in r[0][n]] + [int(np.argmax(r[0][n]))]
                else:
                    row += [""]
                if self.labels is not None:
                    row.append(int(self.labels[n]))
                w.writerow(row)

    def view_state(self) -> dict:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return {"k": self.k_spin.value(), "cov_type": self.cov_combo.currentText(), "init": self.init_combo.currentText(),
                "seed": self.seed_spin.value(), "dataset": self._source, "n": self.n_spin.value(),
                "data_seed": self.data_seed.value(), "view_range": [[x0, x1], [y0, y1]],
                "density": self.density_combo.currentIndex(), "digits": self.digits.view_state(),
                # the user's own points (clicked in, or a data set edited by clicks) travel with the session
                "points": self.X.tolist() if self._source == USER_POINTS and len(self.X) <= MAX_SESSION_POINTS
                else None, "selected_point": self.selected_point}

    def session_losses(self) -> list[str]:
        """What a saved session would not keep (said before saving: MainWindow.save_session)."""
        if self._source == USER_POINTS and len(self.X) > MAX_SESSION_POINTS:
            return [f"the Mixture lab's {len(self.X):,} points (a session keeps at most {MAX_SESSION_POINTS:,})"]
        return []

    def restore_view_state(self, state: dict) -> None:
        if not isinstance(state, dict) or not state:
            return
        widgets = [self.k_spin, self.cov_combo, self.init_combo, self.seed_spin, self.source_combo, self.n_spin,
                   self.data_seed]
        for w in widgets:
            w.blockSignals(True)
        try:
            for spin, key in ((self.k_spin, "k"), (self.seed_spin, "seed"), (self.n_spin, "n"),
                              (self.data_seed, "data_seed")):
                restore_spin(spin, state.get(key))
            if state.get("cov_type") in COV_TYPES:
                self.cov_combo.setCurrentText(state["cov_type"])
            if state.get("init") in INITS:
                self.init_combo.setCurrentText(state["init"])
            ds = state.get("dataset")
            points = _session_points(state.get("points"))
            if ds == USER_POINTS and points is not None:
                self.X = points  # (_load_source below starts from them)
                self.source_combo.setCurrentText(USER_POINTS)
            elif isinstance(ds, str) and self.source_combo.findText(ds) >= 0 and ds != USER_POINTS:
                self.source_combo.setCurrentText(ds)
            if isinstance(state.get("density"), int) and 0 <= state["density"] < 3:
                self.density_combo.setCurrentIndex(state["density"])
        finally:
            for w in widgets:
                w.blockSignals(False)
        if isinstance(state.get("digits"), dict):
            self.digits.restore_view_state(state["digits"])
        self.history, self.shown = [], -1
        self._load_source(refit=False)
        vr = state.get("view_range")
        try:
            (x0, x1), (y0, y1) = vr
            if all(np.isfinite([x0, x1, y0, y1])) and x1 > x0 and y1 > y0:
                self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        except (TypeError, ValueError):
            pass
        sel = state.get("selected_point")
        if isinstance(sel, int) and not isinstance(sel, bool) and 0 <= sel < len(self.X):
            self.select_point(sel)
        if self._activated or self.isVisible():
            self.activate()

    def deactivate(self) -> None:
        super().deactivate()
        self._set_running(False)

    def showEvent(self, event) -> None:
        self._activated = True
        super().showEvent(event)


def _session_points(value) -> np.ndarray | None:
    """The points saved in a session as an (N, 2) float32 array, or None when missing or malformed (read_session
    refuses a malformed list with a SessionError; a lab state set directly is only checked here)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if value is None or arr.ndim != 2 or arr.shape[1] != 2 or len(arr) > MAX_SESSION_POINTS \
            or not np.isfinite(arr).all():
        return None
    return arr.astype(np.float32)


__all__ = ["MixtureLab", "LVMError"]
