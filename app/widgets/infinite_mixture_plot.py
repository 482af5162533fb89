"""The infinite mixture drawn in x space: p(x) heatmap, component ellipses N(mu(z), Sigma(z)) coloured by z, samples
coloured by their z, and the curve (1-D z) or warped mesh (2-D z) z -> mu(z)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from app.widgets.density_plot import DensityPlot

Z_CMAP = pg.colormap.get("plasma")
Z_RANGE = 2.5  # |z| mapped onto the colour scale
_T = np.linspace(0, 2 * np.pi, 41)


def z_colors(z: np.ndarray, alpha: int = 255) -> list[QColor]:
    """Colour of each latent point: 1-D z on the plasma scale (purple z = -2.5 ... yellow z = +2.5); 2-D z: hue =
    direction of z, saturation = |z| / 2.5 (grey at the origin)."""
    z = np.asarray(z, dtype=float)
    out = []
    if z.shape[-1] == 1:
        # stay away from the palest yellow, which vanishes on a white background
        t = 0.02 + 0.83 * np.clip((z[:, 0] + Z_RANGE) / (2 * Z_RANGE), 0, 1)
        for r, g, b, _ in Z_CMAP.map(t, mode="byte"):
            out.append(QColor(int(r), int(g), int(b), alpha))
        return out
    ang = (np.arctan2(z[:, 1], z[:, 0]) / (2 * np.pi)) % 1.0
    sat = np.clip(np.hypot(z[:, 0], z[:, 1]) / Z_RANGE, 0, 1)
    for h, s in zip(ang, sat, strict=False):
        c = QColor.fromHsvF(float(h), float(0.15 + 0.85 * s), 0.8)
        c.setAlpha(alpha)
        out.append(c)
    return out


def quantised_brushes(z: np.ndarray, alpha: int = 255) -> list:
    """One brush per point, from a small palette (z rounded to 0.25 in 1-D; to 15 degrees and 0.5 in radius in 2-D)
    so that pyqtgraph's symbol atlas stays small and ``setData`` stays fast."""
    z = np.asarray(z, dtype=float)
    if z.shape[-1] == 1:
        zq = np.round(np.clip(z, -Z_RANGE, Z_RANGE) * 4) / 4
    else:
        ang = np.round(np.arctan2(z[:, 1], z[:, 0]) / (np.pi / 12)) * (np.pi / 12)
        rad = np.round(np.clip(np.hypot(z[:, 0], z[:, 1]), 0, Z_RANGE) * 2) / 2
        zq = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    uniq, inverse = np.unique(np.round(zq, 6), axis=0, return_inverse=True)
    palette = [pg.mkBrush(c) for c in z_colors(uniq, alpha)]
    return [palette[i] for i in np.asarray(inverse).reshape(-1)]


class InfiniteMixturePlot(DensityPlot):
    """``show_components(mean, log_var, z)``, ``show_samples(x, z)``, ``show_mean_curve(curves)``."""

    def __init__(self, parent=None, max_components: int = 49):
        super().__init__(parent=parent, point_color=(90, 90, 90, 120), point_size=3)
        self.ellipses = []
        for _ in range(max_components):
            item = pg.PlotCurveItem(antialias=True)
            item.setZValue(10)
            self.addItem(item)
            self.ellipses.append(item)
        self.centres = pg.ScatterPlotItem(size=7, pen=pg.mkPen("k", width=0.8))
        self.centres.setZValue(12)
        self.addItem(self.centres)
        self.samples = pg.ScatterPlotItem(size=4, pen=None)
        self.samples.setZValue(8)
        self.addItem(self.samples)
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(20, 20, 20, 230, width=2.2), connect="finite", antialias=True)
        self.curve.setZValue(11)
        self.addItem(self.curve)
        self._sample_brushes: list | None = None
        self._component_brushes: list = []
        self._component_key: tuple | None = None
        self._sample_key: tuple | None = None

    def show_components(self, mean: np.ndarray | None, log_var: np.ndarray | None, z: np.ndarray | None) -> None:
        """1-sigma ellipses of N(mean_k, diag exp(log_var_k)) (axis-aligned: Sigma is diagonal). Pens and brushes
        depend on z only and are set when z changes (slider drags move theta, not z)."""
        n = 0 if mean is None else len(mean)
        if n:
            assert mean is not None and z is not None
            key = (z.shape, z.tobytes())
            if key != self._component_key:
                cols = z_colors(z)
                self._component_brushes = [pg.mkBrush(c) for c in cols]
                for k in range(n):
                    self.ellipses[k].setPen(pg.mkPen(cols[k], width=1.6))
                self._component_key = key
            sd = np.exp(0.5 * np.asarray(log_var))
            ex = mean[:, :1] + sd[:, :1] * np.cos(_T)
            ey = mean[:, 1:] + sd[:, 1:] * np.sin(_T)
            for k in range(n):
                self.ellipses[k].setData(ex[k], ey[k])
                self.ellipses[k].setVisible(True)
            self.centres.setData(pos=mean, brush=self._component_brushes)
        else:
            self.centres.clear()
        for item in self.ellipses[n:]:
            item.setVisible(False)

    def show_samples(self, x: np.ndarray | None, z: np.ndarray | None = None) -> None:
        if x is None:
            self.samples.clear()
            return
        key = None if z is None else (z.shape, float(z.sum()))
        if key != self._sample_key:  # the latent draws are fixed while theta moves: colour once
            self._sample_brushes = None if z is None else quantised_brushes(z, alpha=170)
            self._sample_key = key
        if self._sample_brushes is None:
            self.samples.setData(pos=x, brush=pg.mkBrush(60, 60, 60, 150))
        else:
            self.samples.setData(pos=x, brush=self._sample_brushes)

    def show_mean_curve(self, curves: list[np.ndarray] | None) -> None:
        """Polylines (each (m, 2)) joined with NaN gaps into one item."""
        if not curves:
            self.curve.setData([], [])
            return
        parts = []
        for c in curves:
            parts.append(np.asarray(c, float))
            parts.append(np.full((1, 2), np.nan))
        xy = np.concatenate(parts[:-1])
        self.curve.setData(xy[:, 0], xy[:, 1])
