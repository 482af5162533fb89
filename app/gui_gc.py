"""Python's cyclic garbage collector runs on the GUI thread only.

Automatic collection runs in whichever thread happens to allocate when a generation's threshold is crossed. When that
is a worker (torch allocating in ``TaskRunner``) and the garbage holds Qt objects in a reference cycle (a closed
dialog, a replaced window, a lab rebuilt), their C++ destructors run in the worker: ``QObject::~QObject`` takes Qt's
signal-slot mutex and then waits for the GIL, while the GUI thread holds the GIL and waits for that mutex in
``QObject::connect`` — a deadlock (seen in CI: py-spy native stacks of a hung ``tests/test_app_shell.py``), or a
segfault when the object is a widget (``tests/gc_stress.py`` crashes within seconds without this module).

The remedy is pyqtgraph's: automatic collection off, and a timer on the GUI thread collects each generation when its
count passes the interpreter's own thresholds (so collection happens as often as before, only on the right thread).
Reference counting still frees everything that is not in a cycle at once, on any thread, as before.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

CHECK_INTERVAL_S = 0.1  # a check is a few µs; a generation-0 collection ~0.1-1 ms (measured in tests/test_gui_gc.py)

_collector: GuiThreadCollector | None = None


class GuiThreadCollector(GarbageCollector):
    """pyqtgraph's timer-driven collector; it also turns automatic collection off again if a library turned it on."""

    def check(self) -> None:
        if gc.isenabled():
            gc.disable()
        super().check()


def install_gui_thread_collector() -> GuiThreadCollector:
    """Call on the GUI thread once a ``QApplication`` exists (idempotent): from now on only the GUI thread collects."""
    global _collector
    if _collector is None:
        _collector = GuiThreadCollector(interval=CHECK_INTERVAL_S)
    elif gc.isenabled():
        gc.disable()
    return _collector
