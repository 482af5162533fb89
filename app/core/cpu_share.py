"""How busy other processes keep the CPU, and the nice value a worker thread takes from that.

Workers run below the GUI thread so that the app's own torch work never starves the event loop: beside a training
job and two re-encode jobs the GUI thread's longest stall was 97 ms with the workers at nice 0 and 44 ms at nice 10
(``lvm bench gui``, latent-train, quiet, 2 cores). But nice is a priority against every process on the machine, not
only against the GUI thread: beside two busy-loop processes a nice-10 worker gets 110 / (2 x 1024 + 110) of the CPU,
and three lab test files ran 6.6x their quiet time (422 s against 64 s); at nice 0 they ran 1.46x (93 s). So a job's
thread takes ``QUIET_NICENESS`` only while other processes leave the CPU idle, and keeps the default priority while
they keep at least ``BUSY_CORES`` of it busy.

Other processes' load is measured, not guessed: the machine's busy CPU time (``/proc/stat``) minus this process's own
(``os.times``), over the last ``WINDOW_S`` seconds. Off Linux there is no measurement and no per-thread nice value.
``$LVM_WORKER_NICENESS`` fixes the value (for measurements).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

QUIET_NICENESS = 10  # CFS weight 110 against the GUI thread's 1024: the GUI thread wins the CPU when both want it
BUSY_CORES = 0.5  # other processes keeping this much CPU busy make the machine "loaded"
WINDOW_S = 0.5  # the shortest window a load is averaged over

CpuSeconds = tuple[float, float]  # (busy CPU seconds of the whole machine, CPU seconds of this process)


def _ticks_per_second() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


_TICKS = _ticks_per_second()


def cpu_seconds() -> CpuSeconds | None:
    """(busy CPU seconds of the machine since boot, CPU seconds this process has used), or None without /proc."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    except (OSError, ValueError):
        return None
    own = os.times()
    return (user + nice + system + irq + softirq + steal) / _TICKS, own.user + own.system


class LoadMeter:
    """Cores kept busy by other processes: d(machine busy - own) / dt over the newest window of ``WINDOW_S`` or more.

    ``sample()`` records a point (the task runner calls it every second, so the window stays recent); reading the
    load records one too. Thread-safe."""

    def __init__(
        self, read: Callable[[], CpuSeconds | None] = cpu_seconds, clock: Callable[[], float] = time.monotonic
    ):
        self._read, self._clock = read, clock
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, CpuSeconds]] = deque(maxlen=16)
        self._last: float | None = None
        self.sample()

    def sample(self) -> None:
        with self._lock:
            self._record(self._clock())

    def _record(self, now: float) -> CpuSeconds | None:
        reading = self._read()
        if reading is not None and (not self._samples or now - self._samples[-1][0] >= WINDOW_S / 4):
            self._samples.append((now, reading))  # (spaced out, so the kept ones span several windows)
        return reading

    def others_busy_cores(self) -> float | None:
        """Cores other processes kept busy lately (None: not measurable here, or no window yet)."""
        with self._lock:
            now = self._clock()
            old = next((s for s in reversed(self._samples) if now - s[0] >= WINDOW_S), None)
            current = self._record(now)
            if old is not None and current is not None:
                (t0, (busy0, own0)), (busy1, own1) = old, current
                self._last = max(0.0, ((busy1 - busy0) - (own1 - own0)) / (now - t0))
            return self._last


CPU_LOAD = LoadMeter()
_BASE_NICENESS = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0  # (the GUI thread's)


def worker_niceness(meter: LoadMeter = CPU_LOAD) -> int:
    """The nice value for a job starting now: ``QUIET_NICENESS`` unless other processes keep ``BUSY_CORES`` busy."""
    forced = os.environ.get("LVM_WORKER_NICENESS", "").strip()
    if forced.lstrip("-").isdigit():
        return int(forced)
    others = meter.others_busy_cores()
    return 0 if others is not None and others >= BUSY_CORES else QUIET_NICENESS


def set_this_threads_niceness(niceness: int) -> int | None:
    """Give the calling thread nice value ``niceness`` (never below the app's own; Linux: this thread alone, and the
    threads it starts later, e.g. torch's OpenMP team, inherit it). Returns the value it has, None off Linux.

    Raising a nice value is always allowed; lowering it needs privilege, so a thread that cannot go back keeps the
    higher value (the task runner's threads end when idle, so new jobs mostly get new threads)."""
    if not sys.platform.startswith("linux"):  # (elsewhere a thread id is not a valid PRIO_PROCESS target)
        return None
    tid = threading.get_native_id()
    target = max(_BASE_NICENESS, niceness)
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) != target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError:  # not allowed (lowering without privilege), or not Linux: keep what it has
        pass
    try:
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:
        return None


def this_threads_schedule() -> tuple[float, float] | None:
    """(seconds this thread has run, seconds it has waited runnable for a CPU) since it started, from the kernel's
    scheduler statistics (``/proc/thread-self/schedstat``); None off Linux. The wait is CPU contention measured: a
    GUI thread that waited 40 % of a second wanted a core that other threads held."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            ran_ns, waited_ns, *_ = f.read().split()
        return int(ran_ns) / 1e9, int(waited_ns) / 1e9
    except (OSError, ValueError):
        return None
