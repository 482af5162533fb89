"""The exact posterior p(z|x) of one x on grids, ready to be drawn: 2-D latents (coarse to fine) and 1-D latents.

2-D: the coarse-to-fine scheme of ``lvm.estimators.quadrature`` (the one that ``log_marginal_adaptive``,
``lvm.inpainting`` and the labs share). A ``CoarseGrid`` is built once per model and data set: the integration box
(``choose_box``: the prior's bulk and where the data's posteriors have mass) and the model decoded on a coarse
grid over it. Per x, ``local_posterior`` finds the support on that grid and evaluates a fine grid over it;
``posterior_picture`` turns it into densities p(z|x) = exp(log p(x, z) - log p(x)) on both grids, the highest
posterior density (HPD) levels, the mode and the box's error for this x (``box_error``).

HPD region of mass m: {z : p(z|x) >= t_m} with t_m the largest threshold whose region holds m of the mass; on a
grid of equal cells, the cells sorted by density, summed until m of the total (``hpd_levels``).

1-D: ``one_d_posterior`` on a dense midpoint grid (``LatentGrid``, G cells of width h over [a, b]):
log p(x) = log h + logsumexp_g log p(x, z_g), and ELBO(q) = sum_g h q(z_g) (log p(x, z_g) - log q(z_g)) / sum_g h q(z_g)
for a Gaussian q (normalised on the grid, so a q reaching past [a, b] is not penalised for the cut-off mass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from lvm.estimators.quadrature import LatentGrid, box_error, choose_box, local_posterior, scan_grid
from lvm.gaussian_q import model_device_dtype, model_x

__all__ = [
    "COARSE_SIZE",
    "FINE_SIZE",
    "SUPPORT_THRESHOLD",
    "LEVEL_MASSES",
    "CoarseGrid",
    "PosteriorPicture",
    "posterior_picture",
    "hpd_levels",
    "hpd_extent",
    "upsample_bilinear",
    "OneDPosterior",
    "one_d_posterior",
]

COARSE_SIZE = 128
FINE_SIZE = 48
SUPPORT_THRESHOLD = 16.0  # nats below the best coarse cell still counted as support
LEVEL_MASSES = (0.5, 0.9, 0.99)

FloatArray = NDArray[np.float64]
Extent = tuple[float, float, float, float]  # (z1_lo, z1_hi, z2_lo, z2_hi)


@dataclass(eq=False)
class CoarseGrid:
    """Computed once per model (and data set): the integration ``box`` (2, 2) rows [low, high] and the model decoded
    on a coarse midpoint ``grid`` over it (step 1 of the coarse-to-fine scheme)."""

    model: Any
    box: FloatArray
    grid: LatentGrid
    scan: LatentGrid | None = None  # the wide scan grid (``scan_grid``): the box's error per x

    @classmethod
    @torch.no_grad()
    def build(
        cls, model: Any, data_x: NDArray[Any] | None = None, size: int = COARSE_SIZE, n_box: int = 1000
    ) -> CoarseGrid:
        """The box covers the prior's bulk and where the posteriors of (up to ``n_box`` evenly spaced) points of
        ``data_x`` have mass (``choose_box``); the grid has ``size``^2 cells."""
        dev, dt = model_device_dtype(model)
        xs = None
        if data_x is not None and len(data_x):
            idx = np.linspace(0, len(data_x) - 1, min(n_box, len(data_x))).astype(int)
            xs = torch.as_tensor(np.asarray(data_x)[idx]).to(device=dev, dtype=dt)
        scan = scan_grid(model)
        box = choose_box(model, xs, scan=scan)
        grid = LatentGrid.build(model, size=size, box=box)
        return cls(model=model, box=box.numpy().copy(), grid=grid, scan=scan)

    @property
    def size(self) -> int:
        return self.grid.size

    @property
    def extent(self) -> Extent:
        b = self.box
        return (float(b[0, 0]), float(b[0, 1]), float(b[1, 0]), float(b[1, 1]))


@dataclass(frozen=True)
class PosteriorPicture:
    """p(z|x) for one x: ``density`` (n, n) on the fine local grid ([i, j] at (z1_i, z2_j)) over ``extent``; the
    coarse global grid's ``coarse_density`` over ``coarse_extent``; ``levels``: the density thresholds of the HPD
    regions holding ``level_masses`` of the mass (decreasing); ``log_px`` (fine sum over the fine box + coarse sum
    outside it); ``outside_mass``: the share of p(x) outside the fine box; ``mode``: the fine grid's best point;
    ``log_density``: log p(z|x) on the fine grid (finite where ``density`` underflows to 0); ``box_error``: the
    error of the coarse box, log(1 + M_out / M_box) in nats (``lvm.estimators.quadrature.box_error``)."""

    index: int | None
    log_px: float
    density: FloatArray
    extent: Extent
    coarse_density: FloatArray
    coarse_extent: Extent
    levels: tuple[float, ...]
    level_masses: tuple[float, ...]
    outside_mass: float
    mode: tuple[float, float]
    log_density: FloatArray
    box_error: float = float("nan")

    @property
    def cell_area(self) -> float:
        """The fine grid's cell area h1 h2."""
        lo1, hi1, lo2, hi2 = self.extent
        n1, n2 = self.density.shape
        return float((hi1 - lo1) / n1 * (hi2 - lo2) / n2)

    def points(self) -> tuple[FloatArray, FloatArray]:
        """The fine grid's cell centres: z1 (n1,) and z2 (n2,)."""
        lo1, hi1, lo2, hi2 = self.extent
        n1, n2 = self.density.shape
        return lo1 + (np.arange(n1) + 0.5) * (hi1 - lo1) / n1, lo2 + (np.arange(n2) + 0.5) * (hi2 - lo2) / n2

    def mass_within_ellipse(self, mean: ArrayLike, scale_tril: ArrayLike, n_sigma: float = 2.0) -> float:
        """P_{p(z|x)}[(z - m)^T Sigma^-1 (z - m) <= n_sigma^2], Sigma = L L^T: the posterior mass inside q's
        ``n_sigma`` ellipse (midpoint rule on the fine grid; the mass outside the fine box counts as outside)."""
        z1, z2 = self.points()
        g1, g2 = np.meshgrid(z1, z2, indexing="ij")
        d = np.stack([g1.ravel(), g2.ravel()]) - np.asarray(mean, dtype=np.float64).reshape(2, 1)
        u = np.linalg.solve(np.asarray(scale_tril, dtype=np.float64).reshape(2, 2), d)  # L u = z - m
        inside = (u * u).sum(0) <= n_sigma * n_sigma
        return float(self.density.ravel()[inside].sum() * self.cell_area)


@torch.no_grad()
def posterior_picture(
    coarse: CoarseGrid,
    x: ArrayLike | torch.Tensor,
    index: int | None = None,
    fine: int = FINE_SIZE,
    threshold: float = SUPPORT_THRESHOLD,
    level_masses: tuple[float, ...] = LEVEL_MASSES,
) -> PosteriorPicture:
    """The exact posterior of one x (``local_posterior``: support from the coarse grid, a ``fine``^2 grid over it)
    as densities on both grids, its HPD levels and its mode."""
    xt = model_x(coarse.model, x)[None]
    lp = local_posterior(coarse.grid, xt, size=fine, threshold=threshold)
    berr = box_error(coarse.model, xt, coarse.grid.box, log_px=torch.tensor([lp.log_px]), scan=coarse.scan)
    log_density = lp.log_density.reshape(fine, fine).double().cpu().numpy()
    density = np.exp(log_density)
    lj, n = lp.coarse_log_joint, coarse.grid.size
    coarse_density = torch.exp(lj - torch.logsumexp(lj, 0) - coarse.grid.log_cell).reshape(n, n).cpu().numpy()
    k = int(torch.argmax(lp.log_joint))
    mode = lp.grid.points[k].double().cpu().numpy()
    fb = lp.box
    return PosteriorPicture(
        index=index,
        log_px=lp.log_px,
        density=density,
        extent=(float(fb[0, 0]), float(fb[0, 1]), float(fb[1, 0]), float(fb[1, 1])),
        coarse_density=coarse_density,
        coarse_extent=coarse.extent,
        levels=hpd_levels(density, level_masses),
        level_masses=tuple(level_masses),
        outside_mass=lp.outside_mass,
        mode=(float(mode[0]), float(mode[1])),
        log_density=log_density,
        box_error=float(berr[0]),
    )


def hpd_levels(density: ArrayLike, masses: tuple[float, ...] = LEVEL_MASSES) -> tuple[float, ...]:
    """Density thresholds t_m with sum_{density >= t_m} density = m * total (highest-density regions of equal
    cells), one per mass m in ``masses``."""
    d = np.sort(np.asarray(density, dtype=np.float64).ravel())[::-1]
    c = np.cumsum(d)
    c /= c[-1]
    return tuple(float(d[min(int(np.searchsorted(c, m)), d.size - 1)]) for m in masses)


def hpd_extent(density: ArrayLike, extent: Extent, mass: float = 0.999, pad: float = 0.15) -> Extent:
    """(lo1, hi1, lo2, hi2) bounding the smallest set of cells of ``density`` ([i, j] at (z1_i, z2_j), equal cells
    over ``extent``) that holds ``mass`` of its total, padded by ``pad`` of its size per side; ``extent`` itself when
    the density is empty."""
    d = np.asarray(density, dtype=np.float64)
    total = d.sum()
    if not np.isfinite(total) or total <= 0:
        return extent
    order = np.argsort(d.reshape(-1))[::-1]
    k = int(np.searchsorted(np.cumsum(d.reshape(-1)[order]), mass * total)) + 1
    i, j = np.unravel_index(order[:k], d.shape)
    lo1, hi1, lo2, hi2 = extent
    w1, w2 = (hi1 - lo1) / d.shape[0], (hi2 - lo2) / d.shape[1]
    a1, b1 = lo1 + i.min() * w1, lo1 + (i.max() + 1) * w1
    a2, b2 = lo2 + j.min() * w2, lo2 + (j.max() + 1) * w2
    p1, p2 = pad * (b1 - a1), pad * (b2 - a2)
    return (float(a1 - p1), float(b1 + p1), float(a2 - p2), float(b2 + p2))


def upsample_bilinear(density: ArrayLike, factor: int) -> NDArray[np.float32]:
    """``density`` (n1, n2) resampled bilinearly on a grid ``factor`` times finer per axis, over the same extent
    (cell centres aligned: ``align_corners=False``), float32."""
    d = np.asarray(density, dtype=np.float32)
    if factor <= 1:
        return d
    t = torch.from_numpy(np.ascontiguousarray(d))[None, None]
    out: NDArray[np.float32] = torch.nn.functional.interpolate(
        t, scale_factor=factor, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    return out


@dataclass(frozen=True)
class OneDPosterior:
    """A 1-D latent model's exact posterior for one x on a dense midpoint grid: cell centres ``z`` (G,),
    ``log_joint`` log p(x, z_g) (G,), ``log_px`` = log h + logsumexp_g log_joint."""

    z: FloatArray
    log_joint: FloatArray
    log_px: float

    @property
    def density(self) -> FloatArray:
        """p(z_g|x) = exp(log p(x, z_g) - log p(x))."""
        out: FloatArray = np.exp(self.log_joint - self.log_px)
        return out

    def elbo(self, mu: float, sigma: float) -> float:
        """ELBO(N(mu, sigma^2)) = int q (log p(x, z) - log q) dz by the midpoint rule, q normalised on the grid."""
        z = self.z
        h = float(z[1] - z[0])
        logq = -0.5 * ((z - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
        q = np.exp(logq)
        return float(np.sum(q * (self.log_joint - logq)) * h / max(float(np.sum(q)) * h, 1e-300))

    def kl(self, mu: float, sigma: float) -> float:
        """KL(N(mu, sigma^2) || p(z|x)) = log p(x) - ELBO."""
        return self.log_px - self.elbo(mu, sigma)

    def modes(self, min_relative_height: float = 0.01) -> FloatArray:
        """The posterior's modes on the grid, in increasing z: the interior cells higher than their left neighbour
        and at least as high as their right one (a flat top counts once), at least ``min_relative_height`` times the
        highest density (ripples in the far tails are not modes worth a name)."""
        d = self.log_joint
        inner = np.flatnonzero((d[1:-1] > d[:-2]) & (d[1:-1] >= d[2:])) + 1
        keep = inner[d[inner] >= d.max() + math.log(min_relative_height)]
        out: FloatArray = self.z[keep]
        return out

    def mass_between(self, lo: float, hi: float) -> float:
        """P(lo <= z < hi | x) by the midpoint rule on the grid (the cells whose centres lie in [lo, hi))."""
        z = self.z
        h = float(z[1] - z[0])
        inside = (z >= lo) & (z < hi)
        return float(np.sum(self.density[inside]) * h)


@torch.no_grad()
def one_d_posterior(
    model: Any, x: ArrayLike, z_range: tuple[float, float] = (-10.0, 10.0), n: int = 4001
) -> OneDPosterior:
    """p(z|x) of a 1-D latent model on an ``n``-cell midpoint grid over ``z_range`` (``LatentGrid``)."""
    box = torch.tensor([[float(z_range[0]), float(z_range[1])]], dtype=torch.float64)
    grid = LatentGrid.build(model, size=n, box=box)
    lj = grid.log_joint(torch.as_tensor(np.atleast_1d(np.asarray(x, dtype=np.float64)))[None])[0].double().cpu()
    log_px = float(torch.logsumexp(lj, 0)) + grid.log_cell
    return OneDPosterior(z=grid.points[:, 0].double().cpu().numpy(), log_joint=lj.numpy(), log_px=log_px)
