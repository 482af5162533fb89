"""The Inpainting lab's pictures as RGB arrays, Qt-free: the drawing with the missing region tinted by a fill,
tiles of completions, and phi over the missing pixels."""

from __future__ import annotations

import numpy as np

MISSING_TINT = np.array([255.0, 170.0, 60.0])  # orange: p = 1 in the missing region
MISSING_DARK = np.array([25.0, 35.0, 70.0])  # dark blue: p = 0


def composite_rgb(x: np.ndarray, mask: np.ndarray, fill: np.ndarray, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """(h, w, 3) uint8: observed pixels in grey, missing pixels showing ``fill`` in orange on dark blue; ``fill``
    (..., h * w) gives (..., h, w, 3), one picture per row."""
    xs = np.asarray(x, dtype=np.float32).reshape(shape)
    m = np.asarray(mask, dtype=bool).reshape(shape)
    fill = np.asarray(fill, dtype=np.float32)
    f = np.clip(fill.reshape(*fill.shape[:-1], *shape), 0, 1)[..., None]
    grey = np.repeat((np.clip(xs, 0, 1) * 255)[..., None], 3, -1).astype(np.float32)
    miss = MISSING_DARK.astype(np.float32) + f * (MISSING_TINT - MISSING_DARK).astype(np.float32)
    return np.where(m[..., None], grey, miss).astype(np.uint8)


def tile_rgb(
    images: list[np.ndarray] | np.ndarray, cols: int, gap: int = 1, background: tuple[int, int, int] = (90, 90, 90)
) -> np.ndarray:
    """Tiles of equal-size (h, w, 3) images (a list, or an (n, h, w, 3) array) in a grid with ``gap``-pixel
    separators."""
    h, w, _ = images[0].shape
    rows = (len(images) + cols - 1) // cols
    out = np.empty((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), dtype=np.uint8)
    out[:] = background
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = im
    return out


def phi_rgb(x: np.ndarray, mask: np.ndarray, phi: np.ndarray | None, lut: np.ndarray) -> np.ndarray:
    """(28, 28, 3) uint8: phi through the colour table ``lut`` (256, >= 3) on the missing pixels, the observed
    ink in grey (60..180) elsewhere; no phi shows as phi = 0."""
    miss = ~np.asarray(mask, bool).reshape(28, 28)
    values = np.zeros((28, 28)) if phi is None else np.asarray(phi, dtype=np.float64).reshape(28, 28)
    rgb = np.asarray(lut)[np.clip((np.where(miss, values, 0.0) * 255).astype(int), 0, 255)][..., :3].astype(np.uint8)
    grey = (np.clip(np.asarray(x).reshape(28, 28), 0, 1) * 120 + 60).astype(np.uint8)
    rgb[~miss] = np.stack([grey] * 3, -1)[~miss]
    return rgb
