"""The Latent lab's computations: pure functions over tensors/arrays (no Qt), run in workers or for one hover.

Notation: prior p(z) = N(0, I); decoder p(x|z); encoder q(z|x_n) = N(mu_n, diag sigma_n^2); aggregate posterior
q(z) = (1/N) sum_n q(z|x_n). Only the first two latent coordinates are drawn; for latent_dim > 2 the others are 0
when decoding and marginalised out in q(z).
"""

from __future__ import annotations

import math

import numpy as np
import torch

LABEL_HEX = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
             "#17becf"]  # tab10: digit k -> LABEL_HEX[k]
LABEL_RGB = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in LABEL_HEX], np.float32) / 255.0
UNLABELLED_RGB = np.array([0.35, 0.35, 0.4], np.float32)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def image_shape_of(model) -> tuple[int, int] | None:
    """The model's image shape when its outputs are images (h * w == data_dim), else None."""
    shape = getattr(model.config, "image_shape", None)
    if shape is None or shape[0] * shape[1] != model.data_dim:
        return None
    return int(shape[0]), int(shape[1])


def label_colours(y: np.ndarray | None, n: int) -> np.ndarray:
    """(n, 3) RGB in [0, 1]: 10 label colours (label mod 10), grey without labels."""
    if y is None:
        return np.broadcast_to(UNLABELLED_RGB, (n, 3)).copy()
    return LABEL_RGB[np.asarray(y, np.int64) % 10]


@torch.inference_mode()
def encode_dataset(model, x: np.ndarray, batch: int = 2048, token=None) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma), each (N, latent_dim) float32: the parameters of q(z|x_n) for every row of ``x``."""
    device = model_device(model)
    mus, sigmas = [], []
    for i in range(0, x.shape[0], batch):
        if token is not None:
            token.check()
        mu, log_sigma = model.encoder_params(torch.as_tensor(x[i:i + batch], device=device))
        mus.append(mu.float().cpu().numpy())
        sigmas.append(log_sigma.exp().float().cpu().numpy())
    d = model.latent_dim
    return (np.concatenate(mus) if mus else np.zeros((0, d), np.float32),
            np.concatenate(sigmas) if sigmas else np.zeros((0, d), np.float32))


def full_latent(z2: torch.Tensor, latent_dim: int) -> torch.Tensor:
    """Pad (..., 2) plane points with zeros to (..., latent_dim)."""
    if latent_dim == 2:
        return z2
    pad = torch.zeros(*z2.shape[:-1], latent_dim - 2, dtype=z2.dtype, device=z2.device)
    return torch.cat([z2, pad], -1)


def cell_centres(lo: float, hi: float, n: int) -> np.ndarray:
    """n centres of n equal cells tiling [lo, hi]."""
    step = (hi - lo) / n
    return lo + step * (np.arange(n) + 0.5)


def quantile_centres(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, z): u_i = (i + 1/2)/n in (0, 1) and z_i = Phi^-1(u_i), the prior's quantiles."""
    u = (np.arange(n) + 0.5) / n
    z = torch.special.ndtri(torch.as_tensor(u, dtype=torch.float64)).numpy()
    return u, z


def inverse_normal_cdf(u: float) -> float:
    u = min(max(float(u), 1e-6), 1 - 1e-6)
    return float(torch.special.ndtri(torch.tensor(u, dtype=torch.float64)))


@torch.inference_mode()
def decode_mosaic(model, zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
    """E[x|z] on the grid z = (zx[i], zy[j]) tiled into one (ny*h, nx*w) float32 image, row index growing with z2.

    Tiles are flipped vertically so they stand upright in a y-up plot; pixel values are clipped to [0, 1].
    """
    shape = image_shape_of(model)
    if shape is None:
        raise ValueError("the model's outputs are not images")
    h, w = shape
    device = model_device(model)
    gx, gy = np.meshgrid(zx, zy)  # (ny, nx)
    z = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32, device=device)
    x = model.decode_mean(full_latent(z, model.latent_dim)).clamp(0, 1).float().cpu().numpy()
    tiles = x.reshape(len(zy), len(zx), h, w)[:, :, ::-1, :]
    return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3).reshape(len(zy) * h, len(zx) * w))


@torch.inference_mode()
def decode_point(model, z2: tuple[float, float], generator: torch.Generator | None = None):
    """(mean, sample, variance) images (h, w) of p(x|z) at one plane point z; variance = p(1-p) or sigma^2."""
    shape = image_shape_of(model)
    device = model_device(model)
    z = full_latent(torch.tensor([z2], dtype=torch.float32, device=device), model.latent_dim)
    if model.config.decoder == "bernoulli":
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
    return tuple(out)


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
    return (b.T @ a / len(mu)).numpy()


def prior_density(zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
    """N(z; 0, I) of the first two coordinates on the grid -> (ny, nx)."""
    gx, gy = np.meshgrid(zx, zy)
    return (np.exp(-0.5 * (gx ** 2 + gy ** 2)) / (2 * np.pi)).astype(np.float32)


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
        blue, red, white = np.array([33, 102, 172.]), np.array([178, 24, 43.]), np.array([247, 247, 247.])
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


def thumbnails_rgba(images: np.ndarray, rgb: np.ndarray, px: np.ndarray, py: np.ndarray, width: int, height: int,
                    size: int) -> np.ndarray:
    """RGBA uint8 (height, width, 4), rows growing with y: each image (h, w) in [0, 1] drawn upright, ``size`` px
    square, centred at pixel (px, py), ink in its colour on a translucent white card."""
    out = np.zeros((height, width, 4), np.uint8)
    if len(images) == 0:
        return out
    h, w = images.shape[1:]
    ri = (np.arange(size) * h // size)
    ci = (np.arange(size) * w // size)
    for img, col, x, y in zip(images, rgb, px, py):
        tile = img[ri][:, ci][::-1]  # resample, flip for a y-up plot
        x0, y0 = int(x) - size // 2, int(y) - size // 2
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + size, width), min(y0 + size, height)
        if xa >= xb or ya >= yb:
            continue
        t = np.clip(tile[ya - y0:yb - y0, xa - x0:xb - x0], 0, 1)[..., None]
        card = 255.0 * (1 - t) + 255.0 * np.asarray(col)[None, None, :] * t
        out[ya:yb, xa:xb, :3] = card.astype(np.uint8)
        out[ya:yb, xa:xb, 3] = 235
    return out


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): a seeded random ``fraction`` held out (at least 1, at most 2000)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    k = int(min(max(1, round(n * fraction)), 2000, max(n - 1, 1)))
    return np.sort(perm[k:]), np.sort(perm[:k])
