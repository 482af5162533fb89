"""Single-threaded NumPy BLAS for small GUI-thread computations.

On a loaded CPU a 2-thread OpenBLAS GEMM of a few hundred kFLOP can stall for milliseconds waiting for its second
thread; interactive redraws (slider drags) are faster with one. ``threadpoolctl`` (a dependency) finds the BLAS
NumPy loaded and limits it.
"""

from __future__ import annotations

import numpy  # noqa: F401 - loads the BLAS the controller must find
from threadpoolctl import ThreadpoolController

_BLAS = ThreadpoolController().select(user_api="blas")


def single_thread_blas():
    """Context manager: NumPy's BLAS limited to one thread inside (process-wide while it is held)."""
    return _BLAS.limit(limits=1)
