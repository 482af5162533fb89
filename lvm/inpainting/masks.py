"""Observation masks for inpainting: ``True`` = observed pixel, ``False`` = missing (to be inpainted).

Presets name the *missing* region, as in the lecture ("the top half is missing"):

- ``top`` / ``bottom`` / ``left`` / ``right``: that half of the image is missing (the row or column split at
  ``h // 2`` / ``w // 2``);
- ``random:RATE``: each pixel is missing independently with probability RATE (seeded, ``random`` = ``random:0.5``);
- ``none``: every pixel observed; ``all``: every pixel missing (the posterior is then the prior).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

from lvm.errors import ModelInputError

if TYPE_CHECKING:
    import torch

MASK_PRESETS = ("top", "bottom", "left", "right", "random", "none", "all")

# a mask as the inpainting functions take it: a preset name, or an array / tensor of booleans or 0/1 (1 = observed)
MaskLike: TypeAlias = "str | npt.ArrayLike | torch.Tensor"


def make_mask(spec: str, shape: tuple[int, int] = (28, 28), seed: int = 0) -> np.ndarray:
    """The observed-pixel mask (h*w,) bool for a preset ``spec`` (see the module docstring)."""
    h, w = (int(s) for s in shape)
    name, _, arg = str(spec).strip().lower().partition(":")
    obs = np.ones((h, w), dtype=bool)
    if name == "top":
        obs[: h // 2] = False
    elif name == "bottom":
        obs[h // 2 :] = False
    elif name == "left":
        obs[:, : w // 2] = False
    elif name == "right":
        obs[:, w // 2 :] = False
    elif name == "random":
        try:
            rate = float(arg) if arg else 0.5
        except ValueError:
            raise ModelInputError(
                f"mask {spec!r}: the missing rate after 'random:' must be a number in [0, 1]"
            ) from None
        if not 0.0 <= rate <= 1.0:
            raise ModelInputError(f"mask {spec!r}: the missing rate must lie in [0, 1]")
        obs = np.random.default_rng(seed).random((h, w)) >= rate
    elif name == "none":
        pass
    elif name == "all":
        obs[:] = False
    else:
        raise ModelInputError(
            f"unknown mask {spec!r}; choose one of top, bottom, left, right, random[:RATE], none, all"
        )
    if arg and name != "random":
        raise ModelInputError(f"mask {spec!r}: only 'random' takes an argument")
    return obs.reshape(-1)


def as_mask(mask: MaskLike, dim: int) -> npt.NDArray[np.bool_]:
    """Any mask given as a preset name, or an array of dim booleans / 0-1 values (1 = observed) -> (dim,) bool."""
    if isinstance(mask, str):
        side = int(round(dim**0.5))
        if side * side != dim:
            raise ModelInputError(f"mask presets need square images; data_dim is {dim}. Give the mask as an array")
        return make_mask(mask, (side, side))
    m = np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask).reshape(-1)
    if m.size != dim:
        raise ModelInputError(f"the mask has {m.size} entries; the images have {dim} pixels")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ModelInputError("a mask must hold booleans or 0/1 values (1 = observed)")
        m = m.astype(bool)
    return m
