"""Binarization of grey-level images for Bernoulli models."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (torch is imported on use: the data layer and the CLI's argument parsing load without it)
    import torch

BINARIZATIONS = ("none", "threshold", "dynamic")


def binarize(
    x: torch.Tensor, mode: str = "none", generator: torch.Generator | None = None, threshold: float = 0.5
) -> torch.Tensor:
    """``none``: x; ``threshold``: 1[x > threshold]; ``dynamic``: a fresh Bernoulli(x) sample per call (seeded by
    ``generator``)."""
    if mode == "none":
        return x
    if mode == "threshold":
        return (x > threshold).to(x.dtype)
    if mode == "dynamic":
        import torch

        u = torch.rand(
            x.shape, generator=generator, device="cpu" if generator is None else generator.device, dtype=x.dtype
        )
        return (u.to(x.device) < x).to(x.dtype)
    raise ValueError(f"unknown binarization {mode!r}; choose one of {', '.join(BINARIZATIONS)}")
