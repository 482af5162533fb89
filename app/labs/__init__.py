"""The labs, in window order: name -> (title, "module:Class"). A lab not built yet shows a placeholder."""

from __future__ import annotations

import importlib

LABS: dict[str, tuple[str, str]] = {
    "mixture": ("Mixture lab", "app.labs.mixture.view:MixtureLab"),
    "latent": ("Latent lab", "app.labs.latent.view:LatentLab"),
    "inference": ("Inference lab", "app.labs.inference.view:InferenceLab"),
    "inpainting": ("Inpainting lab", "app.labs.inpainting.view:InpaintingLab"),
    "infinite": ("Infinite mixture lab", "app.labs.infinite.view:InfiniteMixtureLab"),
    "discrete": ("Discrete latents lab", "app.labs.discrete.view:DiscreteLab"),
}


def lab_class(name: str):
    """The LabView subclass for ``name`` (a placeholder class while the lab's module does not exist)."""
    from app.widgets.lab_view import PlaceholderLab

    title, target = LABS[name]
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return type(f"Placeholder_{name}", (PlaceholderLab,), {"name": name, "title": title})
    return getattr(module, cls_name)


def explanation(name: str) -> str:
    """The help panel's HTML of lab ``name`` (``app.labs.<name>.explanation``, a module of a string: importing it does
    not import the lab); "" for a lab without one."""
    try:
        module = importlib.import_module(f"app.labs.{name}.explanation")
    except ModuleNotFoundError as exc:
        if exc.name != f"app.labs.{name}.explanation":
            raise
        return ""
    return str(getattr(module, "EXPLANATION", ""))
