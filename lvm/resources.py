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


# the bundled VAEs: name -> (file in resources/models, what it is)
BUNDLED_MODELS: dict[str, tuple[str, str]] = {
    "vae2d": ("vae2d.safetensors", "2-D latent VAE (exact log p(x) by quadrature)"),
    "vae10d": ("vae10d.safetensors", "10-D latent VAE (log p(x) by AIS)"),
}


def pretrained_model_path(name: str = "vae2d") -> Path:
    """A bundled VAE checkpoint: ``vae2d`` (the default model, 2-D latent) or ``vae10d`` (10-D latent), in
    ``resources/models/``."""
    return resources_dir() / "models" / BUNDLED_MODELS[name][0]
