"""Model checkpoints in safetensors with JSON metadata. Nothing is ever unpickled; saving is atomic.

Metadata (string -> string): ``format`` = ``lvm-explorer``, ``format_version``, ``kind`` (``vae``), ``config``
(the architecture, JSON) and ``info`` (dataset, epochs, metrics, JSON). ``info["training_state"]``, when present, is
where the model's training schedule ended (``lvm.training.ScheduleState``: schedule, peak and final learning rate,
optimizer steps), so that training can continue from it; checkpoints saved without it load as before (continuing them
starts at a conservative learning rate).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lvm.errors import CheckpointError, ModelInputError
from lvm.io import atomic_write_bytes
from lvm.models.vae import VAE, VAEConfig
from lvm.training import ScheduleState, schedule_state_from_info

FORMAT = "lvm-explorer"
FORMAT_VERSION = 1


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for numpy scalars/arrays, a ScheduleState and other odd values in ``info``."""
    if isinstance(value, ScheduleState):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def save_model(model: VAE, path: str | os.PathLike[str], info: Mapping[str, Any] | None = None) -> None:
    """Save ``model`` (weights + architecture + ``info``) to ``path`` atomically.

    Refuses (CheckpointError) a model whose weights contain NaN/inf, or an ``info["training_state"]`` that is not a
    valid schedule state: such a file could never be loaded.
    """
    try:
        schedule_state_from_info(info)
    except ModelInputError as exc:
        raise CheckpointError(f"the model's training state is invalid ({exc}); it is not saved") from None
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"the model's weights contain NaN or infinity ({bad[0]}); it diverged in training and "
            "is not saved. Retrain it (with a smaller learning rate)"
        )
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": "vae",
        "config": json.dumps(model.config.to_dict()),
        "info": json.dumps(dict(info or {}), default=_jsonable),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def read_metadata(data: bytes, name: str) -> dict[str, str]:
    """The safetensors header metadata, validated; raises CheckpointError."""
    if len(data) < 8:
        raise CheckpointError(f"{name}: too short to be a checkpoint ({len(data)} bytes); it is truncated")
    header_len = int.from_bytes(data[:8], "little")
    # (a safetensors header length can begin with a pickle's bytes: 1408 is b"\x80\x05...". Its JSON header decides)
    safetensors_like = 0 < header_len <= len(data) - 8 and data[8:9] == b"{"
    pickle_like = data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:4] == b"PK\x03\x04"
    if pickle_like and not safetensors_like:
        raise CheckpointError(
            f"{name}: looks like a pickle / torch.save file; those are never loaded (they can run "
            "code). Save models with LVM Explorer or `lvm train-vae` (safetensors)"
        )
    if header_len <= 0 or 8 + header_len > len(data):
        raise CheckpointError(f"{name}: not a safetensors checkpoint or truncated (header claims {header_len} bytes)")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{name}: corrupt checkpoint header (not JSON); the file was damaged") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{name}: a safetensors file but not an LVM Explorer checkpoint (no '{FORMAT}' metadata)")
    try:
        version = int(meta.get("format_version", "0"))
    except (ValueError, TypeError):
        version = -1
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{name}: checkpoint format version {meta.get('format_version')!r}; this LVM Explorer "
            f"reads version {FORMAT_VERSION}"
        )
    return {str(k): str(v) for k, v in meta.items()}


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, str]]:
    """The bytes of a checkpoint file and its validated header metadata; raises CheckpointError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc})") from None
    return data, read_metadata(data, str(path))


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> tuple[VAE, dict[str, Any]]:
    """Load a checkpoint: (model in eval mode on ``device``, info dict). Raises CheckpointError on any problem.

    ``info["training_state"]``, when present, is validated (``lvm.training.ScheduleState``)."""
    path = Path(path)
    data, meta = read_checkpoint(path)
    try:
        config = VAEConfig.from_dict(json.loads(meta["config"]))
        info = json.loads(meta.get("info", "{}"))
    except (
        KeyError,
        TypeError,
        ValueError,
        OverflowError,
        RecursionError,
        json.JSONDecodeError,
        ModelInputError,
    ) as exc:
        raise CheckpointError(
            f"{path}: the stored architecture is invalid ({exc}); the header was edited or damaged"
        ) from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: the stored 'info' metadata is not a JSON object; the header was edited")
    try:
        schedule_state_from_info(info)
    except ModelInputError as exc:
        raise CheckpointError(f"{path}: the stored training state is invalid ({exc}); the header was edited") from None
    if meta.get("kind") != "vae":
        raise CheckpointError(f"{path}: holds a model of kind {meta.get('kind')!r}; only 'vae' checkpoints load here")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated tensor data ({exc})") from None
    # Shapes from the stored architecture without allocating it (a tampered header could ask for huge layers).
    try:
        with torch.device("meta"):
            expected = VAE(config).state_dict()
    except (RuntimeError, OverflowError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the stored architecture cannot be built ({exc}); the header was edited or damaged"
        ) from None
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: weights do not match the stored architecture (missing {missing[:3]}, "
            f"unexpected {extra[:3]}); the file is from another architecture or was edited"
        )
    for k, v in expected.items():
        t = tensors[k]
        if t.shape != v.shape:
            raise CheckpointError(
                f"{path}: weight {k} has shape {tuple(t.shape)}, the architecture needs {tuple(v.shape)}"
            )
        if not t.is_floating_point():
            raise CheckpointError(f"{path}: weight {k} has dtype {t.dtype}; need floating point")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: weight {k} contains NaN or infinity; the model was saved after diverging")
    model = VAE(config)
    model.load_state_dict({k: t.to(torch.float32) for k, t in tensors.items()})
    model.eval()
    return model.to(device), info
