"""Layout invariants of a shown window, for the layout test.

A window passes when: its minimum width is at most ``MAX_MIN_WIDTH`` and its minimum height at most
``MAX_MIN_HEIGHT`` (a 1280x720 laptop screen, also at 150 % scaling, leaves room for the window frame and a task
bar: the Latent lab's right column once made the window 787 px tall, cut off at the bottom of a real 720 px screen);
every visible widget lies inside the window; no label is cut off (a label narrower than its text has a tooltip that
says it all); every plot is at least ``MIN_PLOT`` pixels.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractScrollArea, QLabel, QWidget

MAX_MIN_WIDTH = 1200
MAX_MIN_HEIGHT = 650  # a 720 px screen less a title bar and a task bar
MIN_PLOT = (140, 100)  # width, height of the smallest readable plot (axes, ticks and a curve)
READABLE_SIZE = (
    "readable_size"  # a widget property (width, height) for plots meant smaller: a one-row strip, a thumbnail
)


def _visible_rect_in_window(widget: QWidget, window: QWidget) -> QRect:
    top_left = widget.mapTo(window, QPoint(0, 0))
    return QRect(top_left, widget.size())


def _inside_scroll_area(widget: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea) and not type(parent).__name__.endswith("GraphicsView"):
            return True
        parent = parent.parentWidget()
    return False


def layout_problems(
    window: QWidget, max_min_width: int = MAX_MIN_WIDTH, max_min_height: int = MAX_MIN_HEIGHT
) -> list[str]:
    """What breaks the invariants above in ``window`` as shown now (an empty list when nothing does)."""
    problems = []
    min_width = max(window.minimumSizeHint().width(), window.minimumWidth())
    if min_width > max_min_width:
        problems.append(f"the window cannot be narrower than {min_width} px (at most {max_min_width})")
    min_height = max(window.minimumSizeHint().height(), window.minimumHeight())
    if min_height > max_min_height:
        problems.append(f"the window cannot be lower than {min_height} px (at most {max_min_height})")
    frame = QRect(QPoint(0, 0), window.size())
    for widget in window.findChildren(QWidget):
        if not widget.isVisible() or widget.window() is not window or widget.width() <= 0:
            continue
        name = widget.objectName() or type(widget).__name__
        if not _inside_scroll_area(widget):
            rect = _visible_rect_in_window(widget, window)
            if not frame.contains(rect):
                problems.append(f"{name} lies outside the window: {rect.getRect()} in {frame.getRect()}")
        if isinstance(widget, QLabel) and not widget.wordWrap() and widget.text() and not widget.toolTip():
            need = widget.minimumSizeHint().width()
            if widget.width() + 1 < need:
                problems.append(f"label {widget.text()[:40]!r} is cut off ({widget.width()} < {need} px)")
        if type(widget).__name__ in ("PlotWidget", "GraphicsLayoutWidget", "GraphicsView") and not _inside_scroll_area(
            widget
        ):
            least = widget.property(READABLE_SIZE) or MIN_PLOT  # a strip or a thumbnail states its own
            if widget.width() < least[0] or widget.height() < least[1]:
                problems.append(f"plot {name} is squeezed to {widget.width()}x{widget.height()} px")
    return problems
