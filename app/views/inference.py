"""The Inference lab: how good are the ELBO and Monte Carlo estimates of log p(x), seen against the exact answer.

Panels (tabs): KL gap explorer, the 1-D picture, estimator convergence, Jensen made visible, ELBO vs log p(x).
The lab owns what they share: the model's decoded coarse latent grid (``context``, once per model and data set) and
the exact posterior of the selected x (``picture``, computed in a worker on every selection). It listens to the
workspace's selection / model / dataset events and never calls other labs.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QTabWidget, QVBoxLayout

from app.views.base import LabView
from app.views.inference_compute import LatentContext, posterior_picture
from app.views.inference_estimators import ConvergencePanel, JensenPanel
from app.views.inference_kl import KLGapPanel
from app.views.inference_onedim import OneDPanel
from app.views.inference_scatter import ScatterPanel

EXPLANATION = r"""
<h3>Inference: how well do we know log p(x)?</h3>
<p><b>The marginal likelihood</b> is an integral over the latent $z$:
<br>&nbsp;&nbsp;$p(x) = \int\, p(x \mid z)\, p(z)\, dz$.
<br>With a 2-D latent it is computed here <i>exactly</i> by quadrature on a grid
($\log p(x) = \log V$ $+\ \mathrm{logsumexp}_g$ $[\log p(x \mid z_g) + \log p(z_g)]$).</p>
<p><b>Naive Monte Carlo</b> draws $z_i$ without looking at $x$ (uniform on a box, or from the prior):
<br>&nbsp;&nbsp;$$p(x) \approx \frac{1}{k} \sum_{i=1}^{k} p(x \mid z_i)$$, $z_i \sim p(z)$.
<br>Almost every sample misses the tiny region where $p(z \mid x)$ lives, so it needs astronomically many samples.</p>
<p><b>Importance sampling</b> draws from a proposal $q(z)$ close to the posterior and reweights:
<br>&nbsp;&nbsp;$$\hat{p}(x) = \frac{1}{k} \sum_{i=1}^{k} w_i$$, $$w_i = \frac{p(x \mid z_i)\, p(z_i)}{q(z_i)}$$, $z_i \sim q$.
<br>$\mathbb{E}_q[\hat{p}(x)] = p(x)$: unbiased. The effective sample size
$\mathrm{ESS} = (\sum_i w_i)^2 / \sum_i w_i^2$ says how many samples really count.</p>
<p><b>Jensen's inequality</b>: $\log$ is concave, so
<br>&nbsp;&nbsp;$\mathcal{L}_k = \mathbb{E}[\log \hat{p}(x)]$ $\leq \log \mathbb{E}[\hat{p}(x)] = \log p(x)$.
<br>$\mathcal{L}_k$ is the IWAE bound; it rises with $k$ towards $\log p(x)$.</p>
<p><b>The ELBO</b> is the case $k = 1$:
<br>&nbsp;&nbsp;$\mathrm{ELBO}(q) = \mathbb{E}_q[\log p(x \mid z)]$ $-\ \mathrm{KL}(q(z)\, \Vert\, p(z))$ $= \mathbb{E}_q[\log p(x, z) - \log q(z)]$.</p>
<p><b>The gap</b> is exactly a KL divergence:
<br>&nbsp;&nbsp;$\log p(x) = \mathrm{ELBO}(q)$ $+\ \mathrm{KL}(q(z)\, \Vert\, p(z \mid x))$.
<br>Maximising the ELBO over $q$ minimises this <i>reverse</i> KL, which is mode seeking.
The encoder $q_\phi(z \mid x)$ is one amortised guess; the best Gaussian $q^*$ closes part of the gap
(amortisation gap); what remains is the approximation gap.</p>
<p><b>Numbers</b>: in the KL explorer the ELBO uses $16 \times 16$ Gauss-Hermite nodes in $q$'s own coordinates;
$\log p(x)$ comes from a coarse grid over the latent box plus a fine grid on the posterior's support.</p>
"""


class InferenceLab(LabView):
    name = "inference"
    title = "Inference lab"
    explanation = EXPLANATION

    picture_changed = Signal(object)

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.context: LatentContext | None = None
        self.picture = None
        self.active = False
        self.refresh_ms: list[float] = []  # selection -> exact posterior shown, for measurement
        self._t_select: float | None = None

        self.tabs = QTabWidget()
        self.tabs.setObjectName("inference-tabs")
        self.kl = KLGapPanel(self)
        self.onedim = OneDPanel(self)
        self.convergence = ConvergencePanel(self)
        self.jensen = JensenPanel(self)
        self.scatter = ScatterPanel(self)
        self.panels = {"kl": self.kl, "onedim": self.onedim, "convergence": self.convergence,
                       "jensen": self.jensen, "scatter": self.scatter}
        for p in self.panels.values():
            self.tabs.addTab(p, p.title)
        self.tabs.currentChanged.connect(self._on_tab)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.with_explanation(self.tabs))

        ev = workspace.events
        ev.selection.connect(self._on_selection)
        ev.model.connect(self._on_model)
        ev.dataset.connect(self._on_dataset)

    # -- what can be computed --------------------------------------------------------------------------------------
    def can_compute(self) -> bool:
        ws = self.workspace
        return (ws.model is not None and ws.data is not None and ws.selected_x is not None
                and int(getattr(ws.model, "latent_dim", 0)) == 2 and ws.data.x.shape[1] == getattr(ws.model, "data_dim", -1))

    def why_not(self) -> str:
        ws = self.workspace
        if ws.model is None:
            return "Open or train a model (File → Open model…) to see its posteriors."
        if ws.data is None:
            return "Load a data set first."
        if int(getattr(ws.model, "latent_dim", 0)) != 2:
            return (f"This model has a {ws.model.latent_dim}-D latent space; exact posteriors by quadrature need a 2-D "
                    "latent. Open a 2-D VAE.")
        if ws.data.x.shape[1] != getattr(ws.model, "data_dim", -1):
            return (f"The model expects {ws.model.data_dim} features but the data set has {ws.data.x.shape[1]}; "
                    "load matching data.")
        if ws.selected_x is None:
            return "Select a data point."
        return ""

    def is_panel_visible(self, panel) -> bool:
        return self.active and self.tabs.currentWidget() is panel

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        self.active = True
        if self._select_first_if_none():
            return  # the selection event refreshes everything
        if self.kl.mean is None:
            self.kl.on_selection()
        self.ensure_context()
        self._on_tab(self.tabs.currentIndex())

    def deactivate(self) -> None:
        self.active = False
        super().deactivate()

    def _on_tab(self, _index: int) -> None:
        w = self.tabs.currentWidget()
        if self.active and hasattr(w, "ensure"):
            w.ensure()

    # -- shared computations ---------------------------------------------------------------------------------------
    def ensure_context(self) -> None:
        ws = self.workspace
        if self.context is not None or ws.model is None or ws.data is None:
            if self.context is not None and self.picture is None:
                self.request_picture()
            return
        if int(getattr(ws.model, "latent_dim", 0)) != 2 or ws.data.x.shape[1] != getattr(ws.model, "data_dim", -1):
            return
        model, data_x = ws.model, ws.data.x

        def done(ctx):
            if ws.model is model:
                self.context = ctx
                self.request_picture()
                if self.scatter.stale and self.is_panel_visible(self.scatter):
                    self.scatter.run()

        self.runner.submit(self.channel("context"), lambda: LatentContext.build(model, data_x), on_result=done)

    def request_picture(self) -> None:
        if self.context is None or not self.can_compute():
            return
        ctx, x, index = self.context, self.workspace.selected_x, self.workspace.selected_index

        def work():  # all cores: the fine grid's decoder pass is the GEMM-heavy part; workers run at a lower
            return posterior_picture(ctx, x, index)  # priority than the GUI thread (app.workers)

        self.runner.submit(self.channel("posterior"), work, on_result=self._on_picture)

    def _on_picture(self, pic) -> None:
        if pic.index != self.workspace.selected_index or self.context is None:
            return
        self.picture = pic
        self.kl.on_picture(pic)
        self.picture_changed.emit(pic)
        cur = self.tabs.currentWidget()
        if hasattr(cur, "ensure") and self.active:
            cur.ensure()
        if self._t_select is not None:
            self.refresh_ms.append((time.perf_counter() - self._t_select) * 1000)
            self._t_select = None

    # -- workspace events ------------------------------------------------------------------------------------------
    def _on_selection(self, index) -> None:
        self._t_select = time.perf_counter()
        self.picture = None
        self.runner.cancel(self.channel("posterior"))
        self.kl.on_selection()
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
        for p in (self.convergence, self.jensen, self.scatter):
            p.stale = True
            p.clear()
        self.kl.on_selection()
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
        if name in self.panels:
            self.tabs.setCurrentWidget(self.panels[name])

    def export_csv(self, path: str) -> None:
        self.tabs.currentWidget().export_csv(path)

    def view_state(self) -> dict:
        return {"panel": self.current_panel_name(), "onedim": self.onedim.state(),
                "convergence": self.convergence.state(), "jensen": self.jensen.state(),
                "scatter": self.scatter.state()}

    def restore_view_state(self, state: dict) -> None:
        if not isinstance(state, dict):
            return
        for key in ("onedim", "convergence", "jensen", "scatter"):
            st = state.get(key)
            if isinstance(st, dict):
                self.panels[key].restore(st)
        panel = state.get("panel")
        if isinstance(panel, str):
            self.set_panel(panel)
