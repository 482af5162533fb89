"""The Inpainting lab: draw or load a digit, hide part of it, and see the exact posterior and completions live.

The model's decoder is evaluated once on a latent grid (a worker builds ``lvm.inpainting.InpaintGrid``); then every
pen stamp updates the posterior from the pixels it changed (``lvm.inpainting.ObservedJoint``, under a millisecond)
in a worker, coalesced so that a burst of mouse moves costs one update; ELBO(phi) and the entropy wait for the pen to
rest. The mean-field panel estimates ELBO(phi) for the lecture's presets and optimises phi in a worker
(cancellable). What the user made lives in ``state.InpaintingState`` (Qt-free), the computations in ``compute``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import shiboken6
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.labs.inpainting import compute
from app.labs.inpainting.explanation import EXPLANATION
from app.labs.inpainting.panels import (
    SEED_MAX,
    DrawingPanel,
    InpaintingPlots,
    MeanFieldPanel,
    qrect,
    set_quietly,
)
from app.labs.inpainting.state import PHI_NAMES, InpaintingState
from app.widgets.lab_view import LabView
from app.widgets.picture_clock import PictureClock
from lvm.errors import LVMError, SessionError
from lvm.inpainting.local_posterior import LocalPosteriorGrid, needs_refit
from lvm.threads import single_thread

if TYPE_CHECKING:
    from lvm.inpainting import InpaintGrid


def _latent_dim(model) -> str:
    return str(getattr(model, "latent_dim", "?"))


class InpaintingLab(LabView):
    name = "inpainting"
    title = "Inpainting lab"
    explanation = EXPLANATION
    optimise_steps = 150

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.state = InpaintingState()
        self.grid = None  # lvm.inpainting.InpaintGrid of the current model
        self._grid_model = None
        self.snis_model = None  # a model inpainted by SNIS over z (no exact grid: d > 2, or not Bernoulli)
        self.snis_why = ""  # why there is no exact grid for it
        self.result = None  # lvm.inpainting.InpaintResult (or snis.SnisResult) of the drawing shown
        self.local_post = LocalPosteriorGrid()  # the fine grid under the posterior heatmap
        self._density: tuple[object, object, np.ndarray | None] = (None, None, None)  # (result, its fine grid, density)
        self.update_ms: list[float] = []  # from the canvas change to the drawn completion, per update
        self.compute_ms: list[float] = []  # the worker's part of each update (the inference alone)
        self.picture_clock = PictureClock(keep=50)  # pen-to-picture: a canvas change to its completions painted
        self._changed_at: float | None = None  # the first canvas change not sent to the worker yet
        self.infer_ms = float("nan")
        self.n_updates = 0
        self._update_scheduled = False  # a coalescing single-shot is queued
        self._started = False
        self._building = False
        self._run_when_ready = False  # toggle_run before the grid was decoded: optimise once it is
        self._animating = False  # File → Export animation is showing the drawing's steps
        self._build_ui()
        self._elbo_timer = QTimer(self)
        self._elbo_timer.setSingleShot(True)
        self._elbo_timer.setInterval(300)
        self._elbo_timer.timeout.connect(self.evaluate_elbos)
        ws = workspace.events
        ws.model.connect(self._on_model)
        ws.dataset.connect(self._on_dataset)
        ws.selection.connect(self._on_selection)
        ws.seeds.connect(self._on_seeds)

    def seed(self) -> int:
        """The seed of this lab's random numbers (the workspace keeps it; sessions save it)."""
        return self.workspace.seed(self.name)

    # -- UI --------------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        st = self.state
        self.drawing = d = DrawingPanel(st.mask, st.tool, st.brush, st.follow, self.seed())
        self.plots = p = InpaintingPlots(compute.N_SAMPLES)
        p.glw.after_paint = self.picture_clock.painted
        self.meanfield = mf = MeanFieldPanel(PHI_NAMES)
        # (the widgets other tests and the GUI benchmark drive)
        self.canvas, self.tool_group = d.canvas, d.tool_group
        self.phi_buttons, self.optimise_button = mf.phi_buttons, mf.optimise_button

        d.canvas.changed.connect(self._on_canvas_changed)
        d.canvas.stroke_started.connect(self._pause_estimates)
        d.canvas.stroke_finished.connect(self._elbo_timer_start)
        d.canvas.stroke_finished.connect(lambda: self.state.record_drawing_step())  # (File → Export animation)
        d.tool_group.buttonClicked.connect(lambda b: self._set_tool(b.property("tool")))
        d.brush_spin.valueChanged.connect(self._set_brush)
        d.index_spin.valueChanged.connect(self.load_index)
        d.follow_check.toggled.connect(lambda on: setattr(self.state, "follow", bool(on)))
        d.mask_combo.textActivated.connect(self.set_mask_preset)
        d.seed_spin.valueChanged.connect(lambda v: self.workspace.set_seed(self.name, int(v)))
        for key, button in mf.phi_buttons.items():
            button.clicked.connect(lambda checked=False, k=key: self.set_phi_preset(k))
        mf.optimise_button.clicked.connect(self.optimise)
        mf.cancel_button.clicked.connect(self.cancel_optimise)

        self.logp_label = QLabel("log p(x<sub>O</sub>) = …")
        self.logp_label.setObjectName("inpainting-logp")
        f = self.logp_label.font()
        f.setPointSizeF(f.pointSizeF() * 1.35)
        self.logp_label.setFont(f)
        self.logp_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # no relayout
        self.means_check = QCheckBox("show p(x|z) means")
        self.means_check.setChecked(st.show_means)
        self.means_check.setToolTip("show the decoder means p(x|z) of the sampled z instead of pixel samples")
        self.means_check.toggled.connect(self._set_show_means)
        header = QHBoxLayout()
        header.addWidget(self.logp_label, 1)
        header.addWidget(self.means_check)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(2, 2, 2, 2)
        rv.addLayout(header)
        rv.addWidget(p.glw, 1)
        rv.addWidget(mf)
        content = QWidget()
        h = QHBoxLayout(content)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(d, 3)
        h.addWidget(right, 7)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.with_explanation(content))

    def _set_tool(self, tool: str) -> None:
        self.state.tool = self.canvas.tool = tool

    def _set_brush(self, radius: float) -> None:
        self.state.brush = self.canvas.brush_radius = float(radius)

    def _set_show_means(self, on: bool) -> None:
        self.state.show_means = bool(on)
        self._render()

    def _set_logp_text(self, text: str) -> None:
        self.logp_label.setText(text)
        self.logp_label.setToolTip(text)

    # -- workspace -------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        if not self._started:
            self._started = True
            self._on_dataset(self.workspace.dataset)
        if (self.grid is None and self.snis_model is None) or self._grid_model is not self.workspace.model:
            self._on_model(self.workspace.model)
        if self.state.follow_pending is not None:
            index, self.state.follow_pending = self.state.follow_pending, None
            self.load_index(index)
        if self.state.pending is not None:
            self._apply_pending()

    def _image_data(self):
        data = self.workspace.data
        if data is None or data.x.shape[1] != 784:
            return None
        return data

    def _on_dataset(self, ds) -> None:
        data = self._image_data()
        if data is None:
            self.drawing.index_spin.setRange(0, 0)
            if ds is not None:
                self.drawing.status.setText("this lab needs 28 x 28 images; load the digits or an MNIST-layout folder")
            return
        self.drawing.index_spin.blockSignals(True)
        self.drawing.index_spin.setRange(0, len(data) - 1)
        self.drawing.index_spin.blockSignals(False)
        if self._started:
            self.load_index(min(self.state.index, len(data) - 1))

    def _on_selection(self, index) -> None:
        if self._image_data() is not None and self.state.follow_selection(index, self.isVisible()):
            self.load_index(int(index))

    def _on_seeds(self, name) -> None:
        """The seed changed (here, or restored with a session): show it and draw new random numbers with it."""
        if name not in (self.name, "global"):
            return
        seed = self.seed()
        if seed > SEED_MAX:  # the seed used is always the one shown
            self.workspace.set_seed(self.name, SEED_MAX)
            return
        set_quietly(self.drawing.seed_spin, seed)
        if self.grid is not None or self.snis_model is not None:  # (an optimisation goes on with its own seed)
            self.schedule_update(drawing_changed=False)
            self._elbo_timer_start()

    def _on_model(self, model) -> None:
        self.runner.cancel(self.channel(""))
        self._building = False
        self._opt_finished()
        self.grid = self.snis_model = None
        self.result = None  # it belonged to the old model
        self.local_post = LocalPosteriorGrid()
        self._grid_model = model
        self.state.forget_results()
        self.plots.clear()  # nothing of the previous model stays on screen
        self.meanfield.show_summary("")
        self.meanfield.show_uncertainty("")
        mode, why = compute.inference_mode(model)
        self._set_meanfield_enabled(mode == "grid")
        if mode is None:
            self._set_logp_text(why if model is None else "this model cannot be inpainted: see below")
            self.logp_label.setToolTip(why)
            self.drawing.status.setText("")
            if model is not None:
                self.meanfield.show_summary(f"This model cannot be inpainted: {why}.")
            return
        if mode == "snis":
            self._set_logp_text(f"completing by importance sampling over z: {why}")
            self.plots.show_post_message(f"p(z | x_O) is {_latent_dim(model)}-D:\nnot drawn here")
            self.meanfield.show_summary(
                "The mean-field ELBO scores completions by their exact log p(x), which needs the exact latent grid "
                f"(a 1-D or 2-D latent, Bernoulli decoder): not available for this model ({why})."
            )
            if self._started:
                self.snis_model, self.snis_why = model, why
                self.update_now()
            return
        if not self._started:
            return
        self._set_logp_text("decoding the latent grid…")

        def done():
            self._building = False

        self._building = True
        self.runner.submit(
            self.channel("grid"),
            lambda: compute.build_grid(model),
            on_result=self._grid_ready,
            on_finished=done,
            on_error=lambda m: done(),
        )

    def _set_meanfield_enabled(self, on: bool) -> None:
        """The mean-field panel works on the exact grid only (a model change: any optimisation was cancelled)."""
        for button in self.meanfield.phi_buttons.values():
            button.setEnabled(on)
        if on:
            self.meanfield.set_running(False)
        else:
            self.meanfield.optimise_button.setEnabled(False)
            self.meanfield.cancel_button.setEnabled(False)

    def _grid_ready(self, grid) -> None:
        if not self._alive() or self._grid_model is not grid.model:
            return
        self.grid = grid
        self.drawing.status.setText(compute.grid_text(grid))
        self.update_now()
        if self._run_when_ready:  # (Run was asked for while the grid was being decoded)
            self._run_when_ready = False
            self._opt_finished()
            self.evaluate_elbos()
            self.optimise()
            return
        if self.state.phi is None:
            self.set_phi_preset("template")
            return
        self.evaluate_elbos()

    # -- image and mask --------------------------------------------------------------------------------------------
    def load_index(self, index: int) -> None:
        data = self._image_data()
        if data is None or not 0 <= index < len(data):
            return
        self.state.index = int(index)
        set_quietly(self.drawing.index_spin, index)
        self.canvas.set_image(data.x[index])
        self.state.restart_drawing_steps()
        self._elbo_timer_start()

    def set_mask_preset(self, name: str) -> None:
        try:
            mask = self.state.mask_for(name, self.seed())
        except LVMError as exc:
            self.workspace.message(str(exc))
            return
        if self.drawing.mask_combo.currentText() != name:
            self.drawing.mask_combo.setCurrentText(name)
        self.canvas.set_mask(mask)
        self.state.record_drawing_step()
        self._elbo_timer_start()

    def _on_canvas_changed(self) -> None:
        if self._changed_at is None:
            self._changed_at = time.perf_counter()
        self.state.set_drawing(self.canvas.image, self.canvas.mask)
        self.schedule_update()

    def _take_change_time(self, now: float) -> float:
        """When the drawing about to be sent to the worker first changed (``now`` if it was not the pen)."""
        changed, self._changed_at = self._changed_at, None
        return now if changed is None else changed

    def _record_update(self, t0: float, changed: float) -> None:
        """An update drawn (its paint to come): its latency and compute time; pen-to-picture once it is painted."""
        self.update_ms.append(1000 * (time.perf_counter() - t0))
        self.compute_ms.append(self.infer_ms)
        del self.update_ms[:-50], self.compute_ms[:-50]
        self.n_updates += 1
        self.picture_clock.drawn(changed)

    # -- live update -----------------------------------------------------------------------------------------------
    def schedule_update(self, drawing_changed: bool = True) -> None:
        """Coalesce a burst of canvas changes into one update after the pending events are processed."""
        if drawing_changed and self.runner.is_busy(self.channel("optimise")):
            self.cancel_optimise()  # its φ belongs to the image and mask it started from, which just changed
        if not self._update_scheduled:
            self._update_scheduled = True
            QTimer.singleShot(0, self.update_now)

    def is_updating(self) -> bool:
        """True from a canvas change until its completion is drawn."""
        return (
            self._update_scheduled
            or self.runner.is_busy(self.channel("update"))
            or self.runner.is_busy(self.channel("local"))
        )

    def update_now(self) -> None:
        """Infer from what is drawn now, in the worker; the GUI thread only draws the result.

        Two channels, both "keep running" (a running job finishes and is drawn; only the newest request waits), so
        results flow while the pen moves: ``update`` computes the posterior on the grid, log p(x_O), the predictive,
        the samples and the fine heatmap's density (0.4 ms while drawing, ~5 ms for a new drawing: lvm bench
        inpaint); when the posterior left the fine heatmap's rectangle, ``local`` then decodes the new rectangle
        (48 x 48 decoder calls, ~100 ms on one thread) and the heatmap follows when it is ready."""
        self._update_scheduled = False
        if self._animating:  # (an export's frames are computed on the spot)
            return
        if self.grid is None:
            if self.snis_model is not None:
                self._update_snis()
            return
        t0 = time.perf_counter()
        changed = self._take_change_time(t0)
        grid, x, mask, seed = self.grid, self.state.image.copy(), self.state.mask.copy(), self.seed()
        local = self.local_post

        def done(out: compute.Inference) -> None:
            if not self._alive() or grid is not self.grid:
                return
            self.result, self.infer_ms = out.result, 1000 * out.seconds
            self._density = (out.result, out.local, out.density)
            self.state.log_p_obs = out.result.log_p_obs
            if out.mass_box is not None and needs_refit(self.local_post.rect, out.mass_box):
                self._refit_local(grid, out.mass_box)
            self._render()  # (the next update already runs in the worker: keep_running)
            self._record_update(t0, changed)

        self.runner.submit(
            self.channel("update"),
            lambda: compute.infer(grid, x, mask, seed, local=local),
            on_result=done,
            keep_running=True,
        )

    def _update_snis(self) -> None:
        """Complete the drawing by SNIS over z in the worker (keep running: results flow while the pen moves)."""
        t0 = time.perf_counter()
        changed = self._take_change_time(t0)
        model, x, mask, seed = self.snis_model, self.state.image.copy(), self.state.mask.copy(), self.seed()

        def done(out: compute.SnisInference) -> None:
            if not self._alive() or model is not self.snis_model:
                return
            self.result, self.infer_ms = out.result, 1000 * out.seconds
            self.state.log_p_obs = out.result.log_p_obs
            self._render()
            self._record_update(t0, changed)

        self.runner.submit(
            self.channel("update"),
            lambda: compute.snis_infer(model, x, mask, seed),
            on_result=done,
            keep_running=True,
        )

    def _render_snis(self) -> None:
        """The SNIS completion and resampled completions, log p(x_O) with its standard error, and the ESS."""
        r = self.result
        assert r is not None
        x, mask = self.state.image, self.state.mask
        samples = r.sample_means if self.state.show_means else r.samples
        self.plots.show_completions(x, mask, r.predictive.cpu().numpy(), samples.cpu().numpy())
        self.canvas.set_overlay(None)
        self.logp_label.setText(
            f"log p(x<sub>O</sub>) ≈ <b>{r.log_p_obs:.2f}</b> ± {r.log_p_obs_se:.2f} nats "
            f"<small>(SNIS, ESS <b>{r.ess:.0f}</b> of {r.n_proposals}; {int(mask.sum())}/{mask.size} observed)"
            "</small>"
        )
        self.logp_label.setToolTip(
            f"self-normalised importance sampling over z: {compute.proposal_text(r)}; effective sample size "
            f"1/Σw² = {r.ess:.1f} of {r.n_proposals} draws; update {self.infer_ms:.0f} ms. No exact grid: "
            f"{self.snis_why}"
        )
        self.drawing.status.setText(f"SNIS · {compute.proposal_text(r)}")
        self.drawing.status.setToolTip(self.drawing.status.text())

    def _refit_local(self, grid, rect) -> None:
        """Decode the fine heatmap's new rectangle in the worker; swap it in (and refit the view) when ready."""
        n = self.local_post.n

        def done(local: LocalPosteriorGrid) -> None:
            if not self._alive() or grid is not self.grid:
                return
            self.local_post = local
            self.plots.post_plot.getViewBox().setRange(qrect(rect), padding=0)
            self._render()

        self.runner.submit(
            self.channel("local"), lambda: compute.local_posterior(grid, rect, n), on_result=done, keep_running=True
        )

    def _local_density(self, grid: InpaintGrid) -> np.ndarray:
        """The posterior's density on the fine heatmap's grid for the drawing of the result shown: the worker's,
        computed with the result, unless the heatmap has moved since (then here: two matrix-vector products)."""
        result, local, density = self._density
        if result is self.result and local is self.local_post and density is not None:
            return density
        r = self.result
        x, mask = (r.x.cpu().numpy(), r.mask.cpu().numpy()) if r is not None else (self.state.image, self.state.mask)
        with single_thread():  # two matrix-vector products: OpenMP's fork/join costs more than it saves
            return self.local_post.density(grid, x, mask)

    def _render(self) -> None:
        r, grid = self.result, self.grid
        if r is not None and grid is None and self.snis_model is not None:
            self._render_snis()
            return
        if r is None or grid is None:  # no result yet, or the model changed and its grid is being rebuilt
            return
        x, mask = self.state.image, self.state.mask
        samples = r.sample_means if self.state.show_means else r.samples
        self.plots.show_completions(x, mask, r.predictive.cpu().numpy(), samples.cpu().numpy())
        self.canvas.set_overlay(None)
        if grid.latent_dim == 2 and self.local_post.rect is not None:
            self.plots.show_posterior(self._local_density(grid), self.local_post.rect, r.sample_z.cpu().numpy())
        ms = np.median(self.update_ms[-10:]) if self.update_ms else self.infer_ms
        self.logp_label.setText(
            f"log p(x<sub>O</sub>) = <b>{r.log_p_obs:.2f}</b> nats "
            f"<small>({int(mask.sum())}/{mask.size} observed)</small>"
        )
        self.logp_label.setToolTip(f"update {self.infer_ms:.1f} ms, + drawing {ms:.1f} ms (median of the last 10)")
        self._render_phi()

    # -- mean field ------------------------------------------------------------------------------------------------
    def _template(self) -> np.ndarray | None:
        data = self._image_data()
        return None if data is None else self.state.template(data.x, data.y)

    def set_phi_preset(self, key: str) -> None:
        predictive = None if self.result is None else self.result.predictive.cpu().numpy()
        phi = self.state.preset(key, self._template(), predictive)
        if phi is None:
            return
        self.state.set_phi(phi, key)
        self._render_phi()
        self.evaluate_elbos()

    def _render_phi(self) -> None:
        self.plots.show_phi(self.state.image, self.state.mask, self.state.phi)
        self.meanfield.show_uncertainty(self.state.uncertainty_html())

    def evaluate_uncertainty(self) -> None:
        """The exact predictive's entropy for the drawing, in a worker (latest wins); q's is closed form."""
        if self.grid is None or self._animating:
            return
        grid, x, mask, seed = self.grid, self.state.image.copy(), self.state.mask.copy(), self.seed()

        def done(u) -> None:
            if self._alive() and grid is self.grid and np.array_equal(mask, self.state.mask):
                self.state.uncertainty = u
                self._render_phi()

        self.runner.submit(self.channel("entropy"), lambda: compute.uncertainty(grid, x, mask, seed), on_result=done)

    def _elbo_timer_start(self) -> None:
        self._elbo_timer.start()

    def _pause_estimates(self) -> None:
        """A stroke begins: the ELBO and entropy estimates under way are for the drawing it is about to change, so
        they stop, leaving both cores to the live completions; they run again once the pen has rested
        (``_elbo_timer``)."""
        self._elbo_timer.stop()
        for what in ("elbo", "entropy"):
            self.runner.cancel(self.channel(what))

    def evaluate_elbos(self) -> None:
        """ELBO(phi) for the presets (and the current phi) in a worker (latest wins)."""
        if self.grid is None or self._animating:
            return
        grid, x, mask, seed = self.grid, self.state.image.copy(), self.state.mask.copy(), self.seed()
        phis = self.state.phis_to_score(self._template())
        self.runner.submit(
            self.channel("elbo"),
            lambda: compute.elbo_steps(grid, x, mask, phis, seed),
            on_snapshot=self._elbos_ready,
        )
        self.evaluate_uncertainty()

    def _alive(self) -> bool:
        return shiboken6.isValid(self) and shiboken6.isValid(self.plots.elbo_plot)

    def _elbos_ready(self, item) -> None:
        if not self._alive():
            return
        values, lp = item
        self.state.merge_elbos(values, lp)
        self._render_elbos()

    def _render_elbos(self) -> None:
        self.plots.chart.set_values(*self.state.chart_values())
        self.meanfield.show_summary(self.state.summary_html())

    def optimise(self) -> None:
        if self.grid is None or self.state.mask.all():
            return
        grid, x, mask = self.grid, self.state.image.copy(), self.state.mask.copy()
        phi0, seed, steps = self.state.optimiser_start(), self.seed(), self.optimise_steps
        self.meanfield.set_running(True)
        self.meanfield.progress.setValue(0)
        self.runner.submit(
            self.channel("optimise"),
            lambda: compute.optimise_steps(grid, x, mask, phi0, steps, seed),
            on_snapshot=self._opt_snapshot,
            on_finished=self._opt_finished,
            on_error=lambda m: self._opt_finished(),
        )

    def _opt_snapshot(self, s) -> None:
        if not self._alive():
            return
        self.meanfield.progress.setValue(int(1000 * s.progress))
        self.state.set_optimised(s.phi, s.elbo, s.stderr)
        self._render_phi()
        self._render_elbos()

    def cancel_optimise(self) -> None:
        self._run_when_ready = False
        self.runner.cancel(self.channel("optimise"))
        self._opt_finished()

    def is_running(self) -> bool:
        return self.runner.is_busy(self.channel("optimise")) or self._run_when_ready

    def toggle_run(self) -> bool:
        """Optimise phi, or stop the optimiser; asked before the model's grid is decoded, it starts once it is."""
        if self.is_running():
            self.cancel_optimise()
        elif (
            self.grid is None and self._grid_model is not None and compute.inference_mode(self._grid_model)[0] != "grid"
        ):
            self.workspace.message(
                "Inpainting lab: the mean-field optimiser needs the exact latent grid (2-D, Bernoulli)"
            )
        elif self.grid is None:
            self._run_when_ready = True
            self.meanfield.set_running(True)
        else:
            self.optimise()
        return True

    def _opt_finished(self) -> None:
        if shiboken6.isValid(self.meanfield):
            self.meanfield.set_running(False)
            if self.snis_model is not None:  # (no exact grid: no mean-field optimiser)
                self.meanfield.optimise_button.setEnabled(False)

    def is_busy(self) -> bool:
        return super().is_busy() or self._building or self._elbo_timer.isActive() or self._update_scheduled

    def deactivate(self) -> None:
        super().deactivate()
        self._opt_finished()

    # -- animation (File → Export animation…: app.widgets.animation_export) -------------------------------------------
    def animation_problem(self) -> str | None:
        if not self.state.drawing_steps:
            return "nothing was drawn yet: load a digit and draw on it (strokes, masks), then export the drawing"
        if self.runner.is_busy(self.channel("optimise")):
            return "the mean-field optimiser is running: wait for it (or stop it) to export the drawing"
        return None

    def animation_frame_count(self) -> int:
        return len(self.state.drawing_steps)

    def animation_frames(self) -> Iterator[str]:
        """The drawing as it was after each stroke or mask change since the digit was loaded, with its exact
        completion computed on the spot; then back to the drawing (and results) the user has."""
        steps, canvas = list(self.state.drawing_steps), self.canvas
        kept_image, kept_mask, kept_result = canvas.image.copy(), canvas.mask.copy(), self.result
        elbos_pending = self._elbo_timer.isActive() or self.runner.is_busy(self.channel("elbo"))
        self._elbo_timer.stop()
        for what in ("update", "local", "elbo"):  # (results for the drawing on screen, which is about to change)
            self.runner.cancel(self.channel(what))
        self._animating = True
        try:
            for k, (image, mask) in enumerate(steps):
                self._put_drawing(image, mask)
                lp = ""
                if self.grid is not None:
                    x, observed = self.state.image.copy(), self.state.mask.copy()
                    self.result = compute.infer(self.grid, x, observed, self.seed()).result
                    self._render()
                    lp = f", log p(x_O) = {self.result.log_p_obs:.2f} nats"
                yield f"{self.title}, the drawing: step {k} of {len(steps) - 1}{lp}"
        finally:
            self._animating = False
            self._put_drawing(kept_image, kept_mask)
            self.result = kept_result
            self._render()
            self.schedule_update(drawing_changed=False)  # (an update cancelled above is redone)
            if elbos_pending:
                self._elbo_timer_start()

    def _put_drawing(self, image: np.ndarray, mask: np.ndarray) -> None:
        """Ink and observed pixels on the canvas and in the state, without the canvas's change signal."""
        was = self.canvas.blockSignals(True)
        try:
            self.canvas.set_image(image)
            self.canvas.set_mask(mask)
        finally:
            self.canvas.blockSignals(was)
        self.state.set_drawing(self.canvas.image, self.canvas.mask)

    # -- export and state ------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        from lvm.io import atomic_path

        predictive = None if self.result is None else self.result.predictive.cpu().numpy()
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(self.state.pixel_rows(predictive))

    def view_state(self) -> dict:
        return self.state.to_dict()

    def restore_view_state(self, state: dict) -> None:
        try:
            restored = InpaintingState.from_dict(state)
        except SessionError as exc:
            self.workspace.message(f"Inpainting lab: the session's state was not restored ({exc})")
            return
        st = self.state
        if (
            restored.pending is not None
            and (restored.index != st.index or restored.mask_name != st.mask_name)
            and np.array_equal(restored.pending.image, st.image)
            and np.array_equal(restored.pending.mask, st.mask)
        ):
            # the drawing on screen, with another digit or mask: a lesson's step over the lab's current view state
            # (``{**view_state(), **setup}``) asks for that digit and mask, not for the drawing it replaces
            restored.pending = None
        st.index, st.follow, st.show_means = restored.index, restored.follow, restored.show_means
        st.follow_pending = None  # (the restored digit wins over a selection made while the lab was hidden)
        self.drawing.mask_combo.setCurrentText(restored.mask_name)
        self.canvas.set_mask(st.mask_for(restored.mask_name, self.seed()))
        self.drawing.brush_spin.setValue(restored.brush)  # (its slot sets the state and the canvas)
        self._set_tool(restored.tool)
        self.drawing.check_tool(restored.tool)
        self.drawing.follow_check.setChecked(st.follow)
        self.means_check.setChecked(st.show_means)
        if restored.pending is None and self._started:
            self.load_index(st.index)
        if restored.pending is not None:
            st.pending = restored.pending
            st.follow_pending = None  # the drawing wins over the selection it was made from
            if self._started:
                self._apply_pending()

    def _apply_pending(self) -> None:
        """Put a drawing restored from a session on the canvas (after the lab's own first load of its digit)."""
        drawing = self.state.take_pending()
        if drawing is None:
            return
        self.canvas.set_image(drawing.image)
        self.canvas.set_mask(drawing.mask)
        self.state.restart_drawing_steps()
        self.state.set_phi(drawing.phi, drawing.phi_name)
        self._render_phi()
        self._elbo_timer_start()
