"""LVM Explorer's torch backend: latent variable models, their estimators and data.

Qt-free by contract (see ``tests/lvm/test_architecture.py``): import it from a notebook.
"""

import os

__version__ = "0.1.0"

from lvm.errors import CheckpointError, DatasetError, LVMError, ModelInputError, SessionError  # noqa: E402,F401


def prefer_passive_openmp() -> None:
    """Make torch's OpenMP threads sleep, not spin, while they wait (``OMP_WAIT_POLICY=PASSIVE``), unless the user
    chose a policy. Effective only before torch is first imported: the app, the CLI and the tests call it first.

    Measured on this 2-core machine with other processes running (load average 3.2): 200 steps of a 64x784 @ 784x512
    product and a tanh took 4.87 s with torch's default two spinning threads, 0.18 s with passive ones and 0.14 s with
    one thread; with two busy-loop processes beside it, 8.35 s against 0.46 s (the loop: ``for _ in range(200):
    torch.tanh(x @ W).sum()``, timed after one warm-up pass). A spinning thread holds a core that the thread it waits
    for needs.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
