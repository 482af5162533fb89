"""The Discrete latents lab: the lecture's "30 binary latent features, 2^30 terms" made literal.

A binary latent factor model (z in {0,1}^K, x | z Bernoulli with logits W z + b; its own model, the bundled K = 20
one or one trained here) and the selected digit: the exact log p(x) by enumerating all 2^K configurations, the
histogram of log p(x, z) over them with where uniform and q samples land, the top configurations, the exact
marginals beside q's; the estimators' convergence against the exact value; what enumeration costs as K grows; and
training for any K from 1 to 30. The state, the computations and what is shown of them live in ``state`` (Qt-free);
the computations run in workers.
"""

from __future__ import annotations

import csv

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox, QVBoxLayout, QWidget

from app.labs.discrete.explanation import EXPLANATION
from app.labs.discrete.panels import CostPanel, EstimatorPanel, ExactPanel, HeaderPanel, TrainPanel
from app.labs.discrete.state import (
    Analysis,
    DiscreteSettings,
    DiscreteState,
    Progress,
    TrainHistory,
    TrainUpdate,
    analyse_steps,
    analysis_text,
    binarize,
    convergence_job,
    cost_ks,
    cost_steps,
    enumerating_text,
    estimator_ks,
    export_rows,
    fresh_model,
    load_bundled,
    progress_text,
    train_job,
    trained_model_info,
    why_not,
)
from app.widgets.lab_view import LabView
from app.widgets.steady_tabs import SteadyTabWidget
from lvm.errors import SessionError
from lvm.io import atomic_open_text


class DiscreteLab(LabView):
    name = "discrete"
    title = "Discrete latents lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.state = DiscreteState()
        self.active = False

        self.header = HeaderPanel()
        # (the widgets the tests drive)
        self.model_label, self.exact_label = self.header.model_label, self.header.exact_label
        self.progress, self.stop_button = self.header.progress, self.header.stop_button
        self.stop_button.clicked.connect(self.stop_analysis)

        self.tabs = SteadyTabWidget()
        self.tabs.setObjectName("discrete-tabs")
        self.exact = ExactPanel()
        self.estimators = EstimatorPanel()
        self.cost = CostPanel()
        self.train = TrainPanel()
        self.panels: dict[str, ExactPanel | EstimatorPanel | CostPanel | TrainPanel] = {
            "exact": self.exact,
            "estimators": self.estimators,
            "cost": self.cost,
            "train": self.train,
        }
        for p in self.panels.values():
            self.tabs.addTab(p, p.title)
        self.tabs.currentChanged.connect(self._on_tab)

        content = QWidget()
        col = QVBoxLayout(content)
        col.setContentsMargins(4, 4, 4, 4)
        col.addWidget(self.header)
        col.addWidget(self.tabs, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.with_explanation(content))

        # the settings: each box writes its field of state.settings
        self.setting_boxes: dict[str, QSpinBox | QDoubleSpinBox] = {
            "repeats": self.estimators.repeats,
            "kmax": self.estimators.kmax,
            "seed": self.estimators.seed,
            "train_k": self.train.k,
            "epochs": self.train.epochs,
            "lr": self.train.lr,
            "samples": self.train.samples,
            "train_seed": self.train.seed,
        }
        for key, box in self.setting_boxes.items():
            box.valueChanged.connect(lambda v, k=key: setattr(self.state.settings, k, v))
        self.estimators.run_button.clicked.connect(self.run_convergence)
        for s in (self.estimators.repeats, self.estimators.seed, self.estimators.kmax):
            s.valueChanged.connect(lambda _=None: self._convergence_inputs_changed())
        self.cost.run_button.clicked.connect(self.run_cost)
        self.train.train_button.clicked.connect(self.start_training)
        self.train.stop_button.clicked.connect(self.stop_training)
        self.train.bundled_button.clicked.connect(self.use_bundled)

        self.header.sample_seed.valueChanged.connect(lambda v: self.workspace.set_seed(self.name, v))
        self._show_seed()

        ev = workspace.events
        ev.selection.connect(self._on_selection)
        ev.dataset.connect(self._on_dataset)
        ev.seeds.connect(self._on_seeds)

    def _show_seed(self) -> None:
        box = self.header.sample_seed
        box.blockSignals(True)
        box.setValue(min(self.workspace.seed(self.name), box.maximum()))
        box.blockSignals(False)

    def _on_seeds(self, name) -> None:
        """The samples' seed changed (its box, or a restored session): show it, draw the samples again with it."""
        if name not in (self.name, "global"):
            return
        self._show_seed()
        if self.active and self.state.model is not None and self.workspace.selected_x is not None:
            self.request_analysis()
        else:
            self.state.stale = True

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        self.active = True
        if not self.state.loaded:
            self.use_bundled()
            return
        if self._select_first_if_none():
            return
        if self.state.stale:
            self.request_analysis()
        else:
            self._on_tab(self.tabs.currentIndex())

    def deactivate(self) -> None:
        self.active = False
        for what in ("exact", "convergence", "cost"):  # training keeps going while the lab is hidden
            self.runner.cancel(self.channel(what))

    def is_busy(self) -> bool:
        return any(self.runner.is_busy(self.channel(w)) for w in ("exact", "convergence", "cost"))

    def is_training(self) -> bool:
        return self.runner.is_busy(self.channel("train"))

    def _on_tab(self, index: int) -> None:
        self.state.settings.panel = list(self.panels)[index]
        if not self.active or self.state.analysis is None:
            return
        w = self.tabs.currentWidget()
        if (
            w is self.estimators
            and self.state.convergence is None
            and not self.runner.is_busy(self.channel("convergence"))
        ):
            self.run_convergence()
        elif w is self.cost and self.state.cost is None and not self.runner.is_busy(self.channel("cost")):
            self.run_cost()

    # -- the model ---------------------------------------------------------------------------------------------------
    def use_bundled(self) -> None:
        model, info, source = load_bundled()
        if model is None:
            self.workspace.message(f"Discrete latents lab: {source}")
            if self.state.model is None:
                self.set_model(fresh_model(8), {}, "untrained K = 8 model")
            self.state.loaded = True
            return
        self.set_model(model, info, source)

    def set_model(
        self, model, info: dict, source: str, trained_here: bool = False, model_data: str | None = None
    ) -> None:
        self.runner.cancel(self.channel("exact"))
        self.runner.cancel(self.channel("convergence"))
        self.runner.cancel(self.channel("cost"))
        self.state.set_model(model, info, source, trained_here, model_data)
        self.model_label.setText(self.state.describe_model())
        self.exact.clear()
        self.estimators.clear()
        self.cost.clear()
        if self.active and not self._select_first_if_none():
            self.request_analysis()

    # -- the exact analysis of the selected x ------------------------------------------------------------------------
    def why_not(self) -> str:
        data = self.workspace.data
        return why_not(None if data is None else data.x, self.workspace.selected_x is not None)

    def request_analysis(self) -> None:
        why, model = self.why_not(), self.state.model
        x, index = self.workspace.selected_x, self.workspace.selected_index
        if why or model is None or x is None:
            self.exact_label.setText(why)
            return
        self.state.stale = False
        self.state.clear_results()
        self.estimators.clear()
        self.header.show_digit(binarize(x))
        table, seed = self.state.cached_table(), self.workspace.seed("discrete")
        self.exact_label.setText(enumerating_text(index, model.latent_dim))
        self.progress.setValue(0)
        self.stop_button.setEnabled(True)
        self.runner.submit(
            self.channel("exact"),
            lambda: analyse_steps(model, x, index, table, seed),
            on_snapshot=lambda item: self._on_analysis_item(item, model),
            keep_all=True,
            on_done=lambda: QTimer.singleShot(0, self, self._update_stop_button),
        )

    def _update_stop_button(self) -> None:
        self.stop_button.setEnabled(self.runner.is_busy(self.channel("exact")))

    def stop_analysis(self) -> None:
        if self.runner.is_busy(self.channel("exact")):
            self.runner.cancel(self.channel("exact"))
            self.state.stale = True
            self.exact_label.setText(self.exact_label.text() + " — stopped.")

    def _on_analysis_item(self, item, model) -> None:
        if model is not self.state.model:
            return
        if isinstance(item, Progress):
            self.progress.setValue(int(1000 * item.fraction))
            self.exact_label.setText(progress_text(self.workspace.selected_index, item))
            return
        if isinstance(item, Analysis):
            if item.index != self.workspace.selected_index:
                return
            self.state.analysis = item
            self.progress.setValue(1000)
            self.exact_label.setText(analysis_text(item))
            self.exact.show_analysis(item)
            self._on_tab(self.tabs.currentIndex())
            return
        self.state.table = item  # a ZTable built for this model

    # -- convergence -------------------------------------------------------------------------------------------------
    def _convergence_inputs_changed(self) -> None:
        self.runner.cancel(self.channel("convergence"))
        self.state.convergence = None
        if self.active and self.tabs.currentWidget() is self.estimators:
            self.run_convergence()

    def run_convergence(self) -> None:
        a, model, st = self.state.analysis, self.state.model, self.state.settings
        if a is None or model is None:
            self.estimators.status.setText(self.why_not() or "waiting for the exact sum…")
            return
        self.estimators.clear()
        ks, repeats, seed = estimator_ks(st.kmax), st.repeats, st.seed
        self.estimators.status.setText(f"computing {repeats} repeats × {max(ks):,} samples per estimator…")

        def show(snap):
            if self.state.analysis is a:
                self.state.convergence = snap
                self.estimators.show_snapshot(snap, a)

        self.runner.submit(
            self.channel("convergence"), lambda: convergence_job(model, a, ks, repeats, seed), on_snapshot=show
        )

    # -- cost --------------------------------------------------------------------------------------------------------
    def run_cost(self) -> None:
        a, model = self.state.analysis, self.state.model
        if a is None or model is None:
            self.cost.status.setText(self.why_not() or "waiting for the exact sum…")
            return
        self.cost.clear()
        ks = cost_ks(model)
        self.cost.status.setText("measuring…")

        def show(curve):
            if self.state.model is model:
                self.state.cost = curve
                self.cost.show_curve(curve, len(ks))

        self.runner.submit(self.channel("cost"), lambda: cost_steps(model, a.x, ks), on_snapshot=show)

    # -- training ----------------------------------------------------------------------------------------------------
    def start_training(self) -> None:
        data = self.workspace.data
        if data is None or data.x.shape[1] != 784:
            self.workspace.message(
                "Discrete latents lab: training needs a data set of 28 × 28 images. " + self.why_not()
            )
            return
        if self.is_training():
            return
        st, x = self.state.settings, data.x
        k, epochs, lr, samples, seed = st.train_k, st.epochs, st.lr, st.samples, st.train_seed
        history = self.state.train_history = TrainHistory()
        self.train.reset()
        self.train.set_running(True)
        self.train.status.setText(f"training K = {k} on {len(x):,} images…")

        def on_update(update: TrainUpdate) -> None:
            history.add(update.snapshot)
            self.train.show_history(history, update.snapshot)
            if update.model is not None:
                info, source = trained_model_info(update.snapshot, len(x))
                self.set_model(update.model, info, source, trained_here=True)

        self.runner.submit(
            self.channel("train"),
            lambda token: train_job(k, x, epochs, lr, samples, seed, token),
            on_snapshot=on_update,
            on_done=lambda: self.train.set_running(False),
            keep_all=True,
        )

    def stop_training(self) -> None:
        self.runner.cancel(self.channel("train"))
        self.train.status.setText("stopped; the previous model is kept")

    def toggle_run(self) -> bool:
        """The shown panel's computation: train (the train panel) or the estimators' convergence; stop it when it
        runs. The exact sum and the cost panel compute by themselves: nothing to run there."""
        if self.tabs.currentWidget() is self.train:
            if self.is_training():
                self.stop_training()
            else:
                self.start_training()
            return True
        if self.tabs.currentWidget() is self.estimators:
            if self.runner.is_busy(self.channel("convergence")):
                self.runner.cancel(self.channel("convergence"))
            else:
                self.run_convergence()
            return True
        return False

    # -- workspace events --------------------------------------------------------------------------------------------
    def _on_selection(self, index) -> None:
        self.runner.cancel(self.channel("exact"))
        self.runner.cancel(self.channel("convergence"))
        self.state.clear_results()
        self.state.stale = True
        if index is None:
            self._select_first_if_none()
            return
        if self.active and self.state.loaded:
            self.request_analysis()

    def _on_dataset(self, _ds) -> None:
        self.exact.clear()
        self.estimators.clear()
        self.state.stale = True

    # -- export and sessions -----------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        a = self.state.analysis
        if a is None:
            raise ValueError("nothing computed yet: select a digit and wait for the exact sum")
        with atomic_open_text(path) as fh:
            csv.writer(fh).writerows(export_rows(a))

    def session_losses(self) -> list[str]:
        """What a session saved now would not keep (the main window asks the user before saving)."""
        losses = []
        if self.is_training():
            losses.append(
                "training is running in the Discrete latents lab: the session keeps the model from before this run "
                "(stop training first, or save when it has finished)"
            )
        _, problem = self.state.model_data()
        if problem:
            losses.append(problem)
        return losses

    def view_state(self) -> dict:
        return self.state.to_dict()

    def restore_view_state(self, state: dict) -> None:
        """The settings, and the session's model: one trained here (embedded), else the bundled one."""
        try:
            settings = DiscreteState.settings_from_dict(state)
            restored = DiscreteState.model_from_dict(state)
        except SessionError as exc:
            self.workspace.message(f"Discrete latents lab: the session's state was not restored ({exc})")
            return
        self._show_settings(settings)
        if restored is not None:
            self.set_model(*restored)
        elif self.state.trained_here:
            self.use_bundled()

    def _show_settings(self, settings: DiscreteSettings) -> None:
        self.state.settings = settings
        for key, box in self.setting_boxes.items():
            was = box.blockSignals(True)
            box.setValue(getattr(settings, key))
            box.blockSignals(was)
        self.train.update_objective()
        self.tabs.setCurrentWidget(self.panels[settings.panel])
