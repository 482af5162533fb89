"""Part of a slot's drawing deferred to a later pass of the event loop, so that it is painted in a frame of its own.

Qt paints every widget a slot changed in one go once the slot returns; a slot that changes two heavy widgets holds
the GUI thread for both paints. ``NextPass(owner, fn).queue()`` runs ``fn`` once from a timer of ``delay_ms``
(however often it was queued meanwhile): the first part is painted before the timer fires, the rest after, with due
timers and input handled between the two. A delay of 1 ms, not 0: a zero-timer can run before the paint.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


class NextPass:
    """``fn`` queued for a later pass of ``owner``'s event loop; ``pending`` until it ran (or was cancelled)."""

    def __init__(self, owner: QObject, fn: Callable[[], None], delay_ms: int = 1):
        self._owner = owner
        self._fn = fn
        self._delay_ms = delay_ms
        self.pending = False

    def queue(self) -> None:
        """Run ``fn`` in a later pass (once, if it is queued again before then)."""
        if not self.pending:
            self.pending = True
            QTimer.singleShot(self._delay_ms, self._owner, self._fire)

    def cancel(self) -> None:
        """Do not run it (the timer still fires, and does nothing)."""
        self.pending = False

    def flush(self) -> None:
        """Run it now if it is queued (something needs its result before the timer fires)."""
        if self.pending:
            self._fire()

    def _fire(self) -> None:
        if self.pending:
            self.pending = False
            self._fn()
