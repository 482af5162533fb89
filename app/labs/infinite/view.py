"""The infinite mixture lab (issue 7): the lecture's small VAE you can hold in your hands.

Left: sliders for theta = (A, B, c, d). Centre: p(x) by quadrature over z, component Gaussians N(mu(z), Sigma(z))
as ellipses coloured by z, samples coloured by their z, and the curve z -> mu(z); redrawn synchronously on every
slider move (a few ms: the x-grid density is one GEMM over the quadrature nodes). Bottom: finite vs infinite,
the same data fitted four ways (``app.labs.infinite.fits_panel``).

The view builds widgets and binds them to the Qt-free ``InfiniteState`` (``app.labs.infinite.state``). Every random
draw shows its seed: the samples' "sample seed" (the workspace's seed for this lab) beside the samples toggle, the fit
panel's seed beside its data.
"""

from __future__ import annotations

import csv
import time

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.blas import single_thread_blas
from app.labs.infinite.explanation import EXPLANATION
from app.labs.infinite.fits_panel import FitComparison
from app.labs.infinite.state import (
    METHODS,
    N_Z_RANGE,
    PARAM_LIMIT,
    RANGE_PRESETS,
    SEED_RANGE,
    InfiniteState,
    sample_noise,
)
from app.widgets.infinite_mixture_plot import InfiniteMixturePlot
from app.widgets.lab_view import LabView
from app.widgets.param_slider import ParamSlider
from lvm.io import atomic_path
from lvm.models.lecture_vae import OutputRanges, default_theta, density_on_grid

HEATMAP_METHOD, HEATMAP_LIMIT = "midpoint", 4.5  # uniform node spacing: no 'beads' in the tails


class InfiniteMixtureLab(LabView):
    name = "infinite"
    title = "Infinite mixture lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.state = InfiniteState()
        self.last_redraw_ms = float("nan")
        self.redraw_times: list[float] = []
        self._activated = False
        self._build()
        self._set_noise()
        self._sync_sliders()
        workspace.events.seeds.connect(self._on_seeds)
        self.redraw()

    # the state, read by tests and the session probe
    model = property(lambda self: self.state.model)
    latent_dim = property(lambda self: self.state.latent_dim)
    n_z = property(lambda self: self.state.n_z)
    range_preset = property(lambda self: self.state.range_preset)

    def _build(self) -> None:
        controls = QWidget()
        cl = QVBoxLayout(controls)
        cl.setContentsMargins(4, 4, 4, 4)
        cl.setSpacing(4)

        row = QHBoxLayout()
        row.addWidget(QLabel("Latent z:"))
        self.dim_group = QButtonGroup(self)
        self.dim_buttons = {}
        for dz in (1, 2):
            b = QRadioButton(f"{dz}-D")
            self.dim_group.addButton(b, dz)
            self.dim_buttons[dz] = b
            row.addWidget(b)
        self.dim_buttons[1].setChecked(True)
        self.dim_group.idToggled.connect(self._on_dim_toggled)
        row.addStretch(1)
        cl.addLayout(row)

        self.range_combo = QComboBox()
        for preset_key, (label, _) in RANGE_PRESETS.items():
            self.range_combo.addItem(label, preset_key)
        self.range_combo.setCurrentIndex(self.range_combo.findData(self.state.range_preset))
        self.range_combo.setToolTip("the output ranges of μθ and Σθ (the lecture's are the default)")
        self.range_combo.currentIndexChanged.connect(lambda _: self._on_range_preset())
        cl.addWidget(self.range_combo)

        self.sliders: dict[tuple, ParamSlider] = {}
        key: tuple
        for group_name, mat, vec, what in (
            ("μθ(z) = sigmoid(A z + c)", "A", "c", "mean"),
            ("Σθ(z) = diag exp(sigmoid(B z + d))", "B", "d", "log variance"),
        ):
            box = QGroupBox(group_name)
            bl = QVBoxLayout(box)
            bl.setContentsMargins(4, 2, 4, 2)
            bl.setSpacing(1)
            for i in range(2):
                for j in range(2):
                    key = (mat, i, j)
                    s = ParamSlider(
                        f"{mat}<sub>{i + 1}{j + 1}</sub>",
                        -PARAM_LIMIT,
                        PARAM_LIMIT,
                        0.05,
                        tooltip=f"how z{j + 1} moves the {what} of x{i + 1}",
                    )
                    s.slider.setObjectName(f"slider-{mat}{i + 1}{j + 1}")
                    self.sliders[key] = s
                    bl.addWidget(s)
            for i in range(2):
                key = (vec, i)
                s = ParamSlider(
                    f"{vec}<sub>{i + 1}</sub>",
                    -PARAM_LIMIT,
                    PARAM_LIMIT,
                    0.05,
                    tooltip=f"offset of the {what} of x{i + 1}",
                )
                s.slider.setObjectName(f"slider-{vec}{i + 1}")
                self.sliders[key] = s
                bl.addWidget(s)
            cl.addWidget(box)
        for key, s in self.sliders.items():
            s.valueChanged.connect(lambda v, key=key: self.set_param(key, v))

        self.show_boxes = {}
        opts = QGroupBox("Show")
        ol = QVBoxLayout(opts)
        ol.setContentsMargins(4, 2, 4, 2)
        ol.setSpacing(1)
        for show_key, text in (
            ("components", "component ellipses N(μ(z), Σ(z))"),
            ("curve", "mean curve z → μ(z)"),
            ("samples", "samples"),
            ("data", "training data (fit panel)"),
        ):
            cb = QCheckBox(text)
            cb.setChecked(self.state.show[show_key])
            cb.toggled.connect(lambda on, k=show_key: self._on_show(k, on))
            self.show_boxes[show_key] = cb
            if show_key == "samples":  # their fixed noise is drawn with this seed
                self.sample_seed = QSpinBox()
                self.sample_seed.setObjectName("infinite-sample-seed")
                self.sample_seed.setRange(*SEED_RANGE)
                self.sample_seed.setPrefix("seed ")
                width = self.sample_seed.fontMetrics().horizontalAdvance("seed 2147483647") + 40
                self.sample_seed.setMaximumWidth(width)
                self.sample_seed.setKeyboardTracking(False)
                self.sample_seed.setToolTip("seed of the samples' fixed noise z ~ N(0, I), ε ~ N(0, I)")
                self.sample_seed.setValue(self.workspace.seed(self.name))
                self.sample_seed.valueChanged.connect(lambda v: self.workspace.set_seed(self.name, int(v)))
                row = QHBoxLayout()
                row.addWidget(cb)
                row.addWidget(self.sample_seed)
                row.addStretch(1)
                ol.addLayout(row)
            else:
                ol.addWidget(cb)
        cl.addWidget(opts)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.nz_spin = QSpinBox()
        self.nz_spin.setRange(*N_Z_RANGE)
        self.nz_spin.setValue(self.state.n_z)
        self.nz_spin.setToolTip("midpoint-rule nodes per latent axis for the heatmap (n_z^Dz components)")
        self.nz_spin.valueChanged.connect(self._on_nz)
        form.addRow("quadrature nodes / axis:", self.nz_spin)
        cl.addLayout(form)
        self.reset_button = QPushButton("Reset θ")
        self.reset_button.clicked.connect(self.reset_theta)
        cl.addWidget(self.reset_button)
        self.timing = QLabel()
        self.timing.setStyleSheet("color: #555;")
        cl.addWidget(self.timing)
        cl.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(290)

        self.plot = InfiniteMixturePlot()
        self.plot.setTitle("p(x) = ∫ N(x; μθ(z), Σθ(z)) N(z; 0, I) dz", color="#222", size="11pt")
        self.plot.setLabel("bottom", "x₁")
        self.plot.setLabel("left", "x₂")
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: #333;")
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.setSpacing(2)
        tl.addWidget(self.plot, 1)
        tl.addWidget(self.legend)

        self.fits = FitComparison(self)
        self.fits.theta_fitted.connect(self.load_fitted_theta)

        centre = QSplitter(Qt.Orientation.Vertical)
        centre.addWidget(top)
        centre.addWidget(self.fits)
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 2)
        centre.setSizes([460, 330])

        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(scroll)
        body.addWidget(centre)
        body.setStretchFactor(1, 1)
        body.setSizes([300, 800])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.splitter = self.with_explanation(body)
        self.splitter.setSizes([1100, 250])
        layout.addWidget(self.splitter)

    # -- model state -----------------------------------------------------------------------------------------------
    def seed(self) -> int:
        """The samples' seed (the workspace's for this lab)."""
        return self.workspace.seed(self.name)

    def _on_dim_toggled(self, dz: int, on: bool) -> None:
        if on:
            self.set_latent_dim(dz)

    def _set_noise(self) -> None:
        self.noise_z, self.noise_eps = sample_noise(self.seed(), self.state.latent_dim)

    def _on_seeds(self, name) -> None:
        seed = self.seed()
        if self.sample_seed.value() != seed:
            self.sample_seed.blockSignals(True)
            self.sample_seed.setValue(seed)
            self.sample_seed.blockSignals(False)
        self._set_noise()
        self.redraw()

    def _on_show(self, key: str, on: bool) -> None:
        self.state.show[key] = on
        self.redraw()

    def set_latent_dim(self, dz: int, theta: dict | None = None) -> None:
        dz = int(dz)
        if dz not in (1, 2):
            return
        changed = dz != self.state.latent_dim
        self.state.set_latent_dim(dz, theta)
        self._show_latent_dim()
        if changed:
            self.fits._retitle()
        self.redraw()

    def _show_latent_dim(self) -> None:
        """The radio buttons, the quadrature box, the noise and the sliders follow the state's model."""
        dz = self.state.latent_dim
        if self.dim_group.checkedId() != dz:
            self.dim_group.blockSignals(True)
            self.dim_buttons[dz].setChecked(True)
            self.dim_group.blockSignals(False)
        self.nz_spin.blockSignals(True)
        self.nz_spin.setValue(self.state.n_z)
        self.nz_spin.blockSignals(False)
        self._set_noise()
        self._sync_sliders()

    def _on_range_preset(self) -> None:
        self.state.set_range_preset(self.range_combo.currentData())
        self.redraw()

    def _on_nz(self, value: int) -> None:
        self.state.n_z = int(value)
        self.redraw()

    def _sync_sliders(self) -> None:
        th = self.state.model.theta()
        for key, s in self.sliders.items():
            if key[0] in ("A", "B"):
                _, i, j = key
                visible = j < self.state.latent_dim
                s.setVisible(visible)
                if visible:
                    s.set_value(th[key[0]][i, j])
            else:
                s.set_value(th[key[0]][key[1]])

    def set_param(self, key: tuple, value: float) -> None:
        """One entry of theta changed (from a slider or its field): update and redraw now."""
        if self.state.set_param(key, value):
            self.redraw()

    def reset_theta(self) -> None:
        self.state.model.set_theta(**default_theta(self.state.latent_dim))
        self._sync_sliders()
        self.redraw()

    def load_fitted_theta(self, theta: dict, ranges: OutputRanges, dz: int) -> None:
        """Show a fitted lecture model in the interactive panel (its ranges become the 'fitted' preset)."""
        self.state.load_fit(theta, ranges, dz)
        idx = self.range_combo.findData("fitted")
        if idx < 0:
            self.range_combo.addItem("Fitted to the data (exact fit)", "fitted")
            idx = self.range_combo.count() - 1
        self.range_combo.blockSignals(True)
        self.range_combo.setCurrentIndex(idx)
        self.range_combo.blockSignals(False)
        self._show_latent_dim()
        self.fits._retitle()
        self.show_boxes["data"].setChecked(True)  # (redraws)
        self.redraw()

    # -- drawing ---------------------------------------------------------------------------------------------------
    def x_grid(self) -> tuple[np.ndarray, np.ndarray]:
        return self.state.x_grid(self.fits.x_train)

    def redraw(self) -> float:
        """Recompute and redraw the interactive panel; returns (and shows) the time taken in ms."""
        st = self.state
        t0 = time.perf_counter()
        xs, ys = self.x_grid()
        shown_xs, shown_ys = self.plot.xs, self.plot.ys
        if shown_xs is None or shown_ys is None or not (np.array_equal(xs, shown_xs) and np.array_equal(ys, shown_ys)):
            self.plot.set_range(xs, ys)
        with single_thread_blas():
            self.density = density_on_grid(st.model, xs, ys, n_z=st.n_z, method=HEATMAP_METHOD, limit=HEATMAP_LIMIT)
        self.plot.set_density(self.density, xs, ys)
        show = st.show
        theta = st.model.theta()
        if show["components"]:
            zc = st.component_latents()
            mean, log_var = st.params(zc, theta)
            self.plot.show_components(mean, log_var, zc)
        else:
            self.plot.show_components(None, None, None)
        if show["samples"]:
            mean, log_var = st.params(self.noise_z, theta)
            self.plot.show_samples(mean + np.exp(0.5 * log_var) * self.noise_eps, self.noise_z)
        else:
            self.plot.show_samples(None)
        self.plot.show_mean_curve(st.mean_curves(theta) if show["curve"] else None)
        self.plot.set_points(self.fits.x_train if show["data"] else None)
        ms = (time.perf_counter() - t0) * 1000
        self.last_redraw_ms = ms
        self.redraw_times = (self.redraw_times + [ms])[-200:]
        med = float(np.median(self.redraw_times))
        mass = float(self.density.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]))
        self.timing.setText(f"redraw {ms:.1f} ms (median {med:.1f} ms)<br>∫p(x)dx over the window = {mass:.3f}")
        self.legend.setText(st.legend_text(self.seed()))
        return ms

    # -- lab protocol ----------------------------------------------------------------------------------------------
    def activate(self) -> None:
        if not self._activated:
            self._activated = True
            self.fits.start(["exact", "gmm"])  # the quick ones; ELBO and MLP on demand

    def deactivate(self) -> None:
        self.fits.cancel()
        super().deactivate()

    def is_busy(self) -> bool:
        return self.fits.is_fitting() or super().is_busy()

    def toggle_run(self) -> bool:
        """Fit every model of the comparison (as "Fit all"), or cancel the fits."""
        if self.fits.is_fitting():
            self.fits.cancel()
        else:
            self.fits.start(list(METHODS))
        return True

    def export_csv(self, path: str) -> None:
        """The live density grid: one row per x-grid point (x1, x2, p(x))."""
        xs, ys = self.x_grid()
        gx, gy = np.meshgrid(xs, ys)
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["x1", "x2", "density"])
            for a, b, p in zip(gx.ravel(), gy.ravel(), self.density.ravel(), strict=False):
                w.writerow([f"{a:.6g}", f"{b:.6g}", f"{p:.6g}"])

    def view_state(self) -> dict:
        self.state.fits = self.fits.settings()
        return self.state.to_dict()

    def restore_view_state(self, state: dict) -> None:
        """What ``view_state`` saved; a bad field keeps its default (``InfiniteState.from_dict``)."""
        if not isinstance(state, dict):
            return
        saved = InfiniteState.from_dict(state, strict=False)
        if "ranges" in state and saved.range_preset in RANGE_PRESETS:
            self.range_combo.setCurrentIndex(self.range_combo.findData(saved.range_preset))  # (sets the state's)
        if saved.latent_dim in (1, 2) and ("latent_dim" in state or "theta" in state):
            self.set_latent_dim(saved.latent_dim, saved.model.theta())
        shown = state.get("show")
        for key, on in saved.show.items():
            if isinstance(shown, dict) and key in shown:
                self.show_boxes[key].setChecked(on)
        if "n_z" in state:
            self.nz_spin.setValue(saved.n_z)
        if isinstance(state.get("fits"), dict):
            self.fits.restore(saved.fits)
