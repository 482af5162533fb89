"""A one-line label that elides its text ("model: vae2d.safet…") instead of widening the window; the whole text is
its tooltip.

Hand-written (20 lines) rather than superqt's ``QElidingLabel``: importing superqt costs 180-200 ms here
(``python -X importtime -c "from superqt import QElidingLabel"``, three runs), and the status bar is built before
the window's first paint.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """A QLabel for plain one-line text that never asks for more width than ``min_chars`` characters."""

    def __init__(self, text: str = "", min_chars: int = 12, parent: QWidget | None = None):
        super().__init__(parent)
        self.min_chars = min_chars
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        metrics = self.fontMetrics()
        width = min(metrics.horizontalAdvance(self.text()), metrics.horizontalAdvance("x" * self.min_chars))
        return QSize(width, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(self.alignment()), text)
