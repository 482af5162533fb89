"""The infinite mixture lab (issue 7): the lecture's small VAE you can hold in your hands.

Left: sliders for theta = (A, B, c, d). Centre: p(x) by quadrature over z, component Gaussians N(mu(z), Sigma(z))
as ellipses coloured by z, samples coloured by their z, and the curve z -> mu(z); redrawn synchronously on every
slider move (a few ms: the x-grid density is one GEMM over the quadrature nodes). Bottom: finite vs infinite,
the same data fitted four ways (``app.views.infinite_fits``).
"""

from __future__ import annotations

import csv
import time

import numpy as np
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QRadioButton, QScrollArea, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from app.blas import single_thread_blas
from app.views.base import LabView, restore_spin
from app.views.infinite_fits import FitComparison
from app.widgets.infinite_mixture_plot import InfiniteMixturePlot
from app.widgets.param_slider import ParamSlider
from lvm.io import atomic_path
from lvm.models.lecture_vae import LectureVAE, OutputRanges, default_theta, density_on_grid, lecture_params

GRID_N = 100  # x-grid points per axis of the live heatmap
HEATMAP_RULE = dict(method="midpoint", limit=4.5)  # uniform node spacing: no 'beads' in the tails
N_SAMPLES = 400
PARAM_LIMIT = 8.0
RANGE_PRESETS = {
    "lecture": ("Lecture: μ ∈ (0,1)², σ² ∈ (1, e)", OutputRanges()),
    "wide": ("Wide: μ ∈ (−3,3)², σ² ∈ (e⁻³, 1)", OutputRanges((-3.0, -3.0), (3.0, 3.0), -3.0, 0.0)),
}

EXPLANATION = r"""
<h3>From a finite to an infinite mixture</h3>
<p>A Gaussian mixture adds $K$ Gaussians: $p(x) = \sum_k \pi_k\, \mathcal{N}(x; \mu_k, \Sigma_k)$.
The lecture's small VAE adds <b>one Gaussian per value of z</b>:</p>
<p align="center">$z \sim \mathcal{N}(0, I)$, &nbsp;$x \mid z \sim \mathcal{N}(\mu_\theta(z), \Sigma_\theta(z))$<br>
$\mu_\theta(z) = \mathrm{sigmoid}(A z + c)$<br>
$\Sigma_\theta(z) =$ $\mathrm{diag}\, \exp(\mathrm{sigmoid}(B z + d))$<br>
$$p(x) =$$ $$\int\, \mathcal{N}(x; \mu_\theta(z), \Sigma_\theta(z))\, \mathcal{N}(z; 0, I)\, dz$$</p>
<p>$\theta = (A, B, c, d)$ are 12 numbers (2-D $z$) or 8 (1-D $z$): move them with the sliders.</p>
<p><b>Heatmap</b>: $p(x)$ by quadrature over $z$ (midpoint rule on $[-4.5, 4.5]^{D_z}$),
$p(x) \approx \sum_g w_g\, \mathcal{N}(x; \mu(z_g), \Sigma(z_g))$ with
$w_g = \mathcal{N}(z_g; 0, I) \times$ cell volume; with a diagonal $\Sigma$ the whole $100 \times 100$ grid is
one matrix product. Lower the nodes per axis to see the finite mixture that approximates the infinite one
break into beads.<br>
<b>Ellipses</b>: 1-$\sigma$ contours of a few components $\mathcal{N}(\mu(z), \Sigma(z))$, coloured by $z$
(1-D: purple $z = -2.5$ &hellip; yellow $z = +2.5$; 2-D: hue = direction of $z$, grey at $z = 0$).<br>
<b>Black curve</b>: $z \mapsto \mu_\theta(z)$ (a warped mesh for 2-D $z$).<br>
<b>Dots</b>: samples $x = \mu(z) + \Sigma(z)^{1/2} \epsilon$ with fixed $z$ and $\epsilon$, so they
move smoothly with $\theta$.</p>
<p><b>Output ranges</b>: the lecture's formula fixes $\mu \in (0, 1)^2$ and $\sigma^2 \in (1, e)$. The
other presets use the same formula with $\mu = \mathrm{lo}$ $+\ (\mathrm{hi} - \mathrm{lo})\, \mathrm{sigmoid}(A z + c)$ and
$\log \sigma^2 = v_{\mathrm{lo}}$ $+\ (v_{\mathrm{hi}} - v_{\mathrm{lo}})\, \mathrm{sigmoid}(B z + d)$.</p>
<h4>Fitting</h4>
<p><b>Exact</b>: maximise $\frac{1}{N} \sum_i \log p_\theta(x_i)$, the integral over $z$
done by a (randomly shifted) midpoint rule: possible because $z$ is 1-D or 2-D.<br>
<b>ELBO</b>: maximise $\mathbb{E}_q[\log p(x \mid z)]$ $-\ \mathrm{KL}(q_\phi(z \mid x)\, \Vert\, \mathcal{N}(0, I))$ jointly over
$\theta$ and an MLP encoder $q_\phi(z \mid x)$; $\log p(x) \geq \mathrm{ELBO}$, so this fit is usually a bit worse in
exact log-likelihood.<br>
<b>MLP decoder</b>: $\mu_\theta$ and $\Sigma_\theta$ become small neural networks (2-D $z$):
the density becomes flexible.<br>
<b>GMM</b>: $K$ Gaussians by EM. All figures are mean exact log-likelihoods per point (nats, higher is better) on
1000 training and 1000 independent test points.</p>
"""


class InfiniteMixtureLab(LabView):
    name = "infinite"
    title = "Infinite mixture lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.latent_dim = 1
        self.range_preset = "wide"  # the lecture's ranges draw one unit-variance blob; "wide" shows the idea
        self.model = LectureVAE(1, ranges=RANGE_PRESETS[self.range_preset][1])
        self.n_z = 128
        self.last_redraw_ms = float("nan")
        self.redraw_times: list[float] = []
        self._activated = False
        self._build()
        self._set_noise()
        self._sync_sliders()
        self.redraw()

    # -- construction ----------------------------------------------------------------------------------------------
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
        self.dim_group.idToggled.connect(lambda dz, on: on and self.set_latent_dim(dz))
        row.addStretch(1)
        cl.addLayout(row)

        self.range_combo = QComboBox()
        for key, (label, _) in RANGE_PRESETS.items():
            self.range_combo.addItem(label, key)
        self.range_combo.setCurrentIndex(self.range_combo.findData(self.range_preset))
        self.range_combo.setToolTip("the output ranges of μθ and Σθ (the lecture's are the default)")
        self.range_combo.currentIndexChanged.connect(lambda _: self._on_range_preset())
        cl.addWidget(self.range_combo)

        self.sliders: dict[tuple, ParamSlider] = {}
        for group_name, mat, vec, what in (("μθ(z) = sigmoid(A z + c)", "A", "c", "mean"),
                                           ("Σθ(z) = diag exp(sigmoid(B z + d))", "B", "d", "log variance")):
            box = QGroupBox(group_name)
            bl = QVBoxLayout(box)
            bl.setContentsMargins(4, 2, 4, 2)
            bl.setSpacing(1)
            for i in range(2):
                for j in range(2):
                    key = (mat, i, j)
                    s = ParamSlider(f"{mat}<sub>{i + 1}{j + 1}</sub>", -PARAM_LIMIT, PARAM_LIMIT, 0.05,
                                    tooltip=f"how z{j + 1} moves the {what} of x{i + 1}")
                    s.slider.setObjectName(f"slider-{mat}{i + 1}{j + 1}")
                    self.sliders[key] = s
                    bl.addWidget(s)
            for i in range(2):
                key = (vec, i)
                s = ParamSlider(f"{vec}<sub>{i + 1}</sub>", -PARAM_LIMIT, PARAM_LIMIT, 0.05,
                                tooltip=f"offset of the {what} of x{i + 1}")
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
        for key, text, on in (("components", "component ellipses N(μ(z), Σ(z))", True),
                              ("curve", "mean curve z → μ(z)", True), ("samples", "samples", True),
                              ("data", "training data (fit panel)", False)):
            cb = QCheckBox(text)
            cb.setChecked(on)
            cb.toggled.connect(lambda _: self.redraw())
            self.show_boxes[key] = cb
            ol.addWidget(cb)
        cl.addWidget(opts)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.nz_spin = QSpinBox()
        self.nz_spin.setRange(2, 256)
        self.nz_spin.setValue(self.n_z)
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
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
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

        centre = QSplitter(Qt.Vertical)
        centre.addWidget(top)
        centre.addWidget(self.fits)
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 2)
        centre.setSizes([460, 330])

        body = QSplitter(Qt.Horizontal)
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
        return self.workspace.seed(self.name)

    def _set_noise(self) -> None:
        rng = np.random.default_rng(self.seed())
        self.noise_z = rng.standard_normal((N_SAMPLES, self.latent_dim))
        self.noise_eps = rng.standard_normal((N_SAMPLES, 2))

    def _ranges(self) -> OutputRanges:
        return self.model.ranges

    def set_latent_dim(self, dz: int, theta: dict | None = None) -> None:
        dz = int(dz)
        if dz not in (1, 2):
            return
        changed = dz != self.latent_dim
        self.latent_dim = dz
        self.model = LectureVAE(dz, ranges=self.model.ranges, theta=theta)
        if self.dim_group.checkedId() != dz:
            self.dim_group.blockSignals(True)
            self.dim_buttons[dz].setChecked(True)
            self.dim_group.blockSignals(False)
        self.nz_spin.blockSignals(True)
        self.n_z = 128 if dz == 1 else 32
        self.nz_spin.setValue(self.n_z)
        self.nz_spin.blockSignals(False)
        self._set_noise()
        self._sync_sliders()
        if changed:
            self.fits._retitle()
        self.redraw()

    def _on_range_preset(self) -> None:
        key = self.range_combo.currentData()
        if key in RANGE_PRESETS:
            self.range_preset = key
            self.model.ranges = RANGE_PRESETS[key][1]
        elif key == "fitted":
            self.range_preset = "fitted"
            self.model.ranges = self._fitted_ranges
        self.redraw()

    def _on_nz(self, value: int) -> None:
        self.n_z = int(value)
        self.redraw()

    def _sync_sliders(self) -> None:
        th = self.model.theta()
        for key, s in self.sliders.items():
            if key[0] in ("A", "B"):
                _, i, j = key
                visible = j < self.latent_dim
                s.setVisible(visible)
                if visible:
                    s.set_value(th[key[0]][i, j])
            else:
                s.set_value(th[key[0]][key[1]])

    def set_param(self, key: tuple, value: float) -> None:
        """One entry of theta changed (from a slider or its field): update and redraw now."""
        name = key[0]
        arr = getattr(self.model, name)
        with torch.no_grad():
            if name in ("A", "B"):
                if key[2] >= self.latent_dim:
                    return
                arr[key[1], key[2]] = value
            else:
                arr[key[1]] = value
        self.redraw()

    def reset_theta(self) -> None:
        self.model.set_theta(**default_theta(self.latent_dim))
        self._sync_sliders()
        self.redraw()

    def load_fitted_theta(self, theta: dict, ranges: OutputRanges, dz: int) -> None:
        """Show a fitted lecture model in the interactive panel (its ranges become the 'fitted' preset)."""
        self._fitted_ranges = ranges
        idx = self.range_combo.findData("fitted")
        if idx < 0:
            self.range_combo.addItem("Fitted to the data (exact fit)", "fitted")
            idx = self.range_combo.count() - 1
        self.range_combo.blockSignals(True)
        self.range_combo.setCurrentIndex(idx)
        self.range_combo.blockSignals(False)
        self.range_preset = "fitted"
        self.model = LectureVAE(dz, ranges=ranges)
        self.set_latent_dim(dz, theta=theta)
        self.show_boxes["data"].setChecked(True)

    # -- drawing ---------------------------------------------------------------------------------------------------
    def x_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """A square x-window holding the means' range plus 2.5 of the largest standard deviation."""
        r = self._ranges()
        s = float(np.exp(0.5 * r.v_hi))
        lo, hi = np.asarray(r.m_lo, float) - 2.5 * s, np.asarray(r.m_hi, float) + 2.5 * s
        if self.range_preset == "fitted":
            x = self.fits.x_train
            lo, hi = np.minimum(lo, x.min(0)), np.maximum(hi, x.max(0))
            span = hi - lo
            lo, hi = x.min(0) - 0.25 * span.max(), x.max(0) + 0.25 * span.max()
        centre, half = (lo + hi) / 2, (hi - lo).max() / 2
        return (np.linspace(centre[0] - half, centre[0] + half, GRID_N),
                np.linspace(centre[1] - half, centre[1] + half, GRID_N))

    def component_latents(self) -> np.ndarray:
        if self.latent_dim == 1:
            return np.linspace(-2.0, 2.0, 9)[:, None]
        a = np.linspace(-2.0, 2.0, 5)
        g1, g2 = np.meshgrid(a, a, indexing="ij")
        return np.stack([g1.ravel(), g2.ravel()], 1)

    def params(self, z: np.ndarray, theta: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mu(z), log diag Sigma(z)) in NumPy (GUI thread: no torch thread pool)."""
        return lecture_params(theta or self.model.theta(), self.model.ranges, z)

    def mean_curves(self, theta: dict | None = None) -> list[np.ndarray]:
        """z -> mu(z) for z in [-3, 3] (1-D), or the images of the lines z1 = const, z2 = const (2-D)."""
        t = np.linspace(-3.0, 3.0, 121)
        if self.latent_dim == 1:
            return [self.params(t[:, None], theta)[0]]
        v = np.linspace(-2.0, 2.0, 5)[:, None]
        tt, vv = np.broadcast_to(t, (5, 121)), np.broadcast_to(v, (5, 121))
        z = np.concatenate([np.stack([tt, vv], -1), np.stack([vv, tt], -1)])   # (10, 121, 2)
        return list(self.params(z, theta)[0])

    def redraw(self) -> float:
        """Recompute and redraw the interactive panel; returns (and shows) the time taken in ms."""
        t0 = time.perf_counter()
        xs, ys = self.x_grid()
        if self.plot.xs is None or not (np.array_equal(xs, self.plot.xs) and np.array_equal(ys, self.plot.ys)):
            self.plot.set_range(xs, ys)
        with single_thread_blas():
            self.density = density_on_grid(self.model, xs, ys, n_z=self.n_z, **HEATMAP_RULE)
        self.plot.set_density(self.density, xs, ys)
        show = {k: cb.isChecked() for k, cb in self.show_boxes.items()}
        theta = self.model.theta()
        if show["components"]:
            zc = self.component_latents()
            mean, log_var = self.params(zc, theta)
            self.plot.show_components(mean, log_var, zc)
        else:
            self.plot.show_components(None, None, None)
        if show["samples"]:
            mean, log_var = self.params(self.noise_z, theta)
            self.plot.show_samples(mean + np.exp(0.5 * log_var) * self.noise_eps, self.noise_z)
        else:
            self.plot.show_samples(None)
        self.plot.show_mean_curve(self.mean_curves(theta) if show["curve"] else None)
        self.plot.set_points(self.fits.x_train if show["data"] else None)
        ms = (time.perf_counter() - t0) * 1000
        self.last_redraw_ms = ms
        self.redraw_times = (self.redraw_times + [ms])[-200:]
        med = float(np.median(self.redraw_times))
        mass = float(self.density.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]))
        self.timing.setText(f"redraw {ms:.1f} ms (median {med:.1f} ms)<br>"
                            f"∫p(x)dx over the window = {mass:.3f}")
        self._update_legend()
        return ms

    def _update_legend(self) -> None:
        if self.latent_dim == 1:
            col = ("colour = z: <span style='color:#42039d'>■</span> z = −2.5 … "
                   "<span style='color:#cb4678'>■</span> z = 0 … <span style='color:#f0a024'>■</span> z = +2.5")
            comps = "9 components at z = −2, −1.5, …, 2"
        else:
            col = "colour = z: hue = direction of z, saturation = |z| (grey at z = 0)"
            comps = "25 components on a 5×5 grid of z ∈ [−2, 2]²"
        nodes = self.n_z ** self.latent_dim
        self.legend.setText(f"{col}. Ellipses: 1σ contours, {comps}; black: z → μθ(z). "
                            f"Heatmap: {nodes} quadrature nodes, {GRID_N}×{GRID_N} x-grid.")

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

    def export_csv(self, path: str) -> None:
        """The live density grid: one row per x-grid point (x1, x2, p(x))."""
        xs, ys = self.x_grid()
        gx, gy = np.meshgrid(xs, ys)
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["x1", "x2", "density"])
            for a, b, p in zip(gx.ravel(), gy.ravel(), self.density.ravel()):
                w.writerow([f"{a:.6g}", f"{b:.6g}", f"{p:.6g}"])

    def view_state(self) -> dict:
        return {"latent_dim": self.latent_dim, "theta": {k: v.tolist() for k, v in self.model.theta().items()},
                "ranges": self.range_preset if self.range_preset in RANGE_PRESETS else "lecture",
                "n_z": self.n_z, "show": {k: cb.isChecked() for k, cb in self.show_boxes.items()},
                "fits": self.fits.state()}

    def restore_view_state(self, state: dict) -> None:
        if not isinstance(state, dict):
            return
        try:
            if state.get("ranges") in RANGE_PRESETS:
                self.range_combo.setCurrentIndex(self.range_combo.findData(state["ranges"]))
            dz = state.get("latent_dim", self.latent_dim)
            theta = state.get("theta")
            if dz in (1, 2):
                try:
                    LectureVAE(dz, theta=theta)  # validates shapes
                except Exception:  # noqa: BLE001 - a damaged state keeps the defaults
                    theta = None
                self.set_latent_dim(dz, theta=theta)
            for k, on in (state.get("show") or {}).items():
                if k in self.show_boxes and isinstance(on, bool):
                    self.show_boxes[k].setChecked(on)
            restore_spin(self.nz_spin, state.get("n_z"))
            self.fits.restore(state.get("fits") or {})
        except (TypeError, ValueError, AttributeError):
            pass
