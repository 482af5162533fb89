"""Clustering handwritten digits with a Gaussian mixture (the Mixture lab's "digits" page).

Feature spaces: raw pixels (784-D, diagonal covariances: full ones would need 300k parameters per component), the first
50 principal components (full covariances), or the VAE's encoder means mu_phi(x) when a model is loaded. Component
means are shown as images: pixels directly, mean + mu_k W for PCA, the decoder mean f_theta(mu_k) for the VAE.
Purity = (1/N) sum_k max_c |cluster k and class c|; NMI = I(cluster; class) / sqrt(H(cluster) H(class)).
"""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox,
                               QSplitter, QVBoxLayout, QWidget)

from app.views.base import restore_spin
from app.views.mixture_engine import COV_TYPES
from lvm.models import gmm
from app.widgets.axes import readable_axes
from app.widgets.click_viewbox import ClickViewBox
from app.widgets.palette import qcolor
from lvm.errors import ModelInputError
from lvm.models.gmm_metrics import normalized_mutual_info, purity
from lvm.models.pca import pca_fit

SPACES = ("pixels (diag)", "PCA: 50 (full)", "VAE latent (full)")
TILE_GAP = 2


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def purity_nmi(labels: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """(purity, NMI) of ``clusters`` against ``labels`` (``lvm.models.gmm_metrics``)."""
    return purity(clusters, labels), normalized_mutual_info(clusters, labels)


def pca(X: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), components (n, D)) with orthonormal rows (``lvm.models.pca.pca_fit``)."""
    mean, comps = pca_fit(torch.as_tensor(X), n)
    return _np(mean).astype(np.float32), _np(comps).astype(np.float32)


@dataclasses.dataclass
class DigitsResult:
    space: str
    indices: np.ndarray  # (N,) indices into the workspace split
    resp: np.ndarray  # (N, K)
    mean_images: np.ndarray  # (K, H*W) in [0, 1]
    weights: np.ndarray
    purity: float | None
    nmi: float | None
    log_likelihood: float
    n_iter: int
    gmm: object
    embed: object  # callable (M, D) images -> (M, F) features


def fit_digits(x_all: np.ndarray, y_all: np.ndarray | None, space: str, k: int, n: int, seed: int, cov_type: str,
               model=None, token=None, max_iter: int = 100):
    """Generator: ('progress', fraction, text) ... then ('done', DigitsResult). Runs in a worker."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x_all), size=min(n, len(x_all)), replace=False))
    X = np.ascontiguousarray(x_all[idx], dtype=np.float32)
    yield "progress", 0.02, "preparing features"
    if space == SPACES[0]:
        F, reg = X, 1e-2

        def embed(imgs):
            return np.asarray(imgs, np.float32)

        def to_images(means):
            return np.clip(means, 0, 1)
    elif space == SPACES[1]:
        mean, comps = pca(X, min(50, X.shape[1], len(X) - 1))
        F, reg = (X - mean) @ comps.T, 1e-3

        def embed(imgs, mean=mean, comps=comps):
            return (np.asarray(imgs, np.float32) - mean) @ comps.T

        def to_images(means, mean=mean, comps=comps):
            return np.clip(mean + means @ comps, 0, 1)
    else:
        if model is None:
            raise ModelInputError("the VAE latent space needs a model; open or train one first")
        device = next(model.parameters()).device

        def embed(imgs, model=model, device=device):
            with torch.no_grad():
                mu, _ = model.encoder_params(torch.as_tensor(np.asarray(imgs, np.float32), device=device))
            return mu.cpu().numpy()

        def to_images(means, model=model, device=device):
            with torch.no_grad():
                out = model.decode_mean(torch.as_tensor(means, dtype=torch.float32, device=device))
            return np.clip(out.cpu().numpy(), 0, 1)
        F, reg = embed(X), 1e-6
    F = np.ascontiguousarray(F, dtype=np.float32)
    if len(F) < k:
        raise ModelInputError(f"{len(F)} digits cannot fit {k} components; use more digits or fewer components")
    gm = gmm.GaussianMixture(n_components=k, covariance_type=cov_type, init_params="kmeans", random_state=seed,
                             max_iter=max_iter, tol=1e-4, reg_covar=reg, device="cpu")
    last = None
    for snap in gm.em_steps(F, max_iter=max_iter):
        if token is not None and token.cancelled:
            return
        last = snap
        if snap.half == "M":
            yield "progress", 0.05 + 0.9 * min(snap.iteration / max_iter, 1.0), \
                f"EM iteration {snap.iteration}, log-lik {snap.log_likelihood:.2f}"
    fitted = gmm.GaussianMixture.from_params(_np(last.weights), _np(last.means), _np(last.covariances), cov_type)
    resp = _np(fitted.predict_proba(F)).astype(np.float32)
    hard = resp.argmax(1)
    purity = nmi = None
    if y_all is not None:
        purity, nmi = purity_nmi(y_all[idx], hard)
    result = DigitsResult(space=space, indices=idx, resp=resp, mean_images=to_images(_np(last.means)),
                          weights=_np(last.weights), purity=purity, nmi=nmi,
                          log_likelihood=float(last.log_likelihood), n_iter=int(last.iteration), gmm=fitted,
                          embed=embed)
    yield "done", result


def tile(images: np.ndarray, shape: tuple[int, int], cols: int) -> np.ndarray:
    """A (rows*(h+gap), cols*(w+gap)) grid image (row-major, first image top-left); gaps are -1 (drawn dark)."""
    h, w = shape
    m = len(images)
    rows = max(1, -(-m // cols))
    grid = np.full((rows * (h + TILE_GAP), cols * (w + TILE_GAP)), -0.25, np.float32)
    for i in range(m):
        r, c = divmod(i, cols)
        grid[r * (h + TILE_GAP):r * (h + TILE_GAP) + h, c * (w + TILE_GAP):c * (w + TILE_GAP) + w] = \
            images[i].reshape(h, w)
    return grid


class _Gallery(pg.GraphicsLayoutWidget):
    """An ImageItem grid of small images in a y-down view; ``clicked`` gives the tile index."""

    def __init__(self, title: str):
        super().__init__()
        self.setBackground("w")
        self.vb = ClickViewBox()
        self.vb.setAspectLocked(True)
        self.vb.invertY(True)
        self.vb.setMouseEnabled(False, False)
        self.label = self.addLabel(title, color="k", size="10pt")
        self.nextRow()
        self.addItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(pg.ColorMap([0.0, 0.2, 1.0], [(90, 90, 110), (255, 255, 255), (0, 0, 0)])
                                  .getLookupTable(nPts=256))
        self.vb.addItem(self.image)
        self.frame = pg.PlotCurveItem(pen=pg.mkPen((214, 39, 40), width=3))
        self.vb.addItem(self.frame)
        self.shape, self.cols, self.count = (28, 28), 1, 0

    def set_images(self, images: np.ndarray, shape, cols: int) -> None:
        self.shape, self.cols, self.count = shape, cols, len(images)
        grid = tile(images, shape, cols) if len(images) else np.zeros((1, 1), np.float32)
        self.image.setImage(grid, autoLevels=False, levels=(-0.25, 1.0))
        self.vb.autoRange(padding=0.02)

    def tile_at(self, x: float, y: float) -> int | None:
        h, w = self.shape
        c, r = int(x // (w + TILE_GAP)), int(y // (h + TILE_GAP))
        if x < 0 or y < 0 or c >= self.cols:
            return None
        i = r * self.cols + c
        return i if i < self.count else None

    def highlight(self, i: int | None) -> None:
        if i is None or i >= self.count:
            self.frame.setData([], [])
            return
        h, w = self.shape
        r, c = divmod(i, self.cols)
        x0, y0 = c * (w + TILE_GAP) - 1, r * (h + TILE_GAP) - 1
        self.frame.setData([x0, x0 + w + 1, x0 + w + 1, x0, x0], [y0, y0, y0 + h + 1, y0 + h + 1, y0])


class DigitsPanel(QWidget):
    """Fit a GMM to (a subset of) the workspace images, show component means, members, metrics, posteriors."""

    def __init__(self, lab):
        super().__init__()
        self.lab = lab
        self.workspace = lab.workspace
        self.runner = lab.runner
        self.result: DigitsResult | None = None
        self.component: int | None = None
        self.members: np.ndarray = np.zeros(0, int)

        self.space = QComboBox()
        self.space.addItems(list(SPACES))
        self.space.setToolTip("the space in which the mixture is fitted")
        self.k = QSpinBox()
        self.k.setRange(2, 40)
        self.k.setValue(10)
        self.n = QSpinBox()
        self.n.setRange(50, 70000)
        self.n.setSingleStep(1000)
        self.n.setValue(3000)
        self.n.setToolTip("how many digits (a random subset) to cluster")
        self.cov = QComboBox()
        self.cov.addItems(list(COV_TYPES))
        self.cov.setCurrentText("diag")
        self.seed = QSpinBox()
        self.seed.setRange(0, 9999)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("fit the mixture in the background")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.progress.setMinimumWidth(240)
        row = QHBoxLayout()
        for w in (QLabel("space"), self.space, QLabel("K"), self.k, QLabel("digits"), self.n, QLabel("covariance"),
                  self.cov, QLabel("seed"), self.seed, self.fit_button, self.cancel_button, self.progress):
            row.addWidget(w)
        row.addStretch(1)

        self.gallery = _Gallery("component means (click one)")
        self.member_view = _Gallery("members of the selected component (click one)")
        self.metrics = QLabel("Press Fit to cluster the digits.")
        self.metrics.setWordWrap(True)
        self.post_plot = pg.PlotWidget(background="w")
        self.post_plot.setTitle("p(cluster | selected digit)", color="k", size="10pt")
        self.post_plot.setLabel("bottom", "component k")
        readable_axes(self.post_plot, integer=("bottom",))
        self.post_plot.setYRange(0, 1)
        self.post_plot.setMouseEnabled(False, False)
        self.post_plot.hideButtons()
        self.post_bars = pg.BarGraphItem(x=[], height=[], width=0.7)
        self.post_plot.addItem(self.post_bars)
        self.post_label = QLabel("")
        self.post_label.setWordWrap(True)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.metrics)
        rv.addWidget(self.post_plot, 1)
        rv.addWidget(self.post_label)
        split = QSplitter(Qt.Horizontal)
        grids = QSplitter(Qt.Vertical)
        grids.addWidget(self.gallery)
        grids.addWidget(self.member_view)
        split.addWidget(grids)
        split.addWidget(right)
        split.setSizes([650, 350])
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row, 0, 0)
        layout.addWidget(split, 1, 0)

        self.space.currentIndexChanged.connect(self._on_space)
        self.fit_button.clicked.connect(self.fit)
        self.cancel_button.clicked.connect(self.cancel)
        self.gallery.vb.clicked.connect(lambda p, b, m: self.select_component(self.gallery.tile_at(p.x(), p.y())))
        self.member_view.vb.clicked.connect(self._on_member_click)
        self.workspace.events.selection.connect(self._on_selection)
        self.workspace.events.model.connect(lambda _m: self._on_space())
        self._on_space()

    def channel(self) -> str:
        return self.lab.channel("digits")

    def _on_space(self, *_):
        vae = self.space.findText(SPACES[2])
        self.space.model().item(vae).setEnabled(self.workspace.model is not None)
        if self.space.currentIndex() == vae and self.workspace.model is None:
            self.space.setCurrentIndex(1)
        self.cov.setCurrentText("diag" if self.space.currentIndex() == 0 else "full")

    def on_dataset(self, ds) -> None:
        self.result = None
        self.component = None
        if ds is not None and ds.is_image:
            self.n.setMaximum(len(ds.split(self.workspace.split)))

    def activate(self) -> None:
        if self.result is None and not self.runner.is_busy(self.channel()) and self._data() is not None:
            self.fit()

    def _data(self):
        ds = self.workspace.dataset
        if ds is None or not ds.is_image:
            return None
        return self.workspace.data

    def fit(self) -> None:
        data = self._data()
        if data is None:
            self.metrics.setText("Load an image dataset (File > Built-in datasets > digits) to cluster digits.")
            return
        space, k, n, seed, cov = (self.space.currentText(), self.k.value(), self.n.value(), self.seed.value(),
                                  self.cov.currentText())
        model = self.workspace.model if space == SPACES[2] else None
        x, y = data.x, data.y

        def job(token):
            yield from fit_digits(x, y, space, k, n, seed, cov, model=model, token=token)

        self.progress.setValue(0)
        self.progress.setFormat("starting")
        self.fit_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.runner.submit(self.channel(), job, on_snapshot=self._on_snapshot, on_finished=self._done,
                           on_error=lambda msg: self._done(msg), keep_all=True)

    def cancel(self) -> None:
        self.runner.cancel(self.channel())
        self._done("cancelled")

    def _done(self, message: str | None = None) -> None:
        self.fit_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if message:
            self.progress.setFormat(message[:60])

    def _on_snapshot(self, item) -> None:
        kind, *rest = item
        if kind == "progress":
            frac, text = rest
            self.progress.setValue(int(1000 * frac))
            self.progress.setFormat(text)
            return
        self.result = res = rest[0]
        self.progress.setValue(1000)
        self.progress.setFormat(f"done: {res.n_iter} iterations")
        self.workspace.set_gmm(res.gmm)
        shape = self.workspace.dataset.image_shape or (28, 28)
        K = len(res.weights)
        self.gallery.set_images(res.mean_images, shape, cols=min(K, 10) if K <= 10 else int(np.ceil(np.sqrt(K * 2))))
        pur = "n/a" if res.purity is None else f"{res.purity:.3f}"
        nmi = "n/a" if res.nmi is None else f"{res.nmi:.3f}"
        self.metrics.setText(f"<b>{len(res.indices):,} digits</b> in {res.space}, K = {K}: "
                             f"purity <b>{pur}</b>, NMI <b>{nmi}</b>, log-lik/point {res.log_likelihood:.2f}, "
                             f"{res.n_iter} EM iterations. Click a mean to see its members; click a member to select it.")
        self.select_component(int(np.argmax(res.weights)))
        if self.workspace.selected_index is None and len(self.members):
            self.workspace.select(int(self.members[0]))  # show a posterior straight away
        self._on_selection(self.workspace.selected_index)

    def select_component(self, k: int | None) -> None:
        if k is None or self.result is None:
            return
        self.component = k
        self.gallery.highlight(k)
        res = self.result
        hard = res.resp.argmax(1)
        idx = np.nonzero(hard == k)[0]
        idx = idx[np.argsort(-res.resp[idx, k])][:60]
        self.members = res.indices[idx]
        data = self.workspace.data
        shape = self.workspace.dataset.image_shape or (28, 28)
        self.member_view.label.setText(f"component {k}: {int((hard == k).sum())} members "
                                       f"(\u03c0 = {res.weights[k]:.3f}), most confident first", color="k")
        self.member_view.set_images(data.x[self.members] if len(self.members) else np.zeros((0, shape[0] * shape[1])),
                                    shape, cols=10)
        self._on_selection(self.workspace.selected_index)

    def _on_member_click(self, p, button, modifiers) -> None:
        i = self.member_view.tile_at(p.x(), p.y())
        if i is not None and i < len(self.members):
            self.workspace.select(int(self.members[i]))

    def _on_selection(self, index) -> None:
        res = self.result
        if res is None or index is None or self._data() is None:
            self.post_bars.setOpts(x=[], height=[])
            self.post_label.setText("Select a digit (click a member, or select one in another lab).")
            self.member_view.highlight(None)
            return
        x = self.workspace.data.x[index:index + 1]
        post = _np(res.gmm.predict_proba(np.ascontiguousarray(res.embed(x), dtype=np.float32)))[0]
        K = len(post)
        self.post_bars.setOpts(x=np.arange(K), height=post, width=0.7,
                               brushes=[pg.mkBrush(qcolor(k)) for k in range(K)], pens=[pg.mkPen("k")] * K)
        self.post_plot.setXRange(-0.6, K - 0.4, padding=0)
        y = self.workspace.data.y
        label = "" if y is None else f" (true label {int(y[index])})"
        best = int(np.argmax(post))
        self.post_label.setText(f"digit #{index}{label}: most likely component {best}, p = {post[best]:.3f}")
        pos = np.nonzero(self.members == index)[0]
        self.member_view.highlight(int(pos[0]) if len(pos) else None)

    def export_csv(self, path: str) -> None:
        res = self.result
        if res is None:
            raise NotImplementedError("fit the digits mixture first; there is nothing to export yet")
        y = self.workspace.data.y
        from lvm.io import atomic_open_text

        with atomic_open_text(path) as fh:
            w = csv.writer(fh)
            K = res.resp.shape[1]
            w.writerow(["index", *[f"p_z{k}" for k in range(K)], "cluster", *(["true_label"] if y is not None else [])])
            for n, i in enumerate(res.indices):
                w.writerow([int(i), *[f"{p:.6g}" for p in res.resp[n]], int(res.resp[n].argmax()),
                            *([int(y[i])] if y is not None else [])])

    def view_state(self) -> dict:
        return {"space": self.space.currentText(), "k": self.k.value(), "n": self.n.value(), "seed": self.seed.value()}

    def restore_view_state(self, state: dict) -> None:
        if state.get("space") in SPACES:
            self.space.setCurrentText(state["space"])
        for spin, key in ((self.k, "k"), (self.n, "n"), (self.seed, "seed")):
            restore_spin(spin, state.get(key))
