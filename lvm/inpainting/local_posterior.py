"""The posterior p(z | x_O) of a 2-D latent model seen through a window: the rectangle holding most of its mass on
the coarse inpainting grid, and its density on a fine grid over that rectangle.

On a fine n x n midpoint grid z_g over a rectangle the decoder is evaluated once (tables L_g = l(z_g),
S_g = log sigma(-l(z_g)) and log p(z_g)); each observation (x, m) then costs two matrix-vector products, or fewer
columns of them where it differs from the last in a few pixels (``lvm.inpainting.posterior.ObservedJoint``):

    a_g = log p(x_O, z_g) = L_g . (m * x) + S_g . m + log p(z_g)
    p(z_g | x_O) / max_h p(z_h | x_O) = exp(a_g - max_h a_h)

(relative density: the colour map spans the window). A rectangle is ``(x0, y0, width, height)`` in latent units,
x along z_1 and y along z_2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from lvm.inpainting.posterior import ObservedJoint

if TYPE_CHECKING:
    from lvm.inpainting.posterior import InpaintGrid

Rect = tuple[float, float, float, float]


def mass_box(w: np.ndarray, box: np.ndarray, mass: float = 0.999, min_width: float = 0.5, pad: float = 0.25) -> Rect:
    """The bounding box of the smallest set of cells holding ``mass`` of the cell masses ``w`` (n, n) ([i, j] at
    (z1_i, z2_j) on the midpoint grid over ``box`` (2, 2) = [[lo1, hi1], [lo2, hi2]]), padded by ``pad`` of its size
    on each side and widened about its centre to at least ``min_width`` per axis."""
    w = np.asarray(w, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1] or box.shape != (2, 2):
        raise ValueError(f"w must be (n, n) and box (2, 2); got {w.shape} and {box.shape}")
    n = w.shape[0]
    flat = w.reshape(-1)
    order = np.argsort(flat)[::-1]
    k = min(int(np.searchsorted(np.cumsum(flat[order]), mass * flat.sum())) + 1, flat.size)
    i, j = np.unravel_index(order[:k], w.shape)
    cell = (box[:, 1] - box[:, 0]) / n
    lo = box[:, 0] + np.array([i.min(), j.min()]) * cell
    hi = box[:, 0] + (np.array([i.max(), j.max()]) + 1) * cell
    size = hi - lo
    lo, hi = lo - pad * size, hi + pad * size
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, min_width / 2)
    return (float(centre[0] - half[0]), float(centre[1] - half[1]), float(2 * half[0]), float(2 * half[1]))


def contains(outer: Rect, inner: Rect) -> bool:
    """``inner`` lies inside ``outer`` (edges included)."""
    ox, oy, ow, oh = outer
    ix, iy, iw, ih = inner
    return ox <= ix and oy <= iy and ix + iw <= ox + ow and iy + ih <= oy + oh


def needs_refit(current: Rect | None, new: Rect, shrink: float = 0.35) -> bool:
    """Refit the window when the new mass box leaves the current one or is much smaller on both axes (a narrower
    posterior); small jitter inside the current window keeps it still."""
    if current is None or not contains(current, new):
        return True
    return new[2] < shrink * current[2] and new[3] < shrink * current[3]


class LocalPosteriorGrid:
    """p(z | x_O) on a fine ``n`` x ``n`` midpoint grid over a rectangle (see the module docstring)."""

    def __init__(self, n: int = 48):
        if not 2 <= int(n) <= 1024:
            raise ValueError(f"n must be between 2 and 1024; got {n}")
        self.n = int(n)
        self.rect: Rect | None = None
        self._key: tuple[int, Rect] | None = None
        self._joint: ObservedJoint | None = None

    def points(self, rect: Rect) -> np.ndarray:
        """The n^2 cell midpoints (n^2, 2), [i * n + j] at (z1_i, z2_j)."""
        x0, y0, w, h = rect
        z1 = x0 + (np.arange(self.n) + 0.5) * w / self.n
        z2 = y0 + (np.arange(self.n) + 0.5) * h / self.n
        return np.stack(np.meshgrid(z1, z2, indexing="ij"), -1).reshape(-1, 2)

    @torch.no_grad()
    def set_rect(self, grid: InpaintGrid, rect: Rect) -> None:
        """Decode ``grid.model`` at the midpoints of ``rect`` (once per grid and rectangle)."""
        rect = (float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3]))
        if not (rect[2] > 0 and rect[3] > 0 and all(np.isfinite(rect))):
            raise ValueError(f"the rectangle needs a finite positive width and height; got {rect}")
        key = (id(grid), rect)
        if key == self._key:
            return
        z = torch.as_tensor(self.points(rect), dtype=grid.points.dtype, device=grid.points.device)
        L = grid.model.bernoulli_logits(z).to(grid.joint.logits_t.dtype)
        self._joint = ObservedJoint.from_logits(L, grid.model.log_prior(z).to(L.dtype))
        self._key, self.rect = key, rect

    @torch.no_grad()
    def log_joint(self, grid: InpaintGrid, x: np.ndarray, mask: np.ndarray) -> torch.Tensor:
        """a_g = log p(x_O, z_g) on the fine grid (n^2,)."""
        if self._joint is None:
            raise ValueError("set_rect first: the fine grid has no rectangle yet")
        xt, m = grid.prepare(x, mask)
        return self._joint.one(xt, m).float()

    def density(self, grid: InpaintGrid, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """exp(a - max a) (n, n): the posterior density relative to its largest value in the window."""
        a = self.log_joint(grid, x, mask)
        return torch.exp(a - a.max()).cpu().numpy().reshape(self.n, self.n)
