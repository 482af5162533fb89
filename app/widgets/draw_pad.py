"""A small drawable image (default 28 x 28): left-drag paints with a soft round brush, right-drag erases.

``DrawPad.changed`` carries the flattened image (float32 in [0, 1], row-major) after every stroke segment, and an
empty array when cleared.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from app.widgets.image_item import ImageItem


class PaintImageItem(ImageItem):
    """An ImageItem (row-major: pos.x = column, pos.y = row) that paints where the mouse drags."""

    def __init__(self, pad: DrawPad):
        super().__init__(axisOrder="row-major")
        self.pad = pad
        self._last = None

    def mouseClickEvent(self, ev):
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.accept()
            self.pad.stroke(ev.pos().x(), ev.pos().y(), None, erase=ev.button() == Qt.MouseButton.RightButton)

    def mouseDragEvent(self, ev):
        if ev.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.ignore()
            return
        ev.accept()
        p = ev.pos()
        if ev.isStart():
            self._last = ev.buttonDownPos()
        self.pad.stroke(p.x(), p.y(), self._last, erase=ev.button() == Qt.MouseButton.RightButton)
        self._last = p
        if ev.isFinish():
            self._last = None


class DrawPad(pg.GraphicsLayoutWidget):
    changed = Signal(object)  # np.ndarray (h * w,)

    def __init__(self, shape: tuple[int, int] = (28, 28), brush_radius: float = 1.1, parent: QWidget | None = None):
        super().__init__(parent)
        self.shape = shape
        self.brush_radius = brush_radius
        self.image = np.zeros(shape, np.float32)
        self.view = self.addViewBox(lockAspect=True, enableMouse=False, invertY=True, enableMenu=False)
        self.item = PaintImageItem(self)
        self.item.setImage(self.image, levels=(0, 1), autoLevels=False)
        self.item.setLookupTable(np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(3, 1))  # ink on white
        self.view.addItem(self.item)
        self.view.setRange(xRange=(0, shape[1]), yRange=(0, shape[0]), padding=0.02)
        border = pg.QtWidgets.QGraphicsRectItem(0, 0, shape[1], shape[0])
        border.setPen(pg.mkPen("#888", width=0))
        self.view.addItem(border)
        self.setBackground("w")
        self.setToolTip("Draw a digit: left-drag paints, right-drag erases")

    def stroke(self, x: float, y: float, start=None, erase: bool = False) -> None:
        """Paint (or erase) the segment from ``start`` (a QPointF or None) to (x, y), in pixel coordinates."""
        pts = [(x, y)]
        if start is not None:
            sx, sy = start.x(), start.y()
            n = int(np.ceil(np.hypot(x - sx, y - sy) / 0.5))
            pts = [(sx + (x - sx) * t, sy + (y - sy) * t) for t in np.linspace(0, 1, max(n, 1) + 1)]
        h, w = self.shape
        rows, cols = np.mgrid[0:h, 0:w]
        img = self.image
        for px, py in pts:
            d2 = (cols + 0.5 - px) ** 2 + (rows + 0.5 - py) ** 2
            stamp = np.clip(1.4 - np.sqrt(d2) / self.brush_radius * 0.7, 0, 1).astype(np.float32)
            img = np.minimum(img, 1 - stamp) if erase else np.maximum(img, stamp)
        self.image = img
        self.item.setImage(self.image, levels=(0, 1), autoLevels=False)
        self.changed.emit(self.image.reshape(-1).copy())

    def set_image(self, image: np.ndarray) -> None:
        self.image = np.clip(np.asarray(image, np.float32).reshape(self.shape), 0, 1)
        self.item.setImage(self.image, levels=(0, 1), autoLevels=False)
        self.changed.emit(self.image.reshape(-1).copy())

    def clear_image(self) -> None:
        """Erase everything (``clear`` is taken: GraphicsLayoutWidget forwards it to its layout)."""
        self.image = np.zeros(self.shape, np.float32)
        self.item.setImage(self.image, levels=(0, 1), autoLevels=False)
        self.changed.emit(np.zeros(0, np.float32))  # empty: cleared

    @property
    def is_empty(self) -> bool:
        return not self.image.any()
