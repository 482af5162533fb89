"""app.core.blas: NumPy's BLAS really runs on one thread inside ``single_thread_blas`` (threadpoolctl: a dependency)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from app.core.blas import single_thread_blas


def blas_threads() -> list[int]:
    """Threads of the BLAS libraries app.core.blas controls (NumPy's; scikit-learn's SciPy may load another later)."""
    from app.core.blas import _BLAS

    ours = {lib.filepath for lib in _BLAS.lib_controllers}
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and i["filepath"] in ours]


def test_single_thread_blas_limits_and_restores():
    before = blas_threads()
    assert before, "NumPy's BLAS was not found by threadpoolctl"
    with single_thread_blas():
        assert blas_threads() == [1] * len(before)
        a = np.ones((64, 64))
        assert float((a @ a)[0, 0]) == 64.0
    assert blas_threads() == before
