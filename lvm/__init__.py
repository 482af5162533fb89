"""LVM Explorer's torch backend: latent variable models, their estimators and data.

Qt-free by contract (see ``tests/test_architecture.py``): import it from a notebook.
"""

__version__ = "0.1.0"

from lvm.errors import LVMError, DatasetError, CheckpointError, SessionError, ModelInputError  # noqa: E402,F401
