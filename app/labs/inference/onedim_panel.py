"""The lecture's 1-D picture: a 1-D latent model's exact posterior p(z|x), Gaussian q's, their ELBO and KL, and
reverse-KL mode seeking (optimising q on a bimodal posterior converges to one mode)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.labs.inference.readouts import basins, modes_readout
from app.labs.inference.state import PRESETS, SIGMA_RANGE, Z_RANGE
from app.widgets.lab_view import restore_spin
from lvm.models.square_decoder import SquareDecoderToy1D
from lvm.posterior_grid import OneDPosterior, one_d_posterior
from lvm.threads import single_thread

PRESET_COLORS = ((30, 130, 60), (150, 60, 170))
Q_COLOR = (220, 70, 50)
SLIDER_STEPS = 1600


def normal_pdf(z, mu, sigma):
    return np.exp(-0.5 * ((z - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


class OneDPanel(QWidget):
    """Model: p(z) = N(0, 1), x | z ~ N(z², s²) (``lvm.models.square_decoder.SquareDecoderToy1D``): for x well above 0
    the
    posterior has two modes near ±sqrt(x)."""

    title = "1-D picture"

    def __init__(self, lab):
        super().__init__()
        self.lab = lab
        st = self.settings
        self.model = SquareDecoderToy1D(s=st.s)
        self.post: OneDPosterior | None = None

        self.plot = pg.PlotWidget(background="w", title="p(z|x) and Gaussian q(z)")
        self.plot.setLabel("bottom", "z")
        self.plot.setLabel("left", "density")
        self.plot.addLegend(offset=(8, 8))
        self.post_curve = self.plot.plot(
            pen=pg.mkPen("k", width=2.5), fillLevel=0, brush=(0, 0, 0, 40), name="p(z|x) exact"
        )
        self.preset_curves = [
            self.plot.plot(
                pen=pg.mkPen(c, width=1.8, style=Qt.PenStyle.DashLine),
                name=f"preset q = N({PRESETS[i][0]:g}, {PRESETS[i][1]:g})",
            )
            for i, c in enumerate(PRESET_COLORS)
        ]
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.q_curve = self.plot.plot(pen=pg.mkPen(Q_COLOR, width=2.5), name="your q (sliders)")
        self.plot.setXRange(*Z_RANGE, padding=0)
        # the exact posterior's modes (dotted), computed on its grid
        self.mode_lines = [
            pg.InfiniteLine(angle=90, pen=pg.mkPen((90, 90, 90), width=1, style=Qt.PenStyle.DotLine)) for _ in range(2)
        ]
        for line in self.mode_lines:
            line.setVisible(False)
            self.plot.addItem(line, ignoreBounds=True)
        self.modes = np.zeros(0)
        self.mode_masses: list[float] = []

        self.x_spin = QDoubleSpinBox()
        self.x_spin.setRange(-2.0, 30.0)
        self.x_spin.setSingleStep(0.5)
        self.x_spin.setValue(st.x)
        self.x_spin.setObjectName("onedim-x")
        self.s_spin = QDoubleSpinBox()
        self.s_spin.setRange(0.05, 10.0)
        self.s_spin.setSingleStep(0.1)
        self.s_spin.setValue(st.s)
        self.param_combo = QComboBox()
        self.param_combo.addItems(["variance σ² (N(μ, σ²))", "standard deviation σ (N(μ, σ))"])
        self.param_combo.setCurrentIndex(st.convention)
        self.param_combo.setObjectName("onedim-convention")
        self.preset_buttons = []
        for i in range(2):
            b = QPushButton()
            b.clicked.connect(lambda checked=False, i=i: self.apply_preset(i))
            self.preset_buttons.append(b)
        self.mu_slider = QSlider(Qt.Orientation.Horizontal)
        self.mu_slider.setRange(0, SLIDER_STEPS)
        self.sigma_slider = QSlider(Qt.Orientation.Horizontal)
        self.sigma_slider.setRange(0, SLIDER_STEPS)
        self.mu_label = QLabel()
        self.sigma_label = QLabel()
        self.opt_button = QPushButton("Optimise q (maximise ELBO = minimise KL(q‖p))")
        self.opt_button.clicked.connect(self.toggle_optimise)
        self.table = QLabel()
        self.table.setObjectName("onedim-table")
        self.table.setTextFormat(Qt.TextFormat.RichText)
        self.modes_label = QLabel()
        self.modes_label.setObjectName("onedim-modes")
        self.modes_label.setTextFormat(Qt.TextFormat.RichText)
        self.modes_label.setWordWrap(True)

        for w in (self.x_spin, self.s_spin):
            w.valueChanged.connect(self.recompute)
        self.param_combo.currentIndexChanged.connect(self._label_presets)
        self.mu_slider.valueChanged.connect(self._on_sliders)
        self.sigma_slider.valueChanged.connect(self._on_sliders)

        form = QFormLayout()
        form.addRow("observed x", self.x_spin)
        form.addRow("decoder noise s", self.s_spin)
        form.addRow("presets' 2nd number is the", self.param_combo)
        side = QVBoxLayout()
        side.addLayout(form)
        for b in self.preset_buttons:
            side.addWidget(b)
        side.addWidget(self.mu_label)
        side.addWidget(self.mu_slider)
        side.addWidget(self.sigma_label)
        side.addWidget(self.sigma_slider)
        side.addWidget(self.opt_button)
        side.addWidget(self.table)
        side.addWidget(self.modes_label)
        note = QLabel(
            "Model: p(z) = N(0, 1), x | z ~ N(z², s²). For x well above 0, z and −z explain x equally: "
            "p(z|x) has two modes. Maximising the ELBO minimises the <i>reverse</i> KL(q‖p), which punishes "
            "q for mass where p is small: q locks onto one mode (mode seeking)."
        )
        note.setWordWrap(True)
        side.addWidget(note)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setMaximumWidth(330)
        layout = QHBoxLayout(self)
        layout.addWidget(self.plot, 1)
        layout.addWidget(side_w)
        self._label_presets()
        self.recompute()
        self.set_q(st.mu, st.sigma)

    # -- the lab state's settings ----------------------------------------------------------------------------------
    @property
    def settings(self):
        return self.lab.state.onedim

    @property
    def mu(self) -> float:
        return self.settings.mu

    @property
    def sigma(self) -> float:
        return self.settings.sigma

    def preset(self, i: int) -> tuple[float, float]:
        """(mu, sigma) of preset i under the chosen convention."""
        return self.settings.preset(i)

    def show_settings(self) -> None:
        """The widgets show the lab state's settings (a restored session's)."""
        st = self.settings
        mu, sigma = st.mu, st.sigma
        restore_spin(self.x_spin, st.x, block_signals=True)
        restore_spin(self.s_spin, st.s, block_signals=True)
        self.param_combo.blockSignals(True)
        self.param_combo.setCurrentIndex(st.convention)
        self.param_combo.blockSignals(False)
        self._label_presets()
        self.recompute()
        self.set_q(mu, sigma)

    # -- maths -----------------------------------------------------------------------------------------------------
    def recompute(self, _=None) -> None:
        st = self.settings
        st.x, st.s = self.x_spin.value(), self.s_spin.value()
        self.model = SquareDecoderToy1D(s=st.s)
        self.post = one_d_posterior(self.model, st.x, z_range=(-12.0, 12.0), n=6001)
        z = self.post.z
        sel = (z >= Z_RANGE[0]) & (z <= Z_RANGE[1])
        self.post_curve.setData(z[sel], self.post.density[sel])
        self.modes = self.post.modes()
        self.mode_masses = [self.post.mass_between(lo, hi) for lo, hi in basins(self.modes)]
        for i, line in enumerate(self.mode_lines):
            line.setVisible(i < len(self.modes) and len(self.modes) <= len(self.mode_lines))
            if i < len(self.modes):
                line.setPos(float(self.modes[i]))
        self._redraw()

    def elbo_kl(self, mu: float, sigma: float) -> tuple[float, float]:
        """(ELBO, KL(q || p(z|x))) of q = N(mu, sigma^2) for the current x."""
        assert self.post is not None  # (computed in __init__)
        e = self.post.elbo(mu, sigma)
        return e, self.post.log_px - e

    def _label_presets(self, _=None) -> None:
        self.settings.convention = self.param_combo.currentIndex()
        var = self.settings.convention == 0
        for i, b in enumerate(self.preset_buttons):
            mu, second = PRESETS[i]
            sigma = self.preset(i)[1]
            what = f"σ² = {second:g}, σ = {sigma:.3g}" if var else f"σ = {second:g}, σ² = {sigma * sigma:.3g}"
            b.setText(f"q = N({mu:g}, {second:g}):  μ = {mu:g}, {what}")
        self._redraw()

    def set_q(self, mu: float, sigma: float) -> None:
        self.settings.mu, self.settings.sigma = float(mu), float(max(sigma, 0.02))
        lo, hi = math.log(SIGMA_RANGE[0]), math.log(SIGMA_RANGE[1])
        for s, v in (
            (self.mu_slider, (self.mu - Z_RANGE[0]) / (Z_RANGE[1] - Z_RANGE[0])),
            (self.sigma_slider, (math.log(self.sigma) - lo) / (hi - lo)),
        ):
            s.blockSignals(True)
            s.setValue(int(round(np.clip(v, 0, 1) * SLIDER_STEPS)))
            s.blockSignals(False)
        self._redraw()

    def _on_sliders(self, _=None) -> None:
        self.cancel_optimise()
        mu = Z_RANGE[0] + (Z_RANGE[1] - Z_RANGE[0]) * self.mu_slider.value() / SLIDER_STEPS
        lo, hi = math.log(SIGMA_RANGE[0]), math.log(SIGMA_RANGE[1])
        self.settings.mu = mu
        self.settings.sigma = math.exp(lo + (hi - lo) * self.sigma_slider.value() / SLIDER_STEPS)
        self._redraw()

    def apply_preset(self, i: int) -> None:
        self.cancel_optimise()
        self.set_q(*self.preset(i))

    def _redraw(self) -> None:
        if self.post is None or not hasattr(self, "q_curve"):
            return
        z = np.linspace(*Z_RANGE, 1601)
        for i, c in enumerate(self.preset_curves):
            c.setData(z, normal_pdf(z, *self.preset(i)))
        self.q_curve.setData(z, normal_pdf(z, self.mu, self.sigma))
        self.mu_label.setText(f"μ = {self.mu:.3f}")
        self.sigma_label.setText(f"σ (standard deviation) = {self.sigma:.3f}   (σ² = {self.sigma**2:.3f})")
        rows = []
        for i in range(2):
            mu, sigma = self.preset(i)
            rows.append(
                (
                    f"<span style='color:rgb{PRESET_COLORS[i]}'>preset N({PRESETS[i][0]:g}, {PRESETS[i][1]:g})</span>",
                    mu,
                    sigma,
                    *self.elbo_kl(mu, sigma),
                )
            )
        rows.append(
            (f"<span style='color:rgb{Q_COLOR}'>your q</span>", self.mu, self.sigma, *self.elbo_kl(self.mu, self.sigma))
        )
        html = (
            "<table cellspacing=4><tr><th></th><th>μ</th><th>σ</th><th>ELBO</th><th>KL(q‖p)</th></tr>"
            + "".join(
                f"<tr><td>{n}</td><td>{m:.2f}</td><td>{s:.2f}</td><td>{e:.3f}</td><td>{k:.3f}</td></tr>"
                for n, m, s, e, k in rows
            )
            + f"</table>log p(x) = <b>{self.post.log_px:.3f}</b> = ELBO + KL for every q"
        )
        self.table.setText(html)
        self.modes_label.setText(
            modes_readout(self.modes, self.mode_masses, self.mu, self.sigma, self.elbo_kl(self.mu, self.sigma)[1])
        )

    # -- optimisation ----------------------------------------------------------------------------------------------
    def is_optimising(self) -> bool:
        return self.lab.runner.is_busy(self.lab.channel("onedim/optimise"))

    def toggle_optimise(self) -> None:
        if self.is_optimising():
            self.cancel_optimise()
        else:
            self.optimise()

    def optimise(self, steps: int = 300, lr: float = 0.05) -> None:
        from lvm.estimators import vi_steps

        model = self.model
        x = torch.tensor([self.x_spin.value()], dtype=torch.float64)
        init = (torch.tensor([self.mu], dtype=torch.float64), torch.tensor([[self.sigma]], dtype=torch.float64))

        def run():
            with single_thread():
                yield from vi_steps(model, x, steps=steps, lr=lr, init=init, every=2)

        def snapshot(s):
            self.set_q(float(s.mean[0]), float(s.scale_tril[0, 0]))

        self.opt_button.setText("Stop optimising")
        self.lab.runner.submit(
            self.lab.channel("onedim/optimise"),
            run,
            on_snapshot=snapshot,
            on_finished=self._done,
            on_error=lambda m: self._done(),
        )

    def _done(self) -> None:
        self.opt_button.setText("Optimise q (maximise ELBO = minimise KL(q‖p))")

    def cancel_optimise(self) -> None:
        if self.is_optimising():
            self.lab.runner.cancel(self.lab.channel("onedim/optimise"))
            self._done()

    # -- export / state --------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        assert self.post is not None  # (computed in __init__)
        z = np.linspace(*Z_RANGE, 801)
        post = np.interp(z, self.post.z, self.post.density)
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as f:
            w = csv.writer(f)
            w.writerow(["z", "posterior", "q", "preset1", "preset2"])
            for row in zip(
                z,
                post,
                normal_pdf(z, self.mu, self.sigma),
                normal_pdf(z, *self.preset(0)),
                normal_pdf(z, *self.preset(1)),
                strict=False,
            ):
                w.writerow([f"{v:.6g}" for v in row])
