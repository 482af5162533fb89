"""Change-to-picture timing: from an input's change (a pen stroke, a dragged q, a hovered point) to its result painted.

A lab calls ``PictureClock.drawn(changed_at)`` once the result of a change has been set on its widgets, and the
widget that shows it (a ``PaintReporting`` subclass) calls ``painted()`` after its next paint: the interval, in
milliseconds, is what the user waited to see the change's effect. ``lvm bench gui`` reports the median.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pyqtgraph as pg


class PictureClock:
    """Milliseconds from a change to its result on screen, the last ``keep`` of them in ``ms``.

    Of several changes drawn before one paint, the earliest counts (the user has waited since then)."""

    def __init__(self, keep: int = 500):
        self.keep = keep
        self.ms: list[float] = []
        self._waiting_since: float | None = None  # the change whose result was drawn and waits for its paint

    def drawn(self, changed_at: float) -> None:
        """The result of the change made at ``changed_at`` (``time.perf_counter()``) is drawn; its paint is to come."""
        if self._waiting_since is None:
            self._waiting_since = changed_at

    def painted(self) -> None:
        """The widget showing the result has painted: record the wait of the change drawn, if one was."""
        if self._waiting_since is not None:
            self.ms.append(1000 * (time.perf_counter() - self._waiting_since))
            del self.ms[: -self.keep]
            self._waiting_since = None

    def clear(self) -> None:
        self.ms.clear()
        self._waiting_since = None


class PaintReporting:
    """Mixin for a ``QWidget`` subclass: calls ``after_paint`` (when set) once each paint event has been handled."""

    after_paint: Callable[[], None] | None = None

    def paintEvent(self, ev) -> None:
        super().paintEvent(ev)  # type: ignore[misc]
        if self.after_paint is not None:
            self.after_paint()


class PaintReportingLayout(PaintReporting, pg.GraphicsLayoutWidget):
    """A ``GraphicsLayoutWidget`` that reports its paints (``after_paint``)."""


class PaintReportingPlot(PaintReporting, pg.PlotWidget):
    """A ``PlotWidget`` that reports its paints (``after_paint``)."""
