"""Covariance ellipses of 2-D Gaussians: the 1- and 2-sigma contours {x : (x-mu)^T Sigma^-1 (x-mu) = s^2}.

With Sigma = V diag(l) V^T the contour is mu + s V diag(sqrt l) [cos t, sin t]^T. One ``PlotCurveItem`` per
component holds both contours (NaN-separated); items are pooled and reused, never recreated per update.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from app.widgets.palette import pen as line_pen

_T = np.linspace(0.0, 2.0 * np.pi, 97)
_CIRCLE = np.stack([np.cos(_T), np.sin(_T)], 0)  # (2, 97)


def ellipse_points(mean: np.ndarray, cov: np.ndarray, sigmas=(1.0, 2.0)) -> np.ndarray:
    """(M, 2) points of the contours at the given numbers of standard deviations, NaN rows between them."""
    cov = 0.5 * (np.asarray(cov, float) + np.asarray(cov, float).T)
    lam, vec = np.linalg.eigh(cov)
    a = vec @ np.diag(np.sqrt(np.clip(lam, 0.0, None)))
    parts = []
    for s in sigmas:
        parts.append((np.asarray(mean, float)[:, None] + s * a @ _CIRCLE).T)
        parts.append(np.full((1, 2), np.nan))
    return np.concatenate(parts[:-1], 0)


class EllipseSet:
    """K covariance ellipses (1 and 2 sigma) in ``view``; ``set(means, covs, colours, flagged)``."""

    def __init__(self, view: pg.ViewBox, z: float = 5.0, width: float = 2.0):
        self.view, self.z, self.width = view, z, width
        self.curves: list[pg.PlotCurveItem] = []

    def _curve(self, k: int) -> pg.PlotCurveItem:
        while len(self.curves) <= k:
            c = pg.PlotCurveItem(connect="finite")
            c.setZValue(self.z)
            self.view.addItem(c, ignoreBounds=True)
            self.curves.append(c)
        return self.curves[k]

    def set(self, means: np.ndarray, covs: np.ndarray, colours, flagged=()) -> None:
        """means (K, 2), covs (K, 2, 2), colours: K QColor-compatibles; ``flagged`` components are drawn dashed."""
        K = len(means)
        for k in range(K):
            pts = ellipse_points(means[k], covs[k])
            pen = line_pen(  # (wider in presenter mode, readable on a dark plot)
                QColor(colours[k]).darker(160) if k not in flagged else QColor(200, 0, 0),
                width=self.width + (1 if k in flagged else 0),
                style=Qt.PenStyle.DashLine if k in flagged else Qt.PenStyle.SolidLine,
            )
            c = self._curve(k)
            c.setData(pts[:, 0], pts[:, 1], pen=pen)
            c.setVisible(True)
        for c in self.curves[K:]:
            c.setVisible(False)

    def clear(self) -> None:
        for c in self.curves:
            c.setVisible(False)
