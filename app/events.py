"""A tiny Qt-free event system (napari-style): ``emitter.connect(callback)``; ``emitter.emit(value)``.

Callbacks run synchronously on the emitting thread; the workspace is only mutated on the GUI thread.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Callable

log = logging.getLogger(__name__)


class EventEmitter:
    """One event: callbacks are held weakly when they are bound methods, so views can be garbage-collected."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[[], Callable | None]] = []
        self.blocked = False

    def connect(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            ref = weakref.WeakMethod(callback)
        else:
            ref = (lambda cb=callback: cb)
        self._callbacks.append(ref)
        return callback

    def disconnect(self, callback: Callable[[Any], None]) -> None:
        self._callbacks = [r for r in self._callbacks if r() is not None and r() != callback]

    def emit(self, value: Any = None) -> None:
        if self.blocked:
            return
        alive = []
        for ref in list(self._callbacks):
            cb = ref()
            if cb is None:
                continue
            alive.append(ref)
            cb(value)
        self._callbacks = alive

    @property
    def n_callbacks(self) -> int:
        return sum(1 for r in self._callbacks if r() is not None)


class EventGroup:
    """Named emitters: ``group.dataset.connect(cb)``."""

    def __init__(self, *names: str):
        for name in names:
            setattr(self, name, EventEmitter(name))
        self.names = names
