"""A 2-D latent plane of a latent variable model: encodings, decoded grids, the aggregate posterior and the prior.

Notation: prior p(z) = N(0, I); decoder p(x|z); encoder q(z|x_n) = N(mu_n, diag sigma_n^2); aggregate posterior
q(z) = (1/N) sum_n q(z|x_n). Only the first two latent coordinates are drawn; for latent_dim > 2 the others are 0
when decoding and marginalised out in q(z) (a marginal of a diagonal Gaussian is the Gaussian of its coordinates).
The prior's quantile grid uses Phi, the standard normal CDF: u = Phi(z), z = Phi^-1(u).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from lvm.errors import ModelInputError


class Cancellable(Protocol):
    """Anything with ``check()``, which raises to stop a long computation between batches."""

    def check(self) -> None: ...


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def image_shape_of(model: Any) -> tuple[int, int] | None:
    """The model's image shape (h, w) when its outputs are images (h * w == data_dim), else None."""
    shape = getattr(model.config, "image_shape", None)
    if shape is None or shape[0] * shape[1] != model.data_dim:
        return None
    return int(shape[0]), int(shape[1])


@torch.inference_mode()
def encode_dataset(
    model: Any, x: np.ndarray, batch: int = 2048, token: Cancellable | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma), each (N, latent_dim) float32: the parameters of q(z|x_n) = N(mu_n, diag sigma_n^2) for every row
    of ``x``, in batches of ``batch`` rows (``token.check()`` between them)."""
    if batch < 1:
        raise ModelInputError(f"batch must be at least 1, got {batch}")
    device = model_device(model)
    mus, sigmas = [], []
    for i in range(0, x.shape[0], batch):
        if token is not None:
            token.check()
        mu, log_sigma = model.encoder_params(torch.as_tensor(x[i : i + batch], device=device))
        mus.append(mu.float().cpu().numpy())
        sigmas.append(log_sigma.exp().float().cpu().numpy())
    d = int(model.latent_dim)
    return (
        np.concatenate(mus) if mus else np.zeros((0, d), np.float32),
        np.concatenate(sigmas) if sigmas else np.zeros((0, d), np.float32),
    )


def full_latent(z2: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """Plane points (..., 2) padded with zeros to (..., latent_dim): z = (z1, z2, 0, ..., 0)."""
    if latent_dim < 2:
        raise ModelInputError(f"a latent plane needs at least 2 latent dimensions, the model has {latent_dim}")
    if latent_dim == 2:
        return z2
    pad = torch.zeros(*z2.shape[:-1], latent_dim - 2, dtype=z2.dtype, device=z2.device)
    return torch.cat([z2, pad], -1)


def cell_centres(lo: float, hi: float, n: int) -> np.ndarray:
    """The n centres lo + (i + 1/2)(hi - lo)/n of n equal cells tiling [lo, hi]."""
    step = (hi - lo) / n
    return np.asarray(lo + step * (np.arange(n) + 0.5))


def square_cells(
    x_range: tuple[float, float], y_range: tuple[float, float], n: int
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """A grid of square cells (side s, equal in z1 and z2) covering the rectangle x_range x y_range: n cells along its
    longer side, s = max(width, height) / n, and ceil(shorter / s) along the other, centred on the rectangle.

    Returns (centres along z1, centres along z2, (left, bottom, width, height) of the whole grid)."""
    (x0, x1), (y0, y1) = x_range, y_range
    w, h = float(x1) - float(x0), float(y1) - float(y0)
    if n < 1 or not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise ModelInputError(f"square_cells needs n >= 1 and a finite non-empty rectangle; got {x_range}, {y_range}")
    s = max(w, h) / n
    nx = max(1, min(n, math.ceil(w / s - 1e-9)))
    ny = max(1, min(n, math.ceil(h / s - 1e-9)))
    left = (x0 + x1) / 2 - nx * s / 2
    bottom = (y0 + y1) / 2 - ny * s / 2
    return (
        cell_centres(left, left + nx * s, nx),
        cell_centres(bottom, bottom + ny * s, ny),
        (left, bottom, nx * s, ny * s),
    )


def quantile_centres(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, z): u_i = (i + 1/2)/n in (0, 1) and z_i = Phi^-1(u_i), n quantiles of the prior's coordinates."""
    u = (np.arange(n) + 0.5) / n
    z = torch.special.ndtri(torch.as_tensor(u, dtype=torch.float64)).numpy()
    return u, z


def normal_cdf(z: float) -> float:
    """Phi(z) = (1 + erf(z / sqrt 2)) / 2."""
    return 0.5 * (1.0 + math.erf(float(z) / math.sqrt(2.0)))


def inverse_normal_cdf(u: float) -> float:
    """Phi^-1(u), with u clipped to [1e-6, 1 - 1e-6] (so |z| <= 4.75)."""
    u = min(max(float(u), 1e-6), 1 - 1e-6)
    return float(torch.special.ndtri(torch.tensor(u, dtype=torch.float64)))


@torch.inference_mode()
def decode_mosaic(model: Any, zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
    """E[x|z] on the grid z = (zx[i], zy[j]) tiled into one (ny*h, nx*w) float32 image, row index growing with z2.

    Tiles are flipped vertically so they stand upright in a y-up plot; pixel values are clipped to [0, 1].
    """
    shape = image_shape_of(model)
    if shape is None:
        raise ModelInputError("the model's outputs are not images: there is no mosaic to decode")
    h, w = shape
    device = model_device(model)
    gx, gy = np.meshgrid(zx, zy)  # (ny, nx)
    z = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32, device=device)
    x = model.decode_mean(full_latent(z, model.latent_dim)).clamp(0, 1).float().cpu().numpy()
    tiles = x.reshape(len(zy), len(zx), h, w)[:, :, ::-1, :]
    return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3).reshape(len(zy) * h, len(zx) * w))


@torch.inference_mode()
def decode_point(
    model: Any, z2: tuple[float, float], generator: torch.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, sample, variance) of p(x|z) at one plane point z, as (h, w) images when the outputs are images, else
    vectors. Bernoulli: mean p = sigmoid(f(z)), sample 1[u < p] with u ~ U(0, 1), variance p(1 - p); Gaussian: mean
    mu(z), sample mu + sigma * eps with eps ~ N(0, I), variance sigma^2(z). Autoregressive Bernoulli (one sequential
    pass): the sample x, drawn pixel by pixel, with p_i = p(x_i = 1 | x_<i, z) along it as the "mean" and p_i (1 - p_i)
    as the variance. The noise comes from ``generator`` (CPU)."""
    shape = image_shape_of(model)
    device = model_device(model)
    z = full_latent(torch.tensor([z2], dtype=torch.float32, device=device), model.latent_dim)
    if model.config.decoder == "autoregressive":
        gen = generator if generator is None or device.type == "cpu" else None
        x, p = model.sample_autoregressive(z, gen)
        mean, sample, var = p[0], x[0], p[0] * (1 - p[0])
    elif model.config.decoder == "bernoulli":
        p = torch.sigmoid(model.bernoulli_logits(z))[0]
        u = torch.rand(p.shape, generator=generator).to(device)
        mean, sample, var = p, (u < p).float(), p * (1 - p)
    else:
        mean, log_var = model.gaussian_params(z)
        mean, var = mean[0], log_var[0].exp()
        eps = torch.randn(mean.shape, generator=generator).to(device)
        sample = mean + var.sqrt() * eps
    out = [t.float().cpu().numpy() for t in (mean, sample, var)]
    if shape is not None:
        out = [a.reshape(shape) for a in out]
    return out[0], out[1], out[2]


def _normal_pdf_matrix(grid: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> torch.Tensor:
    """(N, G): N(grid_g; mu_n, sigma_n^2)."""
    g = torch.as_tensor(grid, dtype=torch.float32)[None, :]
    m = torch.as_tensor(mu, dtype=torch.float32)[:, None]
    s = torch.as_tensor(sigma, dtype=torch.float32)[:, None].clamp_min(1e-6)
    return torch.exp(-0.5 * ((g - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def aggregate_density(mu: np.ndarray, sigma: np.ndarray, zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
    """q(z) = (1/N) sum_n N(z; mu_n, diag sigma_n^2) on the grid (zy[j], zx[i]) -> (ny, nx), first two coordinates.

    The Gaussians are diagonal, so q(zx_i, zy_j) = (1/N) sum_n a_ni b_nj with a_ni = N(zx_i; mu_n1, sigma_n1^2), b_nj
    likewise: one (ny x N) @ (N x nx) matrix product instead of N * nx * ny exponentials.
    """
    if len(mu) == 0:
        return np.zeros((len(zy), len(zx)), np.float32)
    a = _normal_pdf_matrix(zx, mu[:, 0], sigma[:, 0])
    b = _normal_pdf_matrix(zy, mu[:, 1], sigma[:, 1])
    return np.asarray((b.T @ a / len(mu)).numpy())


def prior_density(zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
    """p(z1, z2) = exp(-(z1^2 + z2^2)/2) / (2 pi), the N(0, I) marginal of the first two coordinates, on the grid
    (zy[j], zx[i]) -> (ny, nx) float32."""
    gx, gy = np.meshgrid(zx, zy)
    return np.asarray((np.exp(-0.5 * (gx**2 + gy**2)) / (2 * np.pi)).astype(np.float32))


def nearest_encoding(mu: np.ndarray, z: tuple[float, float]) -> int | None:
    """The index n minimising |mu_n - z|^2 over the first two coordinates (None when there are no encodings)."""
    if len(mu) == 0:
        return None
    d2 = ((mu[:, :2] - np.asarray(z, np.float32)) ** 2).sum(1)
    return int(np.argmin(d2))
