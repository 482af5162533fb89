"""Categorical colours for mixture components: distinguishable, readable on a white background."""

from __future__ import annotations

import numpy as np

# Tableau 10 followed by its lighter companions (tab20 order): component k gets COLOURS[k % 20].
_HEX = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
]
COLOURS = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in _HEX], dtype=np.float32) / 255.0


def component_colours(k: int) -> np.ndarray:
    """(k, 3) float32 RGB in [0, 1]."""
    return COLOURS[np.arange(k) % len(COLOURS)]


def component_hex(k: int) -> str:
    return _HEX[k % len(_HEX)]


def qcolor(k: int, alpha: int = 255):
    from PySide6.QtGui import QColor

    c = QColor(component_hex(k))
    c.setAlpha(alpha)
    return c
