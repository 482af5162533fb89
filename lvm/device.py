"""Choosing the torch device from the user's ``--device auto|cpu|cuda``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lvm.errors import DeviceUnavailableError, LVMError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is a user error."""
    import torch  # here, not at the top: the CLI parses its arguments (and prints --help) without torch

    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto"
            )
        return torch.device(spec)
    if spec == "cpu":
        return torch.device("cpu")
    raise LVMError(f"unknown device {spec!r}; choose one of {', '.join(DEVICE_CHOICES)}")
