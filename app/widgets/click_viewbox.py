"""A ViewBox that reports clicks in data coordinates (left and right button) instead of opening its menu.

Items inside the view (draggable targets, ROIs) still get their own clicks first; wheel zoom and drag pan keep working.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal


class ClickViewBox(pg.ViewBox):
    #: data position, mouse button (Qt.MouseButton), keyboard modifiers (Qt.KeyboardModifier)
    clicked = Signal(QPointF, object, object)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setMenuEnabled(False)

    def mouseClickEvent(self, ev):
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.accept()
            self.clicked.emit(self.mapSceneToView(ev.scenePos()), ev.button(), ev.modifiers())
        else:
            super().mouseClickEvent(ev)
