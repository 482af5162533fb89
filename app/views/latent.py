"""The Latent lab: a VAE's 2-D latent space — encoded data, q(z|x) ellipses, prior contours, the aggregate posterior
against the prior, the decoded manifold mosaic, hover previews of p(x|z), a drawing pad and training with live curves.

Computations live in ``latent_compute`` (pure functions) and run in workers on latest-wins channels
(``latent/encode``, ``latent/grid``, ``latent/density``, ``latent/train``); only a single-image decode (hover, the
drawing pad) runs on the GUI thread (about a millisecond).
"""

from __future__ import annotations

import copy
import csv
import time

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QSizePolicy, QSpinBox, QVBoxLayout, QWidget)

from app.views import latent_compute as lc
from app.views.base import LabView, restore_choice, restore_spin
from app.views.latent_train import TrainPanel
from app.widgets.click_viewbox import ClickViewBox
from app.widgets.draw_pad import DrawPad
from app.widgets.ellipses import ellipse_points
from app.widgets.raster_scatter import RasterScatter
from app.widgets.grid_lines import GridLines
from app.widgets.steady_plots import steady_tick_column
from lvm.errors import LVMError

EXPLANATION = r"""
<p>A <b>variational autoencoder</b> with a 2-D latent variable:</p>
<ul>
<li>prior $z \sim \mathcal{N}(0, I)$ (dashed circles: 1, 2, 3 $\sigma$);</li>
<li>decoder $p_\theta(x \mid z) =$ $\prod_d \mathrm{Bernoulli}(x_d; \sigma(f_\theta(z))_d)$
 (or a diagonal Gaussian $\mathcal{N}(\mu_\theta(z), \mathrm{diag}\, \sigma_\theta^2(z))$);</li>
<li>encoder $q_\phi(z \mid x) =$ $\mathcal{N}(\mu_\phi(x), \mathrm{diag}\, \sigma_\phi^2(x))$.</li>
</ul>
<p><b>Left:</b> each image's encoder mean $\mu_\phi(x)$, coloured by its label. Click a point to select it: its
$q(z \mid x)$ is drawn as 1$\sigma$ and 2$\sigma$ ellipses (shift-click pins more). The background shows the <b>aggregate
posterior</b> $q(z) = \frac{1}{N} \sum_n q(z \mid x_n)$, or $\log q(z) - \log p(z)$: <span style='color:#2166ac'>blue
</span> where the prior puts mass no image is encoded to (holes: samples from there look unlike the data),
<span style='color:#b2182b'>red</span> where encodings crowd.</p>
<p><b>Right:</b> the decoded manifold: $\mathbb{E}[x \mid z]$ on a regular grid of the visible region (or on prior
quantiles $z = \Phi^{-1}(u)$, the classic figure). Hover anywhere to see the mean, a sample $x \sim p(x \mid z)$ and
the per-pixel variance.</p>
<p><b>Training</b> maximises the evidence lower bound with one reparameterised sample
$z = \mu + \sigma \odot \epsilon,\ \epsilon \sim \mathcal{N}(0, I)$:</p>
<p align=center>$\mathrm{ELBO}(x) = \mathbb{E}_{q(z \mid x)}[\log p_\theta(x \mid z)]$ $-\ \mathrm{KL}(q_\phi(z \mid x)\, \Vert\, \mathcal{N}(0, I))$ $\leq \log p_\theta(x)$,</p>
<p>$\mathrm{KL} = \frac{1}{2} \sum_k$ $(\mu_k^2 + \sigma_k^2 - \log \sigma_k^2 - 1)$. The gap is
$\mathrm{KL}(q_\phi(z \mid x)\, \Vert\, p_\theta(z \mid x))$.</p>
<p><b>Draw</b> a digit on the pad: its $q(z \mid x)$ ellipse appears among the data.</p>
"""

BACKGROUNDS = [("none", "no background"), ("aggregate", "aggregate posterior q(z)"),
               ("ratio", "log q(z) − log p(z)")]
THUMB_CAP = 400
THUMB_PX = 26


class Marker(pg.ScatterPlotItem):
    """A marker that never takes clicks: they go to the view box, which picks in data space."""

    def mouseClickEvent(self, ev):
        ev.ignore()


def _image_plot(title: str) -> tuple[pg.ViewBox, pg.ImageItem]:
    vb = pg.ViewBox(lockAspect=True, enableMouse=False, invertY=True, enableMenu=False)
    item = pg.ImageItem(axisOrder="row-major")
    item.setLookupTable(np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(3, 1))
    vb.addItem(item)
    return vb, item


class LatentLab(LabView):
    name = "latent"
    title = "Latent lab"
    explanation = EXPLANATION

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        self.model = None  # what is displayed: the workspace model, or the latest copy while training
        self.mu = np.zeros((0, 2), np.float32)
        self.sigma = np.zeros((0, 2), np.float32)
        self.labels: np.ndarray | None = None
        self.pinned: list[int] = []
        self.drawn_q: tuple[np.ndarray, np.ndarray] | None = None
        self.timings: dict[str, float] = {}
        self._encoded_key = None
        self._fit_pending = True
        self._training = False
        self._train_epoch_offset = 0.0
        self._train_info: dict = {}
        self._last_train_model = None
        self._device_switched = False  # set by a device event: the model event that follows keeps the view
        self._hover_gen = torch.Generator().manual_seed(workspace.seed("latent"))
        self._build()
        ws = workspace.events
        ws.model.connect(self._on_model)
        ws.dataset.connect(self._on_dataset)
        ws.selection.connect(self._on_selection)
        ws.device.connect(self._on_device)
        ws.gmm.connect(self._on_gmm)
        if workspace.model is not None:
            self._on_model(workspace.model)

    # -- construction ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        content = QWidget()
        outer = QHBoxLayout(content)
        outer.setContentsMargins(4, 4, 4, 4)
        left = QVBoxLayout()
        outer.addLayout(left, 3)
        bar = QHBoxLayout()
        self.points_box = QCheckBox("points")
        self.points_box.setChecked(True)
        self.thumbs_box = QCheckBox("thumbnails")
        self.thumbs_box.setToolTip(f"draw visible points as their images (at most {THUMB_CAP}, no overlaps)")
        self.background = QComboBox()
        for key, text in BACKGROUNDS:
            self.background.addItem(text, key)
        self.background.setCurrentIndex(2)
        self.background.setToolTip("background of the left plot: the aggregate posterior, or it against the prior")
        self.grid_n = QSpinBox()
        self.grid_n.setRange(4, 40)
        self.grid_n.setValue(20)
        self.grid_n.setPrefix("grid ")
        self.grid_n.setToolTip("images per side of the decoding grid")
        self.quantile_box = QCheckBox("grid on prior quantiles")
        self.quantile_box.setToolTip("decode z = Φ⁻¹(u) for a regular grid of u in (0, 1)² (axes show u)")
        self.fit_button = QPushButton("Fit view")
        for w in (self.points_box, self.thumbs_box, self.background, self.grid_n, self.quantile_box, self.fit_button):
            bar.addWidget(w)
        bar.addStretch(1)
        left.addLayout(bar)
        self.legend = QLabel(" ".join(f"<span style='color:{h}; font-weight:bold'>{k}</span>"
                                      for k, h in enumerate(lc.LABEL_HEX)))

        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.vb = ClickViewBox(lockAspect=True)
        self.plot = self.canvas.addPlot(row=0, col=0, viewBox=self.vb, title="encoded data: μ<sub>φ</sub>(x)")
        self.grid_vb = ClickViewBox(lockAspect=True)
        self.grid_plot = self.canvas.addPlot(row=0, col=1, viewBox=self.grid_vb, title="decoded manifold E[x|z]")
        self.grid_lines = []
        for p in (self.plot, self.grid_plot):
            p.setLabel("bottom", "z₁")
            p.setLabel("left", "z₂")
            self.grid_lines.append(GridLines(p, alpha=0.15))
            steady_tick_column(p)  # panning and zooming do not re-lay out the two plots
        self.grid_plot.setXLink(self.plot)
        self.grid_plot.setYLink(self.plot)
        left.addWidget(self.canvas, 1)
        self.status = QLabel("")
        self.status.setObjectName("latent-status")
        self.status.setMinimumWidth(50)  # long timing text must not widen the window
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("labels:"))
        bottom.addWidget(self.legend)
        bottom.addWidget(self.status, 1)
        left.addLayout(bottom)

        # left plot layers (z order): density -10, points 0, thumbnails 2, prior 4, ellipses 6, markers 8
        self.density_item = pg.ImageItem(axisOrder="row-major")
        self.density_item.setZValue(-10)
        self.vb.addItem(self.density_item, ignoreBounds=True)
        self.scatter = RasterScatter(self.vb, z=0)
        self.thumbs_item = pg.ImageItem(axisOrder="row-major")
        self.thumbs_item.setZValue(2)
        self.vb.addItem(self.thumbs_item, ignoreBounds=True)
        t = np.linspace(0, 2 * np.pi, 181)
        circles = [np.r_[r * np.cos(t), np.nan] for r in (1, 2, 3)], [np.r_[r * np.sin(t), np.nan] for r in (1, 2, 3)]
        self.prior_curves = []
        for p in (self.plot, self.grid_plot):
            c = pg.PlotCurveItem(np.concatenate(circles[0]), np.concatenate(circles[1]), connect="finite",
                                 pen=pg.mkPen((60, 60, 60, 170), width=1.2, style=Qt.DashLine))
            c.setZValue(4)
            p.addItem(c)
            self.prior_curves.append(c)
        self.sel_curve = pg.PlotCurveItem(connect="finite", pen=pg.mkPen("k", width=2.5))
        self.sel_curve.setZValue(6)
        self.plot.addItem(self.sel_curve, ignoreBounds=True)
        self.pin_curve = pg.PlotCurveItem(connect="finite", pen=pg.mkPen((40, 40, 40), width=1.5))
        self.pin_curve.setZValue(6)
        self.plot.addItem(self.pin_curve, ignoreBounds=True)
        self.draw_curve = pg.PlotCurveItem(connect="finite", pen=pg.mkPen("#e6007e", width=3))
        self.draw_curve.setZValue(7)
        self.plot.addItem(self.draw_curve, ignoreBounds=True)
        self.sel_marker = Marker(size=13, pen=pg.mkPen("k", width=2.5), brush=None, symbol="o")
        self.sel_marker.setZValue(8)
        self.plot.addItem(self.sel_marker, ignoreBounds=True)
        self.draw_marker = Marker(size=14, pen=pg.mkPen("#e6007e", width=2), brush="#e6007e", symbol="star")
        self.draw_marker.setZValue(8)
        self.plot.addItem(self.draw_marker, ignoreBounds=True)
        self.hover_markers = []
        for p in (self.plot, self.grid_plot):
            m = Marker(size=15, pen=pg.mkPen("#e6007e", width=2), brush=None, symbol="+")
            m.setZValue(9)
            p.addItem(m, ignoreBounds=True)
            self.hover_markers.append(m)
        self.message_item = pg.TextItem("", color=(90, 90, 90), anchor=(0.5, 0.5))
        self.message_item.setZValue(20)
        self.vb.addItem(self.message_item, ignoreBounds=True)
        # right plot: the mosaic
        self.mosaic_item = pg.ImageItem(axisOrder="row-major")
        self.mosaic_item.setLookupTable(np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(3, 1))
        self.mosaic_item.setZValue(-5)
        self.grid_vb.addItem(self.mosaic_item, ignoreBounds=True)
        self.vb.setRange(xRange=(-3.5, 3.5), yRange=(-3.5, 3.5), padding=0)

        # right column: hover preview, drawing pad, training
        right = QVBoxLayout()
        outer.addLayout(right, 1)
        hover_box = QGroupBox("p(x|z) under the mouse")
        hl = QVBoxLayout(hover_box)
        self.preview = pg.GraphicsLayoutWidget()
        self.preview.setBackground("w")
        self.preview.setMinimumHeight(120)
        self.preview_items = []
        for i, title in enumerate(("mean", "sample", "variance")):
            self.preview.addLabel(title, row=0, col=i, size="8pt")
            vb, item = _image_plot(title)
            self.preview.addItem(vb, row=1, col=i)
            self.preview_items.append(item)
        self.preview.ci.layout.setRowStretchFactor(1, 10)
        hl.addWidget(self.preview)
        self.hover_label = QLabel("hover over either plot")
        hl.addWidget(self.hover_label)
        right.addWidget(hover_box, 2)
        pad_box = QGroupBox("Draw a digit")
        pl = QHBoxLayout(pad_box)
        self.pad = DrawPad((28, 28))
        self.pad.setFixedSize(140, 140)  # fixed: the view must not move under the pen
        pl.addWidget(self.pad)
        side = QVBoxLayout()
        self.pad_label = QLabel("its q(z|x) appears\nin magenta")
        self.pad_label.setFixedWidth(150)
        self.clear_pad = QPushButton("Clear")
        side.addWidget(self.pad_label)
        side.addWidget(self.clear_pad)
        side.addStretch(1)
        pl.addLayout(side)
        right.addWidget(pad_box, 2)
        self.train_panel = TrainPanel()
        right.addWidget(self.train_panel, 4)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.with_explanation(content))

        # wiring
        self._range_timer = QTimer(self)
        self._range_timer.setSingleShot(True)
        self._range_timer.setInterval(40)
        self._range_timer.timeout.connect(self._on_range_settled)
        self.vb.sigRangeChanged.connect(lambda *a: self._range_timer.start())
        self.vb.sigResized.connect(lambda *a: self._range_timer.start())
        self.grid_vb.sigRangeChanged.connect(lambda *a: self._range_timer.start())
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.vb.clicked.connect(self._on_click)
        self.grid_vb.clicked.connect(self._on_grid_click)
        self.points_box.toggled.connect(lambda on: self.scatter.image.setVisible(on))
        self.thumbs_box.toggled.connect(lambda on: self._update_thumbnails())
        self.background.currentIndexChanged.connect(lambda *a: self._request_density())
        self.grid_n.valueChanged.connect(lambda *a: self._request_grid())
        self.quantile_box.toggled.connect(self._on_quantile_toggled)
        self.fit_button.clicked.connect(self.fit_view)
        self.pad.changed.connect(self._on_drawn)
        self.clear_pad.clicked.connect(self.pad.clear_image)
        self.train_panel.train_button.clicked.connect(self.start_training)
        self.train_panel.cancel_button.clicked.connect(self.cancel_training)
        self.train_panel.save_button.clicked.connect(self._ask_save)

    # -- workspace events ------------------------------------------------------------------------------------------
    def _on_model(self, model) -> None:
        same_weights, self._device_switched = self._device_switched, False
        if model is not None and (model is self._last_train_model or same_weights):
            self._set_display_model(model, fit=False)  # our own training result, or moved to a device: keep the view
        else:
            self._set_display_model(model, fit=True)

    def _on_dataset(self, ds) -> None:
        self._encoded_key = None
        self.pinned = []
        self._request_encode()

    def _on_device(self, device) -> None:
        # the workspace's model event follows with the same weights on the new device (Workspace.set_device): the
        # encodings and the grid are redone then, and the view is kept
        self._device_switched = self.workspace.model is not None

    def _on_gmm(self, gmm) -> None:
        self._apply_colours()

    def _on_selection(self, index) -> None:
        self._update_selection()

    # -- the displayed model ---------------------------------------------------------------------------------------
    def _set_display_model(self, model, fit: bool) -> None:
        self.model = model
        self._encoded_key = None
        self._fit_pending = self._fit_pending or fit
        self._update_drawn()
        self._request_encode()
        self._request_grid()
        if not self._problem():
            self.hover(getattr(self, "hover_z", (0.0, 0.0)))  # the preview is never empty

    def _problem(self) -> str | None:
        """Why nothing can be shown (None when all is well)."""
        if self.model is None:
            return "no model: open one (File ▸ Open model…) or train one (right)"
        if self.model.latent_dim < 2:
            return "this lab needs a model with at least 2 latent dimensions"
        return None

    def _data_problem(self) -> str | None:
        data = self.workspace.data
        if data is None:
            return "no dataset"
        if self.model is not None and data.x.shape[1] != self.model.data_dim:
            return (f"the model expects {self.model.data_dim} features, the dataset has {data.x.shape[1]}: "
                    "train a new model from scratch on it (right) or open a matching model")
        return None

    def _show_message(self, text: str | None) -> None:
        self.message_item.setText(text or "")
        if text:
            (x0, x1), (y0, y1) = self.vb.viewRange()
            self.message_item.setPos((x0 + x1) / 2, (y0 + y1) / 2)

    # -- encoding the dataset --------------------------------------------------------------------------------------
    def _request_encode(self) -> None:
        problem = self._problem() or self._data_problem()
        self._show_message(problem)
        if problem:
            self.mu = np.zeros((0, 2), np.float32)
            self.sigma = np.zeros((0, 2), np.float32)
            self.labels = None
            self.scatter.set_data(self.mu)
            self._update_thumbnails()
            self._update_selection()
            self.density_item.clear()
            return
        model, data = self.model, self.workspace.data
        key = (id(model), id(data))
        if key == self._encoded_key:
            return
        x = data.x

        def job(token):
            t0 = time.perf_counter()
            mu, sigma = lc.encode_dataset(model, x, token=token)
            return mu, sigma, time.perf_counter() - t0

        def done(result):
            if self.model is not model:
                return
            mu, sigma, seconds = result
            self._encoded_key = key
            self.mu, self.sigma = mu, sigma
            self.labels = data.y
            self.timings["encode_ms"] = seconds * 1000
            self._apply_colours()
            self._update_selection()
            if self._fit_pending:
                self._fit_pending = False
                self.fit_view()
            self._request_density()
            self._update_thumbnails()
            self._update_status()

        self.runner.submit(self.channel("encode"), job, on_result=done)

    def _colours(self) -> np.ndarray:
        n = len(self.mu)
        gmm = self.workspace.gmm
        if gmm is not None and n and self.model is not None:
            try:  # colour by the workspace GMM's cluster when it was fitted in this latent space
                if int(getattr(gmm, "dim", getattr(gmm, "data_dim", -1))) == self.model.latent_dim:
                    k = np.asarray(gmm.predict(torch.as_tensor(self.mu))).reshape(-1)
                    if len(k) == n:
                        return lc.LABEL_RGB[k.astype(np.int64) % 10]
            except Exception:  # noqa: BLE001 - an unfamiliar GMM: fall back to labels
                pass
        return lc.label_colours(self.labels, n)

    def _apply_colours(self) -> None:
        self.scatter.set_data(self.mu[:, :2], self._colours())

    def fit_view(self) -> None:
        """Show the encoded points (robust extent) and the prior's 3-sigma circle."""
        lo, hi = np.array([-3.2, -3.2]), np.array([3.2, 3.2])
        if len(self.mu):
            lo = np.minimum(lo, np.percentile(self.mu[:, :2], 0.5, axis=0))
            hi = np.maximum(hi, np.percentile(self.mu[:, :2], 99.5, axis=0))
        pad = 0.05 * (hi - lo)
        self.vb.setRange(xRange=(lo[0] - pad[0], hi[0] + pad[0]), yRange=(lo[1] - pad[1], hi[1] + pad[1]), padding=0)

    # -- view changes ----------------------------------------------------------------------------------------------
    def _on_range_settled(self) -> None:
        self._request_grid()
        self._request_density()
        self._update_thumbnails()
        if self.message_item.textItem.toPlainText():
            self._show_message(self.message_item.textItem.toPlainText())

    def _on_quantile_toggled(self, on: bool) -> None:
        if on:
            self.grid_plot.setXLink(None)
            self.grid_plot.setYLink(None)
            self.grid_vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.01)
            self.grid_plot.setLabel("bottom", "u₁ = Φ(z₁)")
            self.grid_plot.setLabel("left", "u₂ = Φ(z₂)")
            self.prior_curves[1].setVisible(False)
        else:
            self.grid_plot.setLabel("bottom", "z₁")
            self.grid_plot.setLabel("left", "z₂")
            self.prior_curves[1].setVisible(True)
            self.grid_plot.setXLink(self.plot)
            self.grid_plot.setYLink(self.plot)
        self._request_grid()

    # -- decoding grid ---------------------------------------------------------------------------------------------
    def _request_grid(self) -> None:
        model = self.model
        if self._problem() or lc.image_shape_of(model) is None:
            self.mosaic_item.clear()
            return
        n = self.grid_n.value()
        if self.quantile_box.isChecked():
            u, z = lc.quantile_centres(n)
            rect = QRectF(0, 0, 1, 1)
            zx = zy = z
        else:
            (x0, x1), (y0, y1) = self.grid_vb.viewRange()
            zx, zy = lc.cell_centres(x0, x1, n), lc.cell_centres(y0, y1, n)
            rect = QRectF(x0, y0, x1 - x0, y1 - y0)

        def job():
            t0 = time.perf_counter()
            mosaic = lc.decode_mosaic(model, zx, zy)
            return mosaic, time.perf_counter() - t0

        def done(result):
            if self.model is not model:
                return
            mosaic, seconds = result
            self.timings["grid_ms"] = seconds * 1000
            self.timings["grid_n"] = n
            self.mosaic_item.setImage(mosaic, levels=(0, 1), autoLevels=False)
            self.mosaic_item.setRect(rect)
            self._update_status()

        self.runner.submit(self.channel("grid"), job, on_result=done)

    # -- aggregate posterior ---------------------------------------------------------------------------------------
    def _request_density(self) -> None:
        mode = self.background.currentData()
        if mode == "none" or not len(self.mu):
            self.density_item.setVisible(False)
            return
        mu, sigma = self.mu, self.sigma
        (x0, x1), (y0, y1) = self.vb.viewRange()
        g = 160
        zx, zy = lc.cell_centres(x0, x1, g), lc.cell_centres(y0, y1, g)

        def job():
            t0 = time.perf_counter()
            q = lc.aggregate_density(mu, sigma, zx, zy)
            img = lc.density_rgba(q, lc.prior_density(zx, zy), mode)
            return img, time.perf_counter() - t0

        def done(result):
            if self.mu is not mu:
                return
            img, seconds = result
            self.timings["density_ms"] = seconds * 1000
            self.density_item.setImage(img, autoLevels=False, levels=(0, 255))
            self.density_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            self.density_item.setVisible(self.background.currentData() != "none")

        self.runner.submit(self.channel("density"), job, on_result=done)

    # -- thumbnails ------------------------------------------------------------------------------------------------
    def _update_thumbnails(self) -> None:
        data = self.workspace.data
        shape = None if self.model is None else lc.image_shape_of(self.model)
        if not self.thumbs_box.isChecked() or not len(self.mu) or data is None or shape is None \
                or len(data.x) != len(self.mu):
            self.thumbs_item.setVisible(False)
            return
        t0 = time.perf_counter()
        (x0, x1), (y0, y1) = self.vb.viewRange()
        w, h = max(int(self.vb.width()), 1), max(int(self.vb.height()), 1)
        px = (self.mu[:, 0] - x0) / (x1 - x0) * w
        py = (self.mu[:, 1] - y0) / (y1 - y0) * h
        idx = lc.pick_thumbnails(px, py, w, h, THUMB_PX, THUMB_CAP)
        images = data.x[idx].reshape(-1, *shape)
        img = lc.thumbnails_rgba(images, self._colours()[idx], px[idx], py[idx], w, h, THUMB_PX)
        self.thumbs_item.setImage(img, autoLevels=False, levels=(0, 255))
        self.thumbs_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.thumbs_item.setVisible(True)
        self.timings["thumbnails_ms"] = (time.perf_counter() - t0) * 1000
        self.timings["thumbnails"] = len(idx)

    # -- selection -------------------------------------------------------------------------------------------------
    def _on_click(self, pos, button, modifiers) -> None:
        if button != Qt.LeftButton:
            return
        i = self.scatter.nearest(pos.x(), pos.y(), max_pixels=15.0)
        if i is None:
            return
        if modifiers & Qt.ShiftModifier:
            if i in self.pinned:
                self.pinned.remove(i)
            else:
                self.pinned.append(i)
            self._update_selection()
        else:
            self.workspace.select(i)

    def _on_grid_click(self, pos, button, modifiers) -> None:
        """A click on the mosaic selects the data point nearest that z (in latent space)."""
        if button != Qt.LeftButton or not len(self.mu):
            return
        z = self._grid_to_z(pos.x(), pos.y())
        d2 = ((self.mu[:, :2] - np.asarray(z, np.float32)) ** 2).sum(1)
        self.workspace.select(int(np.argmin(d2)))

    def _ellipse_xy(self, indices) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for i in indices:
            cov = np.diag(self.sigma[i, :2].astype(float) ** 2)
            parts.append(ellipse_points(self.mu[i, :2], cov))
            parts.append(np.full((1, 2), np.nan))
        if not parts:
            return np.zeros(0), np.zeros(0)
        pts = np.concatenate(parts)
        return pts[:, 0], pts[:, 1]

    def _update_selection(self) -> None:
        i = self.workspace.selected_index
        n = len(self.mu)
        if i is not None and i < n:
            self.sel_curve.setData(*self._ellipse_xy([i]))
            self.sel_marker.setData([self.mu[i, 0]], [self.mu[i, 1]])
        else:
            self.sel_curve.setData([], [])
            self.sel_marker.setData([], [])
        self.pinned = [p for p in self.pinned if p < n]
        self.pin_curve.setData(*self._ellipse_xy(self.pinned))

    # -- hover -----------------------------------------------------------------------------------------------------
    def _grid_to_z(self, x: float, y: float) -> tuple[float, float]:
        if self.quantile_box.isChecked():
            return lc.inverse_normal_cdf(x), lc.inverse_normal_cdf(y)
        return x, y

    def _on_mouse_moved(self, scene_pos) -> None:
        for vb, on_grid in ((self.vb, False), (self.grid_vb, True)):
            if vb.sceneBoundingRect().contains(scene_pos):
                p = vb.mapSceneToView(scene_pos)
                z = self._grid_to_z(p.x(), p.y()) if on_grid else (p.x(), p.y())
                self.hover(z)
                return

    def hover(self, z: tuple[float, float]) -> None:
        """Show p(x|z) at the plane point z: mean, one sample, per-pixel variance (decoded on the GUI thread)."""
        if self._problem():
            return
        model = self.model
        t0 = time.perf_counter()
        mean, sample, var = lc.decode_point(model, z, self._hover_gen)
        ms = (time.perf_counter() - t0) * 1000
        self.timings["hover_ms"] = ms
        if mean.ndim == 2:
            vmax = max(float(var.max()), 1e-6) if model.config.decoder == "gaussian" else 0.25
            for item, img, levels in zip(self.preview_items, (mean, sample, var),
                                         ((0, 1), (0, 1), (0, vmax))):
                item.setImage(img, levels=levels, autoLevels=False)
            self.hover_label.setText(f"z = ({z[0]:.2f}, {z[1]:.2f})  ·  decode {ms:.1f} ms")
        else:
            text = f"z = ({z[0]:.2f}, {z[1]:.2f}) → E[x|z] = {np.array2string(mean, precision=2)}"
            if model.config.decoder == "gaussian":  # the decoder's own diagonal covariance Sigma_theta(z)
                text += f", diag Σ(z) = {np.array2string(np.asarray(var), precision=3)}"
            self.hover_label.setText(text)
        self.hover_z = z
        self.hover_markers[0].setData([z[0]], [z[1]])
        if self.quantile_box.isChecked():
            from math import erf, sqrt

            u = [0.5 * (1 + erf(v / sqrt(2))) for v in z]
            self.hover_markers[1].setData([u[0]], [u[1]])
        else:
            self.hover_markers[1].setData([z[0]], [z[1]])

    # -- drawing pad -----------------------------------------------------------------------------------------------
    def _on_drawn(self, image) -> None:
        self.drawn_image = image if image is not None and image.size and image.any() else None
        self._update_drawn()

    def _update_drawn(self) -> None:
        image = getattr(self, "drawn_image", None)
        if image is None or self._problem() or self.model.data_dim != image.size:
            self.drawn_q = None
            self.draw_curve.setData([], [])
            self.draw_marker.setData([], [])
            self.pad_label.setText("its q(z|x) appears\nin magenta")
            return
        with torch.inference_mode():
            mu, log_sigma = self.model.encoder_params(torch.as_tensor(image[None], device=lc.model_device(self.model)))
        mu = mu[0, :2].float().cpu().numpy()
        sigma = log_sigma[0, :2].exp().float().cpu().numpy()
        self.drawn_q = (mu, sigma)
        pts = ellipse_points(mu, np.diag(sigma.astype(float) ** 2))
        self.draw_curve.setData(pts[:, 0], pts[:, 1])
        self.draw_marker.setData([mu[0]], [mu[1]])
        self.pad_label.setText(f"q(z|x): μ = ({mu[0]:.2f}, {mu[1]:.2f})\nσ = ({sigma[0]:.2f}, {sigma[1]:.2f})")

    # -- training --------------------------------------------------------------------------------------------------
    def start_training(self) -> None:
        from lvm.models.vae import VAE, VAEConfig
        from lvm.training import TrainConfig, train_vae

        ws, panel = self.workspace, self.train_panel
        data = ws.data
        if data is None:
            ws.message("load a dataset before training")
            return
        try:
            if panel.from_scratch or ws.model is None:
                shape = ws.dataset.image_shape
                config = VAEConfig(data_dim=int(data.x.shape[1]), latent_dim=2, hidden=panel.hidden_sizes(),
                                   decoder=panel.decoder.currentText(), image_shape=shape)
                torch.manual_seed(panel.seed.value())
                model = VAE(config)
                self._train_epoch_offset = 0.0
                base_info: dict = {}
            else:
                if ws.model.data_dim != data.x.shape[1]:
                    ws.message(f"the current model expects {ws.model.data_dim} features but the dataset has "
                               f"{data.x.shape[1]}; choose 'new model from scratch'")
                    return
                model = copy.deepcopy(ws.model)
                base_info = dict(ws.model_info)
                self._train_epoch_offset = float(base_info.get("epochs_completed", 0) or 0)
        except (ValueError, LVMError) as exc:
            ws.message(str(exc))
            return
        x_train, x_valid, valid_name = self._train_valid(data)
        if model.config.decoder == "bernoulli" and (x_train.min() < 0 or x_train.max() > 1):
            ws.message("a Bernoulli decoder needs pixel values in [0, 1]; choose the gaussian decoder")
            return
        config = TrainConfig(epochs=panel.epochs.value(), lr=panel.lr.value(), seed=panel.seed.value(),
                             batch_size=128, report_every=4, valid_limit=1000)
        device = ws.device
        self._train_info = {**base_info, "dataset": ws.dataset_spec, "split": ws.split, "valid_split": valid_name,
                            "seed": config.seed, "lr": config.lr, "batch_size": config.batch_size,
                            "schedule": config.schedule, "binarization": config.binarization,
                            "trained_in": "LVM Explorer Latent lab"}

        def job():
            last_copy = 0.0
            for snap in train_vae(model, x_train, x_valid, config, device):
                now = time.perf_counter()
                shot = None
                if snap.done or float(snap.epoch).is_integer() or now - last_copy > 1.5:
                    shot = copy.deepcopy(model).eval()
                    last_copy = time.perf_counter()
                yield snap, shot

        panel.reset()
        panel.set_running(True)
        panel.status.setText(f"training on {len(x_train):,} images, validating on {len(x_valid):,} ({valid_name})…")
        self._training = True
        self._last_train_model = None
        self.runner.submit(self.channel("train"), job, on_snapshot=self._on_train_snapshot,
                           on_error=lambda msg: self._training_ended(), keep_all=True)

    def _train_valid(self, data):
        ws = self.workspace
        other = next((s for s in ("valid", "test", "train") if s in ws.dataset.splits and s != ws.split), None)
        if other is not None and ws.dataset.split(other).x.shape[1] == data.x.shape[1]:
            return data.x, ws.dataset.split(other).x, other
        tr, va = lc.holdout_split(len(data.x), 0.1, self.train_panel.seed.value())
        return data.x[tr], data.x[va], f"10% of {ws.split} held out"

    def _on_train_snapshot(self, item) -> None:
        snap, shot = item
        self.train_panel.add_snapshot(snap, self._train_epoch_offset)
        if shot is not None:
            self._last_train_model = shot
            self._set_display_model(shot, fit=False)
        if snap.done:
            if snap.stopped_reason == "nan":
                self.workspace.message("training hit a NaN/inf loss and stopped; the last good weights are kept "
                                       "(try a smaller learning rate)")
            self._finish_training(snap)

    def _finish_training(self, snap=None) -> None:
        model = self._last_train_model
        self._training_ended()
        if model is None:
            return
        info = dict(self._train_info)
        if snap is not None:
            info.update(epochs_completed=int(self._train_epoch_offset + snap.epoch), train_elbo=snap.train_elbo,
                        valid_elbo=snap.valid_elbo, stopped_reason=snap.stopped_reason)
        self.workspace.set_model(model, None, info)

    def _training_ended(self) -> None:
        self._training = False
        self.train_panel.set_running(False)

    def cancel_training(self) -> None:
        """Stop training between steps; the weights of the latest snapshot become the workspace model."""
        if not self._training:
            return
        self.runner.cancel(self.channel("train"))
        self.train_panel.status.setText(self.train_panel.status.text() + " — stopped")
        self._finish_training(None)

    def is_training(self) -> bool:
        return self._training

    def _ask_save(self) -> None:
        if self.workspace.model is None:
            self.workspace.message("there is no model to save; train or open one first")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "vae.safetensors", "Checkpoints (*.safetensors)")
        if path:
            self.save_model(path)

    def save_model(self, path: str) -> None:
        win = self.window()
        if hasattr(win, "save_model"):
            win.save_model(path)  # updates the window's model label; reports errors
            return
        from lvm.checkpoint import save_model

        try:
            save_model(self.workspace.model, path, self.workspace.model_info)
        except (OSError, LVMError) as exc:
            self.workspace.message(f"could not save the model to {path}: {exc}")
            return
        self.workspace.model_path = str(path)

    # -- status ----------------------------------------------------------------------------------------------------
    def _update_status(self) -> None:
        t = self.timings
        parts = []
        if len(self.mu):
            parts.append(f"{len(self.mu):,} points encoded in {t.get('encode_ms', 0):.0f} ms")
        if "grid_ms" in t:
            parts.append(f"{t['grid_n']}×{t['grid_n']} grid decoded in {t['grid_ms']:.0f} ms")
        if "hover_ms" in t:
            parts.append(f"hover decode {t['hover_ms']:.1f} ms")
        parts.append("click: select · shift-click: pin · wheel/drag: zoom/pan")
        self.status.setText("  ·  ".join(parts))

    # -- LabView API -----------------------------------------------------------------------------------------------
    def activate(self) -> None:
        self._request_encode()
        if self.mosaic_item.image is None:
            self._request_grid()

    def deactivate(self) -> None:
        """Cancel interactive work; training goes on in the background."""
        for what in ("encode", "grid", "density"):
            self.runner.cancel(self.channel(what))
        self._encoded_key = None if not len(self.mu) else self._encoded_key

    def export_widget(self) -> QWidget:
        return self

    def export_csv(self, path: str) -> None:
        if not len(self.mu):
            raise NotImplementedError("there are no encoded points to export yet")
        from lvm.io import atomic_path

        d = self.mu.shape[1]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["index", "label", *[f"z{k + 1}_mean" for k in range(d)], *[f"z{k + 1}_sd" for k in range(d)]])
            for i in range(len(self.mu)):
                label = "" if self.labels is None else int(self.labels[i])
                w.writerow([i, label, *[f"{v:.6g}" for v in self.mu[i]], *[f"{v:.6g}" for v in self.sigma[i]]])

    def view_state(self) -> dict:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return {"range": [[x0, x1], [y0, y1]], "points": self.points_box.isChecked(),
                "thumbnails": self.thumbs_box.isChecked(), "background": self.background.currentData(),
                "grid_n": self.grid_n.value(), "quantiles": self.quantile_box.isChecked(), "pinned": list(self.pinned),
                "drawn": None if self.pad.is_empty else self.pad.image.reshape(-1).astype(np.float32).tolist(),
                "train": {"mode": self.train_panel.mode.currentText(), "hidden": self.train_panel.hidden.text(),
                          "decoder": self.train_panel.decoder.currentText(), "epochs": self.train_panel.epochs.value(),
                          "lr": self.train_panel.lr.value(), "seed": self.train_panel.seed.value()}}

    def restore_view_state(self, state: dict) -> None:
        if not isinstance(state, dict):
            return
        try:
            (x0, x1), (y0, y1) = state["range"]
            if all(np.isfinite([x0, x1, y0, y1])) and x1 > x0 and y1 > y0:
                self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
                self._fit_pending = False
        except (KeyError, TypeError, ValueError):
            pass
        for key, box in (("points", self.points_box), ("thumbnails", self.thumbs_box),
                         ("quantiles", self.quantile_box)):
            if isinstance(state.get(key), bool):
                box.setChecked(state[key])
        restore_choice(self.background, state.get("background"))
        restore_spin(self.grid_n, state.get("grid_n"))
        pinned = state.get("pinned")
        if isinstance(pinned, list) and all(isinstance(p, int) and p >= 0 for p in pinned):
            self.pinned = pinned[:50]
        drawn = state.get("drawn")
        if isinstance(drawn, list) and len(drawn) == self.pad.image.size:
            try:
                image = np.asarray(drawn, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                image = None
            if image is not None and image.ndim == 1 and np.isfinite(image).all():
                self.pad.set_image(image)  # (its changed signal shows the drawing's q(z|x))
        train = state.get("train")
        if isinstance(train, dict):
            panel = self.train_panel
            for combo, key in ((panel.mode, "mode"), (panel.decoder, "decoder")):
                if isinstance(train.get(key), str) and combo.findText(train[key]) >= 0:
                    combo.setCurrentText(train[key])
            if isinstance(train.get("hidden"), str) and len(train["hidden"]) <= 200:
                panel.hidden.setText(train["hidden"])
            for spin, key in ((panel.epochs, "epochs"), (panel.lr, "lr"), (panel.seed, "seed")):
                restore_spin(spin, train.get(key))
