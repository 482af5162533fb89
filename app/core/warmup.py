"""Imports that torch makes lazily on first use, done once while the app is still loading.

The first ``torch.optim`` optimiser of a process imports ``torch._dynamo`` (with torch.fx, sympy and more: ~1,900
modules). Imports hold the GIL, so when the first optimiser is built in a worker (training the VAE, fitting q or the
lecture's model) the GUI thread waited for the GIL for up to 0.8 s at a time (measured with ``py-spy record --gil``:
2.7 s of import in total on this 2-core machine). Paying it during start-up, in the loading job, keeps it out of
every later interaction.
"""

from __future__ import annotations

import threading

_warm = False
_warm_lock = threading.Lock()


def warm_up_torch() -> None:
    """Build one Adam optimiser and take one step (imports torch._dynamo and the autograd profiler hooks), once per
    process. Thread-safe: a second caller waits for the first (two threads importing torch._dynamo at once can fail,
    e.g. "operator _c10d_functional::_wrap_tensor_autograd does not exist"); the worker runs it before every job that
    builds an optimiser (``app.core.workers.OPTIMISER_JOBS``)."""
    global _warm
    if _warm:
        return
    with _warm_lock:
        if _warm:
            return
        import torch

        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([p], lr=1e-3)
        p.sum().backward()
        opt.step()
        _warm = True


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
