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

import weakref

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QWidget

_SETTLED = "_lvm_transform_follows_range"
_DRAG_HOVER = "_lvm_no_hover_search_mid_drag"


def _apply_range(view_box: pg.ViewBox, *_args) -> None:
    rect = view_box.rect()
    if rect.width() > 0 and rect.height() > 0:  # not laid out yet: the first resize sets the transform
        view_box.updateMatrix()


def transform_follows_range(view_box: pg.ViewBox) -> None:
    """Make ``view_box`` set its child transform as soon as its range changes (idempotent)."""
    if not getattr(view_box, _SETTLED, False):
        setattr(view_box, _SETTLED, True)
        view_box.sigRangeChanged.connect(_apply_range)


def no_hover_search_mid_drag(scene) -> None:
    """Skip pyqtgraph's search for hoverable items under the mouse while a drag is under way (idempotent).

    ``GraphicsScene.sendHoverEvents`` looks for every item near the mouse on every move, mid-drag too, where no item
    may accept the hover anyway (pyqtgraph sends it as not acceptable): 12 % of the GUI thread while q was dragged in
    the Inference lab. The first move after the button is released searches again, so hover states catch up then."""
    if getattr(scene, _DRAG_HOVER, False):
        return
    setattr(scene, _DRAG_HOVER, True)
    send = type(scene).sendHoverEvents
    owner = weakref.ref(scene)  # (no reference cycle through the scene's own attribute)

    def send_unless_dragging(ev, exitOnly: bool = False) -> None:
        this = owner()
        if this is None or (not exitOnly and this.dragButtons and ev.buttons()):
            return
        send(this, ev, exitOnly)

    scene.sendHoverEvents = send_unless_dragging


def settle_view_transforms(root: QWidget) -> int:
    """Apply ``transform_follows_range`` to every ViewBox shown by a pyqtgraph view under ``root`` and
    ``no_hover_search_mid_drag`` to their scenes; returns how many view boxes."""
    views = root.findChildren(pg.GraphicsView)
    for view in views:
        no_hover_search_mid_drag(view.scene())
    boxes = [item for view in views for item in view.scene().items() if isinstance(item, pg.ViewBox)]
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


def steady_ticks(axis: pg.AxisItem, ticks: list) -> None:
    """``axis.setTicks(ticks)`` unless the axis already has exactly these ticks (each call drops the axis's picture,
    which is then generated again at its next paint: 0.6-1 ms of the GUI thread per Mixture-lab EM step)."""
    if getattr(axis, "_tickLevels", None) != ticks:
        axis.setTicks(ticks)


def growing_range(shown: tuple[float, float] | None, needed: tuple[float, float], headroom: float = 0.25):
    """The range to show for data spanning ``needed`` that grows upwards (a curve gaining points to the right, a
    log-likelihood EM raises): ``shown`` while it still holds ``needed`` and is at most (1 + 2 headroom) times as wide,
    else ``needed`` with ``headroom`` of its width added above.

    A plot whose range moves redraws its axes' tick pictures (``AxisItem.generateDrawSpecs``, about 1 ms each); a
    range that jumps ahead moves about once per 25 % of growth instead of on every new point."""
    lo, hi = float(needed[0]), float(needed[1])
    width = hi - lo
    if shown is not None and shown[0] <= lo and hi <= shown[1] and shown[1] - shown[0] <= (1 + 2 * headroom) * width:
        return shown
    return (lo, hi + headroom * width)


def show_if_any(item: pg.PlotCurveItem | pg.ScatterPlotItem) -> None:
    """Show a curve or scatter item only while it has points. Qt skips a hidden item, where an empty pyqtgraph item
    still had its bounding rectangle computed and its paint called on every repaint of its plot (the Latent lab's
    five empty overlays: 0.3-0.5 ms of a pan step's 3-4 ms paint)."""
    if isinstance(item, pg.ScatterPlotItem):
        count = len(item.data)
    else:
        count = 0 if item.xData is None else len(item.xData)
    item.setVisible(count > 0)


class OverlayCurve(pg.PlotCurveItem):
    """A curve drawn over a plot's data (an ellipse, a contour level), hidden while it has no points
    (``show_if_any``)."""

    def setData(self, *args, **kwargs) -> None:
        super().setData(*args, **kwargs)
        show_if_any(self)


class OverlayScatter(pg.ScatterPlotItem):
    """Markers drawn over a plot's data (a selection, samples), hidden while there are none (``show_if_any``)."""

    def setData(self, *args, **kwargs) -> None:
        super().setData(*args, **kwargs)
        show_if_any(self)
