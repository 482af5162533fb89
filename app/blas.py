"""Single-threaded NumPy BLAS for small GUI-thread computations.

On a loaded CPU a 2-thread OpenBLAS GEMM of a few hundred kFLOP can stall for milliseconds waiting for its second
thread; interactive redraws (slider drags) are faster with one. ``threadpoolctl`` comes with scikit-learn; without
it this is a no-op.
"""

from __future__ import annotations

import contextlib

try:  # pragma: no cover - depends on the environment
    from threadpoolctl import ThreadpoolController

    _BLAS = ThreadpoolController().select(user_api="blas")
except Exception:  # noqa: BLE001 - optional speed-up only
    _BLAS = None


def single_thread_blas():
    """Context manager: NumPy's BLAS limited to one thread inside (process-wide while it is held)."""
    return _BLAS.limit(limits=1) if _BLAS is not None else contextlib.nullcontext()
