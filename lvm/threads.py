"""Small interactive torch work on one intra-op thread.

An interactive update (a decoder call on a few hundred points, a few matrix-vector products) takes ~1 ms of
arithmetic; OpenMP's fork/join around each small op can cost more than that, and on a loaded machine much more
(measured here, 2 busy cores: a 100-element ``exp`` took 28 ms with 2 threads, 0.005 ms with 1). Large GEMMs keep
every thread. torch's thread count is process-wide, so the context manager is reference-counted across threads.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch

_lock = threading.Lock()
_users = 0
_saved: int | None = None


@contextlib.contextmanager
def single_thread(enabled: bool = True) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(1)``; the previous count returns when the last user leaves."""
    global _users, _saved
    if not enabled:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = torch.get_num_threads()
            if _saved > 1:
                torch.set_num_threads(1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved and _saved > 1:
                torch.set_num_threads(_saved)
