"""A 2-D slice through a d-dimensional posterior, and a d-dimensional Gaussian q edited in it.

For a latent space of more than two dimensions the posterior p(z|x) can be neither drawn nor integrated on a grid.
What can be drawn honestly:

- a plane z(a) = c + U a, a in R^2, with U (d, 2) orthonormal: through c = the best Gaussian q* = N(m*, S*)'s
  mean, spanned by the top two principal axes of S* (where the posterior is widest) or by two coordinate axes;
- the joint log p(x, z(a)) on a grid over the plane: an unnormalised *slice* of the posterior (not its marginal);
- a q = N(m, S) in d dimensions whose in-plane part is edited in the plane. With Q = [U W] an orthonormal basis of
  R^d (W spans the rest), the plane's Gaussian N(a_q, T T^T) gives

      m = c + U a_q + W W^T (m* - c),        S = Q blockdiag(T T^T, W^T S* W) Q^T,

  so out of the plane q keeps what q* found, and the plane's Gaussian is exactly q's marginal in plane coordinates
  (``plane_marginal``).
- ELBO(q) = E_q[log p(x, z) - log q(z)] over fixed draws z_s = m + L eps_s (``CommonRandomELBO``: the same eps for
  every q, so the readout moves smoothly while q is dragged; log q(z_s) = log N(eps_s; 0, I) - log |det L|, so the
  estimate has no variance at all when q is the posterior). With log p(x) from AIS,
  KL(q || p(z|x)) = log p(x) - ELBO(q).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch.distributions import MultivariateNormal

from lvm.errors import ModelInputError
from lvm.gaussian_q import model_device_dtype, model_x
from lvm.models.capabilities import describe

FloatArray = NDArray[np.float64]
ArrayLikeFloat = Any  # numpy-convertible floats


@dataclass(frozen=True)
class SlicePlane:
    """The plane z(a) = origin + basis a; ``complement`` (d, d - 2) completes ``basis`` (d, 2) to an orthonormal
    basis of R^d. ``axes``: the coordinate axes it is spanned by (None: principal axes); ``label`` names them."""

    origin: FloatArray
    basis: FloatArray
    complement: FloatArray
    label: tuple[str, str]
    axes: tuple[int, int] | None = None

    @property
    def dim(self) -> int:
        return int(self.origin.shape[0])

    def points(self, a: ArrayLikeFloat) -> FloatArray:
        """z = origin + basis a for a (..., 2) -> (..., d)."""
        out: FloatArray = self.origin + np.asarray(a, dtype=np.float64) @ self.basis.T
        return out

    def coordinates(self, z: ArrayLikeFloat) -> FloatArray:
        """a = basis^T (z - origin) for z (..., d) -> (..., 2): the orthogonal projection onto the plane."""
        out: FloatArray = (np.asarray(z, dtype=np.float64) - self.origin) @ self.basis
        return out


def _complete(basis: FloatArray) -> FloatArray:
    """An orthonormal basis (d, d - 2) of the orthogonal complement of the columns of ``basis`` (d, 2)."""
    d = basis.shape[0]
    q, _ = np.linalg.qr(np.concatenate([basis, np.eye(d)], axis=1))
    comp: FloatArray = q[:, 2:d]
    return comp


def principal_plane(mean: ArrayLikeFloat, cov: ArrayLikeFloat) -> SlicePlane:
    """The plane through ``mean`` spanned by the two leading eigenvectors of ``cov`` (d >= 2)."""
    m = np.asarray(mean, dtype=np.float64).reshape(-1)
    c = np.asarray(cov, dtype=np.float64)
    if m.shape[0] < 2 or c.shape != (m.shape[0], m.shape[0]):
        raise ModelInputError(f"a plane needs a mean (d,) with d >= 2 and a (d, d) covariance; got {c.shape}")
    vals, vecs = np.linalg.eigh(0.5 * (c + c.T))
    basis = vecs[:, np.argsort(vals)[::-1][:2]]
    basis = basis * np.where(basis.sum(0) < 0, -1.0, 1.0)  # a deterministic sign
    q, _ = np.linalg.qr(basis)
    basis = q * np.sign(np.sum(q * basis, axis=0))
    return SlicePlane(m, basis, _complete(basis), ("principal axis 1", "principal axis 2"))


def axis_plane(mean: ArrayLikeFloat, i: int, j: int) -> SlicePlane:
    """The plane through ``mean`` spanned by coordinate axes z_i and z_j (0-based, i != j)."""
    m = np.asarray(mean, dtype=np.float64).reshape(-1)
    d = m.shape[0]
    if not (0 <= i < d and 0 <= j < d) or i == j:
        raise ModelInputError(f"choose two different axes between 1 and {d}; got {i + 1} and {j + 1}")
    basis = np.zeros((d, 2))
    basis[i, 0] = basis[j, 1] = 1.0
    return SlicePlane(m, basis, _complete(basis), (f"z{i + 1}", f"z{j + 1}"), axes=(i, j))


def plane_marginal(
    plane: SlicePlane, mean: ArrayLikeFloat, scale_tril: ArrayLikeFloat
) -> tuple[FloatArray, FloatArray]:
    """q's marginal in plane coordinates: a = U^T (z - c) ~ N(U^T (m - c), cholesky(U^T S U)), as (mean (2,),
    scale_tril (2, 2))."""
    L = np.asarray(scale_tril, dtype=np.float64)
    cov = plane.basis.T @ (L @ L.T) @ plane.basis
    tril: FloatArray = np.asarray(np.linalg.cholesky(0.5 * (cov + cov.T)), dtype=np.float64)
    return plane.coordinates(mean), tril


def compose_q(
    plane: SlicePlane,
    plane_mean: ArrayLikeFloat,
    plane_tril: ArrayLikeFloat,
    rest_mean: ArrayLikeFloat,
    rest_tril: ArrayLikeFloat,
) -> tuple[FloatArray, FloatArray]:
    """The d-dimensional q = (mean (d,), scale_tril (d, d)) whose plane marginal is N(plane_mean, T T^T) and which
    keeps N(rest_mean, rest_tril rest_tril^T)'s part out of the plane: m = c + U a_q + W W^T (m_r - c),
    S = Q blockdiag(T T^T, W^T S_r W) Q^T."""
    U, W = plane.basis, plane.complement
    a = np.asarray(plane_mean, dtype=np.float64).reshape(2)
    T = np.asarray(plane_tril, dtype=np.float64).reshape(2, 2)
    mr = np.asarray(rest_mean, dtype=np.float64).reshape(-1)
    Lr = np.asarray(rest_tril, dtype=np.float64)
    mean = plane.origin + U @ a + W @ (W.T @ (mr - plane.origin))
    Q = np.concatenate([U, W], axis=1)
    block = np.zeros((plane.dim, plane.dim))
    block[:2, :2] = T @ T.T
    block[2:, 2:] = W.T @ (Lr @ Lr.T) @ W
    cov = Q @ block @ Q.T
    return mean, np.linalg.cholesky(0.5 * (cov + cov.T))


@torch.no_grad()
def slice_log_joint(
    model: Any, x: ArrayLikeFloat, plane: SlicePlane, extent: tuple[float, float, float, float], size: int = 64
) -> FloatArray:
    """log p(x, z(a)) on a ``size`` x ``size`` midpoint grid over ``extent`` = (a1_lo, a1_hi, a2_lo, a2_hi) of the
    plane, indexed [i1, i2] (i1 along a1)."""
    dev, dt = model_device_dtype(model)
    xt = model_x(model, x)
    a1 = np.linspace(extent[0], extent[1], size + 1)
    a2 = np.linspace(extent[2], extent[3], size + 1)
    g1, g2 = np.meshgrid(0.5 * (a1[1:] + a1[:-1]), 0.5 * (a2[1:] + a2[:-1]), indexing="ij")
    z = torch.as_tensor(plane.points(np.stack([g1.ravel(), g2.ravel()], 1)), device=dev, dtype=dt)
    out = []
    for chunk in torch.split(z, 1024):
        zc = chunk[:, None, :]  # (S, 1, d) against x (1, D)
        out.append((model.log_likelihood(xt[None], zc) + model.log_prior(zc))[:, 0].double().cpu())
    values: FloatArray = torch.cat(out).numpy().reshape(size, size)
    return values


class CommonRandomELBO:
    """ELBO(q) for Gaussian q = N(m, L L^T) over fixed draws eps_s ~ N(0, I) (common random numbers):
    ELBO = mean_s [log p(x, z_s) - log q(z_s)], z_s = m + L eps_s, log q(z_s) = log N(eps_s; 0, I) - log |det L|;
    with its Monte Carlo standard error std_s / sqrt(S)."""

    def __init__(self, model: Any, x: ArrayLikeFloat, n_samples: int = 128, seed: int = 0) -> None:
        cap = describe(model)
        if n_samples < 2:
            raise ModelInputError(f"n_samples must be at least 2; got {n_samples}")
        self.model = model
        self.dim = cap.latent_dim
        dev, dt = model_device_dtype(model)
        self.x = model_x(model, x)
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        eps = torch.randn(n_samples, self.dim, generator=g, dtype=torch.float64)
        self.log_n_eps = (-0.5 * (eps.pow(2).sum(-1) + self.dim * math.log(2.0 * math.pi))).to(device=dev)
        self.eps = eps.to(device=dev, dtype=dt)
        self.device, self.dtype = dev, dt

    @torch.no_grad()
    def __call__(self, mean: ArrayLikeFloat, scale_tril: ArrayLikeFloat) -> tuple[float, float]:
        """(ELBO(q), its standard error) for q = N(mean, scale_tril scale_tril^T)."""
        m = torch.as_tensor(np.asarray(mean, dtype=np.float64), device=self.device, dtype=self.dtype).reshape(-1)
        L = torch.as_tensor(np.asarray(scale_tril, dtype=np.float64), device=self.device, dtype=self.dtype)
        if m.shape[0] != self.dim or L.shape != (self.dim, self.dim):
            raise ModelInputError(f"q must be {self.dim}-dimensional; got mean {tuple(m.shape)}, L {tuple(L.shape)}")
        z = (m + self.eps @ L.T)[:, None, :]  # (S, 1, d)
        log_joint = (self.model.log_likelihood(self.x[None], z) + self.model.log_prior(z))[:, 0].double()
        log_q = self.log_n_eps - torch.log(torch.diagonal(L).abs()).sum().double()
        terms = log_joint - log_q
        return float(terms.mean()), float(terms.std()) / math.sqrt(terms.shape[0])


def slice_extent(
    plane: SlicePlane, mean: ArrayLikeFloat, scale_tril: ArrayLikeFloat, n_sigma: float = 4.0
) -> tuple[float, float, float, float]:
    """A square view of the plane around q's plane marginal: its mean +- n_sigma of its widest axis."""
    a, T = plane_marginal(plane, mean, scale_tril)
    half = n_sigma * float(np.sqrt(np.linalg.eigvalsh(T @ T.T).max()))
    return (a[0] - half, a[0] + half, a[1] - half, a[1] + half)


@dataclass(frozen=True)
class SliceReference:
    """What the Inference lab computes once per x when d > 2: the best Gaussian q* = N(q_mean, q_tril q_tril^T)
    (VI, reparameterised ELBO) and log p(x) by annealed importance sampling (``log_px`` ± ``log_px_se``, None until
    AIS has run). ``stage`` ("vi", "ais", "done") and ``fraction`` say how far it has got."""

    index: int | None
    q_mean: FloatArray
    q_tril: FloatArray
    elbo_star: float
    stage: str
    fraction: float
    log_px: float | None = None
    log_px_se: float | None = None
    ess: float | None = None
    chains: int = 0
    steps: int = 0


def slice_reference_steps(
    model: Any,
    x: ArrayLikeFloat,
    index: int | None = None,
    *,
    vi_steps: int = 300,
    vi_samples: int = 32,
    chains: int = 16,
    steps: int = 1000,
    seed: int = 0,
) -> Iterator[SliceReference]:
    """The best Gaussian q* by VI (reparameterised ELBO, ``vi_samples`` draws a step, from the encoder's q or
    N(0, I)), then log p(x) by AIS from q* to the posterior (``chains`` x ``steps``, HMC transitions:
    ``lvm.estimators.ais``; starting at q* rather than the prior, the path is short), yielding progress; the last
    snapshot has ``stage == "done"``."""
    from lvm.estimators.ais import ais_steps
    from lvm.estimators.vi import vi_steps as run_vi

    xt = model_x(model, x)
    last = None
    for snap in run_vi(
        model, xt, steps=vi_steps, lr=0.05, objective="reparam", n_samples=vi_samples, seed=seed, every=25
    ):
        last = snap
        yield SliceReference(
            index, _np(snap.mean), _np(snap.scale_tril), float(snap.elbo), "vi", 0.3 * snap.step / max(vi_steps, 1)
        )
    assert last is not None
    q_mean, q_tril, elbo_star = _np(last.mean), _np(last.scale_tril), float(last.elbo)
    start = MultivariateNormal(last.mean[None].detach(), scale_tril=last.scale_tril[None].detach())
    result = None
    for progress in ais_steps(model, xt[None], chains=chains, steps=steps, seed=seed, initial=start):
        result = progress.result
        yield SliceReference(
            index, q_mean, q_tril, elbo_star, "ais", 0.3 + 0.7 * progress.fraction, chains=chains, steps=steps
        )
    assert result is not None
    yield SliceReference(
        index,
        q_mean,
        q_tril,
        elbo_star,
        "done",
        1.0,
        log_px=float(result.log_px[0]),
        log_px_se=float(result.stderr[0]),
        ess=float(result.ess[0]),
        chains=chains,
        steps=steps,
    )


def _np(t: torch.Tensor) -> FloatArray:
    out: FloatArray = t.detach().double().cpu().numpy()
    return out
