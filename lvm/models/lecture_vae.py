"""The lecture's small VAE, an infinite mixture of Gaussians you can hold in your hands.

    z ~ N(0, I_Dz)  (Dz = 1 or 2),    x | z ~ N(mu_theta(z), Sigma_theta(z)),   x in R^2,
    mu_theta(z)    = m_lo + (m_hi - m_lo) * sigmoid(A z + c),
    Sigma_theta(z) = diag exp(v_lo + (v_hi - v_lo) * sigmoid(B z + d)),

with theta = (A (2 x Dz), B (2 x Dz), c (2), d (2)). The output ranges (m_lo, m_hi, v_lo, v_hi) are fixed constants,
not parameters; their defaults (0, 1, 0, 1) give the lecture's model exactly: mu = sigmoid(A z + c) and
Sigma = diag exp(sigmoid(B z + d)). ``OutputRanges.for_data`` stretches them to a data set's bounding box so the same
formula can be fitted to data that does not live in the unit square.

p(x) = int N(x; mu(z), Sigma(z)) N(z; 0, I) dz is a mixture of infinitely many Gaussians, one per z. With a small
latent it is computed by quadrature: p(x) ~= sum_g w_g N(x; mu(z_g), Sigma(z_g)) with Gauss-Hermite nodes/weights
(sum_g w_g = 1, so each quadrature density is itself a normalised finite mixture) or a midpoint grid on [-L, L]^Dz
with w_g = N(z_g; 0, I) * cell volume. Because Sigma is diagonal, on a tensor x-grid the density factorises per node:
N(x; mu_g, Sigma_g) = N(x1; mu_g1, s_g1^2) N(x2; mu_g2, s_g2^2), so the whole (ny, nx) density is one GEMM
E2^T diag(w) E1 with E_k[g, i] = N(grid_k[i]; mu_gk, s_gk^2).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from lvm.errors import ModelInputError
from lvm.models.base import (
    LOG_2PI,
    GaussianDecoderModule,
    diagonal_gaussian_log_likelihood,
    standard_normal_log_prob,
)

DATA_DIM = 2
QUADRATURE_METHODS = ("gauss-hermite", "midpoint")
MAX_GAUSS_HERMITE = 128


@dataclasses.dataclass(frozen=True)
class OutputRanges:
    """mu in (m_lo, m_hi) per axis; log variance in (v_lo, v_hi). Defaults: the lecture's model."""

    m_lo: tuple[float, float] = (0.0, 0.0)
    m_hi: tuple[float, float] = (1.0, 1.0)
    v_lo: float = 0.0
    v_hi: float = 1.0

    @property
    def is_lecture(self) -> bool:
        return self == OutputRanges()

    @classmethod
    def for_data(cls, x: np.ndarray, margin: float = 0.1) -> OutputRanges:
        """Means range over the data's bounding box (widened by ``margin`` of its size); log variances from
        (smallest axis std / 30)^2 to the largest axis variance."""
        x = np.asarray(x, dtype=np.float64)
        lo, hi = x.min(0), x.max(0)
        pad = margin * (hi - lo)
        std = x.std(0)
        return cls(
            tuple((lo - pad).tolist()),
            tuple((hi + pad).tolist()),
            float(2 * np.log(std.min() / 30.0)),
            float(2 * np.log(std.max())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"m_lo": list(self.m_lo), "m_hi": list(self.m_hi), "v_lo": self.v_lo, "v_hi": self.v_hi}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputRanges:
        return cls(_pair(d["m_lo"]), _pair(d["m_hi"]), float(d["v_lo"]), float(d["v_hi"]))


def _pair(values: Any) -> tuple[float, float]:
    """Two floats (one per data axis) from a list."""
    a, b = (float(v) for v in values)
    return a, b


class LectureVAE(nn.Module):
    """The lecture's decoder as a latent model (``lvm.models.base``) with the ``gaussian_params`` fast path."""

    def __init__(
        self,
        latent_dim: int = 1,
        ranges: OutputRanges | None = None,
        theta: Mapping[str, npt.ArrayLike] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if latent_dim not in (1, 2):
            raise ModelInputError(f"the lecture VAE has a 1-D or 2-D latent; got latent_dim={latent_dim}")
        self.latent_dim = int(latent_dim)
        self.data_dim = DATA_DIM
        self.ranges = ranges or OutputRanges()
        self.A = nn.Parameter(torch.zeros(DATA_DIM, latent_dim, dtype=dtype))
        self.B = nn.Parameter(torch.zeros(DATA_DIM, latent_dim, dtype=dtype))
        self.c = nn.Parameter(torch.zeros(DATA_DIM, dtype=dtype))
        self.d = nn.Parameter(torch.zeros(DATA_DIM, dtype=dtype))
        self.set_theta(**(theta or default_theta(latent_dim)))

    # -- theta -----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def set_theta(
        self,
        A: npt.ArrayLike | None = None,
        B: npt.ArrayLike | None = None,
        c: npt.ArrayLike | None = None,
        d: npt.ArrayLike | None = None,
    ) -> None:
        """Set any of A (2 x Dz), B (2 x Dz), c (2), d (2) from arrays/lists; shapes are checked."""
        for name, value, shape in (
            ("A", A, (2, self.latent_dim)),
            ("B", B, (2, self.latent_dim)),
            ("c", c, (2,)),
            ("d", d, (2,)),
        ):
            if value is None:
                continue
            t = torch.as_tensor(np.asarray(value, dtype=np.float64))
            if tuple(t.shape) != shape:
                raise ModelInputError(
                    f"{name} must have shape {shape} for latent_dim={self.latent_dim}; got {tuple(t.shape)}"
                )
            if not torch.isfinite(t).all():
                raise ModelInputError(f"{name} contains NaN or inf")
            getattr(self, name).copy_(t)

    def theta(self) -> dict[str, npt.NDArray[np.float64]]:
        """{'A', 'B', 'c', 'd'} as float64 numpy copies."""
        return {k: getattr(self, k).detach().cpu().double().numpy().copy() for k in ("A", "B", "c", "d")}

    # -- decoder ---------------------------------------------------------------------------------------------------
    def _check_z(self, z: torch.Tensor) -> None:
        if z.shape[-1] != self.latent_dim:
            raise ModelInputError(f"z must end in latent_dim={self.latent_dim}; got shape {tuple(z.shape)}")

    def gaussian_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_theta(z), log diag Sigma_theta(z)), each (..., 2), for z (..., Dz)."""
        self._check_z(z)
        z = z.to(self.A.dtype)
        r = self.ranges
        m_lo = torch.as_tensor(r.m_lo, dtype=z.dtype, device=z.device)
        m_hi = torch.as_tensor(r.m_hi, dtype=z.dtype, device=z.device)
        mean = m_lo + (m_hi - m_lo) * torch.sigmoid(z @ self.A.T + self.c)
        log_var = r.v_lo + (r.v_hi - r.v_lo) * torch.sigmoid(z @ self.B.T + self.d)
        return mean, log_var

    def mean_curve(self, z: torch.Tensor) -> torch.Tensor:
        """z -> mu_theta(z), (..., 2): the curve (1-D z) or sheet (2-D z) of component means in x space."""
        return self.gaussian_params(z)[0]

    # -- latent-model protocol -------------------------------------------------------------------------------------
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I)."""
        return standard_normal_log_prob(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; mu(z), Sigma(z)); x (B, 2), z (..., B, Dz) -> (..., B)."""
        if x.shape[-1] != DATA_DIM:
            raise ModelInputError(f"x must have 2 features; got shape {tuple(x.shape)}")
        mean, log_var = self.gaussian_params(z)
        return diagonal_gaussian_log_likelihood(x.to(mean.dtype), mean, log_var)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z (n, Dz), x (n, 2)): z ~ N(0, I), x ~ N(mu(z), Sigma(z))."""
        dev, dt = self.A.device, self.A.dtype
        z = torch.randn(n, self.latent_dim, generator=generator, device=dev, dtype=dt)
        eps = torch.randn(n, DATA_DIM, generator=generator, device=dev, dtype=dt)
        return z, self.sample_from_noise(z, eps)

    def sample_from_noise(self, z: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x = mu(z) + Sigma(z)^(1/2) eps: with fixed (z, eps) the samples move smoothly with theta."""
        mean, log_var = self.gaussian_params(z)
        return mean + (0.5 * log_var).exp() * eps.to(mean.dtype)


def default_theta(latent_dim: int) -> dict[str, npt.NDArray[np.float64]]:
    """A starting theta whose mean curve bends visibly (1-D) or whose mean sheet folds (2-D)."""
    if latent_dim == 1:
        return {
            "A": np.array([[2.0], [-1.2]]),
            "B": np.array([[1.5], [-1.5]]),
            "c": np.array([0.0, 1.0]),
            "d": np.array([0.0, 0.0]),
        }
    return {
        "A": np.array([[3.0, 0.0], [-1.0, 2.0]]),
        "B": np.array([[1.0, 0.0], [0.0, -1.0]]),
        "c": np.array([0.0, 0.5]),
        "d": np.array([0.0, 0.0]),
    }


# ------------------------------------------------------------------------------------------------ quadrature
def quadrature_nodes(
    latent_dim: int,
    n_z: int,
    method: str = "gauss-hermite",
    limit: float = 5.0,
    shift: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes z_g (n_z^Dz, Dz) and log-weights log w_g with sum_g w_g f(z_g) ~= E_{z~N(0,I)} f(z).

    'gauss-hermite': tensor-product Gauss-Hermite rule (exact for polynomials of degree <= 2 n_z - 1 per axis).
    'midpoint': cell centres of [-limit, limit]^Dz, w_g = N(z_g; 0, I) h^Dz with h = 2 limit / n_z; ``shift``
    (Dz,) in [0, 1) moves every node by shift * h (a randomised midpoint rule, used while fitting so that the
    decoder cannot overfit fixed nodes).
    """
    if latent_dim not in (1, 2):
        raise ModelInputError(f"quadrature needs a 1-D or 2-D latent; got {latent_dim}")
    if n_z < 1:
        raise ModelInputError(f"n_z must be positive; got {n_z}")
    if method == "gauss-hermite":
        if n_z > MAX_GAUSS_HERMITE:
            raise ModelInputError(
                f"at most {MAX_GAUSS_HERMITE} Gauss-Hermite nodes per axis (the weights underflow "
                f"beyond); got {n_z}. Use method='midpoint' for finer rules"
            )
        t, w = np.polynomial.hermite.hermgauss(n_z)
        axis = torch.tensor(t * math.sqrt(2.0), dtype=dtype, device=device)
        logw = torch.tensor(np.log(w / math.sqrt(math.pi)), dtype=dtype, device=device)
        axes, lws = [axis] * latent_dim, [logw] * latent_dim
    elif method == "midpoint":
        h = 2.0 * limit / n_z
        base = -limit + (torch.arange(n_z, dtype=dtype, device=device) + 0.5) * h
        axes = [base + (0.0 if shift is None else float(shift[j]) * h - 0.5 * h) for j in range(latent_dim)]
        lws = [-0.5 * (a**2 + LOG_2PI) + math.log(h) for a in axes]
    else:
        raise ModelInputError(f"method must be one of {QUADRATURE_METHODS}; got {method!r}")
    if latent_dim == 1:
        return axes[0].unsqueeze(-1), lws[0]
    g1, g2 = torch.meshgrid(axes[0], axes[1], indexing="ij")
    w1, w2 = torch.meshgrid(lws[0], lws[1], indexing="ij")
    return torch.stack([g1.reshape(-1), g2.reshape(-1)], -1), (w1 + w2).reshape(-1)


def log_marginal_quadrature(
    model: GaussianDecoderModule,
    x: torch.Tensor,
    n_z: int = 64,
    method: str = "gauss-hermite",
    limit: float = 5.0,
    shift: torch.Tensor | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """log p(x) ~= logsumexp_g [log w_g + log N(x; mu(z_g), Sigma(z_g))], (B,); differentiable in theta.

    Works for any model with ``gaussian_params`` and a 1-D/2-D standard-normal latent (this model, or
    ``lvm.models.vae.VAE`` with a Gaussian decoder). The decoder runs once per node, not once per x.
    """
    p = next(iter(model.parameters()))
    nodes, logw = quadrature_nodes(model.latent_dim, n_z, method, limit, shift, dtype=p.dtype, device=p.device)
    mean, log_var = model.gaussian_params(nodes)  # (G, D)
    x = torch.as_tensor(x).to(device=p.device, dtype=mean.dtype)
    prec = torch.exp(-log_var)
    # log N(x; m_g, v_g) = [x^2, x] @ [-prec/2, m prec]^T + const_g : one GEMM per chunk of x
    T = torch.cat([-0.5 * prec, mean * prec], -1)  # (G, 2D)
    const = (-0.5 * (mean.pow(2) * prec + log_var + LOG_2PI)).sum(-1) + logw
    out = [torch.logsumexp(torch.cat([xb * xb, xb], -1) @ T.T + const, -1) for xb in torch.split(x, chunk)]
    return torch.cat(out)


def lecture_params(
    theta: Mapping[str, npt.ArrayLike], ranges: OutputRanges, z: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """NumPy twin of ``LectureVAE.gaussian_params`` for drawing on the GUI thread: (mean, log_var) (..., 2) for
    z (..., Dz). Tiny element-wise NumPy work avoids waking torch's intra-op thread pool, which stalls for
    milliseconds per op on a loaded CPU."""
    z = np.asarray(z, dtype=np.float64)
    A, B = np.asarray(theta["A"], float), np.asarray(theta["B"], float)
    lin_m = (z[..., None, :] * A).sum(-1) + np.asarray(theta["c"], float)
    lin_v = (z[..., None, :] * B).sum(-1) + np.asarray(theta["d"], float)
    m_lo, m_hi = np.asarray(ranges.m_lo, float), np.asarray(ranges.m_hi, float)
    mean = m_lo + (m_hi - m_lo) / (1.0 + np.exp(-lin_m))
    log_var = ranges.v_lo + (ranges.v_hi - ranges.v_lo) / (1.0 + np.exp(-lin_v))
    return mean, log_var


@functools.lru_cache(maxsize=16)
def _nodes_numpy(
    latent_dim: int, n_z: int, method: str, limit: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Cached read-only NumPy copies of ``quadrature_nodes`` (redraws reuse them)."""
    zt, logwt = quadrature_nodes(latent_dim, n_z, method, limit, dtype=torch.float64)
    z, logw = zt.numpy(), logwt.numpy()
    z.flags.writeable = False
    logw.flags.writeable = False
    return z, logw


def density_on_grid(
    model: GaussianDecoderModule,
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    n_z: int = 32,
    method: str = "gauss-hermite",
    limit: float = 5.0,
) -> npt.NDArray[np.float64]:
    """p(x) on the tensor grid (xs (nx,), ys (ny,)) -> (ny, nx) float64, by quadrature over z.

    p(x) ~= sum_g w_g N(x1; m_g1, v_g1) N(x2; m_g2, v_g2) = (E2^T diag(w) E1)[iy, ix] with E_k[g, i] the 1-D
    normal density of grid_k[i] under component g (one GEMM). Any model with ``gaussian_params`` and a 1-D/2-D
    standard-normal latent works; the lecture VAE is evaluated in NumPy (see ``lecture_params``).
    """
    nodes, logw = _nodes_numpy(int(model.latent_dim), n_z, method, limit)
    if isinstance(model, LectureVAE):
        mean, log_var = lecture_params(model.theta(), model.ranges, nodes)
    else:
        p = next(iter(model.parameters()))
        with torch.no_grad():
            m, v = model.gaussian_params(torch.as_tensor(nodes, dtype=p.dtype, device=p.device))
        mean, log_var = m.double().cpu().numpy(), v.double().cpu().numpy()
    gx = np.asarray(xs, dtype=np.float64)
    gy = np.asarray(ys, dtype=np.float64)

    def axis_table(grid: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:  # (G, n): N(grid; m_gk, v_gk)
        prec = np.exp(-log_var[:, k : k + 1])
        return np.exp(-0.5 * ((grid - mean[:, k : k + 1]) ** 2 * prec + log_var[:, k : k + 1] + LOG_2PI))

    e1, e2 = axis_table(gx, 0), axis_table(gy, 1)
    return e2.T @ (np.exp(logw)[:, None] * e1)
