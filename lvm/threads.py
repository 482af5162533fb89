"""Small interactive torch work on one intra-op thread.

An interactive update (a decoder call on a few hundred points, a few matrix-vector products) takes ~1 ms of
arithmetic; OpenMP's fork/join around each small op can cost more than that, and on a loaded machine much more
(measured here, 2 busy cores: a 100-element ``exp`` took 28 ms with 2 threads, 0.005 ms with 1). Large GEMMs keep
every thread. torch's intra-op thread count is a setting of the calling thread (OpenMP's, measured: a count set in a
worker thread leaves the GUI thread's unchanged), so each thread saves and restores its own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

_local = threading.local()


@contextlib.contextmanager
def single_thread(enabled: bool = True) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(1)`` in this thread; its previous count returns when it leaves the
    outermost block."""
    if not enabled:
        yield
        return
    depth = getattr(_local, "depth", 0)
    if depth == 0:
        _local.saved = torch.get_num_threads()
        if _local.saved > 1:
            torch.set_num_threads(1)
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth -= 1
        if _local.depth == 0 and _local.saved > 1:
            torch.set_num_threads(_local.saved)
