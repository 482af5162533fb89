"""Input checks shared by every public estimator: x and q are refused with a ``ModelInputError`` that says what to
change, before any maths runs (a wrong width would otherwise broadcast, and a NaN would become a NaN estimate).

x: a numpy array or a torch tensor (or anything ``numpy.asarray`` turns into numbers) of shape (B, D) with B >= 1,
D = the model's data dimension when it declares one (``lvm.models.capabilities.describe(model).data_dim``), every
entry finite. It becomes a floating tensor on the model's device and dtype (its parameters' for a torch module, else
x's own floating dtype), so numpy and torch x give the same result.
q: a ``torch.distributions.Distribution`` with batch shape (B,) (one distribution per x) and event shape
(latent_dim,).

Each check is O(1) Python plus one ``isfinite().all()`` over x: cheap enough for every mouse drag.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch
from torch.distributions import Distribution

from lvm.errors import ModelInputError
from lvm.models.capabilities import describe

__all__ = ["XLike", "model_device_dtype", "data_dim_of", "check_x", "check_q", "check_gaussian_params"]

# what an estimator takes as x: a torch tensor or a numpy array (anything numpy.asarray turns into numbers)
XLike: TypeAlias = torch.Tensor | npt.ArrayLike


def model_device_dtype(model: Any) -> tuple[torch.device | None, torch.dtype | None]:
    """The device and dtype of a torch module's first parameter; (None, None) for other models (x keeps its own)."""
    if isinstance(model, torch.nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None:
            return p.device, p.dtype
    return None, None


def data_dim_of(model: Any) -> int | None:
    """The width of x the model declares (``data_dim`` on the model or its config), None when it declares none."""
    return describe(model).data_dim


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(
            f"{name} must be a numpy array or a torch tensor of numbers; got {type(x).__name__}"
        ) from exc
    if arr.dtype.kind not in "biuf":
        raise ModelInputError(
            f"{name} must hold real numbers; got a {type(x).__name__} of dtype {arr.dtype} "
            "(convert it with numpy.asarray(x, dtype=numpy.float32))"
        )
    return torch.from_numpy(arr if arr.flags.c_contiguous else arr.copy())  # (ascontiguousarray makes 0-D 1-D)


def check_x(
    model: Any,
    x: XLike,
    *,
    name: str = "x",
    allow_single: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """x as a finite floating (B, D) tensor on the model's device and dtype (``device``/``dtype`` override them).

    ``allow_single``: a 1-D x is one data point, (D,) -> (1, D) (for the functions documented to take one x).
    Raises ModelInputError naming the shape, the width or the first non-finite entry, and what to pass instead.
    """
    t = _as_tensor(x, name)
    if t.dim() == 1 and allow_single:
        t = t.unsqueeze(0)
    width = data_dim_of(model)
    expected = f"(batch, {width})" if width is not None else "(batch, data_dim)"
    if t.dim() != 2:
        hint = "add a batch axis, x[None], for one x" if t.dim() == 1 else "flatten each x to one row"
        raise ModelInputError(
            f"{name} must be a 2-D array of shape {expected}, one row per data point; got shape "
            f"{tuple(t.shape)}: {hint}"
        )
    if t.shape[0] == 0:
        raise ModelInputError(f"{name} has no rows; pass at least one data point, shape {expected}")
    if width is not None and t.shape[1] != width:
        raise ModelInputError(
            f"{name} has {t.shape[1]} columns but the model's data dimension is {width}: pass {name} of shape "
            f"{expected} (each data point flattened to {width} values)"
        )
    model_dev, model_dt = model_device_dtype(model)
    dev = device if device is not None else model_dev if model_dev is not None else t.device
    dt = dtype if dtype is not None else model_dt
    if dt is None:
        dt = t.dtype if t.dtype.is_floating_point else torch.get_default_dtype()
    t = t.to(device=dev, dtype=dt)
    if not bool(torch.isfinite(t).all()):
        bad = torch.nonzero(~torch.isfinite(t))
        n_bad = int(bad.shape[0])
        r, c = (int(v) for v in bad[0])
        raise ModelInputError(
            f"{name} holds {n_bad} NaN or infinite value{'s' if n_bad != 1 else ''} (the first at row {r}, column "
            f"{c}); remove those rows or replace the values with finite numbers"
        )
    return t


def check_q(model: Any, q: Any, batch: int, *, name: str = "q") -> Distribution:
    """Refuse a q that is not a distribution over z with one member per x: batch shape (B,), event (latent_dim,)."""
    dz = int(model.latent_dim)
    if not isinstance(q, Distribution):
        raise ModelInputError(
            f"{name} must be a torch.distributions.Distribution over z (batch shape ({batch},), event shape ({dz},)); "
            f"got {type(q).__name__}"
        )
    if tuple(q.event_shape) != (dz,):
        hint = (
            " (a Normal over z is Independent(Normal(loc, scale), 1))"
            if tuple(q.event_shape) == () and tuple(q.batch_shape)[-1:] == (dz,)
            else ""
        )
        raise ModelInputError(
            f"{name} has event shape {tuple(q.event_shape)} but z has {dz} dimensions: {name} must be a distribution "
            f"over z with event shape ({dz},){hint}"
        )
    if tuple(q.batch_shape) != (batch,):
        raise ModelInputError(
            f"{name} has batch shape {tuple(q.batch_shape)} but x has {batch} row{'s' if batch != 1 else ''}: {name} "
            f"needs one distribution per x, batch shape ({batch},) (e.g. model.encode(x), or "
            f"{name}.expand(({batch},)) to use one q for every x)"
        )
    return q


def check_gaussian_params(model: Any, mean: Any, scale_tril: Any, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q = N(mean, L L^T) given as tensors: mean (Dz,) or (B, Dz), L (Dz, Dz) or (B, Dz, Dz), Dz = latent_dim (a
    single q is shared by every x). Returns them as (1 or B, Dz) and (1 or B, Dz, Dz) tensors."""
    dz = int(model.latent_dim)
    m = mean if isinstance(mean, torch.Tensor) else _as_tensor(mean, "mean")
    L = scale_tril if isinstance(scale_tril, torch.Tensor) else _as_tensor(scale_tril, "scale_tril")
    if m.dim() not in (1, 2) or m.shape[-1] != dz or (m.dim() == 2 and m.shape[0] not in (1, batch)):
        raise ModelInputError(
            f"q's mean has shape {tuple(m.shape)}; pass ({dz},) for one q or ({batch}, {dz}) for one q per x"
        )
    if L.dim() not in (2, 3) or tuple(L.shape[-2:]) != (dz, dz) or (L.dim() == 3 and L.shape[0] not in (1, batch)):
        raise ModelInputError(
            f"q's scale_tril has shape {tuple(L.shape)}; pass ({dz}, {dz}) for one q or ({batch}, {dz}, {dz}) for "
            "one q per x"
        )
    return m.reshape(-1, dz), L.reshape(-1, dz, dz)
