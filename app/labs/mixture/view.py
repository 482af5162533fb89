"""The Mixture lab: a Gaussian mixture fitted by EM, one half step at a time, on 2-D points or handwritten digits.

Points are coloured by their posterior p(z=k|x) (colours blended by an N x K @ K x 3 product and rasterised into one
ImageItem by ``app.widgets.raster_scatter``, whose docstring has the figures); ellipses show the 1- and 2-sigma
contours; the means are draggable targets.
EM runs in the worker on channel ``mixture/em`` (``engine.em_run``); every half step is stored, so the history slider
scrubs them all. What the lab holds is ``state.MixtureState`` (Qt-free); this module builds the widgets, binds them to
it and draws it.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from functools import partial
from typing import cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QColor, QStandardItemModel
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QLabel,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.labs.mixture.compare import ComparePanel
from app.labs.mixture.engine import (
    COV_TYPES,
    INITS,
    EMConfig,
    Step,
    detect_collapse,
    em_run,
    em_to_convergence,
    log_density_grid,
    sample_model,
    step_full_covs,
)
from app.labs.mixture.explanation import EXPLANATION
from app.labs.mixture.panels import BICPanel, LogLikelihoodPlot, PosteriorPanel
from app.labs.mixture.state import (
    BIC_KS,
    BIC_SEEDS,
    DATA_SEED_RANGE,
    DENSITY_MODES,
    DIGITS,
    GREY,
    K_RANGE,
    N_RANGE,
    REG_COVARS,
    SEED_RANGE,
    SOURCES,
    USER_POINTS,
    WORKSPACE,
    MixtureState,
    collapse_text,
    compare_text,
    fit_range,
    ll_curve,
    step_text,
    subsample,
    variance_text,
)
from app.widgets.click_viewbox import ClickViewBox
from app.widgets.contours import ContourLines
from app.widgets.ellipses import EllipseSet
from app.widgets.flow_layout import flow, group
from app.widgets.grid_lines import GridLines
from app.widgets.image_item import ImageItem
from app.widgets.lab_view import LabView, spin_box
from app.widgets.palette import colour_blind_safe, component_colours, component_hex, follow_colours, qcolor
from app.widgets.raster_scatter import RasterScatter
from app.widgets.steady_plots import OverlayScatter, steady_tick_column
from lvm.data.toy import TOY_SETS
from lvm.models.gmm_selection import information_criteria

SHAPE_MAX_POINTS = 12_000  # marker shapes up to this many points (RasterScatter draws 2+ px markers up to there)
SPEED_MAX = 61  # slider value meaning "as fast as possible"
CONTOUR_DROPS = (1.0, 2.5, 4.5, 7.0, 10.0)  # log p(x) contours this far below the maximum in view
SCATTER_MIN = (260, 220)  # the smallest the scatter may become (the controls wrap, the right column's plots scroll)


def _spin(lo_hi: tuple[int, int], value: int, name: str, tip: str) -> QSpinBox:
    box = spin_box(*lo_hi, value, name)
    box.setToolTip(tip)
    return box


class MixtureLab(LabView):
    name = "mixture"
    title = "Mixture lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.state = MixtureState()
        self.running = False
        self._activated = False
        self._bic_job = None
        self.timings: dict[str, float] = {}
        self._build()
        self._connect()
        follow_colours(self._on_colours)  # another palette: recolour
        self._load_source(refit=False)
        workspace.events.dataset.connect(self._on_workspace_dataset)
        self._on_workspace_dataset(workspace.dataset)

    # -- what tests, the benchmark and the session probe read --------------------------------------------------------
    @property
    def X(self) -> np.ndarray:
        return self.state.X

    @property
    def labels(self) -> np.ndarray | None:
        return self.state.labels

    @property
    def history(self) -> list[Step]:
        return self.state.history.steps

    @property
    def shown(self) -> int:
        return self.state.history.shown

    @property
    def selected_point(self) -> int | None:
        return self.state.selected_point

    # ------------------------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        st = self.state
        # -- data controls
        self.source_combo = QComboBox()
        self.source_combo.addItems(list(SOURCES))
        self.source_combo.setToolTip("the points to fit; 'digits' clusters the workspace images")
        self.n_spin = _spin(N_RANGE, st.n, "n", "number of toy points")
        self.n_spin.setSingleStep(500)
        self.data_seed = _spin(DATA_SEED_RANGE, st.data_seed, "data-seed", "seed of the toy data")
        self.mode_select = QRadioButton("select")
        self.mode_add = QRadioButton("add points")
        self.mode_select.setChecked(True)
        self.mode_select.setToolTip("click a point to see p(z=k|x)")
        self.mode_add.setToolTip("click to add a point; shift-click or right-click removes the nearest")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.mode_select)
        self.mode_group.addButton(self.mode_add)
        self.density_combo = QComboBox()
        self.density_combo.addItems(list(DENSITY_MODES))
        self.density_combo.setToolTip("show the mixture density log p(x) = log sum_k pi_k N(x; mu_k, Sigma_k)")
        self.sample_button = QPushButton("Sample")
        self.sample_button.setCheckable(True)
        self.sample_button.setToolTip("draw points from the fitted model: z ~ Cat(pi), x ~ N(mu_z, Sigma_z)")
        self._twod_groups = [
            group(QLabel("n"), self.n_spin, QLabel("data seed"), self.data_seed),
            group(QLabel("Click:"), self.mode_select, self.mode_add),
            group(self.density_combo, self.sample_button),
        ]
        data_row = flow(group(QLabel("Data:"), self.source_combo), *self._twod_groups)

        # -- EM controls
        self.k_spin = _spin(K_RANGE, st.config.k, "k", "number of components K")
        self.cov_combo = QComboBox()
        self.cov_combo.addItems(list(COV_TYPES))
        self.cov_combo.setToolTip("covariance type: full, tied (shared), diag (axis-aligned), spherical")
        self.init_combo = QComboBox()
        self.init_combo.addItems(list(INITS))
        self.init_combo.setCurrentText(st.config.init)
        self.init_combo.setToolTip("how the parameters start")
        self.seed_spin = _spin(SEED_RANGE, st.config.seed, "seed", "seed of the initialisation")
        self.reg_combo = QComboBox()
        self.reg_combo.setObjectName("reg-covar")
        for reg in REG_COVARS:
            self.reg_combo.addItem(f"{reg:.0e}", reg)
        self.reg_combo.setToolTip(
            "reg_covar: added to every covariance's diagonal after each M-step, a floor under the variances "
            "(a component collapsing onto one point stops there, and the likelihood stays finite)"
        )
        self.compare_check = QCheckBox("compare with seed")
        self.compare_check.setObjectName("compare-check")
        self.compare_check.setToolTip(
            "run EM a second time on the same points from another seed and show where it ends"
        )
        self.compare_spin = _spin(SEED_RANGE, 1, "compare-seed", "seed of the second EM run")
        self.e_button = QPushButton("E-step")
        self.e_button.setToolTip("compute the responsibilities p(z=k|x) (recolours the points)")
        self.m_button = QPushButton("M-step")
        self.m_button.setToolTip("re-estimate pi, mu, Sigma from the responsibilities (moves the ellipses)")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("run EM until it converges; press again to pause")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("start again from a new initialisation")
        self.speed = QSlider(Qt.Orientation.Horizontal)
        self.speed.setRange(1, SPEED_MAX)
        self.speed.setValue(24)
        self.speed.setFixedWidth(110)
        self.speed_label = QLabel()
        self.speed_label.setFixedWidth(self.speed_label.fontMetrics().horizontalAdvance("60 steps/s") + 6)
        self.em_row = flow(
            group(QLabel("K"), self.k_spin, QLabel("covariance"), self.cov_combo),
            group(QLabel("init"), self.init_combo, QLabel("seed"), self.seed_spin),
            group(QLabel("reg"), self.reg_combo, self.compare_check, self.compare_spin),
            group(self.e_button, self.m_button, self.run_button, self.reset_button),
        )

        # -- scatter
        self.scatter_widget = pg.GraphicsLayoutWidget()
        self.scatter_widget.setBackground("w")
        self.scatter_widget.setMinimumSize(*SCATTER_MIN)
        self.vb = ClickViewBox()
        self.plot = self.scatter_widget.addPlot(viewBox=self.vb)
        self.plot.setLabel("bottom", "x\u2081")
        self.plot.setLabel("left", "x\u2082")
        self.grid_lines = GridLines(self.plot, alpha=0.15)
        steady_tick_column(self.plot)  # panning, zooming and new data move the ticks, not the plot's layout
        self.vb.setAspectLocked(False)
        self.vb.disableAutoRange()
        self.heat = ImageItem(axisOrder="col-major")
        self.heat.setZValue(-10)
        self.heat.setOpacity(0.85)
        self.heat.setVisible(False)  # until a density mode shows it (app.widgets.theme: no heatmap under the lines)
        self.heat.setLookupTable(pg.ColorMap([0.0, 1.0], [(255, 255, 255), (120, 135, 175)]).getLookupTable(nPts=256))
        self.vb.addItem(self.heat, ignoreBounds=True)
        self.contours = ContourLines(self.vb, [pg.mkPen((90, 100, 140), width=1)] * len(CONTOUR_DROPS), z=-5)
        self.points = RasterScatter(self.vb, z=0)
        self.ellipses = EllipseSet(self.vb, z=5)
        self.targets: list[pg.TargetItem] = []
        self.samples = OverlayScatter(size=7, symbol="x", pxMode=True)  # (hidden while empty: Qt skips it)
        self.samples.setZValue(8)
        self.vb.addItem(self.samples, ignoreBounds=True)
        self.sel_marker = OverlayScatter(size=16, symbol="o", pen=pg.mkPen("k", width=2.5), brush=None)
        self.sel_marker.setZValue(12)
        self.vb.addItem(self.sel_marker, ignoreBounds=True)

        self.history_slider = QSlider(Qt.Orientation.Horizontal)
        self.history_slider.setRange(0, 0)
        self.history_slider.setToolTip("scrub through every half step computed so far")
        self.step_label = QLabel()
        # its own line, as wide as the column: the text's length changes every half step, the slider's width must not
        # (a column too narrow for it cuts it: the tooltip holds the whole text)
        self.step_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.warn_label = QLabel()
        self.warn_label.setStyleSheet("color: #c0392b; font-weight: bold;")
        self.warn_label.setWordWrap(True)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        # the "compare with seed" view sits under the scatter (shown only while a comparison is asked for)
        self.compare = ComparePanel()
        self.compare.setVisible(False)
        self.scatter_split = QSplitter(Qt.Orientation.Vertical)
        self.scatter_split.setChildrenCollapsible(False)
        self.scatter_split.addWidget(self.scatter_widget)
        self.scatter_split.addWidget(self.compare)
        self.scatter_split.setStretchFactor(0, 3)
        self.scatter_split.setStretchFactor(1, 1)
        lv.addWidget(self.scatter_split, 1)
        history_row = group(QLabel("History"), self.history_slider, QLabel("  speed"), self.speed, self.speed_label)
        lv.addWidget(history_row)
        lv.addWidget(self.step_label)
        self.var_label = QLabel()
        self.var_label.setObjectName("variance-text")
        self.var_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # (its own line)
        lv.addWidget(self.var_label)
        lv.addWidget(self.warn_label)

        # -- right column: log-likelihood, posterior bars, BIC/AIC
        self.ll_plot = LogLikelihoodPlot()
        self.posterior = PosteriorPanel()
        self.post_plot = self.posterior.plot
        self.bic = BICPanel()
        self.bic_plot = self.bic.plot

        right = QSplitter(Qt.Orientation.Vertical)
        right.setChildrenCollapsible(False)  # no plot can be dragged away to nothing
        for w in (self.ll_plot, self.posterior, self.bic):
            right.addWidget(w)
        right.setSizes([220, 360, 240])  # (the posterior's bars and Bayes' table share the middle)

        page2d = QSplitter(Qt.Orientation.Horizontal)
        page2d.setChildrenCollapsible(False)
        page2d.addWidget(left)
        page2d.addWidget(right)
        page2d.setStretchFactor(0, 3)
        page2d.setStretchFactor(1, 2)
        page2d.setSizes([640, 380])

        from app.labs.mixture.digits import DigitsPanel

        self.digits = DigitsPanel(self)
        self.stack = QStackedWidget()
        self.stack.addWidget(page2d)
        self.stack.addWidget(self.digits)

        content = QWidget()
        cv = QVBoxLayout(content)
        cv.setContentsMargins(4, 4, 4, 4)
        cv.addWidget(data_row)
        cv.addWidget(self.em_row)
        cv.addWidget(self.stack, 1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        splitter = self.with_explanation(content)
        splitter.setSizes([1100, 260])
        outer.addWidget(splitter)
        self._update_speed_label()
        self._draw_bic()

    def _connect(self) -> None:
        self.source_combo.currentTextChanged.connect(lambda _t: self._load_source())
        self.n_spin.valueChanged.connect(lambda _v: self._load_source())
        self.data_seed.valueChanged.connect(lambda _v: self._load_source())
        for spin in (self.k_spin, self.seed_spin):
            spin.valueChanged.connect(lambda _v: self._config_changed())
        for combo in (self.cov_combo, self.init_combo, self.reg_combo):
            combo.currentTextChanged.connect(lambda _t: self._config_changed())
        self.compare_check.toggled.connect(lambda _c: self._compare_changed())
        self.compare_spin.valueChanged.connect(lambda _v: self._compare_changed())
        self.e_button.clicked.connect(lambda: self.step_half("E"))
        self.m_button.clicked.connect(lambda: self.step_half("M"))
        self.run_button.clicked.connect(self.toggle_run)
        self.reset_button.clicked.connect(lambda: self.reset(run=False))
        self.speed.valueChanged.connect(lambda _v: self._update_speed_label())
        self.history_slider.valueChanged.connect(self.show_step)
        self.vb.clicked.connect(self._on_click)
        self.vb.sigRangeChanged.connect(lambda *_: self._density_timer.start())
        self.density_combo.currentIndexChanged.connect(self._on_density_mode)
        self.sample_button.toggled.connect(lambda _c: self._update_samples())
        self.bic.button.clicked.connect(self.compute_bic)
        self.bic.k_chosen.connect(self.k_spin.setValue)
        self._draw_pass = self.next_pass(self._draw_received, delay_ms=0)  # the steps received (``_on_step``)
        self._panels_pass = self.next_pass(self._draw_panels)  # ... and then their side panels, in the next pass
        self._show_received = False  # ... and one of them is to be shown
        self._density_timer: QTimer = QTimer(self)
        self._density_timer.setSingleShot(True)
        self._density_timer.setInterval(30)
        self._density_timer.timeout.connect(self._update_density)

    # ------------------------------------------------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------------------------------------------------
    def _config_changed(self) -> None:
        """K, covariance type, initialisation or seed changed: a new fit."""
        self.state.config = EMConfig(
            k=self.k_spin.value(),
            cov_type=self.cov_combo.currentText(),
            init=self.init_combo.currentText(),
            seed=self.seed_spin.value(),
            reg_covar=float(self.reg_combo.currentData()),
        )
        self._draw_bic()  # (a grid for another covariance type is stale)
        self.reset(run=True)

    def _sync_widgets(self) -> None:
        """Widgets from the state (after a session restore), without their signals."""
        st, cfg = self.state, self.state.config
        widgets: list[QWidget] = [self.k_spin, self.cov_combo, self.init_combo, self.seed_spin, self.source_combo]
        widgets += [self.n_spin, self.data_seed, self.density_combo, self.reg_combo, self.compare_check]
        widgets += [self.compare_spin]
        for w in widgets:
            w.blockSignals(True)
        try:
            self.k_spin.setValue(cfg.k)
            self.cov_combo.setCurrentText(cfg.cov_type)
            self.init_combo.setCurrentText(cfg.init)
            self.seed_spin.setValue(cfg.seed)
            self.reg_combo.setCurrentIndex(max(self.reg_combo.findData(cfg.reg_covar), 0))
            self.compare_check.setChecked(st.compare_on)
            self.compare_spin.setValue(st.compare_seed)
            self._show_compare_panel()
            self.source_combo.setCurrentText(st.source)
            self.n_spin.setValue(st.n)
            self.data_seed.setValue(st.data_seed)
            self.density_combo.setCurrentIndex(st.density)
        finally:
            for w in widgets:
                w.blockSignals(False)

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
        model = cast(QStandardItemModel, self.source_combo.model())
        two_d = ds is not None and ds.dim == 2
        model.item(self.source_combo.findText(WORKSPACE)).setEnabled(two_d)
        model.item(self.source_combo.findText(DIGITS)).setEnabled(ds is not None and ds.is_image)
        if self.state.source == WORKSPACE:
            if two_d:
                self._load_source()
            else:
                self.source_combo.setCurrentText("blobs")
        self.digits.on_dataset(ds)

    def _load_source(self, refit: bool = True) -> None:
        st = self.state
        st.source, st.n, st.data_seed = self.source_combo.currentText(), self.n_spin.value(), self.data_seed.value()
        self.n_spin.setEnabled(st.is_toy)
        self.data_seed.setEnabled(st.is_toy)
        two_d = st.source != DIGITS
        self.stack.setCurrentIndex(0 if two_d else 1)
        self.em_row.setVisible(two_d)
        for w in self._twod_groups:
            w.setVisible(two_d)
        if not two_d:
            self.runner.cancel(self.channel("em"))
            self.digits.activate()
            return
        if st.is_toy:
            st.set_points(*st.toy_points())
        elif st.source == WORKSPACE:
            data = self.workspace.data
            if data is None or data.x.shape[1] != 2:
                self.workspace.message("the workspace dataset is not 2-D; load a toy set (File > Built-in datasets)")
                return
            x, y, message = subsample(data.x, data.y, self.workspace.seed(self.name))
            if message:
                self.workspace.message(message)
            st.set_points(x, y)
        # (user points: the points shown stay, and so do their BIC/AIC grid and tables)
        self._points_changed(keep_view=False)
        if refit:
            self.reset(run=True)

    def _points_changed(self, keep_view: bool) -> None:
        """Draw new points; the BIC/AIC grid of the previous ones is stale (a running one is stopped)."""
        self.points.set_data(self.state.X)
        self.compare.set_points(self.state.X, fit_range(self.state.X))
        if not keep_view:
            (x0, x1), (y0, y1) = fit_range(self.state.X)
            self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        self.runner.cancel(self.channel("bic"))
        self._draw_bic()
        self._show_selection()

    # ------------------------------------------------------------------------------------------------------------
    # EM control
    # ------------------------------------------------------------------------------------------------------------
    def reset(self, run: bool = False) -> None:
        """Forget the history and start from a fresh initialisation (in the worker); ``run``: continue EM."""
        if self.state.source == DIGITS:
            return
        self.runner.cancel(self.channel("em"))
        self.state.history.clear()
        self._set_running(False)
        if not self.state.can_fit():
            self._refresh_controls()
            self._draw_empty(f"{len(self.X)} point(s): add at least K = {self.state.config.k} to fit")
            return
        self._submit(None, None if run else 0)
        self._start_compare()

    def _draw_empty(self, text: str) -> None:
        self.ellipses.clear()
        for t in self.targets:
            t.setVisible(False)
        self.points.set_colours(np.tile(GREY, (len(self.X), 1)))
        self.ll_plot.show_curve(ll_curve([]))
        self.var_label.setText("")
        self._set_step_text(text)
        self.history_slider.setRange(0, 0)

    def _submit(self, start: Step | None, n_halves: int | None) -> None:
        """Run EM in the worker from ``start`` (None: initialise first) for ``n_halves`` half steps (None: converge);
        the status bar shows what it does (``Job.report``)."""
        X, cfg, delay = self.X.copy(), self.state.config, self.delay()
        palette = component_colours(cfg.k if start is None else start.k)
        submitted: list = []  # the Job, once submit returns (the first report may come before)

        def report(fraction: float, text: str) -> None:
            if submitted:
                submitted[0].report(fraction, text)

        def job(token):
            yield from em_run(X, cfg, start, n_halves, palette, delay=delay, token=token, report=report)

        self._set_running(n_halves is None)
        submitted.append(
            self.runner.submit(
                self.channel("em"),
                job,
                on_snapshot=partial(self._on_step, palette=palette),
                on_error=self._on_em_error,
                on_finished=self._em_finished,
                keep_all=True,
            )
        )
        self._refresh_controls()

    def _em_finished(self) -> None:
        self._set_running(False)
        st = self.state
        if st.first_fit and st.history.steps:
            # the first fit after opening: show Bayes' rule for the most ambiguous point and compare K by BIC/AIC
            st.first_fit = False
            if st.selected_point is None:
                self.select_point(st.most_ambiguous_point())
            if not st.bic.points and len(self.X) <= 20000:
                self.compute_bic()

    def step_half(self, half: str) -> None:
        """One E-step or M-step from the shown step (an M-step right after an M or init first needs an E)."""
        if self.is_em_running():
            return
        plan = self.state.step_plan(half)
        if plan is not None:
            self._submit(*plan)

    def is_running(self) -> bool:
        return self.runner.is_busy(self.digits.channel()) if self.state.source == DIGITS else self.is_em_running()

    def toggle_run(self) -> bool:
        """Run EM to convergence from the shown step (a fresh initialisation when there is none), or pause it."""
        if self.state.source == DIGITS:  # the digits page: fit, or cancel the fit
            if self.runner.is_busy(self.digits.channel()):
                self.digits.cancel()
            else:
                self.digits.fit()
            return True
        if self.is_em_running():
            self.pause()
            return True
        start = self.state.history.branch_here()
        if start is None:
            self.reset(run=True)
        else:
            self._submit(start, None)
        return True

    # -- the comparison run: the same points and configuration, another seed ----------------------------------------
    def _compare_changed(self) -> None:
        st = self.state
        st.compare_on, st.compare_seed = self.compare_check.isChecked(), self.compare_spin.value()
        self._show_compare_panel()
        self._start_compare()
        self._draw_compare()
        self.ll_plot.show_curve(ll_curve(st.history.steps, self._compare_reference()))

    def _show_compare_panel(self) -> None:
        """The compare view shows while a comparison is asked for; shown, it gets a share of the column."""
        on = self.state.compare_on and self.state.source != DIGITS
        if on and not self.compare.isVisible():
            total = sum(self.scatter_split.sizes()) or 600
            self.scatter_split.setSizes([int(total * 0.68), int(total * 0.32)])
        self.compare.setVisible(on)

    def _start_compare(self) -> None:
        """(Re)start the second EM run in the worker (channel ``mixture/compare``); it keeps only its end."""
        self.runner.cancel(self.channel("compare"))
        st = self.state
        st.forget_compare()
        cfg = st.compare_config()
        if cfg is None or st.source == DIGITS or not st.can_fit():
            return
        X, palette = self.X.copy(), component_colours(cfg.k)
        version = st.data_version

        def job():
            yield from em_to_convergence(X, cfg, palette)

        def on_snapshot(item) -> None:
            if st.data_version == version and st.compare_config() == cfg:
                st.receive_compare(item[0], item[1], done=False)
                self._draw_compare()

        def on_finished() -> None:
            if st.data_version == version and st.compare_config() == cfg and st.compare_step is not None:
                st.compare_done = True
                self._draw_compare()
                self.ll_plot.show_curve(ll_curve(st.history.steps, self._compare_reference()))

        self.runner.submit(self.channel("compare"), job, on_snapshot=on_snapshot, on_finished=on_finished)

    def _compare_reference(self) -> float | None:
        st = self.state
        return st.compare_step.log_likelihood if st.compare_done and st.compare_step is not None else None

    def _draw_compare(self) -> None:
        st = self.state
        if not st.compare_on:
            self.ll_plot.set_reference(None)
            return
        text = compare_text(st.compare_seed, st.compare_step, st.compare_done, st.history.current, st.config.seed)
        self.compare.draw(st.compare_step, st.compare_colours, text)
        self.ll_plot.set_reference(self._compare_reference(), f"seed {st.compare_seed}'s end")

    def pause(self) -> None:
        self.runner.cancel(self.channel("em"))
        self._set_running(False)

    def is_em_running(self) -> bool:
        return self.runner.is_busy(self.channel("em"))

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.run_button.setText("Pause" if running else "Run")
        self._refresh_controls()
        if not running and self.state.history.steps:
            self._panels_pass.queue()  # (the curve's range fits it again)

    def _refresh_controls(self) -> None:
        busy = self.is_em_running()
        have = bool(self.state.history.steps)
        self.e_button.setEnabled(have and not busy)
        self.m_button.setEnabled(have and not busy)
        self.sample_button.setEnabled(have)

    def _on_em_error(self, message: str) -> None:
        self._set_running(False)
        self._set_step_text(message)

    def _on_step(self, item: tuple[Step, np.ndarray | None], palette: np.ndarray | None = None) -> None:
        """A half step from the worker: stored at once, drawn once the snapshots already queued are stored too (a
        GUI thread that fell behind, on a busy machine, draws the newest step once instead of each in turn)."""
        step, colours = item
        if colours is not None and palette is not None and not np.array_equal(palette, component_colours(len(palette))):
            colours = None  # blended in the palette of before a palette switch: recomputed from the responsibilities
        self._show_received |= self.state.receive(step, colours)
        self._draw_pass.queue()

    def _draw_received(self) -> None:
        """The steps received since the last draw: the slider and the newest step shown in the scatter now; the
        log-likelihood curve and the selected point's Bayes' rule in the next pass of the event loop
        (``_draw_panels``), so the two halves are painted in two frames. (Drawn and painted together, a half step
        held the GUI thread 26-41 ms on 100k points: ``lvm bench gui``, mixture-em-100k.)"""
        show, self._show_received = self._show_received, False
        self._sync_slider()
        if show:
            self.show_step(self.state.history.shown, panels=False)
        self._refresh_controls()
        self._panels_pass.queue()

    def _draw_panels(self) -> None:
        """The side panels of the step shown: the log-likelihood curve (in a range growing ahead of it while EM
        runs, its own once it stops), its marker, Bayes' rule at the selection."""
        curve = ll_curve(self.state.history.steps, self._compare_reference())
        self.ll_plot.show_curve(curve, growing=self.is_em_running())
        if self.state.history.shown >= 0:
            self.ll_plot.now.setValue(self.state.history.shown)
        self._show_selection()

    def is_drawing_steps(self) -> bool:
        """Steps received from the worker wait to be drawn (or their side panels do)."""
        return self._draw_pass.pending or self._panels_pass.pending

    def _history_changed(self) -> None:
        """The history was replaced or cut (an edit): draw it and its shown step."""
        self._sync_slider()
        self.ll_plot.show_curve(ll_curve(self.state.history.steps, self._compare_reference()))
        self.show_step(self.state.history.shown)

    def _sync_slider(self) -> None:
        h = self.state.history
        self.history_slider.blockSignals(True)
        self.history_slider.setRange(0, max(h.newest, 0))
        self.history_slider.setValue(max(h.shown, 0))
        self.history_slider.blockSignals(False)

    # ------------------------------------------------------------------------------------------------------------
    # drawing
    # ------------------------------------------------------------------------------------------------------------
    def show_step(self, i: int, panels: bool = True) -> None:
        """Show stored step i (the slider, and the newest step while following); following iff i is the newest.
        ``panels=False``: not the log-likelihood marker and the selection's Bayes' rule (``_draw_panels`` follows)."""
        h = self.state.history
        if not 0 <= i < len(h):
            return
        t0 = time.perf_counter()
        step = h.scrub(i)
        self._sync_slider()
        K = step.k
        self.points.set_colours(h.colours(i, self.X), self._marker_shapes(i))
        self.timings["recolour_ms"] = (time.perf_counter() - t0) * 1000
        flagged = detect_collapse(step, len(self.X), self.state.data_scale())
        self.ellipses.set(step.means, step_full_covs(step), [qcolor(k) for k in range(K)], flagged)
        self._set_targets(step)
        if panels:
            self.ll_plot.now.setValue(i)
        self._set_step_text(step_text(i, step))
        self.warn_label.setText(collapse_text(flagged))
        self.var_label.setText(variance_text(step, self.state.config.reg_covar))
        self.var_label.setToolTip(
            "the smallest eigenvalue of the components' covariances (the variance along a component's narrowest "
            "direction). EM adds reg_covar to every covariance's diagonal, so no variance falls below it: a component "
            "collapsing onto one or two points stops at the floor, with a large but finite likelihood. Raise reg to "
            "see the collapse stop earlier."
        )
        if self.state.compare_on:
            self._draw_compare()
        if panels:
            self._show_selection()
        self._update_density()
        if self.sample_button.isChecked():
            self._update_samples()
        self._refresh_controls()
        self.timings["show_ms"] = (time.perf_counter() - t0) * 1000

    def _marker_shapes(self, i: int) -> np.ndarray | None:
        """Each point's marker: the shape of its most probable component, with the colour-blind-safe palette and at
        most ``SHAPE_MAX_POINTS`` points (beyond, markers are 1-2 px dots whose shapes cannot be told apart, and the
        N x K responsibilities would be computed here, on the GUI thread); None: discs."""
        if not colour_blind_safe() or len(self.X) > SHAPE_MAX_POINTS:
            return None
        res = self.state.history.responsibilities(i, self.X)
        return None if res is None else np.argmax(res[0], axis=1)

    def _on_colours(self, _appearance=None) -> None:
        """Another palette (or light/dark): recolour the points, ellipses, means, bars and samples shown."""
        self.state.history.colour_cache.clear()
        if self.state.history.steps and self.state.source != DIGITS:
            self.show_step(self.state.history.shown)

    def _set_step_text(self, text: str) -> None:
        self.step_label.setText(text)
        self.step_label.setToolTip(text)  # (a narrow column cuts the line)

    def _set_targets(self, step: Step) -> None:
        for k in range(step.k):
            if k >= len(self.targets):
                t = pg.TargetItem(
                    size=16, symbol="crosshair", movable=True, label=str(k), labelOpts={"color": "k", "offset": (8, -6)}
                )
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
        for t in self.targets[step.k :]:
            t.setVisible(False)

    def _on_mean_dragged(self, k: int, item) -> None:
        if not self.state.history.steps:
            return
        self.runner.cancel(self.channel("em"))
        p = item.pos()
        moved = self.state.drag_mean(k, (p.x(), p.y()))
        self._history_changed()
        self._submit(moved, None)

    # -- selection: Bayes' rule for one point
    def select_point(self, index: int | None) -> None:
        self.state.selected_point = index
        self._show_selection()

    def _show_selection(self) -> None:
        res = self.state.selected_posterior()
        if res is None:
            self.sel_marker.setData([], [])
            self.posterior.clear()
            return
        x = self.X[self.state.selected_point]
        self.sel_marker.setData([float(x[0])], [float(x[1])])
        self.posterior.show_posterior(x, *res)

    # -- density
    def _on_density_mode(self, mode: int) -> None:
        self.state.density = mode
        self._update_density()

    def _update_density(self) -> None:
        mode = self.density_combo.currentIndex()
        step = self.state.history.current
        if mode == 0 or step is None:
            self.heat.setVisible(False)
            self.contours.clear()
            return
        (x0, x1), (y0, y1) = self.vb.viewRange()
        lp = log_density_grid(step, (x0, x1), (y0, y1), 150)
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
        step = self.state.history.current
        if not self.sample_button.isChecked() or step is None:
            self.samples.setData([], [])
            return
        n = int(min(max(len(self.X), 200), 1000))
        x, z = sample_model(step, n, seed=self.state.config.seed + 7919 * self.shown)
        pens = [pg.mkPen(QColor(component_hex(k)).darker(130), width=2) for k in range(step.k)]
        self.samples.setData(x[:, 0], x[:, 1], pen=[pens[k] for k in z], brush=None)

    # -- clicks
    def _on_click(self, pos: QPointF, button, modifiers) -> None:
        x, y = pos.x(), pos.y()
        if self.mode_add.isChecked():
            if button == Qt.MouseButton.RightButton or modifiers & Qt.KeyboardModifier.ShiftModifier:
                i = self.points.nearest(x, y, max_pixels=None)
                if i is not None:
                    self._edit_points(np.delete(self.X, i, axis=0))
            else:
                self._edit_points(np.concatenate([self.X, np.array([[x, y]], np.float32)]))
            return
        self.select_point(self.points.nearest(x, y))

    def _edit_points(self, x: np.ndarray) -> None:
        """The user changed the points: they become 'your points'; EM continues from the shown model, and the view
        follows the new run (``MixtureState.edit_points``)."""
        self.runner.cancel(self.channel("em"))
        self.source_combo.blockSignals(True)
        self.source_combo.setCurrentText(USER_POINTS)
        self.source_combo.blockSignals(False)
        self.n_spin.setEnabled(False)
        self.data_seed.setEnabled(False)
        restart = self.state.edit_points(x)
        self._points_changed(keep_view=True)
        if restart is None:
            self.reset(run=True)
            return
        self._history_changed()
        self._submit(restart, None)
        self._start_compare()

    # -- BIC / AIC
    def compute_bic(self) -> None:
        st = self.state
        if len(st.X) < 2:
            return
        X, cov = st.X.copy(), st.config.cov_type  # k-means starts: robust comparisons
        st.bic.start(st.data_version, cov)
        submitted: list = []

        def job(token):
            yield from information_criteria(X, BIC_KS, BIC_SEEDS, cov, "kmeans", should_stop=lambda: token.cancelled)

        def done():  # (finished, failed or cancelled; a newer grid may have started meanwhile)
            if submitted and self._bic_job is submitted[0]:
                self._bic_job = None
                self._draw_bic()

        self._bic_job = self.runner.submit(
            self.channel("bic"), job, on_snapshot=self._on_bic, on_done=done, keep_all=True
        )
        submitted.append(self._bic_job)
        self._draw_bic()

    def _on_bic(self, point) -> None:
        self.state.bic.add(point)
        self._draw_bic()

    def _draw_bic(self) -> None:
        """The grid, greyed with a note when it was computed for other data or another covariance type."""
        self.bic.draw(self.state.bic, self.state.bic_stale_reason(), computing=self._bic_job is not None)

    # ------------------------------------------------------------------------------------------------------------
    # LabView
    # ------------------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        self._activated = True  # (the window activates a lab it is about to show, before its show event)
        if self.state.source == DIGITS:
            self.digits.activate()
            return
        st = self.state
        if not st.history.steps and not self.is_em_running() and st.can_fit():
            self.reset(run=True)
        elif st.compare_on and not st.compare_done and not self.runner.is_busy(self.channel("compare")):
            self._start_compare()  # (hiding the lab cancelled it)

    # -- animation (File → Export animation…: app.widgets.animation_export) -------------------------------------------
    def animation_problem(self) -> str | None:
        if self.state.source == DIGITS:
            return "the digits page keeps no EM history; choose a 2-D data source and run EM"
        if not self.state.history.steps:
            return "there are no EM half steps yet: run EM (Run, E-step or M-step) first"
        if self.is_em_running():
            return "EM is running: pause it (or let it converge) to export its half steps"
        return None

    def animation_frame_count(self) -> int:
        return 0 if self.state.source == DIGITS else len(self.state.history)

    def animation_frames(self) -> Iterator[str]:
        """Every stored half step in turn (the history slider's positions), then back to the step the user had."""
        h = self.state.history
        shown, follow, count = h.shown, h.follow, len(h)
        try:
            for i in range(count):
                if i >= len(h):  # (the history was cut meanwhile)
                    return
                self.show_step(i)
                h.follow = False  # a half step arriving meanwhile is stored, not shown
                yield f"{self.title}, EM {step_text(i, h[i])}"
        finally:
            if h.steps:
                self.show_step(h.newest if follow else min(shown, h.newest))
                h.follow = follow

    def export_csv(self, path: str) -> None:
        if self.state.source == DIGITS:
            self.digits.export_csv(path)
            return
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as fh:
            csv.writer(fh).writerows(self.state.export_rows())

    def view_state(self) -> dict:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        self.state.view_range = ((x0, x1), (y0, y1))
        self.state.digits = self.digits.settings()
        return self.state.to_dict()

    def session_losses(self) -> list[str]:
        """What a saved session would not keep (said before saving: MainWindow.save_session)."""
        return self.state.session_losses()

    def restore_view_state(self, state: dict) -> None:
        if not isinstance(state, dict) or not state:
            return
        self.runner.cancel(self.channel("em"))
        problems = self.state.update_from_dict(state)
        if problems:
            self.workspace.message("the session's Mixture lab settings were not all taken: " + "; ".join(problems))
        self._sync_widgets()
        self.digits.apply(self.state.digits)
        self._load_source(refit=False)
        if self.state.view_range is not None:
            (x0, x1), (y0, y1) = self.state.view_range
            self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        self.state.take_restored_selection()
        self._show_selection()
        if self._activated or self.isVisible():
            if self.state.source == DIGITS:
                self.digits.activate()
            elif self.state.can_fit():
                # a fresh fit of the restored settings (not ``activate``: the run cancelled above may still be
                # winding down in the worker, and activate starts nothing while EM looks busy)
                self.reset(run=True)

    def deactivate(self) -> None:
        super().deactivate()
        self._set_running(False)

    def showEvent(self, event) -> None:
        self._activated = True
        super().showEvent(event)


__all__ = ["MixtureLab", "SOURCES", "TOY_SETS"]
