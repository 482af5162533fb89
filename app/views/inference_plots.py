"""Small pyqtgraph helpers shared by the Inference lab's panels."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from app.views.inference_compute import upsample_bilinear
from app.widgets.grid_lines import GridLines
from app.widgets.steady_plots import steady_tick_column

POSTERIOR_CMAP = pg.ColorMap([0.0, 0.35, 1.0], [(255, 255, 255), (150, 180, 225), (15, 40, 120)])
CONTOUR_PENS = [pg.mkPen((10, 20, 70), width=1.6), pg.mkPen((10, 20, 70), width=1.2, style=pg.QtCore.Qt.DashLine),
                pg.mkPen((10, 20, 70), width=1.0, style=pg.QtCore.Qt.DotLine)]
ESTIMATOR_COLORS = {"iwae": (30, 110, 200), "uniform": (200, 120, 20), "prior": (60, 160, 60)}
EXACT_COLOR = (0, 0, 0)
ELBO_LINE_COLOR = (150, 60, 170)


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
