"""The one workspace state every view subscribes to. Qt-free: views connect to ``workspace.events``.

Views never call each other; they change the workspace (``select``, ``set_q``, ...) and redraw on its events.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.events import EventGroup
from lvm.device import resolve_device
from lvm.errors import SessionError
from lvm.io import atomic_write_text
from lvm.resources import pretrained_model_path, resources_dir

SESSION_FORMAT = "lvm-explorer-session"
SESSION_VERSION = 1
RESOURCES = resources_dir()
DEFAULT_MODEL = pretrained_model_path()
DEFAULT_DATASET = "digits"


@dataclasses.dataclass(frozen=True)
class GaussianQ:
    """q(z) = N(mean, L L^T) with L = scale_tril (lower triangular, positive diagonal)."""

    mean: tuple[float, ...]
    scale_tril: tuple[tuple[float, ...], ...]

    def distribution(self, device: torch.device | str = "cpu") -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(torch.tensor(self.mean, dtype=torch.float32, device=device),
                                                      scale_tril=torch.tensor(self.scale_tril, dtype=torch.float32,
                                                                              device=device))

    @classmethod
    def from_arrays(cls, mean, scale_tril) -> "GaussianQ":
        mean = np.asarray(mean, dtype=float).reshape(-1)
        L = np.tril(np.asarray(scale_tril, dtype=float).reshape(mean.size, mean.size))
        if not (np.isfinite(mean).all() and np.isfinite(L).all()) or (np.diag(L) <= 0).any():
            raise ValueError("q needs a finite mean and a lower-triangular scale with a positive diagonal")
        return cls(tuple(mean.tolist()), tuple(tuple(r) for r in L.tolist()))


class Workspace:
    """Current dataset, model, selection, q, device and seeds; emits an event on every change."""

    def __init__(self, device: str = "auto"):
        self.events = EventGroup("dataset", "model", "selection", "q", "gmm", "device", "seeds", "message")
        self.dataset = None  # lvm.data.Dataset
        self.dataset_spec: str | None = None
        self.split: str | None = None
        self.model = None  # lvm.models.VAE (a latent model)
        self.model_path: str | None = None
        self.model_info: dict = {}
        self.gmm = None  # a fitted lvm.models.GaussianMixture, shared between labs
        self.selected_index: int | None = None
        self.q: GaussianQ | None = None
        self.device_spec = device
        self.device: torch.device = resolve_device(device)
        self.seeds: dict[str, int] = {"global": 0}
        self.view_states: dict[str, dict] = {}
        self.current_view: str | None = None

    # -- data ------------------------------------------------------------------------------------------------------
    def set_dataset(self, dataset, spec: str, split: str | None = None) -> None:
        self.dataset, self.dataset_spec = dataset, spec
        self.split = split if split in dataset.splits else dataset.default_split
        self.selected_index = None
        self.events.dataset.emit(dataset)
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
        self.device_spec, self.device = spec, device
        moved = None
        if self.model is not None:
            moved = copy.deepcopy(self.model).to(device)
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
    def session_dict(self) -> dict[str, Any]:
        return {"format": SESSION_FORMAT, "version": SESSION_VERSION, "dataset": self.dataset_spec,
                "split": self.split, "model": self.model_path, "selected_index": self.selected_index,
                "q": None if self.q is None else {"mean": list(self.q.mean), "scale_tril": [list(r) for r in self.q.scale_tril]},
                "device": self.device_spec, "seeds": dict(self.seeds), "current_view": self.current_view,
                "views": self.view_states}

    def save_session(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.session_dict(), indent=2))


def _model_device(model) -> torch.device | None:
    """The device of ``model``'s first parameter or buffer (None for a model without tensors)."""
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
    if raw.get("version") != SESSION_VERSION:
        raise SessionError(f"{path}: session version {raw.get('version')!r}; this LVM Explorer reads {SESSION_VERSION}")
    for field in ("dataset", "split", "model", "device", "current_view"):
        if raw.get(field) is not None and not isinstance(raw[field], str):
            raise bad(field, "a string or null")
    if raw.get("dataset") is None:
        raise bad("dataset", "a dataset spec")
    sel = raw.get("selected_index")
    if sel is not None and (not isinstance(sel, int) or isinstance(sel, bool) or sel < 0):
        raise bad("selected_index", "a non-negative integer or null")
    seeds = raw.get("seeds", {})
    if not isinstance(seeds, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                              and 0 <= v < 2**63 for k, v in seeds.items()):
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
    return raw
