"""A draggable 2-D Gaussian: q(z) = N(mu, Sigma) drawn as its n-sigma ellipse, a pyqtgraph ROI.

Geometry: with Sigma = R(theta) diag(a^2, b^2) R(theta)^T (a >= b the principal standard deviations), the ellipse
{z : (z - mu)^T Sigma^-1 (z - mu) = n^2} has semi-axes n a and n b along R's columns. The ROI's rectangle is
2 n a x 2 n b, rotated by theta, centred on mu. Dragging the body moves mu; the handle at the end of each axis scales
that axis' standard deviation and rotates the ellipse. A dashed inner ellipse marks the 1-sigma contour.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QPainter, QPen


def gaussian_to_roi_state(mean, cov, n_sigma: float) -> dict:
    """ROI state {pos, size, angle (degrees)} of N(mean, cov)'s n-sigma ellipse."""
    cov = np.asarray(cov, dtype=float).reshape(2, 2)
    cov = 0.5 * (cov + cov.T)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 1e-18, None)
    major = vecs[:, 1]
    theta = math.atan2(major[1], major[0])
    w, h = 2 * n_sigma * math.sqrt(vals[1]), 2 * n_sigma * math.sqrt(vals[0])
    c, s = math.cos(theta), math.sin(theta)
    mx, my = float(mean[0]), float(mean[1])
    # pos is the rotated rectangle's local origin: centre - R (w/2, h/2)
    pos = (mx - (c * w / 2 - s * h / 2), my - (s * w / 2 + c * h / 2))
    return {"pos": pos, "size": (w, h), "angle": math.degrees(theta)}


def roi_state_to_gaussian(pos, size, angle_deg: float, n_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean (2,), cov (2, 2)) from an ROI state."""
    w, h = abs(float(size[0])), abs(float(size[1]))
    t = math.radians(float(angle_deg))
    c, s = math.cos(t), math.sin(t)
    mean = np.array([pos[0] + c * w / 2 - s * h / 2, pos[1] + s * w / 2 + c * h / 2])
    R = np.array([[c, -s], [s, c]])
    a, b = w / (2 * n_sigma), h / (2 * n_sigma)
    cov = R @ np.diag([a * a, b * b]) @ R.T
    return mean, cov


class GaussianEllipseROI(pg.EllipseROI):
    """N(mean, cov) as a draggable ellipse. ``sigGaussianChanged(mean, cov)`` fires on every user change."""

    sigGaussianChanged = Signal(object, object)

    def __init__(self, mean=(0.0, 0.0), cov=((1.0, 0.0), (0.0, 1.0)), n_sigma: float = 2.0, pen=None, **kwargs):
        self.n_sigma = float(n_sigma)
        st = gaussian_to_roi_state(mean, cov, self.n_sigma)
        pen = pen if pen is not None else pg.mkPen((230, 60, 40), width=2.5)
        super().__init__(
            st["pos"],
            st["size"],
            angle=st["angle"],
            pen=pen,
            invertible=False,
            hoverPen=pg.mkPen((255, 140, 0), width=3),
            handlePen=pg.mkPen((230, 60, 40), width=2),
            **kwargs,
        )
        self._programmatic = False
        self.sigRegionChanged.connect(self._emit_gaussian)

    def _addHandles(self):  # noqa: N802 - pyqtgraph's name
        self.addScaleRotateHandle([1.0, 0.5], [0.5, 0.5], name="axis1")
        self.addScaleRotateHandle([0.5, 1.0], [0.5, 0.5], name="axis2")

    # -- the Gaussian ----------------------------------------------------------------------------------------------
    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        st = self.getState()
        return roi_state_to_gaussian(st["pos"], st["size"], st["angle"], self.n_sigma)

    def set_gaussian(self, mean, cov) -> None:
        """Move the ellipse without emitting ``sigGaussianChanged``."""
        st = gaussian_to_roi_state(mean, cov, self.n_sigma)
        self._programmatic = True
        try:
            self.setPos(st["pos"], update=False)
            self.setSize(st["size"], update=False)
            self.setAngle(st["angle"], update=True)
        finally:
            self._programmatic = False

    def _emit_gaussian(self, _roi=None) -> None:
        if not self._programmatic:
            mean, cov = self.gaussian()
            self.sigGaussianChanged.emit(mean, cov)

    # -- drawing ---------------------------------------------------------------------------------------------------
    def paint(self, p: QPainter, opt, widget):
        p.save()
        super().paint(p, opt, widget)
        p.restore()
        r = self.boundingRect()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pen = QPen(self.currentPen)
        pen.setCosmetic(True)
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setWidthF(1.2)
        p.setPen(pen)
        c = r.center()
        f = 1.0 / self.n_sigma
        inner = QRectF(c.x() - r.width() * f / 2, c.y() - r.height() * f / 2, r.width() * f, r.height() * f)
        p.drawEllipse(inner)
        pen.setStyle(Qt.PenStyle.SolidLine)
        p.setPen(pen)
        dx, dy = r.width() * 0.04, r.height() * 0.04
        p.drawLine(QPointF(c.x() - dx, c.y()), QPointF(c.x() + dx, c.y()))
        p.drawLine(QPointF(c.x(), c.y() - dy), QPointF(c.x(), c.y() + dy))
