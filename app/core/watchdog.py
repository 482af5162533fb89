"""A GUI-thread watchdog: a repeating QTimer that measures its own lateness.

The timer asks to fire every ``interval_ms``. The gap between two consecutive firings, Δt_i, is the "frame time" of
the event loop: Δt_i ≈ interval when the loop is idle, interval + s when a slot blocked the GUI thread for s seconds.
The stall of tick i is max(0, Δt_i − interval); the watchdog keeps every Δt_i since the last ``reset`` and reports
the longest stall and percentiles of Δt (the p-th percentile is the value below which p % of the frame times lie,
linear interpolation between order statistics as ``numpy.percentile``).

Use::

    dog = Watchdog(interval_ms=10); dog.start()
    ...interact...
    print(dog.stats())   # {"longest_stall_s", "p50_frame_s", "p99_frame_s", "frames", ...}

``log_threshold_s`` (or ``$LVM_WATCHDOG_LOG_MS``) logs every stall longer than the threshold with the time it ended.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer

log = logging.getLogger(__name__)


class Watchdog(QObject):
    """Records the event loop's frame times (gaps between timer ticks) and its longest stall."""

    def __init__(self, interval_ms: int = 10, log_threshold_s: float | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.interval_s = interval_ms / 1000.0
        if log_threshold_s is None and os.environ.get("LVM_WATCHDOG_LOG_MS"):
            log_threshold_s = float(os.environ["LVM_WATCHDOG_LOG_MS"]) / 1000.0
        self.log_threshold_s = log_threshold_s
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.frames: list[float] = []
        self.longest_stall_s = 0.0
        self.stalls: list[tuple[float, float]] = []  # (end time perf_counter, stall seconds) above the threshold

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def is_running(self) -> bool:
        return self._timer.isActive()

    def reset(self) -> None:
        """Forget the frames so far (the next gap is measured from now)."""
        self.frames = []
        self.longest_stall_s = 0.0
        self.stalls = []
        if self._last is not None:
            self._last = time.perf_counter()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            gap = now - self._last
            self.frames.append(gap)
            stall = max(0.0, gap - self.interval_s)
            if stall > self.longest_stall_s:
                self.longest_stall_s = stall
            if self.log_threshold_s is not None and stall > self.log_threshold_s:
                self.stalls.append((now, stall))
                log.warning("GUI thread stalled %.0f ms", stall * 1000)
        self._last = now

    def stats(self) -> dict:
        """Longest stall, frame-time percentiles (seconds) and the number of frames since the last reset."""
        f = np.asarray(self.frames, dtype=float)
        if f.size == 0:
            return {
                "frames": 0,
                "longest_stall_s": 0.0,
                "p50_frame_s": float("nan"),
                "p99_frame_s": float("nan"),
                "max_frame_s": float("nan"),
                "interval_s": self.interval_s,
            }
        return {
            "frames": int(f.size),
            "longest_stall_s": float(self.longest_stall_s),
            "p50_frame_s": float(np.percentile(f, 50)),
            "p99_frame_s": float(np.percentile(f, 99)),
            "max_frame_s": float(f.max()),
            "interval_s": self.interval_s,
        }
