"""A 2-D density heatmap (pyqtgraph ImageItem on x-space axes) with an optional scatter of data points."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from app.widgets.image_item import ImageItem

# white -> light blue -> dark navy: low density stays white so overlays remain legible
DENSITY_CMAP = pg.ColorMap([0.0, 0.25, 0.6, 1.0], [(255, 255, 255), (198, 219, 239), (66, 146, 198), (8, 48, 107)])


class DensityPlot(pg.PlotWidget):
    """``set_density(p, xs, ys)`` shows p (ny, nx) on the grid xs (nx,), ys (ny,); ``set_points(x)`` overlays data."""

    def __init__(self, title: str | None = None, parent=None, point_color=(217, 95, 2, 150), point_size: float = 3):
        super().__init__(parent=parent, background="w")
        self.setAspectLocked(True)
        self.setMenuEnabled(False)
        self.plotItem.hideButtons()
        for ax in ("left", "bottom"):
            self.getAxis(ax).setPen(pg.mkPen(60, 60, 60))
            self.getAxis(ax).setTextPen(pg.mkPen(40, 40, 40))
        if title:
            self.setTitle(title, color="#222", size="10pt")
        self.image = ImageItem(axisOrder="row-major")
        self.image.setLookupTable(DENSITY_CMAP.getLookupTable(nPts=256))
        self.addItem(self.image)
        self.points = pg.ScatterPlotItem(size=point_size, pen=None, brush=pg.mkBrush(*point_color))
        self.points.setZValue(5)
        self.addItem(self.points)
        self.density: np.ndarray | None = None
        self.xs: np.ndarray | None = None
        self.ys: np.ndarray | None = None

    def set_density(self, p: np.ndarray | None, xs=None, ys=None, auto_range: bool = False) -> None:
        if p is None:
            self.image.clear()
            self.density = None
            return
        p = np.asarray(p, dtype=np.float64)
        self.density = p
        self.xs = xs_ = np.asarray(xs, float)
        self.ys = ys_ = np.asarray(ys, float)
        top = float(np.nanmax(p)) if p.size else 1.0
        self.image.setImage(p, levels=(0.0, top if top > 0 else 1.0), autoLevels=False)
        dx = (xs_[-1] - xs_[0]) / max(len(xs_) - 1, 1)
        dy = (ys_[-1] - ys_[0]) / max(len(ys_) - 1, 1)
        self.image.setRect(QRectF(xs_[0] - dx / 2, ys_[0] - dy / 2, dx * len(xs_), dy * len(ys_)))
        if auto_range:
            self.set_range(xs_, ys_)

    def set_range(self, xs, ys) -> None:
        self.setRange(xRange=(float(xs[0]), float(xs[-1])), yRange=(float(ys[0]), float(ys[-1])), padding=0)

    def set_points(self, x: np.ndarray | None) -> None:
        if x is None or len(x) == 0:
            self.points.clear()
        else:
            self.points.setData(pos=np.asarray(x, dtype=float))
