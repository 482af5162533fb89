"""Work done ahead while the user is idle: one step per timer tick, only when nobody is waiting for the GUI thread.

Some GUI-thread work cannot be made short or moved to a worker (Qt widgets are built on the GUI thread): building a
lab the first time it is shown took 90-260 ms of it, a freeze at the click. ``IdleSteps`` does such steps before they
are asked for, in the moments when a pause costs nothing: no mouse, wheel, key or touch input for ``quiet_s`` seconds,
no mouse button held, and ``can_run()`` true (the window passes "no job is running": an animation or a computation
being drawn would show the pause). Input is seen by an application event filter installed only while steps remain.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication

INPUT_EVENTS = frozenset(
    {
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonRelease,
        QEvent.Type.MouseButtonDblClick,
        QEvent.Type.MouseMove,
        QEvent.Type.Wheel,
        QEvent.Type.KeyPress,
        QEvent.Type.KeyRelease,
        QEvent.Type.TouchBegin,
        QEvent.Type.TouchUpdate,
        QEvent.Type.TabletMove,
        QEvent.Type.TabletPress,
    }
)
QUIET_S = 1.0  # no input for this long: the user is reading or away
INTERVAL_MS = 250


class IdleSteps(QObject):
    """Run ``steps`` (callables, in order) one per tick of an ``interval_ms`` timer (default ``INTERVAL_MS``) while the
    user is idle (no input for ``quiet_s``, default ``QUIET_S``); ``finished`` once all ran. A step that raises is
    reported by ``failed`` (its text) and the next ones still run."""

    finished = Signal()
    failed = Signal(str)

    def __init__(
        self,
        steps: Iterable[Callable[[], object]],
        can_run: Callable[[], bool] = lambda: True,
        quiet_s: float | None = None,
        interval_ms: int | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._steps = deque(steps)
        self._can_run = can_run
        self.quiet_s = QUIET_S if quiet_s is None else quiet_s
        self.done = 0  # steps run so far
        self._finished = False
        self.last_input = time.monotonic()  # (starting counts as input: the user just did something)
        self._app = QApplication.instance()
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS if interval_ms is None else interval_ms)
        self._timer.timeout.connect(self.step)
        if self._steps and self._app is not None:
            self._app.installEventFilter(self)
            self._timer.start()
        else:
            QTimer.singleShot(0, self, self._finish)

    @property
    def pending(self) -> int:
        return len(self._steps)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in INPUT_EVENTS:
            self.last_input = time.monotonic()
        return False

    def is_idle(self) -> bool:
        """No input for ``quiet_s``, no mouse button held, and the owner's ``can_run()``."""
        return (
            time.monotonic() - self.last_input >= self.quiet_s
            and QApplication.mouseButtons() == Qt.MouseButton.NoButton
            and self._can_run()
        )

    def step(self) -> None:
        """Run the next step if the user is idle (a tick's work is one step)."""
        if not self._steps or not self.is_idle():
            return
        step = self._steps.popleft()
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a step ahead must not break the app; the step will run when asked
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        self.done += 1
        if not self._steps:
            self._finish()

    def stop(self) -> None:
        """Drop the remaining steps."""
        self._steps.clear()
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._timer.stop()
        if self._app is not None:
            self._app.removeEventFilter(self)
        self.finished.emit()
