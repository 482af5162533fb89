"""Python's cyclic garbage collector runs on the GUI thread only.

Automatic collection runs in whichever thread happens to allocate when a generation's threshold is crossed. When that
is a worker (torch allocating in ``TaskRunner``) and the garbage holds Qt objects in a reference cycle (a closed
dialog, a replaced window, a lab rebuilt), their C++ destructors run in the worker: ``QObject::~QObject`` takes Qt's
signal-slot mutex and then waits for the GIL, while the GUI thread holds the GIL and waits for that mutex in
``QObject::connect`` — a deadlock (seen in CI: py-spy native stacks of a hung ``tests/app/test_app_shell.py``), or a
segfault when the object is a widget (``tests/app/gc_stress.py`` crashes within seconds without this module).

The remedy is pyqtgraph's ``util.garbage_collector.GarbageCollector``: automatic collection off, and a timer on the
GUI thread collects each generation when its count passes the interpreter's own thresholds, so collection happens as
often as before, only on the right thread. It is written out here (the same dozen lines) because importing pyqtgraph
costs 0.7 s, and this must be installed before the main window's first paint, which comes before pyqtgraph is needed.
Reference counting still frees everything that is not in a cycle at once, on any thread, as before.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QTimer

CHECK_INTERVAL_MS = 100  # a check is a few µs; a generation-0 collection ~0.1-1 ms

_collector: GuiThreadCollector | None = None


class GuiThreadCollector:
    """Automatic collection off; a GUI-thread timer collects generation 0, 1 or 2 when its count passes its threshold
    (the thresholds are the interpreter's, read when installed). Turns automatic collection off again if a library
    turned it on."""

    def __init__(self, interval_ms: int = CHECK_INTERVAL_MS):
        self.thresholds = gc.get_threshold()
        gc.disable()
        self.timer = QTimer()
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        if gc.isenabled():
            gc.disable()
        counts = gc.get_count()
        generation = -1
        for g in range(3):  # the oldest generation whose count (and every younger one's) passed its threshold
            if counts[g] <= self.thresholds[g]:
                break
            generation = g
        if generation >= 0:
            gc.collect(generation)


def install_gui_thread_collector() -> GuiThreadCollector:
    """Call on the GUI thread once a ``QApplication`` exists (idempotent): from now on only the GUI thread collects."""
    global _collector
    if _collector is None:
        _collector = GuiThreadCollector()
    elif gc.isenabled():
        gc.disable()
    return _collector
