"""A small-image drawing canvas (28 x 28 by default) shown large: brush, eraser and mask painting.

The image is a float array in [0, 1] (white ink on black); the mask marks observed pixels (True). Pixels outside the
mask are shaded. Strokes are anti-aliased discs stamped every half pixel along the pen's path, so fast strokes stay
continuous. ``stroke_started`` is emitted on the press, ``changed`` on every stamp (the lab coalesces updates),
``stroke_finished`` on release.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

TOOLS = ("brush", "eraser", "observe", "hide")  # observe / hide: paint the mask


def _grey_rgb(img: np.ndarray) -> np.ndarray:
    g = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, -1)


def to_qimage(rgb: np.ndarray) -> QImage:
    """(h, w, 3) uint8 -> a QImage owning a copy of the pixels."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class DigitCanvas(QWidget):
    """Draw on a small image. ``tool`` in TOOLS; left button uses the tool, right button its opposite."""

    changed = Signal()  # the image or the mask changed (during a stroke too)
    stroke_started = Signal()
    stroke_finished = Signal()
    # which pixels are known (True) or missing; it shadows QWidget.mask(), the widget's shape, which is never used here
    mask: np.ndarray  # type: ignore[assignment]

    def __init__(self, shape: tuple[int, int] = (28, 28), parent: QWidget | None = None):
        super().__init__(parent)
        self.shape = tuple(shape)
        self.image = np.zeros(self.shape, dtype=np.float32)
        self.mask = np.ones(self.shape, dtype=bool)
        self.overlay: np.ndarray | None = None  # optional (h, w) values drawn in the missing region
        self.tool = "brush"
        self.brush_radius = 1.2
        self._last: QPointF | None = None
        self._button_tool: str | None = None
        self._lines_key: tuple | None = None  # (mask, square) the boundary lines below were made for
        self._lines: list[QLineF] = []
        self.setMinimumSize(QSize(196, 196))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setMouseTracking(False)

    # -- state -----------------------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        self.image = np.clip(np.asarray(image, dtype=np.float32).reshape(self.shape), 0, 1).copy()
        self.update()
        self.changed.emit()

    def set_mask(self, mask: np.ndarray) -> None:
        self.mask = np.asarray(mask, dtype=bool).reshape(self.shape).copy()
        self.update()
        self.changed.emit()

    def set_overlay(self, values: np.ndarray | None) -> None:
        """Values in [0, 1] shown (tinted) in the missing region, e.g. the predictive mean."""
        if values is None and self.overlay is None:
            return  # (nothing to repaint)
        self.overlay = None if values is None else np.asarray(values, dtype=np.float32).reshape(self.shape)
        self.update()

    def clear(self) -> None:
        self.set_image(np.zeros(self.shape, dtype=np.float32))

    # -- geometry --------------------------------------------------------------------------------------------------
    def _square(self) -> QRectF:
        side = min(self.width(), self.height())
        return QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)

    def to_pixel(self, pos: QPointF) -> tuple[float, float]:
        """Widget position -> (row, col) in pixel units (continuous; pixel centres at integers + 0.5)."""
        r = self._square()
        h, w = self.shape
        return ((pos.y() - r.top()) / r.height() * h, (pos.x() - r.left()) / r.width() * w)

    def sizeHint(self) -> QSize:
        return QSize(336, 336)

    # -- drawing ---------------------------------------------------------------------------------------------------
    def stamp(self, row: float, col: float, tool: str | None = None) -> None:
        """Apply ``tool`` with an anti-aliased disc of radius ``brush_radius`` centred at (row, col)."""
        tool = tool or self.tool
        h, w = self.shape
        rr, cc = np.mgrid[0:h, 0:w]
        d = np.hypot(rr + 0.5 - row, cc + 0.5 - col)
        v = np.clip(self.brush_radius + 0.5 - d, 0.0, 1.0).astype(np.float32)
        if tool == "brush":
            np.maximum(self.image, v, out=self.image)
        elif tool == "eraser":
            np.minimum(self.image, 1.0 - v, out=self.image)
        elif tool == "observe":
            self.mask |= v > 0.5
        elif tool == "hide":
            self.mask &= ~(v > 0.5)

    def _stroke_to(self, pos: QPointF) -> None:
        r1, c1 = self.to_pixel(pos)
        if self._last is None:
            self.stamp(r1, c1, self._button_tool)
        else:
            r0, c0 = self.to_pixel(self._last)
            n = max(1, int(np.ceil(2 * np.hypot(r1 - r0, c1 - c0))))
            for t in np.linspace(0, 1, n + 1)[1:]:
                self.stamp(r0 + t * (r1 - r0), c0 + t * (c1 - c0), self._button_tool)
        self._last = QPointF(pos)
        self.update()
        self.changed.emit()

    _OPPOSITE = {"brush": "eraser", "eraser": "brush", "observe": "hide", "hide": "observe"}

    def mousePressEvent(self, event) -> None:
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        self._button_tool = self.tool if event.button() == Qt.MouseButton.LeftButton else self._OPPOSITE[self.tool]
        self._last = None
        self.stroke_started.emit()
        self._stroke_to(event.position())

    def mouseMoveEvent(self, event) -> None:
        if self._button_tool is not None:
            self._stroke_to(event.position())

    def mouseReleaseEvent(self, event) -> None:
        if self._button_tool is not None:
            self._button_tool = None
            self._last = None
            self.stroke_finished.emit()

    # -- painting --------------------------------------------------------------------------------------------------
    def rgb(self) -> np.ndarray:
        """The picture: ink in grey; missing pixels shaded blue, with the overlay (if any) in orange."""
        rgb = _grey_rgb(self.image).astype(np.float32)
        miss = ~self.mask
        if miss.any():
            shade = np.array([40.0, 70.0, 140.0])
            base = rgb[miss] * 0.35 + shade * 0.65
            if self.overlay is not None:
                o = np.clip(self.overlay[miss], 0, 1)[:, None]
                base = base * (1 - o) + np.array([255.0, 170.0, 60.0]) * o
            rgb[miss] = base
        return rgb.astype(np.uint8)

    def _boundary_lines(self, r: QRectF) -> list[QLineF]:
        """The boundary of the observed region in widget coordinates (kept while the mask and the square stay)."""
        key = (self.mask.tobytes(), r.x(), r.y(), r.width())
        if self._lines_key == key:
            return self._lines
        h, w = self.shape
        sx, sy = r.width() / w, r.height() / h
        m = self.mask
        lines = []
        for i, j in zip(*np.nonzero(m[:, 1:] != m[:, :-1]), strict=False):  # vertical edges between columns j and j+1
            x = r.left() + (j + 1) * sx
            lines.append(QLineF(x, r.top() + i * sy, x, r.top() + (i + 1) * sy))
        for i, j in zip(*np.nonzero(m[1:, :] != m[:-1, :]), strict=False):  # horizontal edges between rows i and i+1
            y = r.top() + (i + 1) * sy
            lines.append(QLineF(r.left() + j * sx, y, r.left() + (j + 1) * sx, y))
        self._lines_key, self._lines = key, lines
        return lines

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        r = self._square()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(r, to_qimage(self.rgb()))
        pen = QPen(QColor(120, 190, 255))
        pen.setWidthF(1.5)
        p.setPen(pen)
        lines = self._boundary_lines(r)
        if lines:
            p.drawLines(lines)
        p.setPen(QPen(QColor(90, 90, 90)))
        p.drawRect(r)
        p.end()
