"""The Mixture lab's "digits" page: a Gaussian mixture clustering handwritten digits (the fit itself, Qt-free, is
``digits_fit``), its component means and members as image grids, purity/NMI and the selected digit's posterior."""

from __future__ import annotations

import csv
from typing import cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.labs.mixture.digits_fit import TILE_GAP, DigitsResult, fit_digits, latent_space_problem, tile
from app.labs.mixture.engine import COV_TYPES
from app.labs.mixture.panels import PLOT_MIN, show_bars
from app.labs.mixture.state import DIGIT_SPACES, DIGITS_K_RANGE, DIGITS_N_RANGE, SEED_RANGE, DigitsSettings
from app.widgets.axes import readable_axes
from app.widgets.click_viewbox import ClickViewBox
from app.widgets.flow_layout import flow, group
from app.widgets.image_item import ImageItem
from app.widgets.palette import follow_colours

SPACES = DIGIT_SPACES


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
        self.image = ImageItem(axisOrder="row-major")
        self.image.setLookupTable(
            pg.ColorMap([0.0, 0.2, 1.0], [(90, 90, 110), (255, 255, 255), (0, 0, 0)]).getLookupTable(nPts=256)
        )
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
        defaults = DigitsSettings()
        self.k = QSpinBox()
        self.k.setRange(*DIGITS_K_RANGE)
        self.k.setValue(defaults.k)
        self.n = QSpinBox()
        self.n.setRange(*DIGITS_N_RANGE)
        self.n.setSingleStep(1000)
        self.n.setValue(defaults.n)
        self.n.setToolTip("how many digits (a random subset) to cluster")
        self.cov = QComboBox()
        self.cov.addItems(list(COV_TYPES))
        self.cov.setCurrentText("diag")
        self.seed = QSpinBox()
        self.seed.setRange(*SEED_RANGE)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("fit the mixture in the background")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.progress.setMinimumWidth(240)
        row = flow(
            group(QLabel("space"), self.space),
            group(QLabel("K"), self.k, QLabel("digits"), self.n),
            group(QLabel("covariance"), self.cov, QLabel("seed"), self.seed),
            group(self.fit_button, self.cancel_button, self.progress),
        )

        self.gallery = _Gallery("component means (click one)")
        self.member_view = _Gallery("members of the selected component (click one)")
        self.metrics = QLabel("Press Fit to cluster the digits.")
        self.metrics.setWordWrap(True)
        self.post_plot = pg.PlotWidget(background="w")
        for plot in (self.gallery, self.member_view, self.post_plot):
            plot.setMinimumSize(*PLOT_MIN)  # (readable on a 1280x720 window; the controls above wrap)
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
        split = QSplitter(Qt.Orientation.Horizontal)
        grids = QSplitter(Qt.Orientation.Vertical)
        for splitter in (split, grids):
            splitter.setChildrenCollapsible(False)  # (no plot dragged away to nothing)
        grids.addWidget(self.gallery)
        grids.addWidget(self.member_view)
        split.addWidget(grids)
        split.addWidget(right)
        split.setSizes([650, 350])
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(row, 0, 0)
        layout.addWidget(split, 1, 0)

        self.space.currentIndexChanged.connect(self._on_space)
        self.fit_button.clicked.connect(self.fit)
        self.cancel_button.clicked.connect(self.cancel)
        self.gallery.vb.clicked.connect(lambda p, b, m: self.select_component(self.gallery.tile_at(p.x(), p.y())))
        self.member_view.vb.clicked.connect(self._on_member_click)
        self.workspace.events.selection.connect(self._on_selection)
        self.workspace.events.model.connect(self._on_model)
        follow_colours(self._on_colours)  # another palette: the bars' colours
        self._on_space()

    def channel(self) -> str:
        return self.lab.channel("digits")

    def _on_model(self, _model) -> None:
        """Another model: a fit in the previous model's latent space (its decoded means) is not shown any more."""
        if self.result is not None and self.result.space == SPACES[2]:
            self.runner.cancel(self.channel())
            self._done()
            self.result, self.component, self.members = None, None, np.zeros(0, np.int64)
            self.gallery.set_images(np.zeros((0, 1)), (28, 28), 1)
            self.gallery.highlight(None)
            self.member_view.set_images(np.zeros((0, 1)), (28, 28), 1)
            self.member_view.label.setText("", color="k")
            self.metrics.setText("The model changed: fit again to cluster in its latent space.")
        self._on_space()

    def _on_space(self, *_):
        vae = self.space.findText(SPACES[2])
        problem = latent_space_problem(self.workspace.model)
        item = cast(QStandardItemModel, self.space.model()).item(vae)
        item.setEnabled(problem is None)
        item.setToolTip("" if problem is None else f"not available: {problem}")
        if self.space.currentIndex() == vae and problem is not None:
            self.space.setCurrentIndex(1)
            self.metrics.setText(f"VAE latent space not available: {problem}.")
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
        space, k, n, seed, cov = (
            self.space.currentText(),
            self.k.value(),
            self.n.value(),
            self.seed.value(),
            self.cov.currentText(),
        )
        model = self.workspace.model if space == SPACES[2] else None
        x, y = data.x, data.y

        def job(token):
            yield from fit_digits(x, y, space, k, n, seed, cov, model=model, token=token)

        self.progress.setValue(0)
        self.progress.setFormat("starting")
        self.fit_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.runner.submit(
            self.channel(),
            job,
            on_snapshot=self._on_snapshot,
            on_finished=self._done,
            on_error=lambda msg: self._done(msg),
            keep_all=True,
        )

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
        self.metrics.setText(
            f"<b>{len(res.indices):,} digits</b> in {res.space}, K = {K}: "
            f"purity <b>{pur}</b>, NMI <b>{nmi}</b>, log-lik/point {res.log_likelihood:.2f}, "
            f"{res.n_iter} EM iterations. Click a mean to see its members; click a member to select it."
        )
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
        self.member_view.label.setText(
            f"component {k}: {int((hard == k).sum())} members (\u03c0 = {res.weights[k]:.3f}), most confident first",
            color="k",
        )
        self.member_view.set_images(
            data.x[self.members] if len(self.members) else np.zeros((0, shape[0] * shape[1])), shape, cols=10
        )
        self._on_selection(self.workspace.selected_index)

    def _on_member_click(self, p, button, modifiers) -> None:
        i = self.member_view.tile_at(p.x(), p.y())
        if i is not None and i < len(self.members):
            self.workspace.select(int(self.members[i]))

    def _on_colours(self, _appearance=None) -> None:
        self._on_selection(self.workspace.selected_index)

    def _on_selection(self, index) -> None:
        res = self.result
        if res is None or index is None or self._data() is None:
            self.post_bars.setOpts(x=[], height=[])
            self.post_label.setText("Select a digit (click a member, or select one in another lab).")
            self.member_view.highlight(None)
            return
        x = self.workspace.data.x[index : index + 1]
        post = np.asarray(res.gmm.predict_proba(np.ascontiguousarray(res.embed(x), dtype=np.float32)))[0]
        show_bars(self.post_plot, self.post_bars, post)
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
                w.writerow(
                    [
                        int(i),
                        *[f"{p:.6g}" for p in res.resp[n]],
                        int(res.resp[n].argmax()),
                        *([int(y[i])] if y is not None else []),
                    ]
                )

    def settings(self) -> DigitsSettings:
        return DigitsSettings(self.space.currentText(), self.k.value(), self.n.value(), self.seed.value())

    def apply(self, settings: DigitsSettings) -> None:
        """Widgets from the (validated) settings of a session."""
        self.space.setCurrentText(settings.space)
        self.k.setValue(settings.k)
        self.n.setValue(settings.n)
        self.seed.setValue(settings.seed)
