"""KL gap explorer: the exact p(z|x) in the latent plane, a draggable q(z) = N(mu, Sigma), and the live split
log p(x) = ELBO(q) + KL(q || p(z|x)) (ELBO by 16 x 16 Gauss-Hermite nodes; log p(x) once per x).

The ELBO of each new q is computed in a worker (256 decoder calls, 5-9 ms on one thread with the shipped model: more
than a frame's share on the GUI thread), "keep running": while q is dragged the worker computes the newest q as soon
as the last one is drawn, and the bar shows the ELBO of the q it was computed for until the next one arrives."""

from __future__ import annotations

import csv
import math
import time

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
)

from app.core.workspace import GaussianQ
from app.labs.inference.plots import (
    CONTOUR_PENS,
    POSTERIOR_CMAP,
    SHOWN_UPSAMPLE,
    QExplorerFrame,
    ellipse_points,
    gaussian_extent,
    latent_plot,
    set_image,
    union_rect,
)
from app.labs.inference.readouts import kl_info
from app.widgets.contours import ContourLines
from app.widgets.elbo_kl_bar import ElboKLBar
from app.widgets.gaussian_ellipse_roi import GaussianEllipseROI
from app.widgets.image_item import ImageItem
from app.widgets.picture_clock import PictureClock
from lvm.gaussian_q import cov_to_tril, encoder_q, gaussian_elbo, model_x, params_to_tril, tril_to_params
from lvm.models.capabilities import describe
from lvm.posterior_grid import hpd_extent
from lvm.threads import single_thread

VI_STEPS = 300
VI_LR = 0.05


def _timed_elbo(model, x, mean: np.ndarray, tril: np.ndarray) -> tuple[float, float]:
    """(ELBO(q) by Gauss-Hermite quadrature, seconds taken), on one thread."""
    t0 = time.perf_counter()
    with single_thread():
        elbo = gaussian_elbo(model, x, mean, tril)
    return elbo, time.perf_counter() - t0


class KLGapPanel(QExplorerFrame):
    """The lab's first panel. It reads ``lab.picture`` (the exact posterior of the selected x) and edits q, which
    lives in the lab's state (``lab.state.q_mean``, ``lab.state.q_tril``)."""

    title = "KL gap explorer"

    def __init__(self, lab):
        super().__init__()
        self.lab = lab
        self.ws = lab.workspace
        self.elbo: float | None = None  # ELBO(q) of the q in ``_elbo_key`` (the latest computed)
        self._elbo_key: tuple | None = None  # (id(model), x, mean, tril) the ELBO shown was computed for
        self._elbo_asked: tuple | None = None  # ... and the one last sent to the worker
        self.update_ms: list[float] = []  # drag/edit update times on the GUI thread (readout), for measurement
        self.elbo_ms: list[float] = []  # the worker's ELBO computation alone
        self.elbo_latency_ms: list[float] = []  # q set to its ELBO drawn
        self.elbo_picture = PictureClock()  # q set to its ELBO painted on screen

        self.plot = latent_plot("p(z|x) (exact) and q(z) — drag the ellipse; handles: scale + rotate")
        self.coarse_img = ImageItem()
        self.coarse_img.setOpacity(0.55)
        self.coarse_img.setLookupTable(POSTERIOR_CMAP.getLookupTable(nPts=256))
        self.fine_img = ImageItem()
        self.fine_img.setLookupTable(POSTERIOR_CMAP.getLookupTable(nPts=256))
        self.plot.addItem(self.coarse_img)
        self.plot.addItem(self.fine_img)
        self.contours = ContourLines(self.plot, CONTOUR_PENS)  # highest-density regions, traced in the worker
        self.enc_curve = pg.PlotCurveItem(pen=pg.mkPen((90, 90, 90), width=1.5, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.enc_curve)
        self.roi = GaussianEllipseROI(n_sigma=2.0)
        self.roi.setZValue(20)
        self.roi.setVisible(False)
        self.plot.addItem(self.roi)
        self.roi.sigGaussianChanged.connect(self._on_roi)
        legend = self.plot.addLegend(offset=(8, 8))
        legend.addItem(pg.PlotDataItem(pen=CONTOUR_PENS[0]), "p(z|x): 50 / 90 / 99 % regions")
        legend.addItem(pg.PlotDataItem(pen=pg.mkPen((230, 60, 40), width=2.5)), "q(z): 2σ ellipse (dashed: 1σ)")
        legend.addItem(
            pg.PlotDataItem(pen=pg.mkPen((90, 90, 90), width=1.5, style=Qt.PenStyle.DashLine)), "encoder q(z|x), 2σ"
        )

        self.bar = ElboKLBar()
        self.bar.plot.after_paint = self.elbo_picture.painted

        # fields
        self.fields = {}
        form = QFormLayout()
        specs = [
            ("mu1", "μ₁", -20, 20),
            ("mu2", "μ₂", -20, 20),
            ("sigma1", "σ₁ (std)", 1e-4, 20),
            ("sigma2", "σ₂ (std)", 1e-4, 20),
            ("rho", "ρ (correlation)", -0.99, 0.99),
        ]
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

        self._q_pass = lab.next_pass(self._show_q_of_x)  # a new x's q (``on_new_x``)
        self._drawn: tuple = (None, ())  # the picture (and its contours) to draw in ``_picture_pass``
        self._picture_pass = lab.next_pass(self._draw_picture)  # a new picture's heatmaps and contours
        self._readout_pass = lab.next_pass(self._show_picture_readout)  # ... then its bar and readout
        self.build_frame(fields_box, "q = best Gaussian (optimise)", self.toggle_optimise, "kl-info")
        self.ws.events.q.connect(self._on_workspace_q)
        self._set_enabled(False)

    # -- state from the lab ----------------------------------------------------------------------------------------
    @property
    def mean(self) -> np.ndarray | None:
        return self.lab.state.q_mean

    @property
    def tril(self) -> np.ndarray | None:
        return self.lab.state.q_tril

    def _set_enabled(self, on: bool) -> None:
        for w in (*self.fields.values(), self.enc_button, self.best_button, self.prior_button):
            w.setEnabled(on)

    def on_selection(self, keep_workspace_q: bool = False) -> None:
        """A new x: q resets to the encoder's q(z|x) (or, with ``keep_workspace_q``, keeps the workspace's q: a restored
        session's, when the lab is first built); the old picture is cleared until the new one arrives."""
        self._q_pass.cancel()
        self.clear_x()
        self._show_q_of_x(keep_workspace_q)

    def on_new_x(self) -> None:
        """The selection moved to a new x: what was drawn for the old one goes now, the new x's encoder q comes in the
        next pass of the event loop (``_q_pass``), painted in a frame of its own: a selection's slot and paints held
        the GUI thread 18-27 ms in one go (``lvm bench gui``, inference-select)."""
        self.clear_x()
        self._q_pass.queue()

    def settle_q(self) -> None:
        """Set the new x's q now if it waits for its pass (anything that reads or replaces q calls this first)."""
        self._q_pass.flush()

    def clear_x(self) -> None:
        """Nothing drawn for the previous x stays: picture, contours, encoder ellipse, q's ellipse, the ELBO bar."""
        self.cancel_optimise()
        self._picture_pass.cancel()
        self._readout_pass.cancel()
        self.lab.state.q_path = []  # (it belonged to the x, or the model, before)
        self.fine_img.clear()
        self.coarse_img.clear()
        self.contours.clear()
        self.enc_curve.setData([], [])
        self.roi.setVisible(False)
        self.bar.set_values(None, None)

    def _show_q_of_x(self, keep_workspace_q: bool = False) -> None:
        ok = self.lab.can_compute()
        self._set_enabled(ok)
        if not ok:
            self.info.setText(self.lab.why_not())
            return
        enc = encoder_q(self.ws.model, self.ws.selected_x)
        if enc is not None:
            m, L = enc
            self.enc_curve.setData(*ellipse_points(m, L @ L.T, 2.0))
        self.enc_button.setEnabled(enc is not None)  # (a user's model without an encoder: say so on the button)
        self.enc_button.setToolTip("" if enc is not None else describe(self.ws.model).missing("encoder") or "")
        kept = self.ws.q if keep_workspace_q else None
        if kept is not None:
            self.set_q(np.array(kept.mean), np.array(kept.scale_tril), publish=False)
        elif enc is not None:
            self.set_q(*enc)
        else:
            self.set_q(np.zeros(2), np.eye(2))
        self.info.setText("computing the exact posterior…")

    def on_picture(self, pic, contours) -> None:
        """The exact posterior arrived. Drawn in three passes of the event loop, each painted in a frame of its own:
        the view fitted to it; its heatmaps and contours (``_picture_pass``); the bar and readout (``_readout_pass``).
        In one pass the slot and the plot's repaint (new range: axes and grid; two new heatmaps) held the GUI thread
        13-18 ms (``lvm bench gui``, inference-select)."""
        self.settle_q()
        self._drawn = (pic, contours)
        self.fit_view()
        self._picture_pass.queue()

    def _draw_picture(self) -> None:
        pic, contours = self._drawn
        if pic is not self.lab.picture:
            return  # (another x, model or data since)
        set_image(self.coarse_img, pic.coarse_density, pic.coarse_extent)
        set_image(self.fine_img, pic.density, pic.extent, upsample=SHOWN_UPSAMPLE)
        self.contours.set_segments(list(contours))
        self._readout_pass.queue()

    def _show_picture_readout(self) -> None:
        pic, ctx = self.lab.picture, self.lab.context
        if pic is None or ctx is None or pic.index != self.ws.selected_index:
            return
        self._update_readout()
        self.info.setText(kl_info(pic, ctx.size))

    def fit_view(self) -> None:
        self.settle_q()
        pic = self.lab.picture
        rects = [hpd_extent(pic.density, pic.extent) if pic is not None else None]
        q = self.lab.state.q()
        if q is not None:
            rects.append(gaussian_extent(q[0], q[1] @ q[1].T, 2.6))
        r = union_rect(*rects)
        if r is not None:
            self.plot.getViewBox().setRange(r, padding=0.08)

    # -- q ---------------------------------------------------------------------------------------------------------
    def set_q(self, mean, tril, publish: bool = True, move_roi: bool = True) -> None:
        """Make q = N(mean, tril tril^T): ellipse, fields, readout and (``publish``) the workspace's q."""
        self.settle_q()  # (the encoder's q of a new x first: its ellipse and buttons are set with it)
        t0 = time.perf_counter()
        try:
            m, L = self.lab.state.set_q(mean, tril)
        except ValueError:
            return
        if move_roi:
            self.roi.set_gaussian(m, L @ L.T)
        self.roi.setVisible(True)
        self._show_fields(m, L)
        self._update_readout()
        if publish:
            try:
                self.ws.set_q(GaussianQ.from_arrays(m, L))
            except ValueError:
                pass
        self.update_ms.append((time.perf_counter() - t0) * 1000)
        del self.update_ms[:-500]

    def _show_fields(self, mean: np.ndarray, tril: np.ndarray) -> None:
        vals = tril_to_params(mean, tril)
        for key, v in zip(("mu1", "mu2", "sigma1", "sigma2", "rho"), vals, strict=False):
            box = self.fields[key]
            box.blockSignals(True)
            box.setValue(v)
            box.blockSignals(False)

    def _readout_key(self) -> tuple | None:
        """(id(model), x, mean, tril) of the q shown now; None when there is nothing to compute."""
        x, q = self.ws.selected_x, self.lab.state.q()
        if x is None or q is None or not self.lab.can_compute():
            return None
        return (id(self.ws.model), np.asarray(x).tobytes(), q[0].tobytes(), q[1].tobytes())

    def elbo_is_current(self) -> bool:
        """The ELBO shown is the one of the q shown (no newer q waits for its ELBO)."""
        key = self._readout_key()
        return key is not None and key == self._elbo_key

    def _update_readout(self) -> None:
        """Show log p(x) and ELBO(q) = log p(x) - KL; ask the worker for the ELBO of a new q (the bar keeps the last
        ELBO of the same model and x meanwhile)."""
        key = self._readout_key()
        if key is None:
            self.bar.set_values(None, None)
            return
        if key != self._elbo_key and key != self._elbo_asked:  # (a picture's arrival alone does not change ELBO(q))
            self._elbo_asked = key
            model, x, (mean, tril), t0 = self.ws.model, self.ws.selected_x, self.lab.state.q(), time.perf_counter()

            def done(out: tuple[float, float]) -> None:
                elbo, seconds = out
                now = self._readout_key()
                if now is None or key[:2] != now[:2]:
                    return  # another model or x since
                self.elbo, self._elbo_key = elbo, key
                self.elbo_ms.append(1000 * seconds)
                self.elbo_latency_ms.append(1000 * (time.perf_counter() - t0))
                del self.elbo_ms[:-500], self.elbo_latency_ms[:-500]
                self._show_bar()
                self.elbo_picture.drawn(t0)

            def ended() -> None:  # (delivered, cancelled or failed: the same q may be asked for again)
                if self._elbo_asked == key:
                    self._elbo_asked = None

            self.lab.runner.submit(
                self.lab.channel("elbo"),
                lambda: _timed_elbo(model, x, mean, tril),
                on_result=done,
                on_done=ended,
                keep_running=True,
            )
        self._show_bar()

    def _show_bar(self) -> None:
        key, pic = self._readout_key(), self.lab.picture
        log_px = pic.log_px if pic is not None and pic.index == self.ws.selected_index else None
        same_x = key is not None and self._elbo_key is not None and key[:2] == self._elbo_key[:2]
        self.bar.set_values(log_px, self.elbo if same_x else None)

    def settle_elbo(self) -> float | None:
        """ELBO(q) of the q shown, computed here if the worker's is not in yet (exports and animation frames)."""
        self.settle_q()
        self._picture_pass.flush()
        self._readout_pass.flush()
        key = self._readout_key()
        if key is None:
            return None
        if key != self._elbo_key:
            mean, tril = self.lab.state.q()
            self.elbo, _ = _timed_elbo(self.ws.model, self.ws.selected_x, mean, tril)
            self._elbo_key = key
            self._show_bar()
        return self.elbo

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
        self.settle_q()
        mine = self.lab.state.q()
        if q is None or len(q.mean) != 2 or mine is None:
            return
        m, L = np.asarray(q.mean), np.asarray(q.scale_tril)
        if np.allclose(m, mine[0], atol=1e-9) and np.allclose(L, mine[1], atol=1e-9):
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
        self.settle_q()
        if not self.lab.can_compute() or self.mean is None:
            return
        from lvm.estimators import vi_steps

        model, index = self.ws.model, self.ws.selected_index
        x = model_x(model, self.ws.selected_x)
        init = (torch.as_tensor(self.mean), torch.as_tensor(self.tril))

        path: list = []  # every snapshot, kept by the worker (the GUI is shown the latest only: latest wins)

        def run():
            with single_thread():
                for s in vi_steps(model, x, steps=steps, lr=lr, init=init, every=2):
                    path.append(s)
                    yield s

        def snapshot(s):
            if self.ws.selected_index != index:
                return
            self.lab.state.record_q_path(s.step, s.mean.double().numpy(), s.scale_tril.double().numpy())
            self.set_q(s.mean.double().numpy(), s.scale_tril.double().numpy())
            self.best_button.setText(f"Stop optimising (step {s.step}/{steps})")

        def finished():
            if self.ws.selected_index == index:  # the whole path for export, with the snapshots not drawn
                for s in path:
                    self.lab.state.record_q_path(s.step, s.mean.double().numpy(), s.scale_tril.double().numpy())
            self._optimise_done()

        self.best_button.setText("Stop optimising")
        self.lab.runner.submit(
            self.lab.channel("optimise"),
            run,
            on_snapshot=snapshot,
            on_finished=finished,
            on_error=lambda m: self._optimise_done(),
        )

    def _optimise_done(self) -> None:
        self.best_button.setText("q = best Gaussian (optimise)")

    def cancel_optimise(self) -> None:
        if self.is_optimising():
            self.lab.runner.cancel(self.lab.channel("optimise"))
            self._optimise_done()

    # -- export ----------------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        pic, q = self.lab.picture, self.lab.state.q()
        if q is None or self.settle_elbo() is None:
            raise NotImplementedError("no q yet: select a data point first")
        assert self.elbo is not None
        mu1, mu2, s1, s2, rho = tril_to_params(*q)
        log_px = pic.log_px if pic is not None else math.nan
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as f:
            w = csv.writer(f)
            w.writerow(["index", "log_px", "elbo", "kl", "mu1", "mu2", "sigma1", "sigma2", "rho"])
            w.writerow([self.ws.selected_index, log_px, self.elbo, log_px - self.elbo, mu1, mu2, s1, s2, rho])
