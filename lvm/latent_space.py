"""A 2-D latent plane of a latent variable model: encodings, decoded grids, the aggregate posterior and the prior.

Notation: prior p(z) = N(0, I); decoder p(x|z); encoder q(z|x_n) = N(mu_n, diag sigma_n^2); aggregate posterior
q(z) = (1/N) sum_n q(z|x_n). The plot shows a plane of the d-dimensional latent space (``LatentPlane``): the points
z = o + a B with a in R^2, B (2, d) with orthonormal rows; a point z is drawn at its projection a = (z - o) B^T.
By default (and always for d = 2) B picks the first two coordinates and o = 0: the others are 0 when decoding.
For d > 2 the plane is the top-2 principal directions of the encoder means through their mean (``pca_plane``), or
two chosen axes through 0 (``axes_plane``). Densities on the plane are the marginals of a = (z - o) B^T: the prior's
is N(-o B^T, I), each q(z|x_n)'s is N((mu_n - o) B^T, B diag(sigma_n^2) B^T). Decoding uses z = o + a B itself.
The prior's quantile grid uses Phi, the standard normal CDF: u = Phi(z), z = Phi^-1(u).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from lvm.errors import ModelInputError
from lvm.models.capabilities import decoder_mean, describe
from lvm.models.pca import pca_fit
from lvm.threads import single_thread


class Cancellable(Protocol):
    """Anything with ``check()``, which raises to stop a long computation between batches."""

    def check(self) -> None: ...


def model_device(model: Any) -> torch.device:
    """The device of the model's first parameter or buffer (a torch module), else of its first tensor attribute
    (a user's model that is a plain object), else the CPU."""
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    for value in vars(model).values() if hasattr(model, "__dict__") else ():
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def image_shape_of(model: Any) -> tuple[int, int] | None:
    """The model's image shape (h, w) when its outputs are images (``lvm.models.capabilities``), else None."""
    return describe(model).image_shape


@dataclasses.dataclass(frozen=True)
class LatentPlane:
    """The plane z = origin + a basis, a in R^2, of a d-dimensional latent space (basis (2, d), orthonormal rows).

    ``kind`` is "axes" (basis rows are coordinate axes ``axes``, 0-based; origin 0) or "pca" (the top-2 principal
    directions of the encoder means, through their mean)."""

    origin: np.ndarray  # (d,)
    basis: np.ndarray  # (2, d)
    kind: str = "axes"
    axes: tuple[int, int] | None = (0, 1)

    @property
    def latent_dim(self) -> int:
        return int(self.basis.shape[1])

    @property
    def prior_centre(self) -> tuple[float, float]:
        """The mean -o B^T of the prior's marginal N(-o B^T, I) on the plane."""
        c = -self.basis @ self.origin
        return float(c[0]), float(c[1])

    def project(self, z: np.ndarray) -> np.ndarray:
        """a = (z - o) B^T for z (..., d) -> (..., 2) float32."""
        return np.asarray((np.asarray(z, np.float64) - self.origin) @ self.basis.T, np.float32)

    def project_cov(self, sigma: np.ndarray) -> np.ndarray:
        """B diag(sigma^2) B^T for sigma (..., d) -> (..., 2, 2): the plane marginal's covariance of N(mu, diag
        sigma^2)."""
        var = np.asarray(sigma, np.float64) ** 2
        return np.asarray(np.einsum("id,...d,jd->...ij", self.basis, var, self.basis))

    def to_latent(self, a: torch.Tensor) -> torch.Tensor:
        """z = o + a B for plane points a (..., 2) -> (..., d) (the dtype and device of ``a``)."""
        basis = torch.as_tensor(self.basis, dtype=a.dtype, device=a.device)
        origin = torch.as_tensor(self.origin, dtype=a.dtype, device=a.device)
        return origin + a @ basis

    def axis_labels(self) -> tuple[str, str]:
        """What the plot's horizontal and vertical axes measure, in words."""
        if self.kind == "pca":
            return "a₁: PCA direction 1 of μ", "a₂: PCA direction 2 of μ"
        i, j = self.axes or (0, 1)
        return f"z{_subscript(i + 1)}", f"z{_subscript(j + 1)}"

    def description(self) -> str:
        """The plane in one line (empty for the whole 2-D latent space)."""
        d = self.latent_dim
        if d == 2 and self.kind == "axes" and self.axes == (0, 1):
            return ""
        if self.kind == "pca":
            return f"{d}-D latent: the plane of μ's top-2 principal directions, through their mean"
        i, j = self.axes or (0, 1)
        return f"{d}-D latent: the plane of z{_subscript(i + 1)}, z{_subscript(j + 1)} (other coordinates 0)"


def _subscript(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def axes_plane(latent_dim: int, i: int = 0, j: int = 1) -> LatentPlane:
    """The plane of coordinates i and j (0-based, distinct) through z = 0: z_i = a_1, z_j = a_2, the others 0."""
    if latent_dim < 2:
        raise ModelInputError(f"a latent plane needs at least 2 latent dimensions, the model has {latent_dim}")
    if not (0 <= i < latent_dim and 0 <= j < latent_dim) or i == j:
        raise ModelInputError(f"choose two different axes from 1 to {latent_dim}; got {i + 1} and {j + 1}")
    basis = np.zeros((2, latent_dim))
    basis[0, i] = basis[1, j] = 1.0
    return LatentPlane(np.zeros(latent_dim), basis, "axes", (i, j))


def pca_plane(mu: np.ndarray) -> LatentPlane:
    """The plane through the mean of the encoder means mu (N, d) spanned by their top-2 principal directions
    (``lvm.models.pca.pca_fit``; N >= 2)."""
    mu = np.asarray(mu, np.float64)
    if mu.ndim != 2 or mu.shape[1] < 2 or len(mu) < 2:
        raise ModelInputError(f"a PCA plane needs at least 2 encodings of at least 2 dimensions, got {mu.shape}")
    mean, comps = pca_fit(torch.as_tensor(mu), 2)
    return LatentPlane(mean.numpy(), comps.numpy(), "pca", None)


@torch.inference_mode()
def encode_dataset(
    model: Any, x: np.ndarray, batch: int = 2048, token: Cancellable | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma), each (N, latent_dim) float32: the parameters of q(z|x_n) = N(mu_n, diag sigma_n^2) for every row
    of ``x``, in batches of ``batch`` rows (``token.check()`` between them). A model without ``encoder_params`` gives
    its ``encode(x)``'s mean and per-coordinate standard deviation (the marginals of any q); ModelInputError for a
    model without an encoder."""
    if batch < 1:
        raise ModelInputError(f"batch must be at least 1, got {batch}")
    missing = describe(model).missing("encoder")
    if missing:
        raise ModelInputError(missing)
    device = model_device(model)
    fast = callable(getattr(model, "encoder_params", None))
    mus, sigmas = [], []
    for i in range(0, x.shape[0], batch):
        if token is not None:
            token.check()
        xb = torch.as_tensor(x[i : i + batch], device=device)
        if fast:
            mu, log_sigma = model.encoder_params(xb)
            sigma = log_sigma.exp()
        else:
            q = model.encode(xb)
            mu, sigma = q.mean, q.stddev
        mus.append(mu.float().cpu().numpy())
        sigmas.append(sigma.float().cpu().numpy())
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


def plane_latent(model: Any, a: torch.Tensor, plane: LatentPlane | None = None) -> torch.Tensor:
    """The latent points z (..., latent_dim) of plane points a (..., 2): ``plane.to_latent(a)``, or without a plane
    (z1, z2, 0, ..., 0)."""
    if plane is None:
        return full_latent(a, int(model.latent_dim))
    if plane.latent_dim != int(model.latent_dim):
        raise ModelInputError(
            f"the plane is in {plane.latent_dim} dimensions, the model's latent space in {model.latent_dim}"
        )
    return plane.to_latent(a)


@torch.inference_mode()
def decode_mosaic(model: Any, zx: np.ndarray, zy: np.ndarray, plane: LatentPlane | None = None) -> np.ndarray:
    """E[x|z] on the grid of plane points a = (zx[i], zy[j]), z = ``plane.to_latent(a)`` (default: (a, 0, ..., 0)),
    tiled into one (ny*h, nx*w) float32 image, row index growing with a2.

    Tiles are flipped vertically so they stand upright in a y-up plot; pixel values are clipped to [0, 1].
    """
    caps = describe(model)
    problem = caps.missing("image") or caps.missing("decoder-mean")
    if problem:
        raise ModelInputError(problem)
    assert caps.image_shape is not None
    h, w = caps.image_shape
    device = model_device(model)
    gx, gy = np.meshgrid(zx, zy)  # (ny, nx)
    a = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32, device=device)
    x = decoder_mean(model, plane_latent(model, a, plane)).clamp(0, 1).float().cpu().numpy()
    tiles = x.reshape(len(zy), len(zx), h, w)[:, :, ::-1, :]
    return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3).reshape(len(zy) * h, len(zx) * w))


@torch.inference_mode()
@single_thread()  # (one point, on the GUI thread: OpenMP's fork/join beside a busy worker costs more than the work)
def decode_point(
    model: Any, z2: tuple[float, float], generator: torch.Generator | None = None, plane: LatentPlane | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(mean, sample, variance) of p(x|z) at one plane point a = z2 (z = ``plane.to_latent(a)``, default (a, 0, ...)),
    as (h, w) images when the outputs are images, else vectors. Bernoulli: mean p = sigmoid(f(z)), sample 1[u < p]
    with u ~ U(0, 1), variance p(1 - p); Gaussian: mean mu(z), sample mu + sigma * eps with eps ~ N(0, I), variance
    sigma^2(z). Autoregressive Bernoulli (one sequential pass): the sample x, drawn pixel by pixel, with
    p_i = p(x_i = 1 | x_<i, z) along it as the "mean" and p_i (1 - p_i) as the variance. A model with only
    ``decode_mean`` gives its mean, and None for the sample and the variance (its p(x|z) is known only through
    log_likelihood). The noise comes from ``generator`` (CPU)."""
    caps = describe(model)
    if caps.missing("decoder-mean"):
        raise ModelInputError(caps.missing("decoder-mean") or "")
    shape = caps.image_shape
    device = model_device(model)
    z = plane_latent(model, torch.tensor([z2], dtype=torch.float32, device=device), plane)
    sample: torch.Tensor | None
    var: torch.Tensor | None
    if caps.decoder == "autoregressive" and callable(getattr(model, "sample_autoregressive", None)):
        gen = generator if generator is None or device.type == "cpu" else None
        x, p = model.sample_autoregressive(z, gen)
        mean, sample, var = p[0], x[0], p[0] * (1 - p[0])
    elif caps.decoder == "bernoulli":
        p = torch.sigmoid(model.bernoulli_logits(z))[0]
        u = torch.rand(p.shape, generator=generator).to(device)
        mean, sample, var = p, (u < p).to(p.dtype), p * (1 - p)
    elif caps.decoder == "gaussian":
        mean, log_var = model.gaussian_params(z)
        mean, var = mean[0], log_var[0].exp()
        eps = torch.randn(mean.shape, generator=generator).to(device=device, dtype=mean.dtype)
        sample = mean + var.sqrt() * eps
    else:
        mean, sample, var = decoder_mean(model, z)[0], None, None

    def out(t: torch.Tensor | None) -> np.ndarray | None:
        if t is None:
            return None
        a = t.float().cpu().numpy()
        return a.reshape(shape) if shape is not None else a

    mean_out = out(mean)
    assert mean_out is not None
    return mean_out, out(sample), out(var)


def _normal_pdf_matrix(grid: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> torch.Tensor:
    """(N, G): N(grid_g; mu_n, sigma_n^2)."""
    g = torch.as_tensor(grid, dtype=torch.float32)[None, :]
    m = torch.as_tensor(mu, dtype=torch.float32)[:, None]
    s = torch.as_tensor(sigma, dtype=torch.float32)[:, None].clamp_min(1e-6)
    return torch.exp(-0.5 * ((g - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def aggregate_density(
    mu: np.ndarray, sigma: np.ndarray, zx: np.ndarray, zy: np.ndarray, plane: LatentPlane | None = None
) -> np.ndarray:
    """q(a) = (1/N) sum_n N(a; m_n, S_n) on the grid a = (zx[i], zy[j]) -> (ny, nx): the marginal of the aggregate
    posterior on the plane, m_n = (mu_n - o) B^T, S_n = B diag(sigma_n^2) B^T (default: the first two coordinates).

    On an axes plane the S_n are diagonal, so q(zx_i, zy_j) = (1/N) sum_n a_ni b_nj with a_ni = N(zx_i; m_n1, S_n11),
    b_nj likewise: one (ny x N) @ (N x nx) matrix product instead of N * nx * ny exponentials. Any other plane sums
    the full bivariate Gaussians, in chunks of points.
    """
    if len(mu) == 0:
        return np.zeros((len(zy), len(zx)), np.float32)
    if plane is None or plane.kind == "axes":
        i, j = (0, 1) if plane is None else (plane.axes or (0, 1))
        m = mu[:, [i, j]] if plane is None else plane.project(mu)
        a = _normal_pdf_matrix(zx, m[:, 0], sigma[:, i])
        b = _normal_pdf_matrix(zy, m[:, 1], sigma[:, j])
        return np.asarray((b.T @ a / len(mu)).numpy())
    m_t = torch.as_tensor(plane.project(mu), dtype=torch.float64)
    cov = torch.as_tensor(plane.project_cov(sigma), dtype=torch.float64) + 1e-12 * torch.eye(2, dtype=torch.float64)
    prec, det = torch.linalg.inv(cov), torch.linalg.det(cov)
    gx, gy = np.meshgrid(zx, zy)
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float64)  # (G, 2)
    total = torch.zeros(len(grid), dtype=torch.float64)
    chunk = max(1, 2_000_000 // max(len(grid), 1))
    for k in range(0, len(m_t), chunk):
        diff = grid[None, :, :] - m_t[k : k + chunk, None, :]  # (n, G, 2)
        maha = torch.einsum("ngi,nij,ngj->ng", diff, prec[k : k + chunk], diff)
        total += (torch.exp(-0.5 * maha) / (2 * math.pi * det[k : k + chunk].sqrt()[:, None])).sum(0)
    return np.asarray((total / len(m_t)).reshape(len(zy), len(zx)).float().numpy())


def prior_density(zx: np.ndarray, zy: np.ndarray, centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The prior's marginal on the plane, N(a; c, I) = exp(-|a - c|^2/2) / (2 pi) with c = ``centre`` (the plane's
    ``prior_centre``; 0 for the first two coordinates), on the grid (zy[j], zx[i]) -> (ny, nx) float32."""
    gx, gy = np.meshgrid(np.asarray(zx) - centre[0], np.asarray(zy) - centre[1])
    return np.asarray((np.exp(-0.5 * (gx**2 + gy**2)) / (2 * np.pi)).astype(np.float32))


def nearest_encoding(mu: np.ndarray, z: tuple[float, float]) -> int | None:
    """The index n minimising |mu_n - z|^2 over the first two coordinates (None when there are no encodings)."""
    if len(mu) == 0:
        return None
    d2 = ((mu[:, :2] - np.asarray(z, np.float32)) ** 2).sum(1)
    return int(np.argmin(d2))
