"""A layout that places its items left to right and wraps them onto further lines when the width runs out.

The controls of the Mixture lab are groups of widgets in one of these: on a wide window they form one line, on a
laptop's 1280x720 (or at 150% scaling) they wrap, and the lab's minimum width is that of its widest group, not the
sum of all of them. The layout has a height for each width (``heightForWidth``), so the lines below move down.
(Qt ships a flow layout only as an example program, not in its library.)
"""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLayout, QLayoutItem, QWidget


class FlowLayout(QLayout):
    def __init__(self, parent: QWidget | None = None, spacing: int = 6):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._gap = spacing
        self.setContentsMargins(0, 0, 0, 0)

    # -- QLayout ---------------------------------------------------------------------------------------------------
    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        """One line of every visible item."""
        visible = [i for i in self._items if not i.isEmpty()]
        w = sum(i.sizeHint().width() for i in visible) + self._gap * max(len(visible) - 1, 0)
        h = max((i.sizeHint().height() for i in visible), default=0)
        m = self.contentsMargins()
        return QSize(w + m.left() + m.right(), h + m.top() + m.bottom())

    def minimumSize(self) -> QSize:
        """The widest (and tallest) single item: narrower than that, nothing can wrap."""
        size = QSize()
        for item in self._items:
            if not item.isEmpty():
                size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    # -- placement -------------------------------------------------------------------------------------------------
    def _place(self, rect: QRect, move: bool) -> int:
        """Lay the items out in lines inside ``rect`` (moving them when ``move``); the height used."""
        m: QMargins = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line_h = area.x(), area.y(), 0
        line: list[tuple[QLayoutItem, QSize]] = []

        def flush() -> None:
            px = area.x()
            for it, sz in line:  # each item vertically centred in its line
                if move:
                    it.setGeometry(QRect(QPoint(px, y + (line_h - sz.height()) // 2), sz))
                px += sz.width() + self._gap

        for item in self._items:
            if item.isEmpty():
                continue
            size = item.sizeHint().boundedTo(QSize(area.width(), 10**6)).expandedTo(item.minimumSize())
            if line and x + size.width() > area.x() + area.width():
                flush()
                y += line_h + self._gap
                x, line_h, line = area.x(), 0, []
            line.append((item, size))
            x += size.width() + self._gap
            line_h = max(line_h, size.height())
        flush()
        return y + line_h - rect.y() + m.bottom()


def group(*widgets: QWidget, spacing: int = 4) -> QWidget:
    """Widgets that stay together on one line of a FlowLayout (a label and its box, a row of buttons)."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(spacing)
    for w in widgets:
        row.addWidget(w)
    return box


def flow(*items: QWidget) -> QWidget:
    """A widget whose children wrap (a FlowLayout of ``items``)."""
    box = QWidget()
    layout = FlowLayout(box)
    for w in items:
        layout.addWidget(w)
    return box
