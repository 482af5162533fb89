"""Small pyqtgraph helpers shared by the Inference lab's panels, and the worker's drawing of a posterior (its HPD
contours traced on a finer, bilinearly resampled copy of the density)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.widgets.data_point_card import DataPointCard
from app.widgets.elbo_kl_bar import ElboKLBar
from app.widgets.grid_lines import GridLines
from app.widgets.steady_plots import steady_tick_column
from lvm.contours import contour_segments
from lvm.posterior_grid import CoarseGrid, PosteriorPicture, posterior_picture, upsample_bilinear

POSTERIOR_CMAP = pg.ColorMap([0.0, 0.35, 1.0], [(255, 255, 255), (150, 180, 225), (15, 40, 120)])
CONTOUR_PENS = [
    pg.mkPen((10, 20, 70), width=1.6),
    pg.mkPen((10, 20, 70), width=1.2, style=Qt.PenStyle.DashLine),
    pg.mkPen((10, 20, 70), width=1.0, style=Qt.PenStyle.DotLine),
]
ESTIMATOR_COLORS = {"iwae": (30, 110, 200), "uniform": (200, 120, 20), "prior": (60, 160, 60)}
EXACT_COLOR = (0, 0, 0)
ELBO_LINE_COLOR = (150, 60, 170)
SHOWN_UPSAMPLE = 4  # the fine posterior is drawn (and contoured) 4x finer than it is computed


def drawn_posterior(coarse: CoarseGrid, x, index: int | None) -> tuple[PosteriorPicture, tuple[np.ndarray, ...]]:
    """For a worker: the exact posterior of x (``lvm.posterior_grid.posterior_picture``) and its HPD contours as
    segment endpoints (``app.widgets.contours``), traced ``SHOWN_UPSAMPLE`` times finer than computed."""
    pic = posterior_picture(coarse, x, index)
    shown = upsample_bilinear(pic.density, SHOWN_UPSAMPLE)
    return pic, tuple(contour_segments(shown, level, pic.extent) for level in pic.levels)


def latent_plot(title: str = "") -> pg.PlotWidget:
    """A white plot of the latent plane (z1, z2) with equal aspect."""
    w = pg.PlotWidget(background="w", title=title)
    w.setAspectLocked(True)
    w.setLabel("bottom", "z₁")
    w.setLabel("left", "z₂")
    w.grid_lines = GridLines(w, alpha=0.15, z=0.5)  # over the posterior heatmaps (z 0), under q and the samples
    steady_tick_column(w)  # a new x, a pan or a zoom moves the ticks, not the plot's layout
    return w


def set_image(item: pg.ImageItem, density: np.ndarray, extent, upsample: int = 1) -> np.ndarray:
    """Show ``density`` ([i, j] at (z1_i, z2_j)) over ``extent`` (z1_lo, z1_hi, z2_lo, z2_hi); returns what is shown."""
    d = upsample_bilinear(density, upsample)
    shown = d if pg.getConfigOption("imageAxisOrder") == "col-major" else d.T
    item.setImage(shown, levels=(0.0, float(d.max()) if d.size and d.max() > 0 else 1.0), autoLevels=False)
    lo1, hi1, lo2, hi2 = extent
    item.setRect(QRectF(lo1, lo2, hi1 - lo1, hi2 - lo2))
    return shown


def ellipse_points(mean, cov, n_sigma: float = 2.0, n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    cov = np.asarray(cov, dtype=float)
    L = np.linalg.cholesky(0.5 * (cov + cov.T) + 1e-18 * np.eye(2))
    t = np.linspace(0, 2 * math.pi, n)
    pts = np.asarray(mean, dtype=float)[:, None] + n_sigma * L @ np.stack([np.cos(t), np.sin(t)])
    return pts[0], pts[1]


def union_rect(*rects) -> QRectF | None:
    """Union of (lo1, hi1, lo2, hi2) tuples (None entries skipped) as a QRectF."""
    rs = [r for r in rects if r is not None]
    if not rs:
        return None
    lo1 = min(r[0] for r in rs)
    hi1 = max(r[1] for r in rs)
    lo2 = min(r[2] for r in rs)
    hi2 = max(r[3] for r in rs)
    return QRectF(lo1, lo2, hi1 - lo1, hi2 - lo2)


def gaussian_extent(mean, cov, n_sigma: float = 2.5):
    s = np.sqrt(np.clip(np.diag(np.asarray(cov, dtype=float)), 0, None)) * n_sigma
    return (mean[0] - s[0], mean[0] + s[0], mean[1] - s[1], mean[1] + s[1])


class QExplorerFrame(QWidget):
    """The KL gap explorers' shared frame (2-D, and the d > 2 slice): ``plot`` over ``bar`` on the left; on the right
    the x analysed (``card``), the panel's own controls, the buttons q = encoder / best / prior and Fit view, and the
    readout ``info``, in a column of fixed width (the readout's text changes with x: the plot keeps its size).
    Subclasses make ``plot`` and ``bar`` and define ``set_encoder``, ``set_prior`` and ``fit_view``."""

    plot: pg.PlotWidget
    bar: ElboKLBar
    card: DataPointCard
    info: QLabel
    enc_button: QPushButton
    best_button: QPushButton
    prior_button: QPushButton
    fit_button: QPushButton

    def build_frame(self, controls: QWidget, best_text: str, on_best, info_name: str) -> None:
        self.enc_button = QPushButton("q = encoder q(z|x)")
        self.best_button = QPushButton(best_text)
        self.prior_button = QPushButton("q = prior N(0, I)")
        self.fit_button = QPushButton("Fit view")
        self.enc_button.clicked.connect(self.set_encoder)  # type: ignore[attr-defined]
        self.best_button.clicked.connect(on_best)
        self.prior_button.clicked.connect(self.set_prior)  # type: ignore[attr-defined]
        self.fit_button.clicked.connect(self.fit_view)  # type: ignore[attr-defined]
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setObjectName(info_name)
        self.card = DataPointCard()  # the x analysed
        side = QVBoxLayout()
        side.addWidget(self.card)
        side.addWidget(controls)
        for b in (self.enc_button, self.best_button, self.prior_button, self.fit_button):
            side.addWidget(b)
        side.addWidget(self.info)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(260)
        side_w.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        left = QVBoxLayout()
        left.addWidget(self.plot, 1)
        left.addWidget(self.bar)
        top = QHBoxLayout(self)
        top.setContentsMargins(2, 2, 2, 2)
        top.addLayout(left, 1)
        top.addWidget(side_w)
