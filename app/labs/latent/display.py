"""The Latent lab's display glue, Qt-free: label colours, the background image of the aggregate posterior against
the prior, and thumbnails of the data drawn at their encodings (RGBA arrays for ``pyqtgraph.ImageItem``). The
mathematics (encodings, densities, decoded grids) is in ``lvm.latent_space``.
"""

from __future__ import annotations

import numpy as np

from app.widgets.palette import component_colours, component_hex

UNLABELLED_RGB = np.array([0.35, 0.35, 0.4], np.float32)


def label_hex() -> list[str]:
    """Digit k's colour (the user's palette, ``app.widgets.palette``) as '#rrggbb', k = 0..9."""
    return [component_hex(k) for k in range(10)]


def label_rgb() -> np.ndarray:
    """(10, 3) RGB in [0, 1] of digits 0..9 in the user's palette."""
    return component_colours(10)


def label_colours(y: np.ndarray | None, n: int) -> np.ndarray:
    """(n, 3) RGB in [0, 1]: 10 label colours (label mod 10), grey without labels."""
    if y is None:
        return np.broadcast_to(UNLABELLED_RGB, (n, 3)).copy()
    return label_rgb()[np.asarray(y, np.int64) % 10]


def density_rgba(q: np.ndarray, p: np.ndarray, mode: str) -> np.ndarray:
    """RGBA uint8 (ny, nx, 4) background image.

    ``aggregate``: q(z) as a purple density (alpha grows with q). ``ratio``: log q(z) - log p(z) on a diverging map,
    blue where q < p (holes: the prior puts mass where no data is encoded), red where q > p; transparent where both
    densities are negligible.
    """
    out = np.zeros((*q.shape, 4), np.uint8)
    if mode == "aggregate":
        top = max(float(q.max()), 1e-12)
        a = np.sqrt(np.clip(q / top, 0, 1))
        out[..., 0], out[..., 1], out[..., 2] = 84, 39, 143
        out[..., 3] = (a * 200).astype(np.uint8)
    elif mode == "ratio":
        r = np.clip((np.log(q + 1e-12) - np.log(p + 1e-12)) / 2.0, -1, 1)  # +-2 nats -> full colour
        blue, red, white = np.array([33, 102, 172.0]), np.array([178, 24, 43.0]), np.array([247, 247, 247.0])
        t = np.abs(r)[..., None]
        rgb = np.where(r[..., None] < 0, white * (1 - t) + blue * t, white * (1 - t) + red * t)
        out[..., :3] = rgb.astype(np.uint8)
        mass = np.maximum(q, p) / max(float(np.maximum(q, p).max()), 1e-12)
        out[..., 3] = (np.clip(mass * 10, 0, 1) * 225).astype(np.uint8)
    return out


def pick_thumbnails(px: np.ndarray, py: np.ndarray, width: int, height: int, cell: int, cap: int) -> np.ndarray:
    """Indices of points to draw as thumbnails: on screen, at most one per ``cell``-pixel square, at most ``cap``."""
    inside = np.flatnonzero((px >= 0) & (px < width) & (py >= 0) & (py < height))
    if inside.size == 0:
        return inside
    cx = (px[inside] // cell).astype(np.int64)
    cy = (py[inside] // cell).astype(np.int64)
    _, first = np.unique(cx * 100003 + cy, return_index=True)
    return inside[np.sort(first)][:cap]


def thumbnails_rgba(
    images: np.ndarray, rgb: np.ndarray, px: np.ndarray, py: np.ndarray, width: int, height: int, size: int
) -> np.ndarray:
    """RGBA uint8 (height, width, 4), rows growing with y: each image (h, w) in [0, 1] drawn upright, ``size`` px
    square, centred at pixel (px, py), ink in its colour on a translucent white card."""
    out = np.zeros((height, width, 4), np.uint8)
    if len(images) == 0:
        return out
    h, w = images.shape[1:]
    ri = np.arange(size) * h // size
    ci = np.arange(size) * w // size
    for img, col, x, y in zip(images, rgb, px, py, strict=False):
        tile = img[ri][:, ci][::-1]  # resample, flip for a y-up plot
        x0, y0 = int(x) - size // 2, int(y) - size // 2
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + size, width), min(y0 + size, height)
        if xa >= xb or ya >= yb:
            continue
        t = np.clip(tile[ya - y0 : yb - y0, xa - x0 : xb - x0], 0, 1)[..., None]
        card = 255.0 * (1 - t) + 255.0 * np.asarray(col)[None, None, :] * t
        out[ya:yb, xa:xb, :3] = card.astype(np.uint8)
        out[ya:yb, xa:xb, 3] = 235
    return out
