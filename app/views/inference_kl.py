"""KL gap explorer: the exact p(z|x) in the latent plane, a draggable q(z) = N(mu, Sigma), and the live split
log p(x) = ELBO(q) + KL(q || p(z|x)) (ELBO by 16 x 16 Gauss-Hermite nodes; log p(x) once per x)."""

from __future__ import annotations

import csv
import math
import time

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtWidgets import (QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from app.state import GaussianQ
from app.views.inference_compute import (SHOWN_UPSAMPLE, as_x, cov_to_tril, encoder_q, gh_elbo, params_to_tril,
                                         tril_to_params)
from app.views.inference_plots import (CONTOUR_PENS, POSTERIOR_CMAP, ellipse_points, gaussian_extent, latent_plot,
                                       set_image, union_rect)
from app.widgets.contours import ContourLines
from app.widgets.elbo_kl_bar import ElboKLBar
from app.widgets.gaussian_ellipse_roi import GaussianEllipseROI
from lvm.threads import single_thread

VI_STEPS = 300
VI_LR = 0.05


def posterior_mass_extent(density, extent, mass: float = 0.999, pad: float = 0.15):
    """(lo1, hi1, lo2, hi2) bounding the smallest set of cells of ``density`` ([i, j] at (z1_i, z2_j), cells on a
    midpoint grid over ``extent``) that holds ``mass`` of its total, padded by ``pad`` of its size per side; the
    fine grid's own extent (the support, often much wider than the visible posterior) where the density is empty."""
    d = np.asarray(density, dtype=np.float64)
    total = d.sum()
    if not np.isfinite(total) or total <= 0:
        return extent
    order = np.argsort(d.reshape(-1))[::-1]
    k = int(np.searchsorted(np.cumsum(d.reshape(-1)[order]), mass * total)) + 1
    i, j = np.unravel_index(order[:k], d.shape)
    lo1, hi1, lo2, hi2 = extent
    w1, w2 = (hi1 - lo1) / d.shape[0], (hi2 - lo2) / d.shape[1]
    a1, b1 = lo1 + i.min() * w1, lo1 + (i.max() + 1) * w1
    a2, b2 = lo2 + j.min() * w2, lo2 + (j.max() + 1) * w2
    p1, p2 = pad * (b1 - a1), pad * (b2 - a2)
    return (a1 - p1, b1 + p1, a2 - p2, b2 + p2)


class KLGapPanel(QWidget):
    """The lab's first panel. It reads ``lab.picture`` (the exact posterior of the selected x) and owns q's editing."""

    title = "KL gap explorer"

    def __init__(self, lab):
        super().__init__()
        self.lab = lab
        self.ws = lab.workspace
        self.mean: np.ndarray | None = None
        self.tril: np.ndarray | None = None
        self.elbo: float | None = None
        self.update_ms: list[float] = []  # drag/edit update times (ELBO + readout), for measurement
        self._x_index = None

        self.plot = latent_plot("p(z|x) (exact) and q(z) — drag the ellipse; handles: scale + rotate")
        self.coarse_img = pg.ImageItem()
        self.coarse_img.setOpacity(0.55)
        self.coarse_img.setLookupTable(POSTERIOR_CMAP.getLookupTable(nPts=256))
        self.fine_img = pg.ImageItem()
        self.fine_img.setLookupTable(POSTERIOR_CMAP.getLookupTable(nPts=256))
        self.plot.addItem(self.coarse_img)
        self.plot.addItem(self.fine_img)
        self.contours = ContourLines(self.plot, CONTOUR_PENS)  # highest-density regions, traced in the worker
        self.enc_curve = pg.PlotCurveItem(pen=pg.mkPen((90, 90, 90), width=1.5, style=pg.QtCore.Qt.DashLine))
        self.plot.addItem(self.enc_curve)
        self.roi = GaussianEllipseROI(n_sigma=2.0)
        self.roi.setZValue(20)
        self.roi.setVisible(False)
        self.plot.addItem(self.roi)
        self.roi.sigGaussianChanged.connect(self._on_roi)
        legend = self.plot.addLegend(offset=(8, 8))
        legend.addItem(pg.PlotDataItem(pen=CONTOUR_PENS[0]), "p(z|x): 50 / 90 / 99 % regions")
        legend.addItem(pg.PlotDataItem(pen=pg.mkPen((230, 60, 40), width=2.5)), "q(z): 2σ ellipse (dashed: 1σ)")
        legend.addItem(pg.PlotDataItem(pen=pg.mkPen((90, 90, 90), width=1.5, style=pg.QtCore.Qt.DashLine)),
                       "encoder q(z|x), 2σ")

        self.bar = ElboKLBar()

        # fields
        self.fields = {}
        form = QFormLayout()
        specs = [("mu1", "μ₁", -20, 20), ("mu2", "μ₂", -20, 20), ("sigma1", "σ₁ (std)", 1e-4, 20),
                 ("sigma2", "σ₂ (std)", 1e-4, 20), ("rho", "ρ (correlation)", -0.99, 0.99)]
        for key, label, lo, hi in specs:
            box = QDoubleSpinBox()
            box.setObjectName(f"q-{key}")
            box.setRange(lo, hi)
            box.setDecimals(4)
            box.setSingleStep(0.01)
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._on_fields)
            self.fields[key] = box
            form.addRow(label, box)
        fields_box = QGroupBox("q(z) = N(μ, Σ)")
        fields_box.setLayout(form)

        self.enc_button = QPushButton("q = encoder q(z|x)")
        self.best_button = QPushButton("q = best Gaussian (optimise)")
        self.prior_button = QPushButton("q = prior N(0, I)")
        self.fit_button = QPushButton("Fit view")
        self.enc_button.clicked.connect(self.set_encoder)
        self.best_button.clicked.connect(self.toggle_optimise)
        self.prior_button.clicked.connect(self.set_prior)
        self.fit_button.clicked.connect(self.fit_view)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setObjectName("kl-info")

        side = QVBoxLayout()
        side.addWidget(fields_box)
        for b in (self.enc_button, self.best_button, self.prior_button, self.fit_button):
            side.addWidget(b)
        side.addWidget(self.info)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(260)  # the readout's text changes with x: a fixed width keeps the plot's size (no relayout)
        side_w.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Expanding)

        left = QVBoxLayout()
        left.addWidget(self.plot, 1)
        left.addWidget(self.bar)
        top = QHBoxLayout(self)
        top.setContentsMargins(2, 2, 2, 2)
        top.addLayout(left, 1)
        top.addWidget(side_w)
        self.ws.events.q.connect(self._on_workspace_q)
        self._set_enabled(False)

    # -- state from the lab ----------------------------------------------------------------------------------------
    def _set_enabled(self, on: bool) -> None:
        for w in (*self.fields.values(), self.enc_button, self.best_button, self.prior_button):
            w.setEnabled(on)

    def on_selection(self) -> None:
        """A new x: q resets to the encoder's q(z|x); the old picture is cleared until the new one arrives."""
        self.cancel_optimise()
        self.fine_img.clear()
        self.coarse_img.clear()
        self.contours.clear()
        self.enc_curve.setData([], [])
        ok = self.lab.can_compute()
        self._set_enabled(ok)
        if not ok:
            self.roi.setVisible(False)
            self.bar.set_values(None, None)
            self.info.setText(self.lab.why_not())
            return
        self._x_index = self.ws.selected_index
        enc = encoder_q(self.ws.model, self.ws.selected_x)
        if enc is not None:
            m, L = enc
            self.enc_curve.setData(*ellipse_points(m, L @ L.T, 2.0))
            self.set_q(m, L)
        else:
            self.set_q(np.zeros(2), np.eye(2))
        self.info.setText("computing the exact posterior…")

    def on_picture(self, pic) -> None:
        set_image(self.coarse_img, pic.coarse_density, pic.coarse_extent)
        set_image(self.fine_img, pic.density, pic.extent, upsample=SHOWN_UPSAMPLE)
        self.contours.set_segments(list(pic.contours))
        self._update_readout()
        self.info.setText(
            f"<b>x = #{pic.index}</b><br>log p(x) = {pic.log_px:.4f} (quadrature: coarse {self.lab.context.coarse.size}²"
            f" grid over the box, fine {pic.density.shape[0]}² grid on the support; mass outside the fine box "
            f"{pic.outside_mass:.1e})<br>posterior mode ≈ ({pic.mode[0]:.3f}, {pic.mode[1]:.3f})")
        self.fit_view()

    def fit_view(self) -> None:
        pic = self.lab.picture
        rects = [posterior_mass_extent(pic.density, pic.extent) if pic is not None else None]
        if self.mean is not None:
            rects.append(gaussian_extent(self.mean, self.tril @ self.tril.T, 2.6))
        r = union_rect(*rects)
        if r is not None:
            self.plot.getViewBox().setRange(r, padding=0.08)

    # -- q ---------------------------------------------------------------------------------------------------------
    def set_q(self, mean, tril, publish: bool = True, move_roi: bool = True) -> None:
        """Make q = N(mean, tril tril^T): ellipse, fields, readout and (``publish``) the workspace's q."""
        t0 = time.perf_counter()
        self.mean = np.asarray(mean, dtype=float).reshape(2)
        self.tril = np.asarray(tril, dtype=float).reshape(2, 2)
        if move_roi:
            self.roi.set_gaussian(self.mean, self.tril @ self.tril.T)
        self.roi.setVisible(True)
        self._show_fields()
        self._update_readout()
        if publish:
            try:
                self.ws.set_q(GaussianQ.from_arrays(self.mean, self.tril))
            except ValueError:
                pass
        self.update_ms.append((time.perf_counter() - t0) * 1000)
        del self.update_ms[:-500]

    def _show_fields(self) -> None:
        vals = tril_to_params(self.mean, self.tril)
        for key, v in zip(("mu1", "mu2", "sigma1", "sigma2", "rho"), vals):
            box = self.fields[key]
            box.blockSignals(True)
            box.setValue(v)
            box.blockSignals(False)

    def _update_readout(self) -> None:
        x = self.ws.selected_x
        if x is None or self.mean is None or not self.lab.can_compute():
            self.bar.set_values(None, None)
            return
        key = (id(self.ws.model), np.asarray(x).tobytes(), self.mean.tobytes(), self.tril.tobytes())
        if key != getattr(self, "_elbo_key", None):  # the picture's arrival alone does not change ELBO(q)
            with single_thread():
                self.elbo = gh_elbo(self.ws.model, x, self.mean, self.tril)
            self._elbo_key = key
        pic = self.lab.picture
        log_px = pic.log_px if pic is not None and pic.index == self.ws.selected_index else None
        self.bar.set_values(log_px, self.elbo)

    def _on_roi(self, mean, cov) -> None:
        self.cancel_optimise()
        try:
            L = cov_to_tril(cov)
        except np.linalg.LinAlgError:
            return
        self.set_q(mean, L, move_roi=False)

    def _on_fields(self, _=None) -> None:
        if self.mean is None:
            return
        v = {k: b.value() for k, b in self.fields.items()}
        m, L = params_to_tril(v["mu1"], v["mu2"], v["sigma1"], v["sigma2"], v["rho"])
        self.cancel_optimise()
        self.set_q(m, L)

    def _on_workspace_q(self, q) -> None:
        if q is None or len(q.mean) != 2 or self.mean is None:
            return
        m, L = np.asarray(q.mean), np.asarray(q.scale_tril)
        if np.allclose(m, self.mean, atol=1e-9) and np.allclose(L, self.tril, atol=1e-9):
            return
        self.set_q(m, L, publish=False)

    def set_encoder(self) -> None:
        if not self.lab.can_compute():
            return
        self.cancel_optimise()
        enc = encoder_q(self.ws.model, self.ws.selected_x)
        if enc is not None:
            self.set_q(*enc)
            self.fit_view()

    def set_prior(self) -> None:
        if not self.lab.can_compute():
            return
        self.cancel_optimise()
        self.set_q(np.zeros(2), np.eye(2))
        self.fit_view()

    # -- best Gaussian ---------------------------------------------------------------------------------------------
    def is_optimising(self) -> bool:
        return self.lab.runner.is_busy(self.lab.channel("optimise"))

    def toggle_optimise(self) -> None:
        if self.is_optimising():
            self.cancel_optimise()
        else:
            self.optimise()

    def optimise(self, steps: int = VI_STEPS, lr: float = VI_LR) -> None:
        """Fit the best full-covariance Gaussian q* = argmax ELBO from the current q, animated by snapshots."""
        if not self.lab.can_compute() or self.mean is None:
            return
        from lvm.estimators import vi_steps

        model, index = self.ws.model, self.ws.selected_index
        x = as_x(model, self.ws.selected_x)
        init = (torch.as_tensor(self.mean), torch.as_tensor(self.tril))

        def run():
            with single_thread():
                yield from vi_steps(model, x, steps=steps, lr=lr, init=init, every=2)

        def snapshot(s):
            if self.ws.selected_index != index:
                return
            self.set_q(s.mean.double().numpy(), s.scale_tril.double().numpy())
            self.best_button.setText(f"Stop optimising (step {s.step}/{steps})")

        self.best_button.setText("Stop optimising")
        self.lab.runner.submit(self.lab.channel("optimise"), run, on_snapshot=snapshot,
                               on_finished=self._optimise_done, on_error=lambda m: self._optimise_done())

    def _optimise_done(self) -> None:
        self.best_button.setText("q = best Gaussian (optimise)")

    def cancel_optimise(self) -> None:
        if self.is_optimising():
            self.lab.runner.cancel(self.lab.channel("optimise"))
            self._optimise_done()

    # -- export ----------------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        pic = self.lab.picture
        if self.mean is None:
            raise NotImplementedError("no q yet: select a data point first")
        mu1, mu2, s1, s2, rho = tril_to_params(self.mean, self.tril)
        log_px = pic.log_px if pic is not None else math.nan
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as f:
            w = csv.writer(f)
            w.writerow(["index", "log_px", "elbo", "kl", "mu1", "mu2", "sigma1", "sigma2", "rho"])
            w.writerow([self.ws.selected_index, log_px, self.elbo, log_px - self.elbo, mu1, mu2, s1, s2, rho])
