"""Stress script (run in a subprocess by tests/app/test_gui_gc.py): widgets in reference cycles are dropped on the GUI
thread, connected to signals, while two worker threads allocate (so automatic collections start in the workers).

``python tests/app/gc_stress.py SECONDS [--no-collector]``. Without ``app.core.gui_gc`` the workers' collections
destroy the
widgets off the GUI thread and the process segfaults or deadlocks within seconds; with it, it prints "done N" and
exits 0. A deadlock is ended by faulthandler, which prints every thread's stack and exits 1.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main() -> int:
    seconds = float(sys.argv[1])
    faulthandler.enable()
    faulthandler.dump_traceback_later(seconds + 30, exit=True)  # a deadlock prints the stacks and exits 1
    from PySide6.QtCore import QObject, QTimer, Signal
    from PySide6.QtWidgets import QApplication, QPushButton

    app = QApplication([])
    if "--no-collector" not in sys.argv:
        from app.core.gui_gc import install_gui_thread_collector

        install_gui_thread_collector()

    class Holder(QObject):
        poke = Signal()

    stop = threading.Event()

    def allocate():
        while not stop.is_set():
            junk = [[i] for i in range(2000)]  # container allocations: automatic collections start here
            del junk
            time.sleep(0)  # let the GUI thread take the GIL in between

    workers = [threading.Thread(target=allocate, daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    made = [0]
    t0 = time.monotonic()

    def tick():
        for _ in range(50):
            button, holder = QPushButton(), Holder()
            holder.me, holder.button, button.holder = holder, button, holder  # cycles through Qt objects
            button.clicked.connect(lambda: holder)  # noqa: B023, F821 - a closure cell (emptied by the del below), as a slot would hold
            holder.poke.connect(button.click)
            del button, holder
            made[0] += 1
        if time.monotonic() - t0 > seconds:
            stop.set()
            app.quit()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(0)
    app.exec()
    for worker in workers:
        worker.join()
    print(f"done {made[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
