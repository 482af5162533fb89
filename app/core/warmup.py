"""Imports that torch makes lazily on first use, done once, in a worker, right after the app is ready.

The first ``torch.optim`` optimiser of a process imports ``torch._dynamo`` (with torch.fx, sympy and more: ~1,900
modules, 1.9 s here). Imports hold the GIL, so when the first optimiser was built in a job the user started (training
the VAE, fitting q) the GUI thread waited for the GIL for up to 0.8 s at a time; paying it once, in the background
just after start-up, keeps it out of every later interaction.

torch's import graph is cyclic, and another thread importing beside it can see half-initialised modules: on a busy
machine the warm-up failed now and then ("'_OpNamespace' 'prims' object has no attribute 'sum'", "operator
_c10d_functional::_wrap_tensor_autograd does not exist"), and every later optimiser with it. So it runs alone: new
worker jobs wait (``torch_job``) and any other thread's import of a module not loaded yet (the GUI thread opening a
lab) waits for it (``_import_after_warm_up``, installed for the warm-up's ~2 s only). It starts only when no job runs:
running jobs get a second to finish, and when one still runs after that the warm-up is put off to its next call (a
job in the middle of importing torch._dynamo itself, building its own first optimiser, holds the import locks the
warm-up needs, while the import gate made it wait for the warm-up: the two waited for each other until the gate's
timeout, import after import, and the Inpainting lab's first completion of a 10-D model took minutes on a busy machine).
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_warm = False
_warm_lock = threading.Lock()
_gate = threading.Condition()
_running_jobs = 0
_warming_thread: int | None = None  # the thread importing, while the warm-up runs
_warm_up_waiting = False  # the warm-up waits for the running jobs to finish (new ones wait behind it)
RUNNING_JOBS_WAIT_S = 1.0
IMPORT_WAIT_S = 20.0  # at most (an import the warm-up itself waits for must not hang the app)
_real_import = builtins.__import__


@contextmanager
def torch_job() -> Iterator[None]:
    """Around every worker job: waits while the warm-up's imports run; the warm-up waits for the jobs running."""
    global _running_jobs
    with _gate:
        _gate.wait_for(lambda: _warming_thread is None and not _warm_up_waiting)
        _running_jobs += 1
    try:
        yield
    finally:
        with _gate:
            _running_jobs -= 1
            _gate.notify_all()


def _import_after_warm_up(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0):
    """``builtins.__import__`` while the warm-up runs: another thread's import of a module not loaded yet waits for
    the warm-up to end (at most ``IMPORT_WAIT_S``)."""
    if _warming_thread is not None and threading.get_ident() != _warming_thread and (level or name not in sys.modules):
        with _gate:
            _gate.wait_for(lambda: _warming_thread is None, timeout=IMPORT_WAIT_S)
    return _real_import(name, globals, locals, fromlist, level)


def warm_up_torch() -> bool:
    """Build one Adam optimiser and take one step (imports torch._dynamo and the autograd profiler hooks), once per
    process, alone (see the module docstring); returns whether torch is warm now (False: a job still ran after
    ``RUNNING_JOBS_WAIT_S``, so the warm-up is put off to the next call). Thread-safe: a second caller waits for the
    first. The worker runs it before every job that builds an optimiser (``app.core.workers.OPTIMISER_JOBS``),
    outside that job's ``torch_job``."""
    global _warm, _warming_thread, _warm_up_waiting
    if _warm:
        return True
    with _warm_lock:
        if _warm:
            return True
        with _gate:
            _warm_up_waiting = True  # new jobs wait from now on; the running ones get a second to finish
            alone = _gate.wait_for(lambda: _running_jobs == 0, timeout=RUNNING_JOBS_WAIT_S)
            _warm_up_waiting = False
            if not alone:  # never beside a running job (the module docstring): later
                _gate.notify_all()
                return False
            _warming_thread = threading.get_ident()
        builtins.__import__ = _import_after_warm_up
        try:
            _first_optimiser_step()
            _warm = True
            return True
        finally:
            builtins.__import__ = _real_import
            with _gate:
                _warming_thread = None
                _gate.notify_all()


def warm_up_torch_when_idle(patience_s: float = 60.0) -> bool:
    """``warm_up_torch`` at a moment no job runs: waits (without holding new jobs back) until none runs, then warms up;
    tries again while jobs keep starting, for at most ``patience_s``. Returns whether torch is warm (if not, the next
    job that builds an optimiser warms it)."""
    import time

    deadline = time.monotonic() + patience_s
    while not _warm:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        with _gate:
            _gate.wait_for(lambda: _running_jobs == 0, timeout=left)
        if warm_up_torch():
            return True
    return True


def _first_optimiser_step() -> None:
    import torch

    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1e-3)
    p.sum().backward()
    opt.step()


_frozen = False


def freeze_startup_heap() -> None:
    """Once, when start-up loading is done: collect, then ``gc.freeze()`` the objects alive now.

    Python's full (generation 2) collection walks every tracked object; with torch, Qt wrappers and pyqtgraph loaded
    that paused the GUI thread for ~200 ms at random moments (measured with ``gc.callbacks`` in the scripted GUI
    benchmark: one gen-2 collection of 199 ms while dragging q). Frozen objects are left out of every later collection
    (objects created afterwards are collected as usual); they are the app's long-lived start-up state.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    import gc

    gc.collect()
    gc.freeze()


def freeze_new_long_lived() -> None:
    """After a burst of long-lived objects (a lab built on first use): collect the young generations, then
    ``gc.freeze()`` what is alive.

    A lab's widgets, plot items and typeset formulas are some 10^5 tracked objects; left to the collector they are
    walked again by the next generation-1 collection (44 ms, in the middle of a drag, ``lvm bench gui`` with
    ``gc.callbacks``) and by every full one after. Frozen, they are never walked again; the labs live as long as the
    window. The collection before the freeze keeps young garbage out of the frozen set; cycles already in the oldest
    generation are frozen with it (a full collection here would cost ~250 ms)."""
    import gc

    gc.collect(1)
    gc.freeze()
