"""The Inference lab: how good are the ELBO and Monte Carlo estimates of log p(x), seen against the exact answer.

Panels (tabs): KL gap explorer, the 1-D picture, estimator convergence, Jensen made visible, ELBO vs log p(x).
The lab owns what they share: its Qt-free ``state`` (``app.labs.inference.state``: the x analysed, q, the panels'
settings), the model's decoded coarse latent grid (``context``, once per model and data set) and the exact posterior
of the selected x (``picture``, computed in a worker on every selection). It listens to the workspace's selection /
model / dataset events and never calls other labs. The maths is in ``lvm`` (``lvm.posterior_grid``,
``lvm.gaussian_q``, ``lvm.estimators.convergence``, ``lvm.estimators.encoder_gap``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout

from app.labs.inference.estimators_panel import ConvergencePanel, JensenPanel
from app.labs.inference.explanation import EXPLANATION
from app.labs.inference.kl_panel import KLGapPanel
from app.labs.inference.onedim_panel import OneDPanel
from app.labs.inference.plots import drawn_posterior
from app.labs.inference.scatter_panel import ScatterPanel
from app.labs.inference.slice_panel import SlicePanel
from app.labs.inference.state import InferenceState, analysis_problem, is_sliced
from app.widgets.lab_view import LabView
from app.widgets.steady_tabs import SteadyTabWidget
from lvm.errors import SessionError
from lvm.posterior_grid import CoarseGrid
from lvm.threads import single_thread


class InferenceLab(LabView):
    name = "inference"
    title = "Inference lab"
    explanation = EXPLANATION

    picture_changed = Signal(object)

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.state = InferenceState()
        self.context: CoarseGrid | None = None
        self.picture = None
        self.reference = None  # d > 2: q* and log p(x) by AIS for the selected x (lvm.posterior_slice.SliceReference)
        self.reference_options: dict[str, int] = {}  # slice_reference_steps' options (VI steps, AIS chains and steps)
        self.contours: tuple = ()  # the picture's HPD contours (segment endpoints), traced in the worker
        self.active = False
        self.refresh_ms: list[float] = []  # selection -> exact posterior shown, for measurement
        self._t_select: float | None = None

        self.tabs = SteadyTabWidget()
        self.tabs.setObjectName("inference-tabs")
        self.kl = KLGapPanel(self)
        self.slice = SlicePanel(self)
        self.onedim = OneDPanel(self)
        self.convergence = ConvergencePanel(self)
        self.jensen = JensenPanel(self)
        self.scatter = ScatterPanel(self)
        self.panels: dict[str, Any] = {
            "kl": self.kl,
            "slice": self.slice,
            "onedim": self.onedim,
            "convergence": self.convergence,
            "jensen": self.jensen,
            "scatter": self.scatter,
        }
        for p in self.panels.values():
            self.tabs.addTab(p, p.title)
        self.x_cards = [p.card for p in self.panels.values() if hasattr(p, "card")]  # every panel analysing the x
        self._show_tabs_for_model()
        self.tabs.currentChanged.connect(self._on_tab)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.with_explanation(self.tabs))

        ev = workspace.events
        ev.selection.connect(self._on_selection)
        ev.model.connect(self._on_model)
        ev.dataset.connect(self._on_dataset)
        self.state.select(workspace.selected_index)
        self.show_x()

    # -- what can be computed --------------------------------------------------------------------------------------
    def can_compute(self) -> bool:
        return not self.why_not()

    def why_not(self) -> str:
        """What stops the lab from analysing the selected x ("" when nothing does)."""
        ws = self.workspace
        return analysis_problem(ws.model, ws.data, ws.selected_index)

    def sliced(self) -> bool:
        """The model's latent space has more than 2 dimensions: a slice and AIS instead of quadrature."""
        return is_sliced(self.workspace.model)

    def log_px_reference(self) -> tuple[float, str] | None:
        """The selected x's log p(x) and what it is: exact by quadrature (d <= 2) or an AIS estimate (d > 2); None
        while it is being computed."""
        index = self.workspace.selected_index
        if self.sliced():
            ref = self.reference
            if ref is None or ref.stage != "done" or ref.index != index or ref.log_px is None:
                return None
            return ref.log_px, f"log p(x), AIS estimate ± {ref.log_px_se:.2f}"
        pic = self.picture
        if pic is None or pic.index != index:
            return None
        return pic.log_px, "exact log p(x) (quadrature)"

    def _show_tabs_for_model(self) -> None:
        """The KL gap explorer for a 2-D latent, its slice version for more dimensions."""
        sliced = self.sliced()
        shown, hidden = (self.slice, self.kl) if sliced else (self.kl, self.slice)
        was_current = self.tabs.currentWidget() in (self.kl, self.slice)
        self.tabs.setTabVisible(self.tabs.indexOf(shown), True)
        self.tabs.setTabVisible(self.tabs.indexOf(hidden), False)
        if was_current:
            self.tabs.setCurrentWidget(shown)

    def is_panel_visible(self, panel) -> bool:
        return self.active and self.tabs.currentWidget() is panel

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        self.active = True
        if self._select_first_if_none():
            return  # the selection event refreshes everything
        if self.kl.mean is None and not self.sliced():  # first shown: a restored session's q is kept
            self.kl.on_selection(keep_workspace_q=True)
        if self.sliced() and self.slice.mean is None:
            self.slice.on_selection()
        self.ensure_context()
        self._on_tab(self.tabs.currentIndex())

    def deactivate(self) -> None:
        self.active = False
        super().deactivate()

    def _on_tab(self, _index: int) -> None:
        self.state.panel = self.current_panel_name()
        w = self.tabs.currentWidget()
        if self.active and hasattr(w, "ensure"):
            w.ensure()

    # -- shared computations ---------------------------------------------------------------------------------------
    def ensure_context(self) -> None:
        ws = self.workspace
        if self.sliced():
            self.request_reference()
            return
        if self.context is not None or ws.model is None or ws.data is None:
            if self.context is not None and self.picture is None:
                self.request_picture()
            return
        if analysis_problem(ws.model, ws.data, 0):
            return
        model, data_x = ws.model, ws.data.x

        def done(ctx):
            if ws.model is model:
                self.context = ctx
                self.request_picture()
                if self.scatter.stale and self.is_panel_visible(self.scatter):
                    self.scatter.run()

        self.runner.submit(self.channel("context"), lambda: CoarseGrid.build(model, data_x), on_result=done)

    def request_picture(self) -> None:
        if self.context is None or not self.can_compute():
            return
        ctx, x, index = self.context, self.workspace.selected_x, self.workspace.selected_index

        def work():  # all cores: the fine grid's decoder pass is the GEMM-heavy part; workers run at a lower
            return drawn_posterior(ctx, x, index)  # priority than the GUI thread (app.core.workers)

        self.runner.submit(self.channel("posterior"), work, on_result=self._on_picture)

    def request_reference(self) -> None:
        """d > 2: the best Gaussian q* and log p(x) by AIS for the selected x, in a worker (progress shown)."""
        if not self.can_compute():
            return
        index = self.workspace.selected_index
        ref = self.reference
        if (
            ref is not None
            and ref.index == index
            and (ref.stage == "done" or self.runner.is_busy(self.channel("reference")))
        ):
            return
        from lvm.posterior_slice import slice_reference_steps

        model, x = self.workspace.model, self.workspace.selected_x

        def on_snapshot(snap) -> None:
            if snap.index != self.workspace.selected_index or self.workspace.model is not model:
                return
            if snap.stage == "done":
                self.reference = snap
            self.slice.on_reference(snap)
            if snap.stage == "done":
                cur = self.tabs.currentWidget()
                if hasattr(cur, "ensure") and self.active:
                    cur.ensure()

        def work():
            with single_thread():  # (two threads beside the GUI thread's drawing cost more than they gain here)
                yield from slice_reference_steps(model, x, index, **self.reference_options)

        self.runner.submit(self.channel("reference"), work, on_snapshot=on_snapshot)

    def _on_picture(self, result) -> None:
        pic, contours = result
        if pic.index != self.workspace.selected_index or self.context is None:
            return
        self.picture, self.contours = pic, contours
        self.kl.on_picture(pic, contours)
        self.picture_changed.emit(pic)
        cur = self.tabs.currentWidget()
        if hasattr(cur, "ensure") and self.active:
            cur.ensure()
        if self._t_select is not None:
            self.refresh_ms.append((time.perf_counter() - self._t_select) * 1000)
            self._t_select = None

    # -- workspace events ------------------------------------------------------------------------------------------
    def show_x(self) -> None:
        """Every panel analysing the selected x shows it: its image, index and label."""
        ws = self.workspace
        data, index = ws.data, ws.selected_index
        x = None if data is None or index is None else data.x[index]
        label = None if x is None or data.y is None else int(data.y[index])
        shape = None if ws.dataset is None else ws.dataset.image_shape
        for card in self.x_cards:
            card.set_point(x, shape, index, label)

    def _on_selection(self, index) -> None:
        self._t_select = time.perf_counter()
        self.state.select(index)
        self.show_x()
        self.picture = None
        self.reference = None
        self.runner.cancel(self.channel("posterior"))
        self.runner.cancel(self.channel("reference"))
        if self.sliced():
            self.slice.on_selection()
        else:
            self.kl.on_new_x()
        for p in (self.convergence, self.jensen):
            p.stale = True
            self.runner.cancel(self.channel(p.chan))
            p.clear()
        self.scatter.show_selection()
        if index is None and self._select_first_if_none():
            return
        if self.active:
            if self.context is None:
                self.ensure_context()
            else:
                self.request_picture()

    def _reset_model_data(self) -> None:
        self.runner.cancel(self.name + "/")
        self.context = None
        self.picture = None
        self.reference = None
        self._show_tabs_for_model()
        self.show_x()
        for p in (self.convergence, self.jensen, self.scatter):
            p.stale = True
            p.clear()
        self.kl.on_selection()
        self.slice.on_selection()
        if self.active and not self._select_first_if_none():
            self.ensure_context()

    def _on_model(self, _model) -> None:
        self._reset_model_data()

    def _on_dataset(self, _ds) -> None:
        self._reset_model_data()

    # -- export and state ------------------------------------------------------------------------------------------
    def current_panel_name(self) -> str:
        w = self.tabs.currentWidget()
        return next(k for k, p in self.panels.items() if p is w)

    def set_panel(self, name: str) -> None:
        if name in ("kl", "slice"):  # (a session saved with a model of another latent dimension)
            name = "slice" if self.sliced() else "kl"
        if name in self.panels:
            self.tabs.setCurrentWidget(self.panels[name])

    def export_csv(self, path: str) -> None:
        self.panels[self.current_panel_name()].export_csv(path)

    # -- animation (File → Export animation…: app.widgets.animation_export) -------------------------------------------
    def animation_problem(self) -> str | None:
        if not self.state.q_path:
            return (
                "q has not been optimised for this x yet: press 'q = best Gaussian (optimise)' in the KL gap "
                "explorer, then export its path"
            )
        if self.kl.is_optimising():
            return "q is being optimised: wait for it (or stop it) to export its path"
        if not self.can_compute():
            return self.why_not()
        return None

    def animation_frame_count(self) -> int:
        return len(self.state.q_path)

    def animation_frames(self) -> Iterator[str]:
        """The KL gap explorer at each snapshot of q's last optimisation (ellipse, fields, ELBO + KL bar), then back
        to the q and the panel the user had."""
        path, panel, kept = list(self.state.q_path), self.current_panel_name(), self.state.q()
        self.set_panel("kl")
        try:
            for s in path:
                self.kl.set_q(s.mean, s.tril, publish=False)
                value = self.kl.settle_elbo()
                elbo = "" if value is None else f", ELBO(q) = {value:.2f} nats"
                yield f"{self.title}, q = best Gaussian: optimisation step {s.step} of {path[-1].step}{elbo}"
        finally:
            if kept is not None:
                self.kl.set_q(*kept, publish=False)
            self.set_panel(panel)

    def view_state(self) -> dict:
        return self.state.to_dict()

    def restore_view_state(self, state: dict) -> None:
        """A session's settings (``InferenceState.from_dict``); a damaged entry is reported and changes nothing."""
        if not state:
            return
        try:
            restored = InferenceState.from_dict(state)
        except SessionError as exc:
            self.workspace.message(f"The session's Inference lab settings were not restored: {exc}")
            return
        before = self.state
        self.state = self.state.with_settings_of(restored)
        for panel in (self.onedim, self.convergence, self.jensen, self.scatter):
            panel.show_settings()
        for key, panel in (("convergence", self.convergence), ("jensen", self.jensen), ("scatter", self.scatter)):
            if getattr(before, key) != getattr(self.state, key):
                panel.invalidate()  # (what it showed was computed with the settings before)
        self.set_panel(restored.panel)

    def is_running(self) -> bool:
        name = self.current_panel_name()
        panel = self.panels[name]
        if name in ("kl", "slice", "onedim"):
            return bool(panel.is_optimising())
        return self.runner.is_busy(self.channel(panel.chan))

    def toggle_run(self) -> bool:
        """The shown panel's computation: optimise q (KL explorer, 1-D picture) or (re)compute the estimates; stop it
        when it runs."""
        name = self.current_panel_name()
        if name in ("kl", "slice", "onedim"):
            self.panels[name].toggle_optimise()
            return True
        panel = self.panels[name]
        if self.runner.is_busy(self.channel(panel.chan)):
            self.runner.cancel(self.channel(panel.chan))
            panel.stale = True
        else:
            panel.run()
        return True
