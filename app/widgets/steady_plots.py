"""Plots that repaint once per change and keep their geometry while the view moves.

One repaint per pan or zoom: pyqtgraph defers ``ViewBox.updateMatrix`` to the scene's ``prepareForPaint``, which
``GraphicsView.paintEvent`` calls. The transform set there dirties every item of the view again while it is being
painted, so Qt paints the view a second time with the same pixels: two viewport paints per range change (counted in
``tests/app/test_repaints.py``). Applying the transform when the range changes, before Qt processes the scene's dirty
items, leaves one.

A steady tick column: a left axis sizes itself to its widest tick label, so panning or zooming from "0.5" to "-1.25"
re-lays out the plot and resizes its ViewBox (a relayout and a full repaint of the view, 3-6 ms each in the Latent
lab, several per second). ``steady_tick_column`` gives the axis a fixed text column instead.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics
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
    boxes = [
        item
        for view in root.findChildren(pg.GraphicsView)
        for item in view.scene().items()
        if isinstance(item, pg.ViewBox)
    ]
    for box in boxes:
        transform_follows_range(box)
    return len(boxes)


def steady_tick_column(plot, widest: str = "\u221288.888") -> None:
    """Give the left axis of ``plot`` (PlotItem or PlotWidget) a fixed tick-label column as wide as ``widest``.

    Tick labels up to that width (here seven characters, "−88.888") fit; a longer one overflows to the left instead of
    re-laying out the plot.
    """
    item = plot.getPlotItem() if hasattr(plot, "getPlotItem") else plot
    axis = item.getAxis("left")
    font = axis.style["tickFont"] or axis.font()
    axis.setStyle(autoExpandTextSpace=False, tickTextWidth=QFontMetrics(font).horizontalAdvance(widest) + 2)


def steady_label(plot, axis: str, text: str) -> None:
    """``setLabel(axis, text)`` unless the axis already shows ``text`` (each call re-lays out the plot's axis and
    repaints it: 7 % of the GUI thread while the Latent lab trained and re-showed its plane per snapshot)."""
    item = plot.getAxis(axis)
    if item.labelText != text or not item.label.isVisible():
        plot.setLabel(axis, text)


def steady_title(plot, text: str) -> None:
    """``setTitle(text)`` unless the plot's title already is ``text``."""
    item = plot.getPlotItem() if hasattr(plot, "getPlotItem") else plot
    if item.titleLabel.text != text or not item.titleLabel.isVisible():
        item.setTitle(text)
