"""The Inpainting lab: draw or load a digit, hide part of it, and see the exact posterior and completions live.

The model's decoder is evaluated once on a latent grid (a worker builds ``lvm.inpainting.InpaintGrid``); then every
pen stamp is a few matrix-vector products (~1-15 ms), run directly on the GUI thread and coalesced so that a burst
of mouse moves costs one update. The mean-field panel estimates ELBO(phi) for the lecture's presets and optimises
phi in a worker (cancellable).
"""

from __future__ import annotations

import csv
import time

import numpy as np
import pyqtgraph as pg
import shiboken6
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QProgressBar, QPushButton, QRadioButton, QSizePolicy, QSpinBox, QVBoxLayout,
                               QWidget)

from app.views.base import LabView, restore_spin
from app.views.inpainting_panels import (ElboChart, LocalPosterior, composite_rgb, image_view, needs_refit,
                                         posterior_mass_rect, set_rgb, tile_rgb)
from app.widgets.digit_canvas import DigitCanvas
from lvm.errors import LVMError
from lvm.threads import single_thread as one_thread
from lvm.inpainting import DEFAULT_SIZE, InpaintGrid, make_mask, meanfield_elbo, optimise_phi, preset_phi

MASK_CHOICES = ["top", "bottom", "left", "right", "random:0.5", "random:0.8", "none"]
PHI_NAMES = {"half": "φ = 0.5", "ones": "φ = 1", "template": "φ = a 9", "predictive": "φ = predictive",
             "optimised": "φ optimised"}
DEFAULT_INDEX = 12       # a 9 in the bundled MNIST test set
TEMPLATE_INDEX = 16      # another 9: the lecture's "phi close to 1 on the top of a 9"
GRID_SIZE = DEFAULT_SIZE
N_SAMPLES = 16
ELBO_SAMPLES = 256

EXPLANATION = r"""
<p>Observe part of an image, $x_O$ (the mask); the rest, $x_M$, is missing (shaded blue).
The decoder factorises over pixels, so the missing pixels integrate out exactly:</p>
<p>$$\log p(x_O \mid z) = \sum_{j \in O} x_j \log \sigma(l_j(z))$$ $+\ (1 - x_j) \log \sigma(-l_j(z))$</p>
<p>On a latent grid $z_g$ (decoded once) with cell area $V$:</p>
<ul>
<li><b>evidence</b> $\log p(x_O) = \log V$ $+\ \mathrm{logsumexp}_g$ $[\log p(x_O \mid z_g) + \log p(z_g)]$</li>
<li><b>posterior</b> $p(z \mid x_O) \propto p(x_O \mid z)\, p(z)$ (the heatmap; white dots: the samples' $z$)</li>
<li><b>predictive</b> $p(x_j = 1 \mid x_O) =$ $\sum_g p(z_g \mid x_O)\, \sigma(l_j(z_g))$ (orange in the missing region)</li>
<li><b>samples</b>: $z \sim p(z \mid x_O)$, then $x_j \sim \mathrm{Bernoulli}(\sigma(l_j(z)))$</li>
</ul>
<p>Each pen stroke costs two matrix-vector products for the posterior and one for the predictive.</p>
<h4>Mean-field q over the missing pixels</h4>
<p>$q(x_M; \phi) = \prod_i \phi_i^{x_i} (1 - \phi_i)^{1 - x_i}$</p>
<p>$\mathrm{ELBO}(\phi) = \mathbb{E}_q[\log p(x_O, x_M)]$ $+\ H(q) \leq \log p(x_O)$, and
$\log p(x_O) - \mathrm{ELBO}(\phi)$ $= \mathrm{KL}(q\, \Vert\, p(x_M \mid x_O))$.
The expectation uses sampled completions, each scored by its exact $\log p(x)$ (quadrature); $H(q)$ is closed form.</p>
<p>The lecture's question "is this a good q?": $\phi = 0.5$ everywhere (noise: no), $\phi = 1$ everywhere (a white
block: no), $\phi$ close to 1 on the top of a 9 (yes, for a 9). <b>Optimise &phi;</b> ascends the ELBO by
natural-gradient steps in logit space: with $\Delta_i(x) = \log p(x \mathrm{\ with\ } x_i = 1)$ $-\ \log p(x \mathrm{\ with\ } x_i = 0)$,
the gradient is exactly $\phi_i (1 - \phi_i) (\mathbb{E}_q[\Delta_i] - \mathrm{logit}\, \phi_i)$, so each step moves
$\mathrm{logit}\, \phi_i$ towards $\mathbb{E}_q[\Delta_i]$; the best $\phi$ seen (scored on common random numbers) is kept.</p>
"""


class InpaintingLab(LabView):
    name = "inpainting"
    title = "Inpainting lab"
    explanation = EXPLANATION
    optimise_steps = 150

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.grid: InpaintGrid | None = None
        self._grid_model = None
        self.result = None
        self.local_post = LocalPosterior()  # fine grid over the fitted posterior view
        self.phi: np.ndarray | None = None
        self.phi_name: str | None = None
        self.elbos: dict[str, tuple[float, float]] = {}
        self.log_p_obs: float | None = None
        self.update_ms: list[float] = []  # from the canvas change to the drawn completion, per update
        self.infer_ms = float("nan")
        self.n_updates = 0
        self._update_scheduled = False  # a coalescing single-shot is queued
        self._follow_pending: int | None = None  # a selection made while the lab was hidden
        self._started = False
        self._mask_name = "top"
        self._index = DEFAULT_INDEX
        self._restored_canvas = None  # (image, mask, phi, phi_name) from a session, put on the canvas when shown
        self._building = False
        self._build_ui()
        self.canvas.mask = make_mask(self._mask_name).reshape(28, 28)
        self._elbo_timer = QTimer(self)
        self._elbo_timer.setSingleShot(True)
        self._elbo_timer.setInterval(300)
        self._elbo_timer.timeout.connect(self.evaluate_elbos)
        ws = workspace.events
        ws.model.connect(self._on_model)
        ws.dataset.connect(self._on_dataset)
        ws.selection.connect(self._on_selection)

    # -- UI --------------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(4, 4, 4, 4)
        self.canvas = DigitCanvas()
        self.canvas.setObjectName("inpainting-canvas")
        self.canvas.changed.connect(self.schedule_update)
        self.canvas.stroke_finished.connect(self._elbo_timer_start)
        lv.addWidget(self.canvas, 1)

        tools = QGridLayout()
        self.tool_group = QButtonGroup(self)
        for i, (tool, text, tip) in enumerate([
                ("brush", "Brush", "draw ink (right button: erase)"),
                ("eraser", "Eraser", "erase ink (right button: draw)"),
                ("observe", "Paint observed", "mark pixels as observed (right button: hide)"),
                ("hide", "Paint missing", "mark pixels as missing (right button: observe)")]):
            b = QRadioButton(text)
            b.setToolTip(tip)
            b.setProperty("tool", tool)
            b.setChecked(tool == "brush")
            self.tool_group.addButton(b, i)
            tools.addWidget(b, i // 2, i % 2)
        self.tool_group.buttonClicked.connect(lambda b: setattr(self.canvas, "tool", b.property("tool")))
        lv.addLayout(tools)

        row = QHBoxLayout()
        row.addWidget(QLabel("size"))
        self.brush_spin = QDoubleSpinBox()
        self.brush_spin.setRange(0.5, 4.0)
        self.brush_spin.setSingleStep(0.25)
        self.brush_spin.setValue(self.canvas.brush_radius)
        self.brush_spin.setToolTip("brush radius in pixels")
        self.brush_spin.valueChanged.connect(lambda v: setattr(self.canvas, "brush_radius", float(v)))
        row.addWidget(self.brush_spin)
        clear = QPushButton("Clear ink")
        clear.clicked.connect(self.canvas.clear)
        row.addWidget(clear)
        lv.addLayout(row)

        row = QHBoxLayout()
        row.addWidget(QLabel("digit #"))
        self.index_spin = QSpinBox()
        self.index_spin.setRange(0, 0)
        self.index_spin.setToolTip("index in the current dataset split")
        self.index_spin.valueChanged.connect(self.load_index)
        row.addWidget(self.index_spin)
        self.follow_check = QCheckBox("follow selection")
        self.follow_check.setChecked(True)
        self.follow_check.setToolTip("load the image selected in the other labs")
        row.addWidget(self.follow_check)
        lv.addLayout(row)

        row = QHBoxLayout()
        row.addWidget(QLabel("missing:"))
        self.mask_combo = QComboBox()
        self.mask_combo.addItems(MASK_CHOICES)
        self.mask_combo.setToolTip("which pixels are hidden (then paint the mask to adjust)")
        self.mask_combo.textActivated.connect(self.set_mask_preset)
        row.addWidget(self.mask_combo, 1)
        lv.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lv.addWidget(self.status)

        # plots
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("w")
        self.glw.ci.setSpacing(4)
        self.completion_vb, self.completion_img = image_view(self.glw, 0, 0, "observed + predictive p(x<sub>j</sub>=1|x<sub>O</sub>)")
        self.samples_vb, self.samples_img = image_view(self.glw, 0, 1, f"{N_SAMPLES} sampled completions")
        self.glw.addLabel("posterior p(z | x<sub>O</sub>)", row=0, col=2)
        self.post_plot = self.glw.addPlot(row=1, col=2)
        self.post_plot.setLabel("bottom", "z<sub>1</sub>")
        self.post_plot.setLabel("left", "z<sub>2</sub>")
        self.post_plot.setAspectLocked(True)
        for ax in ("left", "bottom"):
            self.post_plot.getAxis(ax).enableAutoSIPrefix(False)  # a narrow posterior: plain z, not "(x0.001)"
        self.post_img = pg.ImageItem()
        self.post_img.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.post_plot.addItem(self.post_img)
        self.post_scatter = pg.ScatterPlotItem(size=7, pen=pg.mkPen("k"), brush=pg.mkBrush(255, 255, 255, 220))
        self.post_plot.addItem(self.post_scatter)
        self.phi_vb, self.phi_img = image_view(self.glw, 2, 0, "mean-field φ (missing pixels)")
        self.glw.addLabel("ELBO(φ) against log p(x<sub>O</sub>)", row=2, col=1, colspan=2)
        self.elbo_plot = self.glw.addPlot(row=3, col=1, colspan=2)
        self.chart = ElboChart(self.elbo_plot)
        self._phi_lut = pg.colormap.get("inferno").getLookupTable(nPts=256)

        header = QHBoxLayout()
        self.logp_label = QLabel("log p(x<sub>O</sub>) = …")
        self.logp_label.setObjectName("inpainting-logp")
        f = self.logp_label.font()
        f.setPointSizeF(f.pointSizeF() * 1.35)
        self.logp_label.setFont(f)
        self.logp_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # no relayout per update
        header.addWidget(self.logp_label, 1)
        self.means_check = QCheckBox("show p(x|z) means")
        self.means_check.setToolTip("show the decoder means p(x|z) of the sampled z instead of pixel samples")
        self.means_check.toggled.connect(lambda _: self._render())
        header.addWidget(self.means_check)

        mf = QGroupBox("Mean-field q(x_M; φ)")
        mfl = QHBoxLayout(mf)
        self.phi_buttons = {}
        for key in ("half", "ones", "template", "predictive"):
            b = QPushButton(PHI_NAMES[key])
            b.clicked.connect(lambda checked=False, k=key: self.set_phi_preset(k))
            mfl.addWidget(b)
            self.phi_buttons[key] = b
        self.phi_buttons["template"].setToolTip("φ = another test-set 9 clipped to [0.02, 0.98] over the missing pixels")
        self.optimise_button = QPushButton("Optimise φ")
        self.optimise_button.setToolTip("maximise ELBO(φ): natural-gradient steps logit φ ← logit φ + ρ(E_q[Δ] − logit φ)")
        self.optimise_button.clicked.connect(self.optimise)
        mfl.addWidget(self.optimise_button)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_optimise)
        mfl.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(140)
        mfl.addWidget(self.progress)
        self.elbo_label = QLabel("")
        self.elbo_label.setTextFormat(Qt.RichText)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(2, 2, 2, 2)
        rv.addLayout(header)
        rv.addWidget(self.glw, 1)
        rv.addWidget(mf)
        rv.addWidget(self.elbo_label)

        content = QWidget()
        h = QHBoxLayout(content)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(left, 3)
        h.addWidget(right, 7)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.with_explanation(content))

    # -- workspace -------------------------------------------------------------------------------------------------
    def activate(self) -> None:
        if not self._started:
            self._started = True
            self._on_dataset(self.workspace.dataset)
        if self.grid is None or self._grid_model is not self.workspace.model:
            self._on_model(self.workspace.model)
        if self._follow_pending is not None:
            index, self._follow_pending = self._follow_pending, None
            self.load_index(index)
        if self._restored_canvas is not None:
            self._apply_restored_canvas()

    def _image_data(self):
        data = self.workspace.data
        if data is None or data.x.shape[1] != 784:
            return None
        return data

    def _on_dataset(self, ds) -> None:
        data = self._image_data()
        if data is None:
            self.index_spin.setRange(0, 0)
            if ds is not None:
                self.status.setText("this lab needs 28 x 28 images; load the digits or an MNIST-layout folder")
            return
        self.index_spin.blockSignals(True)
        self.index_spin.setRange(0, len(data) - 1)
        self.index_spin.blockSignals(False)
        if self._started:
            self.load_index(min(self._index, len(data) - 1))

    def _on_selection(self, index) -> None:
        if index is None or not self.follow_check.isChecked() or self._image_data() is None:
            return
        if not self.isVisible():  # a hidden lab infers nothing: the digit is loaded when the lab is shown
            self._follow_pending = int(index)
            return
        self.load_index(int(index))

    def _on_model(self, model) -> None:
        self.runner.cancel(self.channel(""))
        self._building = False
        self._opt_finished()
        self.grid = None
        self.result = None  # it belonged to the old model
        self.local_post = LocalPosterior()
        self._grid_model = model
        if model is None:
            self.logp_label.setText("open a model (File → Open model…) to inpaint")
            return
        if getattr(model, "latent_dim", 0) not in (1, 2) or getattr(model.config, "decoder", "") != "bernoulli":
            self.logp_label.setText("exact inpainting needs a 1-D or 2-D latent model with a Bernoulli decoder")
            return
        if not self._started:
            return
        self.logp_label.setText("decoding the latent grid…")

        def build():
            return InpaintGrid.build(model, size=GRID_SIZE)

        def done():
            self._building = False

        self._building = True
        self.runner.submit(self.channel("grid"), build, on_result=self._grid_ready, on_finished=done,
                           on_error=lambda m: done())

    def _grid_ready(self, grid: InpaintGrid) -> None:
        if not self._alive():
            return
        if self._grid_model is not grid.model:
            return
        self.grid = grid
        self.status.setText(f"grid {grid.size}² over [{grid.box[0, 0]:.1f}, {grid.box[0, 1]:.1f}]"
                            f"{'²' if grid.latent_dim == 2 else ''}; tables {grid.nbytes / 1e6:.0f} MB, "
                            f"decoded in {grid.build_seconds * 1000:.0f} ms")
        self.update_now()
        if self.phi is None:
            self.set_phi_preset("template")
            return
        self.evaluate_elbos()

    # -- image and mask --------------------------------------------------------------------------------------------
    def load_index(self, index: int) -> None:
        data = self._image_data()
        if data is None or not 0 <= index < len(data):
            return
        self._index = int(index)
        if self.index_spin.value() != index:
            self.index_spin.blockSignals(True)
            self.index_spin.setValue(index)
            self.index_spin.blockSignals(False)
        self.canvas.set_image(data.x[index])
        self._elbo_timer_start()

    def set_mask_preset(self, name: str) -> None:
        try:
            mask = make_mask(name, seed=self.workspace.seed(self.name))
        except LVMError as exc:
            self.workspace.message(str(exc))
            return
        self._mask_name = name
        if self.mask_combo.currentText() != name:
            self.mask_combo.setCurrentText(name)
        self.phi, self.phi_name = None, None
        self.canvas.set_mask(mask)
        self._elbo_timer_start()

    @property
    def x(self) -> np.ndarray:
        return self.canvas.image.reshape(-1)

    @property
    def mask(self) -> np.ndarray:
        return self.canvas.mask.reshape(-1)

    # -- live update -----------------------------------------------------------------------------------------------
    def schedule_update(self) -> None:
        """Coalesce a burst of canvas changes into one update after the pending events are processed."""
        if self.runner.is_busy(self.channel("optimise")):
            self.cancel_optimise()  # its φ belongs to the image and mask it started from, which just changed
        if not self._update_scheduled:
            self._update_scheduled = True
            QTimer.singleShot(0, self.update_now)

    def is_updating(self) -> bool:
        """True from a canvas change until its completion is drawn."""
        return self._update_scheduled or self.runner.is_busy(self.channel("update")) \
            or self.runner.is_busy(self.channel("local"))

    def update_now(self) -> None:
        """Infer from what is drawn now, in the worker; the GUI thread only draws the result.

        Two channels, both "keep running" (a running job finishes and is drawn; only the newest request waits), so
        results flow while the pen moves: ``update`` computes the posterior on the grid, log p(x_O), the predictive
        and the samples (~10 ms); when the posterior left the fine heatmap's rectangle, ``local`` then decodes the
        new rectangle (48 x 48 decoder calls, ~100 ms on one thread) and the heatmap follows when it is ready."""
        self._update_scheduled = False
        if self.grid is None:
            return
        t0 = time.perf_counter()
        grid, x, mask, seed = self.grid, self.x.copy(), self.mask.copy(), self.workspace.seed(self.name)

        def job():
            gen = torch.Generator(device="cpu").manual_seed(seed)
            result = grid.infer(x, mask, n_samples=N_SAMPLES, generator=gen)
            rect = None
            if grid.latent_dim == 2:
                w = np.exp(result.log_post.cpu().numpy()).reshape(grid.shape)
                rect = posterior_mass_rect(w, grid.box.numpy())
            return result, rect, 1000 * (time.perf_counter() - t0)

        def done(out) -> None:
            if not self._alive() or grid is not self.grid:
                return
            self.result, rect, self.infer_ms = out
            self.log_p_obs = self.result.log_p_obs
            if rect is not None and needs_refit(self.local_post.rect, rect):
                self._refit_local(grid, rect)
            self._render()  # (the next update already runs in the worker: keep_running)
            self.update_ms.append(1000 * (time.perf_counter() - t0))
            del self.update_ms[:-50]
            self.n_updates += 1

        self.runner.submit(self.channel("update"), job, on_result=done, keep_running=True)

    def _refit_local(self, grid, rect) -> None:
        """Decode the fine heatmap's new rectangle in the worker; swap it in (and refit the view) when ready."""
        n = self.local_post.n

        def job():
            local = LocalPosterior(n)
            with one_thread():
                local.set_rect(grid, rect)
            return local

        def done(local) -> None:
            if not self._alive() or grid is not self.grid:
                return
            self.local_post = local
            self.post_plot.getViewBox().setRange(local.rect, padding=0)
            self._render()

        self.runner.submit(self.channel("local"), job, on_result=done, keep_running=True)

    def _render(self) -> None:
        r, grid = self.result, self.grid
        if r is None or grid is None:  # no result yet, or the model changed and its grid is being rebuilt
            return
        x, mask = self.x, self.mask
        pred = r.predictive.cpu().numpy()
        set_rgb(self.completion_vb, self.completion_img, composite_rgb(x, mask, pred))
        self.canvas.set_overlay(None)
        src = r.sample_means if self.means_check.isChecked() else r.samples
        tiles = [composite_rgb(x, mask, s) for s in src.cpu().numpy()]
        set_rgb(self.samples_vb, self.samples_img, tile_rgb(tiles, 4))
        if grid.latent_dim == 2 and self.local_post.rect is not None:
            dens = self.local_post.density(grid, x, mask)
            self.post_img.setImage(dens, autoLevels=False, levels=(0, 1))
            self.post_img.setRect(self.local_post.rect)
            z = r.sample_z.cpu().numpy()
            self.post_scatter.setData(z[:, 0], z[:, 1])
        n_obs, n = int(mask.sum()), mask.size
        ms = np.median(self.update_ms[-10:]) if self.update_ms else self.infer_ms
        self.logp_label.setText(f"log p(x<sub>O</sub>) = <b>{r.log_p_obs:.2f}</b> nats "
                                f"<small>({n_obs}/{n} observed)</small>")
        self.logp_label.setToolTip(f"update {self.infer_ms:.1f} ms, + drawing {ms:.1f} ms (median of the last 10)")
        self._render_phi()

    # -- mean field ------------------------------------------------------------------------------------------------
    def _template(self) -> np.ndarray | None:
        data = self._image_data()
        if data is None:
            return None
        if data.y is not None:
            nines = np.flatnonzero(data.y == 9)
            nines = nines[nines != self._index]
            if nines.size:
                return data.x[nines[0]]
        return data.x[min(TEMPLATE_INDEX if self._index != TEMPLATE_INDEX else DEFAULT_INDEX, len(data) - 1)]

    def _preset(self, key: str) -> np.ndarray | None:
        if key == "template":
            t = self._template()
            return None if t is None else preset_phi("template", self.x, self.mask, template=t)
        if key == "predictive":
            if self.result is None:
                return None
            return preset_phi("predictive", self.x, self.mask, predictive=self.result.predictive.cpu().numpy())
        return preset_phi(key, self.x, self.mask)

    def set_phi_preset(self, key: str) -> None:
        phi = self._preset(key)
        if phi is None:
            return
        self.phi, self.phi_name = phi, key
        self._render_phi()
        self.evaluate_elbos()

    def _render_phi(self) -> None:
        miss = ~self.mask
        phi = self.phi if self.phi is not None else np.zeros(784, dtype=np.float32)
        img = np.where(miss, phi, np.nan).reshape(28, 28)
        rgbimg = np.zeros((28, 28, 3), dtype=np.uint8)
        lut = self._phi_lut
        vals = np.nan_to_num(img, nan=0.0)
        rgbimg[:] = lut[np.clip((vals * 255).astype(int), 0, 255)][..., :3]
        grey = (np.clip(self.x.reshape(28, 28), 0, 1) * 120 + 60).astype(np.uint8)
        obs = self.mask.reshape(28, 28)
        rgbimg[obs] = np.stack([grey] * 3, -1)[obs]
        set_rgb(self.phi_vb, self.phi_img, rgbimg)

    def _elbo_timer_start(self) -> None:
        self._elbo_timer.start()

    def evaluate_elbos(self) -> None:
        """ELBO(phi) for the presets (and the current phi) in a worker (latest wins)."""
        if self.grid is None:
            return
        grid, x, mask = self.grid, self.x.copy(), self.mask.copy()
        phis = {k: self._preset(k) for k in ("half", "ones", "template")}
        if self.phi is not None and self.phi_name not in phis:
            phis[self.phi_name] = self.phi.copy()
        phis = {k: v for k, v in phis.items() if v is not None}
        seed = self.workspace.seed(self.name)

        def job():
            gen = torch.Generator(device="cpu").manual_seed(seed)
            lp = grid.infer(x, mask, n_samples=0).log_p_obs
            out = {}
            for k, phi in phis.items():
                if (~mask).sum() == 0:
                    out[k] = (lp, 0.0)
                    continue
                with one_thread():
                    est = meanfield_elbo(grid, x, mask, phi, n_samples=ELBO_SAMPLES, generator=gen)
                out[k] = (est.elbo, est.stderr)
                yield dict(out), lp
        self.runner.submit(self.channel("elbo"), job, on_snapshot=self._elbos_ready)

    def _alive(self) -> bool:
        return shiboken6.isValid(self) and shiboken6.isValid(self.elbo_plot)

    def _elbos_ready(self, item) -> None:
        if not self._alive():
            return
        values, lp = item
        keep = {k: v for k, v in self.elbos.items() if k == "optimised" and self.phi_name == "optimised"}
        self.elbos = {**keep, **values}
        self.log_p_obs = lp
        self._render_elbos()

    def _render_elbos(self) -> None:
        order = [k for k in ("half", "ones", "template", "predictive", "optimised") if k in self.elbos]
        names = [PHI_NAMES[k] for k in order]
        vals = [self.elbos[k][0] for k in order]
        self.chart.set_values(names, vals, self.log_p_obs)
        rows = "".join(f"<td>&nbsp;{PHI_NAMES[k]}: <b>{self.elbos[k][0]:.1f}</b>&plusmn;{self.elbos[k][1]:.1f} "
                       f"(gap {self.log_p_obs - self.elbos[k][0]:.1f})&nbsp;</td>" for k in order)
        lp = "" if self.log_p_obs is None else f"<td>log p(x<sub>O</sub>) = <b>{self.log_p_obs:.1f}</b></td>"
        self.elbo_label.setText(f"<table><tr>{lp}{rows}</tr></table>")

    def optimise(self) -> None:
        if self.grid is None or self.mask.all():
            return
        grid, x, mask = self.grid, self.x.copy(), self.mask.copy()
        phi0 = None if self.phi is None or self.phi_name in ("ones",) else self.phi.copy()
        seed, steps = self.workspace.seed(self.name), self.optimise_steps

        def job():
            yield from optimise_phi(grid, x, mask, phi0=phi0, steps=steps, n_samples=32, seed=seed, report_every=5)

        self.optimise_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.runner.submit(self.channel("optimise"), job, on_snapshot=self._opt_snapshot,
                           on_finished=self._opt_finished, on_error=lambda m: self._opt_finished())

    def _opt_snapshot(self, s) -> None:
        if not self._alive():
            return
        self.progress.setValue(int(1000 * s.progress))
        self.phi, self.phi_name = s.phi, "optimised"
        self.elbos["optimised"] = (s.elbo, s.stderr)
        self._render_phi()
        self._render_elbos()

    def cancel_optimise(self) -> None:
        self.runner.cancel(self.channel("optimise"))
        self._opt_finished()

    def _opt_finished(self) -> None:
        if not shiboken6.isValid(self.optimise_button):
            return
        self.optimise_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def is_busy(self) -> bool:
        return super().is_busy() or self._building or self._elbo_timer.isActive() or self._update_scheduled

    def deactivate(self) -> None:
        super().deactivate()
        self._opt_finished()

    # -- export and state ------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        from lvm.io import atomic_path

        pred = self.result.predictive.cpu().numpy() if self.result is not None else np.full(784, np.nan)
        phi = self.phi if self.phi is not None else np.full(784, np.nan)
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["pixel", "row", "col", "observed_value", "observed", "predictive_p1", "phi"])
            for j in range(784):
                obs = bool(self.mask[j])
                w.writerow([j, j // 28, j % 28, f"{self.x[j]:.6g}", int(obs), f"{pred[j]:.6g}",
                            "" if obs or np.isnan(phi[j]) else f"{phi[j]:.6g}"])

    def view_state(self) -> dict:
        pending = self._restored_canvas  # restored and not shown yet: saved again as it came
        image, mask, phi, phi_name = pending if pending is not None else (self.x, self.mask, self.phi, self.phi_name)
        return {"index": self._index, "mask": self._mask_name, "brush": self.canvas.brush_radius,
                "tool": self.canvas.tool, "follow": self.follow_check.isChecked(),
                "show_means": self.means_check.isChecked(),
                # what the user drew: the ink x, the observed pixels O (1) and the mean-field phi (float32 values:
                # exact in JSON)
                "image": np.asarray(image, np.float32).reshape(-1).tolist(),
                "mask_pixels": np.asarray(mask, bool).reshape(-1).astype(int).tolist(),
                "phi": None if phi is None else np.asarray(phi, np.float32).reshape(-1).tolist(),
                "phi_name": phi_name}

    def restore_view_state(self, state: dict) -> None:
        if not isinstance(state, dict):
            return
        if isinstance(state.get("index"), int) and state["index"] >= 0:
            self._index = state["index"]
        if state.get("mask") in MASK_CHOICES:
            self._mask_name = state["mask"]
            self.mask_combo.setCurrentText(self._mask_name)
            self.canvas.mask = make_mask(self._mask_name, seed=self.workspace.seed(self.name)).reshape(28, 28)
        restore_spin(self.brush_spin, state.get("brush"))
        if state.get("tool") in ("brush", "eraser", "observe", "hide"):
            self.canvas.tool = state["tool"]
            for b in self.tool_group.buttons():
                b.setChecked(b.property("tool") == state["tool"])
        if isinstance(state.get("follow"), bool):
            self.follow_check.setChecked(state["follow"])
        if isinstance(state.get("show_means"), bool):
            self.means_check.setChecked(state["show_means"])
        image, mask = _pixels(state.get("image"), 0.0, 1.0), _pixels(state.get("mask_pixels"), 0, 1)
        if image is not None and mask is not None:
            phi = _pixels(state.get("phi"), 0.0, 1.0)
            name = state.get("phi_name") if isinstance(state.get("phi_name"), str) else None
            self._restored_canvas = (image.astype(np.float32), mask.astype(bool), None if phi is None else
                                     phi.astype(np.float32), None if phi is None else (name or "optimised"))
            self._follow_pending = None  # the drawing wins over the selection it was made from
            if self._started:
                self._apply_restored_canvas()

    def _apply_restored_canvas(self) -> None:
        """Put a drawing restored from a session on the canvas (after the lab's own first load of its digit)."""
        image, mask, phi, phi_name = self._restored_canvas
        self._restored_canvas = None
        self.canvas.set_image(image)
        self.canvas.set_mask(mask)
        self.phi, self.phi_name = phi, phi_name
        self._render_phi()
        self._elbo_timer_start()


def _pixels(value, lo: float, hi: float) -> np.ndarray | None:
    """784 finite values in [lo, hi] from a session (read_session refuses malformed ones), else None."""
    if not isinstance(value, list) or len(value) != 784:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.shape != (784,) or not np.isfinite(arr).all() or (arr < lo).any() or (arr > hi).any():
        return None
    return arr
