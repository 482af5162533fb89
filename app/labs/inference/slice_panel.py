"""KL gap in a slice (latent spaces of more than two dimensions): log p(x, z) on a plane through the best Gaussian q*,
a d-dimensional q(z) dragged in that plane, and log p(x) = ELBO(q) + KL(q || p(z|x)) live, with log p(x) an AIS
estimate ± its standard error (``lvm.posterior_slice``; the lab computes q* and AIS once per x, ``lab.reference``)."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QSpinBox,
    QVBoxLayout,
)

from app.labs.inference.plots import (
    POSTERIOR_CMAP,
    SHOWN_UPSAMPLE,
    QExplorerFrame,
    gaussian_extent,
    latent_plot,
    set_image,
    union_rect,
)
from app.widgets.elbo_kl_bar import ElboKLBar
from app.widgets.gaussian_ellipse_roi import GaussianEllipseROI
from app.widgets.image_item import ImageItem
from lvm.gaussian_q import cov_to_tril, encoder_q
from lvm.models.capabilities import describe
from lvm.posterior_slice import (
    CommonRandomELBO,
    SlicePlane,
    axis_plane,
    compose_q,
    plane_marginal,
    principal_plane,
    slice_extent,
    slice_log_joint,
)
from lvm.threads import single_thread

SLICE_SIZE = 64  # the slice's grid (64^2 decoder passes, once per x and plane)
CRN_SAMPLES = 128  # the ELBO's common random draws (one decoder pass of 128 z per drag update)


class SlicePanel(QExplorerFrame):
    """The KL gap explorer for d > 2. q lives here (d-dimensional: ``mean`` (d,), ``tril`` (d, d)); the ellipse is
    its marginal in the plane shown."""

    title = "KL gap in a slice"

    def __init__(self, lab):
        super().__init__()
        self.lab = lab
        self.ws = lab.workspace
        self.mean: np.ndarray | None = None
        self.tril: np.ndarray | None = None
        self.plane: SlicePlane | None = None
        self.elbo: float | None = None
        self.elbo_se: float | None = None
        self.crn: CommonRandomELBO | None = None
        self.update_ms: list[float] = []  # drag updates (ELBO + readout), for measurement
        self._slice_key: tuple | None = None

        self.plot = latent_plot("log p(x, z) on a plane through q* (a slice, not a marginal) and q(z)'s marginal")
        self.img = ImageItem()
        self.img.setLookupTable(POSTERIOR_CMAP.getLookupTable(nPts=256))
        self.plot.addItem(self.img)
        self.star = pg.ScatterPlotItem(symbol="+", size=14, pen=pg.mkPen((20, 20, 20), width=2))
        self.plot.addItem(self.star)
        self.roi = GaussianEllipseROI(n_sigma=2.0)
        self.roi.setZValue(20)
        self.roi.setVisible(False)
        self.plot.addItem(self.roi)
        self.roi.sigGaussianChanged.connect(self._on_roi)
        legend = self.plot.addLegend(offset=(8, 8))
        legend.addItem(pg.PlotDataItem(pen=pg.mkPen((230, 60, 40), width=2.5)), "q(z) in the plane: 2σ ellipse")
        legend.addItem(self.star, "q*'s mean (the plane's origin)")

        self.bar = ElboKLBar()

        self.plane_choice = QComboBox()
        self.plane_choice.setObjectName("slice-plane")
        self.plane_choice.addItems(["principal axes of q*", "two coordinate axes"])
        self.axis_i, self.axis_j = QSpinBox(), QSpinBox()
        for box, value in ((self.axis_i, 1), (self.axis_j, 2)):
            box.setRange(1, 2)
            box.setValue(value)
            box.setPrefix("z")
            box.setEnabled(False)
            box.valueChanged.connect(self._on_plane_choice)
        self.plane_choice.currentIndexChanged.connect(self._on_plane_choice)
        axes_row = QHBoxLayout()
        axes_row.addWidget(self.axis_i)
        axes_row.addWidget(self.axis_j)
        plane_box = QGroupBox("The plane shown")
        plane_layout = QVBoxLayout(plane_box)
        plane_layout.addWidget(self.plane_choice)
        plane_layout.addLayout(axes_row)

        self.build_frame(plane_box, "q = best Gaussian q*", self.set_best, "slice-info")
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self._set_enabled(False)

    # -- lab events ------------------------------------------------------------------------------------------------
    def _set_enabled(self, on: bool) -> None:
        has_encoder = on and self.ws.model is not None and describe(self.ws.model).has_encoder
        self.enc_button.setEnabled(has_encoder)
        self.enc_button.setToolTip("" if has_encoder or not on else "This model has no encoder (no encode(x)).")
        for w in (self.prior_button, self.fit_button, self.plane_choice):
            w.setEnabled(on)
        self.best_button.setEnabled(on and self.lab.reference is not None)

    def on_selection(self) -> None:
        """A new x (or model): q starts at the encoder's q(z|x) (N(0, I) without an encoder) in the plane of its own
        principal axes until q* and AIS arrive; the old slice is cleared."""
        self.img.clear()
        self.star.setData([], [])
        self.plane = None
        self._slice_key = None
        self.crn = None
        self.elbo = self.elbo_se = None
        model, x = self.ws.model, self.ws.selected_x
        ok = self.lab.can_compute() and self.lab.sliced()
        self._set_enabled(ok)
        if not ok:
            self.roi.setVisible(False)
            self.bar.set_values(None, None)
            self.info.setText(self.lab.why_not() if self.lab.sliced() else "")
            return
        d = int(model.latent_dim)
        for box in (self.axis_i, self.axis_j):
            box.setRange(1, d)
        with single_thread():
            self.crn = CommonRandomELBO(model, x, CRN_SAMPLES, seed=0)
        enc = encoder_q(model, x)
        mean, tril = enc if enc is not None else (np.zeros(d), np.eye(d))
        self.mean, self.tril = np.asarray(mean, dtype=float), np.asarray(tril, dtype=float)
        self._choose_plane()
        self.info.setText("finding the best Gaussian q* and log p(x) by annealed importance sampling…")

    def on_reference(self, ref) -> None:
        """Progress or the end of the lab's per-x computation (``lvm.posterior_slice.SliceReference``)."""
        if ref.stage != "done":
            what = "fitting q* by VI" if ref.stage == "vi" else f"AIS, {ref.chains} chains × {ref.steps} steps"
            self.info.setText(f"{what}: {100 * ref.fraction:.0f} %")
            return
        self._set_enabled(True)
        self._choose_plane()
        self._update_readout()
        self.info.setText(self._reference_text(ref))
        self.fit_view()

    def _reference_text(self, ref) -> str:
        d = int(self.ws.model.latent_dim)
        return (
            f"<b>{d}-D latent space</b>: the picture is log p(x, z) on a plane through q*'s mean, a slice of the "
            "posterior, not its marginal; q is "
            f"{d}-dimensional and the ellipse is its marginal in the plane.<br>"
            f"log p(x) ≈ <b>{ref.log_px:.2f} ± {ref.log_px_se:.2f}</b> (AIS estimate ± se, {ref.chains} chains × "
            f"{ref.steps} steps, ESS {ref.ess:.1f}); ELBO(q*) = {ref.elbo_star:.2f}.<br>"
            f"ELBO(q) from {CRN_SAMPLES} fixed draws (common random numbers)."
        )

    # -- the plane -------------------------------------------------------------------------------------------------
    def _on_plane_choice(self, _=None) -> None:
        axes = self.plane_choice.currentIndex() == 1
        self.axis_i.setEnabled(axes)
        self.axis_j.setEnabled(axes)
        if self.mean is not None:
            self._choose_plane()
            self.fit_view()

    def _choose_plane(self) -> None:
        ref = self.lab.reference
        if ref is not None and ref.stage == "done":
            center, L = ref.q_mean, ref.q_tril
        else:
            center, L = self.mean, self.tril
        if center is None or L is None:
            return
        if self.plane_choice.currentIndex() == 1:
            i, j = self.axis_i.value() - 1, self.axis_j.value() - 1
            if i == j:
                self.info.setText("Choose two different axes.")
                return
            self.plane = axis_plane(center, i, j)
        else:
            self.plane = principal_plane(center, L @ L.T)
        self.plot.setLabel("bottom", self.plane.label[0])
        self.plot.setLabel("left", self.plane.label[1])
        self.star.setData([0.0], [0.0])
        self._show_q(move_roi=True)
        self._request_slice()

    def _request_slice(self) -> None:
        plane, model, x, index = self.plane, self.ws.model, self.ws.selected_x, self.ws.selected_index
        if plane is None or self.mean is None or self.tril is None:
            return
        extent = slice_extent(plane, self.mean, self.tril, 4.0)
        ref = self.lab.reference
        if ref is not None and ref.stage == "done":
            ext_star = slice_extent(plane, ref.q_mean, ref.q_tril, 4.0)
            extent = (
                min(extent[0], ext_star[0]),
                max(extent[1], ext_star[1]),
                min(extent[2], ext_star[2]),
                max(extent[3], ext_star[3]),
            )
        key = (id(model), index, plane.origin.tobytes(), plane.basis.tobytes(), extent)
        if key == self._slice_key:
            return
        self._slice_key = key

        def work():
            return extent, slice_log_joint(model, x, plane, extent, SLICE_SIZE)

        def done(result):
            if self.ws.selected_index != index or self.plane is not plane:
                return
            ext, log_joint = result
            set_image(self.img, np.exp(log_joint - log_joint.max()), ext, upsample=SHOWN_UPSAMPLE)

        self.lab.runner.submit(self.lab.channel("slice"), work, on_result=done)

    def fit_view(self) -> None:
        if self.plane is None or self.mean is None or self.tril is None:
            return
        a, T = plane_marginal(self.plane, self.mean, self.tril)
        rects = [gaussian_extent(a, T @ T.T, 2.8)]
        ref = self.lab.reference
        if ref is not None and ref.stage == "done":
            a_star, T_star = plane_marginal(self.plane, ref.q_mean, ref.q_tril)
            rects.append(gaussian_extent(a_star, T_star @ T_star.T, 3.0))
        r = union_rect(*rects)
        if r is not None:
            self.plot.getViewBox().setRange(r, padding=0.08)

    # -- q ---------------------------------------------------------------------------------------------------------
    def set_q(self, mean, tril, move_roi: bool = True) -> None:
        """Make q = N(mean, tril tril^T) (d-dimensional): ellipse and readout."""
        m, L = np.asarray(mean, dtype=float).reshape(-1), np.tril(np.asarray(tril, dtype=float))
        if not (np.isfinite(m).all() and np.isfinite(L).all()) or (np.diag(L) <= 0).any():
            return
        self.mean, self.tril = m, L
        self._show_q(move_roi)

    def _show_q(self, move_roi: bool) -> None:
        t0 = time.perf_counter()
        if self.plane is None or self.mean is None or self.tril is None:
            return
        if move_roi:
            a, T = plane_marginal(self.plane, self.mean, self.tril)
            self.roi.set_gaussian(a, T @ T.T)
        self.roi.setVisible(True)
        self._update_readout()
        self.update_ms.append((time.perf_counter() - t0) * 1000)
        del self.update_ms[:-500]

    def _update_readout(self) -> None:
        if self.crn is None or self.mean is None or self.tril is None:
            self.bar.set_values(None, None)
            return
        with single_thread():
            self.elbo, self.elbo_se = self.crn(self.mean, self.tril)
        ref = self.lab.reference
        done = ref is not None and ref.stage == "done"
        self.bar.set_values(
            ref.log_px if done else None,
            self.elbo,
            note=f"AIS estimate ± {ref.log_px_se:.2f}" if done else None,
        )

    def _on_roi(self, plane_mean, plane_cov) -> None:
        if self.plane is None or self.mean is None or self.tril is None:
            return
        try:
            T = cov_to_tril(plane_cov)
        except np.linalg.LinAlgError:
            return
        m, L = compose_q(self.plane, plane_mean, T, self.mean, self.tril)
        self.set_q(m, L, move_roi=False)

    def set_encoder(self) -> None:
        enc = encoder_q(self.ws.model, self.ws.selected_x) if self.ws.model is not None else None
        if enc is not None:
            self.set_q(*enc)
            self.fit_view()

    def set_best(self) -> None:
        ref = self.lab.reference
        if ref is not None:
            self.set_q(ref.q_mean, ref.q_tril)
            self.fit_view()

    def set_prior(self) -> None:
        if self.ws.model is None:
            return
        d = int(self.ws.model.latent_dim)
        self.set_q(np.zeros(d), np.eye(d))
        self.fit_view()

    def is_optimising(self) -> bool:
        return False

    def toggle_optimise(self) -> None:
        self.set_best()

    def export_csv(self, path: str) -> None:
        if self.mean is None or self.elbo is None:
            raise NotImplementedError("no q yet: select a data point first")
        import csv

        from lvm.io import atomic_open_text

        ref = self.lab.reference
        log_px = ref.log_px if ref is not None and ref.log_px is not None else float("nan")
        se = ref.log_px_se if ref is not None and ref.log_px_se is not None else float("nan")
        with atomic_open_text(path) as f:
            w = csv.writer(f)
            w.writerow(["index", "log_px_ais", "log_px_ais_se", "elbo", "elbo_se", "kl", "q_mean"])
            w.writerow(
                [
                    self.ws.selected_index,
                    log_px,
                    se,
                    self.elbo,
                    self.elbo_se,
                    log_px - self.elbo,
                    " ".join(f"{v:.6g}" for v in self.mean),
                ]
            )
