"""A small card showing the data point a lab analyses: its image (white ink on black, pixels kept square and sharp),
its index and its label, e.g. "x = #4176" / "label 7".

Fixed size: a new x repaints the card and never re-lays out what is around it. Data without an image shape (a
feature vector) shows the index, the label and the number of features.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.widgets.digit_canvas import to_qimage

EMPTY_TEXT = "no x selected"


class DataPointCard(QWidget):
    """``set_point(x, image_shape, index, label)`` shows one data point; ``set_point(None)`` shows none."""

    def __init__(self, image_side: int = 64, text_width: int = 112, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("data-point-card")
        self.image_side = int(image_side)
        self.image: np.ndarray | None = None  # (h, w) float in [0, 1], as shown
        self.index: int | None = None
        self.label: int | None = None
        self.n_features: int | None = None
        self._qimage: QImage | None = None
        self.setFixedSize(QSize(self.image_side + 8 + int(text_width), self.image_side + 4))
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def set_point(
        self,
        x: np.ndarray | None,
        image_shape: tuple[int, int] | None = None,
        index: int | None = None,
        label: int | None = None,
    ) -> None:
        """Show ``x`` (a flat vector; drawn as an image when ``image_shape`` is given) with its index and label."""
        if x is None:
            self.image = self._qimage = None
            self.index = self.label = self.n_features = None
        else:
            flat = np.asarray(x, dtype=np.float32).reshape(-1)
            self.n_features = int(flat.size)
            self.index = None if index is None else int(index)
            self.label = None if label is None else int(label)
            if image_shape is not None and int(np.prod(image_shape)) == flat.size:
                self.image = np.clip(flat.reshape(tuple(image_shape)), 0.0, 1.0)
                grey = (self.image * 255).astype(np.uint8)
                self._qimage = to_qimage(np.repeat(grey[..., None], 3, -1))
            else:
                self.image = self._qimage = None
        self.setToolTip(self.caption().replace("\n", ", "))
        self.update()

    def caption(self) -> str:
        """The card's text: 'x = #index' and 'label y' on two lines."""
        if self.n_features is None:
            return EMPTY_TEXT
        first = "x" if self.index is None else f"x = #{self.index}"
        second = "no label" if self.label is None else f"label {self.label}"
        if self.image is None:
            second += f"\n{self.n_features} features"
        return f"{first}\n{second}"

    def image_rect(self) -> QRectF:
        """Where the image is drawn (widget coordinates)."""
        return QRectF(2, 2, self.image_side, self.image_side)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        r = self.image_rect()
        if self._qimage is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # sharp pixels
            p.drawImage(r, self._qimage)
        else:
            p.fillRect(r, QColor(235, 235, 235))
        p.setPen(QPen(QColor(120, 120, 120), 1))
        p.drawRect(r.adjusted(-0.5, -0.5, 0.5, 0.5))
        p.setPen(self.palette().windowText().color())
        font = QFont(self.font())
        text_rect = QRectF(r.right() + 8, r.top(), self.width() - r.right() - 8, r.height())
        lines = self.caption().split("\n")
        fm_h = p.fontMetrics().height()
        y = text_rect.top() + max(0.0, (text_rect.height() - fm_h * len(lines)) / 2)
        for i, line in enumerate(lines):
            font.setBold(i == 0)
            p.setFont(font)
            p.drawText(QRectF(text_rect.left(), y, text_rect.width(), fm_h), Qt.AlignmentFlag.AlignLeft, line)
            y += fm_h
        p.end()
