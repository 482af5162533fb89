"""The one worker facility for torch work: jobs in a QThreadPool, progress, cancel, latest-wins channels.

A job is ``fn(token)`` returning a value, or a generator yielding snapshots; the GUI receives them through Qt signals
(queued to the GUI thread). Cancellation is cooperative: generators are stopped between yields, and functions may
poll ``token.cancelled``. Per channel, a newer request cancels the running one and replaces any pending one
(latest wins), so hover/drag requests never pile up.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from app.core.cpu_share import CPU_LOAD, set_this_threads_niceness, worker_niceness
from app.core.gui_gc import install_gui_thread_collector
from app.core.warmup import torch_job, warm_up_torch
from lvm.errors import LVMError, out_of_memory_message

log = logging.getLogger(__name__)

# Unexpected exceptions raised in workers (not LVMError): tests assert this stays empty.
unexpected_errors: list[str] = []


class Cancelled(Exception):
    """Raised by ``CancelToken.check()`` inside a job that was cancelled."""


class CancelToken:
    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class JobSignals(QObject):
    snapshot = Signal(object)
    progress = Signal(float, str)
    result = Signal(object)
    error = Signal(str)
    finished = Signal()


class Job(QRunnable):
    """One unit of work. Snapshots: with ``keep_all`` every one is delivered, else only the newest unread."""

    def __init__(self, channel: str, fn: Callable[[CancelToken], Any], keep_all: bool = False):
        super().__init__()
        self.setAutoDelete(False)
        self.channel = channel
        self.fn = fn
        self.keep_all = keep_all
        self.keep_running = False  # set by TaskRunner.submit
        self.token = CancelToken()
        self.signals = JobSignals()
        self._latest: list[Any] = []
        self._lock = threading.Lock()
        self.done = threading.Event()

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def report(self, fraction: float, text: str = "") -> None:
        """Called from inside a job: progress in [0, 1]."""
        if not self.token.cancelled:
            self._emit("progress", float(fraction), text)

    def _deliver(self, item: Any) -> None:
        if self.keep_all:
            self._emit("snapshot", item)
            return
        with self._lock:
            empty = not self._latest
            self._latest[:] = [item]
        if empty:
            self._emit("snapshot", _PULL)

    def take_latest(self) -> Any:
        with self._lock:
            item = self._latest[0] if self._latest else _PULL
            self._latest.clear()
        return item

    @Slot()
    def _emit(self, name: str, *args) -> None:
        """Emit one of ``self.signals``; a no-op once Qt deleted it (the app is closing under a running job)."""
        if shiboken6.isValid(self.signals):
            try:
                getattr(self.signals, name).emit(*args)
            except RuntimeError:  # deleted between the check and the emit
                pass

    def run(self) -> None:
        set_this_threads_niceness(worker_niceness())  # below the GUI thread unless others load the CPU
        try:
            if self.channel.partition("/")[2].startswith(
                OPTIMISER_JOBS
            ):  # torch's first-optimiser imports: once, never in two threads
                warm_up_torch()
            # the warm-up job is not a torch_job: it waits for them
            with nullcontext() if self.channel.startswith("warmup/") else torch_job():
                self._run_fn()
        except Cancelled:
            pass
        except LVMError as exc:
            if not self.token.cancelled:
                self._emit("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the user and recorded for tests
            oom = out_of_memory_message(exc)
            if oom is not None:  # a request too big for this machine: the user is told, nothing was changed
                release_cached_gpu_memory()
                if not self.token.cancelled:
                    self._emit("error", f"{oom} (while computing {self.channel})")
                return
            text = "".join(traceback.format_exception(exc))
            log.error("worker %s failed:\n%s", self.channel, text)
            unexpected_errors.append(text)
            if not self.token.cancelled:
                self._emit("error", f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()
            self._emit("finished")

    def _run_fn(self) -> None:
        params = inspect.signature(self.fn).parameters
        out = self.fn(self.token) if params else self.fn()  # type: ignore[call-arg]  # (arity checked above)
        if inspect.isgenerator(out):
            try:
                for item in out:
                    if self.token.cancelled:
                        break
                    self._deliver(item)
            finally:
                out.close()
        elif not self.token.cancelled:
            self._emit("result", out)


_PULL = object()  # marker: "a snapshot is waiting, take the latest"


def release_cached_gpu_memory() -> None:
    """After a CUDA out-of-memory error: hand torch's cached blocks back, so the next (smaller) request can fit."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def trim_heap_soon() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``) on a short-lived thread.

    Datasets and models replaced in a long session are freed, but glibc keeps the pages in its per-thread arenas
    (measured: +400 MB RSS after 40 dataset/model switches, -165 MB after a trim). No-op off glibc.
    """

    def trim():
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


def _call(callback: Callable[[], None] | None) -> None:
    if callback is not None:
        callback()


def _release(job: Job, callbacks: dict) -> None:
    """Break job -> signals -> (Qt connection) -> closures -> job: Python's GC cannot see through Qt's connections,
    so without this every finished job, its callbacks and all they captured (datasets, models) stayed alive."""
    sig = job.signals
    for signal in (sig.snapshot, sig.progress, sig.result, sig.error, sig.finished):
        try:
            signal.disconnect()
        except (RuntimeError, TypeError):  # nothing connected
            pass
    callbacks.clear()
    job.fn = None  # type: ignore[assignment]  # (dropped: a finished job holds nothing)
    job._latest.clear()


# jobs that build a torch optimiser (their first one imports torch._dynamo: app.core.warmup)
OPTIMISER_JOBS = ("train", "fit", "optimise")  # "lab/train", "lab/fit-exact", ...


class TaskRunner(QObject):
    """Submits jobs, one running per channel; a newer submit cancels the running job (latest wins)."""

    busy_changed = Signal(bool)
    progress = Signal(str, float, str)  # channel, fraction, text
    job_error = Signal(str, str)  # channel, message

    def __init__(self, max_threads: int = 4, parent: QObject | None = None):
        super().__init__(parent)
        # workers allocate: Python's cyclic collector must never run in them (app.core.gui_gc), window or no window
        install_gui_thread_collector()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        # an idle thread ends at once, so each job's thread takes the nice value of its own start (cpu_share)
        self.pool.setExpiryTimeout(0)
        self._load_timer = QTimer(self)  # keeps the load measurement's window recent
        self._load_timer.setInterval(1000)
        self._load_timer.timeout.connect(CPU_LOAD.sample)
        self._load_timer.start()
        self._running: dict[str, Job] = {}
        self._pending: dict[str, tuple[Job, dict]] = {}
        self._all: set[Job] = set()
        self._closed = False

    def submit(
        self,
        channel: str,
        fn: Callable,
        *,
        on_snapshot: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        on_done: Callable[[], None] | None = None,
        keep_all: bool = False,
        keep_running: bool = False,
    ) -> Job:
        """Run ``fn`` in the pool on ``channel``; callbacks run on the GUI thread unless the job was cancelled,
        except ``on_done``, which runs once whatever happened (finished, failed, cancelled or never started).

        ``keep_running``: the job running on the channel is not cancelled but finishes and delivers; only a pending
        request is replaced, and it starts as soon as the running job's result arrives (before ``on_result`` runs),
        so the worker computes the next result while the GUI thread draws this one. For continuous input (a pen
        stroke) results then keep coming at the rate the worker manages, each for the newest input at its start,
        instead of none until the input stops."""
        job = Job(channel, fn, keep_all=keep_all)
        job.keep_running = keep_running
        if self._closed:  # the window is gone: nothing may start, nor be delivered to its widgets
            job.cancel()
            _call(on_done)
            return job
        callbacks = dict(
            on_snapshot=on_snapshot, on_result=on_result, on_error=on_error, on_finished=on_finished, on_done=on_done
        )
        old = self._pending.pop(channel, None)
        if old is not None:
            old[0].cancel()
            _call(old[1]["on_done"])
        running = self._running.get(channel)
        if running is not None:
            if not keep_running:
                running.cancel()
            self._pending[channel] = (job, callbacks)
        else:
            self._start(job, callbacks)
        return job

    def _start(self, job: Job, cb: dict) -> None:
        def snapshot(item):
            if job.cancelled or cb["on_snapshot"] is None:
                return
            if item is _PULL:
                item = job.take_latest()
                if item is _PULL:
                    return
            cb["on_snapshot"](item)

        def result(value):
            if job.keep_running and self._running.get(job.channel) is job:
                nxt = self._pending.pop(job.channel, None)
                if nxt is not None:  # the waiting request starts now: the worker runs while this result is drawn
                    self._start(*nxt)
            if not job.cancelled and cb["on_result"] is not None:
                cb["on_result"](value)

        def error(message):
            if shiboken6.isValid(self):
                self.job_error.emit(job.channel, message)
            if cb["on_error"] is not None:
                cb["on_error"](message)

        def finished():
            _call(cb["on_done"])
            if not shiboken6.isValid(self):  # the runner was deleted while the job ran
                _release(job, cb)
                return
            if self._running.get(job.channel) is job:
                del self._running[job.channel]
            self._all.discard(job)
            if cb["on_finished"] is not None and not job.cancelled:
                cb["on_finished"]()
            if job.channel not in self._running:  # (a keep-running channel may have started its next job already)
                nxt = self._pending.pop(job.channel, None)
                if nxt is not None:
                    self._start(*nxt)
            if not self._running:
                self.busy_changed.emit(False)
            _release(job, cb)

        job.signals.snapshot.connect(snapshot)
        job.signals.result.connect(result)
        job.signals.error.connect(error)
        job.signals.finished.connect(finished)
        job.signals.progress.connect(lambda f, t: self._forward_progress(job.channel, f, t))
        was_idle = not self._running
        self._running[job.channel] = job
        self._all.add(job)
        self.pool.start(job)
        if was_idle:
            self.busy_changed.emit(True)

    def cancel(self, channel: str | None = None) -> None:
        """Cancel the jobs of ``channel`` (or of every channel starting with it, or all when None)."""
        for ch in list(self._pending):
            if channel is None or ch.startswith(channel):
                job, cb = self._pending.pop(ch)
                job.cancel()
                _call(cb["on_done"])
        for ch, job in list(self._running.items()):
            if channel is None or ch.startswith(channel):
                job.cancel()

    def is_busy(self, prefix: str | None = None) -> bool:
        return any(prefix is None or ch.startswith(prefix) for ch in [*self._running, *self._pending])

    def running_channels(self) -> list[str]:
        return list(self._running)

    def _forward_progress(self, channel: str, done: object, total: object) -> None:
        if shiboken6.isValid(self):
            self.progress.emit(channel, done, total)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and wait for the threads; True when all stopped in time."""
        self.cancel()
        return self.pool.waitForDone(timeout_ms)

    def close(self, timeout_ms: int = 5000) -> bool:
        """``shutdown``, and refuse every later ``submit`` (it returns a cancelled job that never runs): for the
        window's close, after which events of a workspace that outlives it may still ask for work."""
        self._closed = True
        return self.shutdown(timeout_ms)
