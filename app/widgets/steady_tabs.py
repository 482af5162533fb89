"""A tab widget that repaints itself only when its layout changes.

``QTabWidget`` answers every ``LayoutRequest`` by placing its tab bar and pages again and repainting itself whole
(``QTabWidget::setUpLayout`` ends with ``update()``). Any widget deep inside that changes its size hint posts one up
the tree, and ``QLabel::setText`` always does, even when the new text is as wide as the old: a readout updated on
every frame of a drag repainted the whole window on every frame (the Inference lab's q drag: the main window, both
tab widgets and every widget in them, 270 whole-window paints in 5 s; ``QTabBar``, ``QLabel`` and the explanation's
text took more of the GUI thread than the plot itself). ``SteadyTabWidget`` lets such a request through only when
something it places by has changed: its size, the tab bar's or the pages' size hints, or the tabs.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtWidgets import QStackedWidget, QTabWidget, QWidget

_CORNERS = (Qt.Corner.TopLeftCorner, Qt.Corner.TopRightCorner, Qt.Corner.BottomLeftCorner, Qt.Corner.BottomRightCorner)


class SteadyTabWidget(QTabWidget):
    """``QTabWidget`` without the whole-widget repaint on a ``LayoutRequest`` that changes nothing it lays out."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._placed_by: tuple | None = None

    def _layout_inputs(self) -> tuple:
        bar = self.tabBar()
        stack = self.findChild(QStackedWidget, "qt_tabwidget_stackedwidget")
        hints: tuple[QSize, ...] = (bar.sizeHint(), bar.minimumSizeHint())
        if stack is not None:
            hints += (stack.sizeHint(), stack.minimumSizeHint())
        corners = tuple(
            (w.sizeHint(), w.isVisible()) if w is not None else None
            for w in (self.cornerWidget(corner) for corner in _CORNERS)
        )
        return (
            self.size(),
            self.count(),
            self.currentIndex(),
            bar.isVisible(),
            self.tabPosition(),
            self.documentMode(),
            *hints,
            corners,
        )

    def event(self, ev: QEvent) -> bool:
        if ev.type() == QEvent.Type.LayoutRequest:
            inputs = self._layout_inputs()
            if inputs == self._placed_by:
                return True  # the same tab bar and pages in the same places: nothing to lay out or repaint
            self._placed_by = inputs
        return super().event(ev)
