"""The one workspace state every view subscribes to. Qt-free: views connect to ``workspace.events``.

Views never call each other; they change the workspace (``select``, ``set_q``, ...) and redraw on its events.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.core.events import EventEmitter, EventGroup
from lvm.device import DEVICE_CHOICES, resolve_device
from lvm.errors import SessionError
from lvm.io import atomic_write_bytes, atomic_write_text
from lvm.resources import pretrained_model_path, resources_dir

if TYPE_CHECKING:  # torch is imported on first use: the main window paints before torch is loaded
    import torch

SESSION_FORMAT = "lvm-explorer-session"
SESSION_VERSION = 2  # 2: a model made in the app travels in the file ("model_data"); labs keep what the user made
READABLE_SESSION_VERSIONS = (1, 2)
MAX_SESSION_POINTS = 200_000  # the Mixture lab's own points kept in a session (the largest toy set, edited)
MAX_SESSION_MODEL_BYTES = 256 * 2**20  # an embedded checkpoint larger than this is refused (as a damaged file)
# user-made arrays in the labs' view states, checked when a session is read: (lab, key) -> (shape, lo, hi); a None
# in the shape is any length up to MAX_SESSION_POINTS; lo/hi bound the values (None: finite is enough)
SESSION_ARRAYS = {
    ("mixture", "points"): ((None, 2), None, None),
    ("inpainting", "image"): ((784,), 0.0, 1.0),
    ("inpainting", "mask_pixels"): ((784,), 0, 1),
    ("inpainting", "phi"): ((784,), 0.0, 1.0),
    ("latent", "drawn"): ((784,), 0.0, 1.0),
}
RESOURCES = resources_dir()
DEFAULT_MODEL = pretrained_model_path()
DEFAULT_DATASET = "digits"


@dataclasses.dataclass(frozen=True)
class GaussianQ:
    """q(z) = N(mean, L L^T) with L = scale_tril (lower triangular, positive diagonal)."""

    mean: tuple[float, ...]
    scale_tril: tuple[tuple[float, ...], ...]

    def distribution(self, device: torch.device | str = "cpu") -> torch.distributions.MultivariateNormal:
        import torch

        return torch.distributions.MultivariateNormal(
            torch.tensor(self.mean, dtype=torch.float32, device=device),
            scale_tril=torch.tensor(self.scale_tril, dtype=torch.float32, device=device),
        )

    @classmethod
    def from_arrays(cls, mean, scale_tril) -> GaussianQ:
        mean = np.asarray(mean, dtype=float).reshape(-1)
        L = np.tril(np.asarray(scale_tril, dtype=float).reshape(mean.size, mean.size))
        if not (np.isfinite(mean).all() and np.isfinite(L).all()) or (np.diag(L) <= 0).any():
            raise ValueError("q needs a finite mean and a lower-triangular scale with a positive diagonal")
        return cls(tuple(mean.tolist()), tuple(tuple(r) for r in L.tolist()))


class WorkspaceEvents(EventGroup):
    """The workspace's events, one per field; each carries the field's new value."""

    dataset: EventEmitter  # lvm.data.Dataset
    model: EventEmitter  # the latent model (or None)
    selection: EventEmitter  # the selected index (or None)
    q: EventEmitter  # GaussianQ (or None)
    gmm: EventEmitter  # a fitted lvm.models.GaussianMixture (or None)
    device: EventEmitter  # torch.device
    seeds: EventEmitter  # dict name -> seed
    message: EventEmitter  # a status-bar message (str)


class Workspace:
    """Current dataset, model, selection, q, device and seeds; emits an event on every change."""

    def __init__(self, device: str = "auto"):
        self.events = WorkspaceEvents()
        self.dataset = None  # lvm.data.Dataset
        self.dataset_spec: str | None = None
        self.split: str | None = None
        self.model: Any = None  # the latent model (lvm.models.base.LatentModel; the bundled one is an lvm.models.VAE)
        self.model_path: str | None = None
        self.model_info: dict = {}
        self.gmm = None  # a fitted lvm.models.GaussianMixture, shared between labs
        self.selected_index: int | None = None
        self.q: GaussianQ | None = None
        # a spec is resolved on first use (that imports torch: the main window paints before); anything else now
        lazy = isinstance(device, str) and (device in DEVICE_CHOICES or device.startswith("cuda:"))
        self._device: torch.device | None = None if lazy else resolve_device(device)  # (LVMError names the choices)
        self.device_spec = device if lazy else str(self._device)
        self.seeds: dict[str, int] = {"global": 0}
        self.view_states: dict[str, dict] = {}
        self.current_view: str | None = None

    @property
    def device(self) -> torch.device:
        """The torch device computations run on (``device_spec`` resolved: LVMError for cuda without a GPU)."""
        if self._device is None:
            self._device = resolve_device(self.device_spec)
        return self._device

    # -- data ------------------------------------------------------------------------------------------------------
    def set_dataset(self, dataset, spec: str, split: str | None = None) -> None:
        self.dataset, self.dataset_spec = dataset, spec
        self.split = split if split in dataset.splits else dataset.default_split
        self.selected_index = None
        try:
            self.events.dataset.emit(dataset)
        finally:  # a subscriber that raised (re-raised after all ran: app.core.events) keeps the selection cleared
            self.events.selection.emit(None)

    @property
    def data(self):
        """The current split (``.x`` float32 (N, D), ``.y``) or None."""
        return None if self.dataset is None else self.dataset.split(self.split)

    # -- model -----------------------------------------------------------------------------------------------------
    def set_model(self, model, path: str | None = None, info: dict | None = None) -> None:
        """Make ``model`` the shared model (the workspace takes it over: one on another device is moved here)."""
        if model is not None and _model_device(model) not in (None, self.device):
            model.to(self.device)  # e.g. a model trained on the device that was current when training started
        self.model, self.model_path, self.model_info = model, path, dict(info or {})
        self.events.model.emit(model)

    def set_gmm(self, gmm) -> None:
        self.gmm = gmm
        self.events.gmm.emit(gmm)

    # -- selection and q -------------------------------------------------------------------------------------------
    def select(self, index: int | None) -> None:
        data = self.data
        if index is not None:
            if data is None or not 0 <= int(index) < len(data):
                return
            index = int(index)
        if index == self.selected_index:
            return
        self.selected_index = index
        self.events.selection.emit(index)

    @property
    def selected_x(self) -> np.ndarray | None:
        data = self.data
        return None if data is None or self.selected_index is None else data.x[self.selected_index]

    def set_q(self, q: GaussianQ | None) -> None:
        if q != self.q:
            self.q = q
            self.events.q.emit(q)

    def set_device(self, spec: str) -> None:
        """Compute on ``spec`` from now on. The shared model is never moved in place (workers may be using it): a copy
        on the new device replaces it, and a ``model`` event follows the ``device`` event, so every lab cancels and
        redoes what it computed with the old one (a job still running on the old model finishes on its own copy)."""
        device = resolve_device(spec)
        if spec == self.device_spec and device == self.device:
            return
        movable = self.model is None or callable(getattr(self.model, "to", None))
        if not movable and device != self.device:  # (a user's model that is no torch module)
            from lvm.errors import ModelInputError

            raise ModelInputError(
                f"the model ({type(self.model).__name__}) is not a torch module and cannot move to {device}; "
                f"the computations stay on {self.device}"
            )
        self.device_spec, self._device = spec, device
        moved = None
        if self.model is not None:
            moved = copy.deepcopy(self.model)
            moved = moved.to(device) if movable else moved
            self.model = moved
        self.events.device.emit(device)
        if moved is not None and self.model is moved:  # (a device subscriber may have set another model meanwhile)
            self.events.model.emit(moved)

    def set_seed(self, name: str, value: int) -> None:
        self.seeds[name] = int(value)
        self.events.seeds.emit(name)

    def seed(self, name: str) -> int:
        return self.seeds.setdefault(name, self.seeds.get("global", 0))

    def message(self, text: str) -> None:
        """Show ``text`` to the user (the main window listens)."""
        self.events.message.emit(text)

    # -- sessions --------------------------------------------------------------------------------------------------
    def session_dict(self, model_data: str | None = None) -> dict[str, Any]:
        """The session as JSON-able data; ``model_data`` (from ``embedded_model``) carries a model made in the app."""
        return {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "dataset": self.dataset_spec,
            "split": self.split,
            "model": None if model_data else self.model_path,
            "model_data": model_data,
            "selected_index": self.selected_index,
            "q": None
            if self.q is None
            else {"mean": list(self.q.mean), "scale_tril": [list(r) for r in self.q.scale_tril]},
            "device": self.device_spec,
            "seeds": dict(self.seeds),
            "current_view": self.current_view,
            "views": self.view_states,
        }

    def embedded_model(self) -> tuple[str | None, str | None]:
        """(model_data, problem): the shared model as base64 safetensors bytes when it exists in no file (trained
        or fine-tuned in the app), else None; ``problem`` says why a model that should travel cannot (NaN weights)."""
        if self.model is None or self.model_path is not None:
            return None, None
        from lvm.errors import LVMError
        from lvm.models.vae import VAE

        if not isinstance(self.model, VAE):  # (a live model handed to app.explore: its code is in no file)
            return None, (
                f"the model ({type(self.model).__name__}, from Python) is in no file: the session cannot keep it "
                "(write a .py file that builds it and open that)"
            )

        try:
            return model_to_base64(self.model, self.model_info), None
        except (LVMError, OSError) as exc:
            return None, f"the model made in the app cannot be saved ({exc})"

    def save_session(self, path: str | os.PathLike, model_data: str | None = None) -> None:
        """Write the session in one atomic write (an embedded model and the rest can never disagree)."""
        atomic_write_text(path, json.dumps(self.session_dict(model_data), indent=1))


def model_to_base64(model, info: dict) -> str:
    """``model`` as an LVM Explorer safetensors checkpoint (lvm.checkpoint.save_model), base64 encoded."""
    import base64
    import tempfile

    from lvm.checkpoint import save_model

    with tempfile.TemporaryDirectory(prefix="lvm-session-") as tmp:
        target = Path(tmp) / "model.safetensors"
        save_model(model, target, info)
        return base64.b64encode(target.read_bytes()).decode("ascii")


def model_from_bytes(data: bytes, device, name: str):
    """(model, info) from checkpoint bytes (lvm.checkpoint.load_model: validated, never unpickled); CheckpointError
    messages name ``name`` instead of the scratch file."""
    import tempfile

    from lvm.checkpoint import load_model
    from lvm.errors import CheckpointError

    with tempfile.TemporaryDirectory(prefix="lvm-session-") as tmp:
        target = Path(tmp) / "model.safetensors"
        atomic_write_bytes(target, data)  # (a scratch file; every write goes through lvm.io)
        try:
            return load_model(target, device)
        except CheckpointError as exc:
            raise CheckpointError(str(exc).replace(str(target), name)) from None


def _model_device(model) -> torch.device | None:
    """The device of ``model``'s first parameter or buffer (None for a model without tensors)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()) if isinstance(model, torch.nn.Module) else ():
        return tensor.device
    return None


def read_session(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a session file; raises SessionError naming the file and the problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(f"{path}: file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionError(f"{path}: not a session file (invalid JSON: {exc})") from None
    except OSError as exc:
        raise SessionError(f"{path}: cannot be read ({exc})") from None

    def bad(field: str, want: str) -> SessionError:
        return SessionError(f"{path}: field {field!r} must be {want}; the file is damaged or from another program")

    if not isinstance(raw, dict) or raw.get("format") != SESSION_FORMAT:
        raise SessionError(f"{path}: not an LVM Explorer session (format field missing)")
    version = raw.get("version")
    if isinstance(version, bool) or version not in READABLE_SESSION_VERSIONS:
        raise SessionError(
            f"{path}: session version {version!r}; this LVM Explorer reads versions "
            f"{', '.join(map(str, READABLE_SESSION_VERSIONS))}"
        )
    for field in ("dataset", "split", "model", "device", "current_view"):
        if raw.get(field) is not None and not isinstance(raw[field], str):
            raise bad(field, "a string or null")
    if raw.get("dataset") is None:
        raise bad("dataset", "a dataset spec")
    sel = raw.get("selected_index")
    if sel is not None and (not isinstance(sel, int) or isinstance(sel, bool) or sel < 0):
        raise bad("selected_index", "a non-negative integer or null")
    seeds = raw.get("seeds", {})
    if not isinstance(seeds, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63
        for k, v in seeds.items()
    ):
        raise bad("seeds", "an object of integers in [0, 2^63)")
    views = raw.get("views", {})
    if not isinstance(views, dict) or not all(isinstance(v, dict) for v in views.values()):
        raise bad("views", "an object of objects")
    q = raw.get("q")
    if q is not None:
        try:
            GaussianQ.from_arrays(q["mean"], q["scale_tril"])
        except (TypeError, KeyError, ValueError):
            raise bad("q", "{mean: [..], scale_tril: [[..]]} with a positive diagonal") from None
    model_data = raw.get("model_data")
    if model_data is not None:
        import base64
        import binascii

        if not isinstance(model_data, str) or len(model_data) > MAX_SESSION_MODEL_BYTES * 4 // 3 + 4:
            raise bad(
                "model_data", f"null or a base64 safetensors checkpoint of at most {MAX_SESSION_MODEL_BYTES >> 20} MiB"
            )
        try:
            raw["model_data"] = base64.b64decode(model_data, validate=True)
        except (binascii.Error, ValueError):
            raise bad("model_data", "base64 text (a safetensors checkpoint)") from None
    for (lab, key), (shape, lo, hi) in SESSION_ARRAYS.items():
        state = views.get(lab, {})
        if key in state and state[key] is not None:
            _check_array(state[key], shape, lo, hi, lambda want, f=f"views.{lab}.{key}": bad(f, want))
    return raw


def _check_array(value, shape, lo, hi, bad) -> None:
    """``value`` (JSON lists) has ``shape`` (None: 0..MAX_SESSION_POINTS) and finite numbers in [lo, hi]."""
    n = shape[0] if shape[0] is not None else MAX_SESSION_POINTS
    what = (
        (f"a list of {shape[0]}" if shape[0] is not None else f"a list of at most {MAX_SESSION_POINTS:,}")
        + (" [x, y] pairs" if len(shape) == 2 else " numbers")
        + ("" if lo is None else f" in [{lo}, {hi}]")
        + " (finite)"
    )
    if not isinstance(value, list) or len(value) > n or (shape[0] is not None and len(value) != n):
        raise bad(what)
    rows = value if len(shape) == 2 else [value]
    width = shape[1] if len(shape) == 2 else len(value)
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) != width
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
        ):
            raise bad(what)
    try:
        arr = np.asarray(rows, dtype=float)
    except OverflowError:  # an integer beyond float range
        raise bad(what) from None
    if arr.size and (not np.isfinite(arr).all() or (lo is not None and ((arr < lo).any() or (arr > hi).any()))):
        raise bad(what)
