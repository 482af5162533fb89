"""A model trained in the app and not saved is never lost when the app closes.

Closing the window while training, or with a trained model that was never saved, keeps that model in a recovery file
next to the settings file (an atomic safetensors write); at the next start the app offers to open it (Open, Discard,
or Later, which keeps offering). Closing never waits on a question, so Ctrl+Q always quits.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.core.settings import app_settings

log = logging.getLogger(__name__)

RECOVERY_NAME = "unsaved-model.safetensors"


def recovery_file() -> Path:
    """Where an unsaved model is kept: beside the settings file (``LVM_EXPLORER_SETTINGS`` moves both)."""
    return Path(app_settings().fileName()).parent / "lvm-explorer-recovery" / RECOVERY_NAME


def is_unsaved_training_result(model, path: str | None, info: dict) -> bool:
    """True for a model trained in the app that was never saved to a file (``trained_in`` is set by the labs)."""
    return model is not None and path is None and bool(info.get("trained_in"))


def keep_model(model, info: dict) -> Path | None:
    """Write ``model`` to the recovery file; None (logged) when it cannot be written (the app is closing)."""
    from lvm.checkpoint import save_model
    from lvm.errors import LVMError

    target = recovery_file()
    try:
        save_model(model, target, info)
    except (OSError, LVMError) as exc:
        log.error("could not keep the unsaved model in %s: %s", target, exc)
        return None
    return target


def describe(info: dict) -> str:
    """A one-line description of a kept model from its checkpoint info."""
    parts = []
    if info.get("epochs_completed") is not None:
        parts.append(f"{info['epochs_completed']} epochs")
    if info.get("dataset"):
        parts.append(f"on {info['dataset']}")
    if isinstance(info.get("valid_elbo"), (int, float)):
        parts.append(f"validation ELBO {info['valid_elbo']:.1f} nats")
    return ", ".join(parts) or "trained in the app"
