"""Where the bundled data, pretrained weights and icons live: the one place that resolves ``resources/``.

- from a checkout or an installed wheel: the ``resources`` package next to ``lvm`` (``<site-packages>/resources``);
- inside a PyInstaller bundle: ``sys._MEIPASS/resources`` (the spec in ``packaging/`` copies it there).
"""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources`` folder (it may lack ``models/`` when no pretrained weights were shipped)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def pretrained_model_path() -> Path:
    """The bundled 2-D VAE checkpoint (``resources/models/vae2d.safetensors``)."""
    return resources_dir() / "models" / "vae2d.safetensors"
