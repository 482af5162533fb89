"""A tiny Qt-free event system (napari-style): ``emitter.connect(callback)``; ``emitter.emit(value)``.

Callbacks run synchronously on the emitting thread, in the order they were connected; the workspace is only mutated
on the GUI thread. The rules, each tested in tests/app/test_events.py:

- an emit calls the callbacks connected when it started: one connected during the emit is kept for later emits
  but not called in this one (the list is copied on write, emits iterate the copy they started with);
- a disconnect holds at once: a callback disconnected during an emit is not called later in that emit and stays
  disconnected;
- a callback that raises does not stop the others: every callback runs, and after the last one the error is
  re-raised with its traceback (several: an ``ExceptionGroup`` of them), so it reaches the caller and the app's
  excepthook, which shows it;
- bound methods are held weakly (a view that is garbage-collected drops out); other callables strongly.

(psygnal, considered instead, stops an emit at the first callback that raises: its ``EmitLoopError``.)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


class _Slot:
    """One connection: the callback (weakly for bound methods) and whether it is still connected."""

    __slots__ = ("ref", "connected")

    def __init__(self, callback: Callable[[Any], None]):
        self.ref: Callable[[], Callable[[Any], None] | None]
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            self.ref = weakref.WeakMethod(callback)
        else:

            def strong() -> Callable[[Any], None]:
                return callback

            self.ref = strong
        self.connected = True

    def callback(self) -> Callable[[Any], None] | None:
        return self.ref() if self.connected else None


class EventEmitter:
    """One event. ``blocked = True`` makes ``emit`` do nothing."""

    def __init__(self, name: str):
        self.name = name
        self._slots: tuple[_Slot, ...] = ()
        self.blocked = False

    def connect(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        self._slots = (*self._live(), _Slot(callback))
        return callback

    def disconnect(self, callback: Callable[[Any], None]) -> None:
        """Disconnect every connection of ``callback`` (at once, also for an emit in progress)."""
        for slot in self._slots:
            cb = slot.callback()
            if cb is not None and cb == callback:
                slot.connected = False
        self._slots = self._live()

    def emit(self, value: Any = None) -> None:
        if self.blocked:
            return
        errors: list[Exception] = []
        for slot in self._slots:
            cb = slot.callback()
            if cb is None:
                continue
            try:
                cb(value)
            except Exception as exc:  # noqa: BLE001 - every subscriber runs; re-raised below
                errors.append(exc)
        if any(slot.callback() is None for slot in self._slots):
            self._slots = self._live()
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"{len(errors)} subscribers of the {self.name!r} event raised", errors)

    def _live(self) -> tuple[_Slot, ...]:
        return tuple(s for s in self._slots if s.callback() is not None)

    @property
    def n_callbacks(self) -> int:
        return sum(1 for s in self._slots if s.callback() is not None)


class EventGroup:
    """Named emitters: ``group.dataset.connect(cb)``. A subclass may declare them as typed class annotations
    (``dataset: EventEmitter``); ``EventGroup("a", "b")`` makes them by name."""

    def __init__(self, *names: str):
        names = names or tuple(n for n, t in _annotations(type(self)).items() if t in ("EventEmitter", EventEmitter))
        for name in names:
            setattr(self, name, EventEmitter(name))
        self.names = names


def _annotations(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(getattr(klass, "__annotations__", {}))
    return out
