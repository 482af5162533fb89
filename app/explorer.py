"""``explore(model, data)``: open LVM Explorer on a live model from a Python session or a notebook.

In a plain script (no Qt event loop running) the call blocks in ``QApplication.exec()`` until the window closes. In
IPython or Jupyter after ``%gui qt`` (IPython's input hook runs Qt's events while it waits for input), and inside a
running Qt event loop, it shows the window and returns it at once; the model stays live (the labs read it as it is).
"""

from __future__ import annotations

import sys
from typing import Any

DEFAULT_DATA = "digits"

_open_windows: list[Any] = []  # non-blocking windows, kept alive until they close


def explore(model: Any, data: Any = None, *, view: str | None = None):
    """Open the main window on ``model`` (an object of the latent-model protocol, ``lvm.models.base``).

    ``data``: None (the bundled digits), a dataset spec string (``lvm.data.load_dataset``), or an (N, D) array or
    tensor (or (N, H, W) images). ``view``: the lab to show (``lvm-explorer --list-views``). Returns the window
    (after it has closed, when the call blocked). Raises ``ModelInputError``/``DatasetError`` before opening
    anything for a model or data that cannot be used."""
    from PySide6.QtCore import QThread
    from PySide6.QtWidgets import QApplication

    from lvm.errors import ModelInputError
    from lvm.models.capabilities import check_latent_model, describe

    check_latent_model(model, f"the model given to explore ({type(model).__name__})")
    caps = describe(model)
    dataset = None if data is None or isinstance(data, str) else dataset_from_array(data, caps.image_shape)
    if dataset is not None and caps.data_dim is not None and dataset.dim != caps.data_dim:
        raise ModelInputError(
            f"the data has {dataset.dim} features per sample, but the model declares data_dim = {caps.data_dim}"
        )
    from app.labs import LABS

    if view is not None and view not in LABS:
        raise ModelInputError(f"view {view!r} is not a lab; choose one of {', '.join(LABS)}")

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    elif existing is None:
        app = QApplication(sys.argv[:1] or ["lvm-explorer"])
        app.setApplicationName("LVM Explorer")
        app.setOrganizationName("LVM Explorer")
    else:
        raise ModelInputError("explore needs a QApplication (widgets); this process runs a QCoreApplication")
    from app.core.appearance import load_appearance
    from app.core.gui_gc import install_gui_thread_collector
    from app.widgets.theme import apply_appearance

    install_gui_thread_collector()
    apply_appearance(app, load_appearance())
    from app.core.workspace import Workspace
    from app.main_window import MainWindow

    window = MainWindow(Workspace(device=_device_spec(model)))
    ws = window.workspace
    ws.set_model(model, None, {"source": "explore"})
    # (no start-up warm-up: it would freeze the caller's heap, app.core.warmup; the first optimiser pays torch's
    # lazy imports instead)
    if dataset is None:
        window.load_dataset(data or DEFAULT_DATA)
    else:
        ws.set_dataset(dataset, "data from Python")
    window.set_view(view or _default_view(caps))
    window.show()
    window.raise_()
    if QThread.currentThread().loopLevel() > 0 or _ipython_runs_qt():
        _open_windows.append(window)
        window.destroyed.connect(lambda *_: _open_windows.remove(window) if window in _open_windows else None)
        return window
    app.exec()
    return window


def _ipython_runs_qt() -> bool:
    """True inside IPython/Jupyter with ``%gui qt`` on (its input hook runs Qt's events between inputs)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    loop = getattr(shell, "active_eventloop", None)
    return isinstance(loop, str) and loop.startswith("qt")


def _device_spec(model: Any) -> str:
    """The device of the model's first tensor ("cpu" without one): the workspace computes where the model is."""
    import torch

    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return str(tensor.device) if tensor.device.type != "cuda" else f"cuda:{tensor.device.index or 0}"
    return "cpu"


def _default_view(caps) -> str:
    return "latent" if caps.has_encoder else "inference"


def dataset_from_array(data: Any, image_shape: tuple[int, int] | None = None):
    """An ``lvm.data.Dataset`` with one split ("train") from an (N, D) or (N, H, W) array or tensor (float32)."""
    import numpy as np

    from lvm.data import Dataset, Split
    from lvm.errors import DatasetError

    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    try:
        x = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"explore: data must be an (N, D) array or tensor, or a dataset spec ({exc})") from None
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise DatasetError(f"explore: data has dtype {x.dtype}; need numbers")
    if x.ndim == 3:
        image_shape = (int(x.shape[1]), int(x.shape[2]))
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or 0 in x.shape:
        raise DatasetError(f"explore: data has shape {x.shape}; need (N, D) samples or (N, H, W) images")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DatasetError("explore: data contains NaN or infinity; remove those samples")
    if image_shape is not None and image_shape[0] * image_shape[1] != x.shape[1]:
        image_shape = None
    return Dataset("data from Python", {"train": Split(x, None)}, image_shape, "explore(data=...)")
