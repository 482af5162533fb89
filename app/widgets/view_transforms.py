"""One repaint per pan or zoom: a ViewBox applies its new range to its transform at once, not during the paint.

pyqtgraph defers ``ViewBox.updateMatrix`` to the scene's ``prepareForPaint``, which ``GraphicsView.paintEvent`` calls.
The transform set there dirties every item of the view again while it is being painted, so Qt paints the view a
second time with the same pixels: two viewport paints per range change (measured in
``tests/test_view_transforms.py``). Applying the transform when the range changes, before Qt processes the scene's
dirty items, leaves one.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

_SETTLED = "_lvm_transform_follows_range"


def _apply_range(view_box: pg.ViewBox, *_args) -> None:
    rect = view_box.rect()
    if rect.width() > 0 and rect.height() > 0:  # not laid out yet: the first resize sets the transform
        view_box.updateMatrix()


def transform_follows_range(view_box: pg.ViewBox) -> None:
    """Make ``view_box`` set its child transform as soon as its range changes (idempotent)."""
    if not getattr(view_box, _SETTLED, False):
        setattr(view_box, _SETTLED, True)
        view_box.sigRangeChanged.connect(_apply_range)


def settle_view_transforms(root: QWidget) -> int:
    """Apply ``transform_follows_range`` to every ViewBox shown by a pyqtgraph view under ``root``; returns how many."""
    boxes = [item for view in root.findChildren(pg.GraphicsView) for item in view.scene().items()
             if isinstance(item, pg.ViewBox)]
    for box in boxes:
        transform_follows_range(box)
    return len(boxes)
