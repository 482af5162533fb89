"""The Inference lab's maths, Qt-free: exact posteriors on grids, the KL readout, estimator convergence, Jensen.

Everything here is a pure function (or a generator of frozen snapshots) over torch tensors and numpy arrays, built on
``lvm.estimators``. The GUI panels run the slow ones in workers.

Exact posterior for one x (2-D latent): the coarse-to-fine scheme of ``lvm.estimators.quadrature``
(``local_posterior``) on a coarse global grid decoded once per model (``LatentContext``), a fine local grid per x.

The KL readout: ELBO(q) by Gauss-Hermite quadrature in q's coordinates, and KL(q || p(z|x)) = log p(x) - ELBO(q).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from app.marching_squares import contour_segments
from lvm.estimators import (LatentGrid, choose_box, effective_sample_size, elbo_gauss_hermite, importance,
                            local_posterior, log_marginal_adaptive, naive_mc)

COARSE_SIZE = 128
FINE_SIZE = 48
SUPPORT_THRESHOLD = 16.0  # nats below the best coarse cell still counted as support
GH_NODES = 16
ESTIMATORS = ("iwae", "uniform", "prior")
ESTIMATOR_LABELS = {"iwae": "IWAE L<sub>k</sub> (proposal q = encoder)", "uniform": "naive MC, z ~ uniform box",
                    "prior": "naive MC, z ~ prior p(z)"}
DEFAULT_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

# -- threads ---------------------------------------------------------------------------------------------------------
# -- Gaussians in the plane ------------------------------------------------------------------------------------------
def params_to_tril(mu1, mu2, s1, s2, rho) -> tuple[np.ndarray, np.ndarray]:
    """(mean (2,), scale_tril (2, 2)) of N(mu, Sigma), Sigma = [[s1^2, rho s1 s2], [rho s1 s2, s2^2]]."""
    rho = float(np.clip(rho, -0.999, 0.999))
    L = np.array([[s1, 0.0], [rho * s2, s2 * math.sqrt(1.0 - rho * rho)]])
    return np.array([mu1, mu2], dtype=float), L


def tril_to_params(mean, scale_tril) -> tuple[float, float, float, float, float]:
    """(mu1, mu2, sigma1, sigma2, rho) of N(mean, L L^T)."""
    L = np.asarray(scale_tril, dtype=float).reshape(2, 2)
    cov = L @ L.T
    s1, s2 = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    return float(mean[0]), float(mean[1]), s1, s2, float(cov[0, 1] / (s1 * s2))


def cov_to_tril(cov) -> np.ndarray:
    cov = np.asarray(cov, dtype=float)
    cov = 0.5 * (cov + cov.T) + 1e-12 * np.eye(2)
    return np.linalg.cholesky(cov)


def _model_dtype(model):
    if isinstance(model, torch.nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None:
            return p.device, p.dtype
    return torch.device("cpu"), torch.float64


def as_x(model, x) -> torch.Tensor:
    dev, dt = _model_dtype(model)
    return torch.as_tensor(np.asarray(x)).to(device=dev, dtype=dt).reshape(-1)


@torch.no_grad()
def encoder_q(model, x) -> tuple[np.ndarray, np.ndarray] | None:
    """The encoder's q(z|x) as (mean (Dz,), scale_tril (Dz, Dz)), or None for a model without ``encode``."""
    if not hasattr(model, "encode"):
        return None
    q = model.encode(as_x(model, x)[None])
    mean = q.mean[0].double().cpu().numpy()
    std = q.stddev[0].double().cpu().numpy()
    return mean, np.diag(std)


@torch.no_grad()
def gh_elbo(model, x, mean, scale_tril, n: int = GH_NODES) -> float:
    """ELBO(q) for q = N(mean, L L^T) by n^Dz Gauss-Hermite nodes (``lvm.estimators.elbo_gauss_hermite``)."""
    xt = as_x(model, x)
    dev, dt = xt.device, xt.dtype
    m = torch.as_tensor(np.asarray(mean, dtype=float), device=dev, dtype=dt)
    L = torch.as_tensor(np.asarray(scale_tril, dtype=float), device=dev, dtype=dt)
    return float(elbo_gauss_hermite(model, xt, m, L, n=n))


# -- exact posterior on grids ----------------------------------------------------------------------------------------
@dataclass(eq=False)
class LatentContext:
    """What is computed once per model (and data set): the integration box and the decoded coarse global grid."""

    model: object
    box: np.ndarray  # (2, 2) rows [low, high]
    coarse: LatentGrid

    @classmethod
    @torch.no_grad()
    def build(cls, model, data_x: np.ndarray | None = None, size: int = COARSE_SIZE, n_box: int = 1000):
        """The box covers the prior's bulk and the encoder posteriors of (up to ``n_box`` of) the data's points."""
        dev, dt = _model_dtype(model)
        xs = None
        if data_x is not None and len(data_x):
            idx = np.linspace(0, len(data_x) - 1, min(n_box, len(data_x))).astype(int)
            xs = torch.as_tensor(data_x[idx]).to(device=dev, dtype=dt)
        box = choose_box(model, xs)
        grid = LatentGrid.build(model, size=size, box=box)
        return cls(model=model, box=box.numpy().copy(), coarse=grid)


@dataclass(frozen=True)
class PosteriorPicture:
    """p(z|x) for one x: ``density`` (n1, n2) on the fine local grid ([i, j] at (z1_i, z2_j)), its ``extent``
    (z1_lo, z1_hi, z2_lo, z2_hi); the coarse global picture likewise; ``levels``: density thresholds of the highest
    posterior density regions holding ``level_masses`` of the mass; ``log_px`` exact; ``outside_mass``: the share of
    posterior mass outside the fine box (from the coarse grid)."""

    index: int | None
    log_px: float
    density: np.ndarray
    extent: tuple[float, float, float, float]
    coarse_density: np.ndarray
    coarse_extent: tuple[float, float, float, float]
    levels: tuple[float, ...]
    level_masses: tuple[float, ...]
    outside_mass: float
    mode: tuple[float, float]
    contours: tuple = ()  # per level, (2S, 2) segment endpoints (``app.widgets.contours``), traced in the worker


def upsample_bilinear(density: np.ndarray, factor: int) -> np.ndarray:
    """``density`` (n1, n2) resampled bilinearly on a grid ``factor`` times finer (pixel centres kept aligned)."""
    d = np.asarray(density, dtype=np.float32)
    if factor <= 1:
        return d
    t = torch.from_numpy(np.ascontiguousarray(d))[None, None]
    return torch.nn.functional.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)[0, 0].numpy()


SHOWN_UPSAMPLE = 4  # the fine posterior is drawn (and contoured) 4x finer than it is computed


def hpd_levels(density: np.ndarray, masses=(0.5, 0.9, 0.99)) -> tuple[float, ...]:
    """Density thresholds t_m with sum_{density >= t_m} density = m * total (highest-density regions)."""
    d = np.sort(density.ravel())[::-1]
    c = np.cumsum(d)
    c /= c[-1]
    return tuple(float(d[min(np.searchsorted(c, m), d.size - 1)]) for m in masses)


@torch.no_grad()
def posterior_picture(ctx: LatentContext, x, index: int | None = None, fine: int = FINE_SIZE,
                      threshold: float = SUPPORT_THRESHOLD) -> PosteriorPicture:
    """The exact posterior of one x (``lvm.estimators.local_posterior``: support from the coarse grid, a fine grid
    over it), drawn: densities, highest-density levels and their contours."""
    lp = local_posterior(ctx.coarse, as_x(ctx.model, x)[None], size=fine, threshold=threshold)
    density = torch.exp(lp.log_density).reshape(fine, fine).cpu().numpy()
    lj, n = lp.coarse_log_joint, ctx.coarse.size
    coarse = torch.exp(lj - torch.logsumexp(lj, 0) - ctx.coarse.log_cell).reshape(n, n).cpu().numpy()
    k = int(torch.argmax(lp.log_joint))
    pts = lp.grid.points[k].double().cpu().numpy()
    b = ctx.box
    fb = lp.box
    extent = (float(fb[0, 0]), float(fb[0, 1]), float(fb[1, 0]), float(fb[1, 1]))
    levels = hpd_levels(density)
    shown = upsample_bilinear(density, SHOWN_UPSAMPLE)
    return PosteriorPicture(index=index, log_px=lp.log_px, density=density, extent=extent, coarse_density=coarse,
                            coarse_extent=(float(b[0, 0]), float(b[0, 1]), float(b[1, 0]), float(b[1, 1])),
                            levels=levels, level_masses=(0.5, 0.9, 0.99), outside_mass=lp.outside_mass,
                            mode=(float(pts[0]), float(pts[1])),
                            contours=tuple(contour_segments(shown, lv, extent) for lv in levels))


# -- estimator convergence -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightedSamples:
    """Samples z (n, Dz) of one proposal with their log importance weights log w = log p(x, z) - log r(z)."""

    z: np.ndarray
    log_w: np.ndarray
    ess: float


@dataclass(frozen=True)
class ConvergenceSnapshot:
    """L_k statistics after ``done`` of ``repeats`` repeats: ``stats[name]`` = (mean, q10, q90, count) arrays over
    ``ks``; ``ess[name]``: the effective sample size of the latest k_max-sample run; ``samples``: weighted samples
    to draw (only in the first snapshot's repeat)."""

    ks: tuple[int, ...]
    done: int
    repeats: int
    stats: dict
    ess: dict
    samples: dict
    seed: int


def lk_groups(log_w: np.ndarray, ks) -> dict[int, np.ndarray]:
    """From one run of K log-weights, the estimates log (1/k) sum w over floor(K/k) disjoint groups of k, per k."""
    out = {}
    K = log_w.shape[0]
    for k in ks:
        m = K // k
        if m < 1:
            continue
        a = log_w[: m * k].reshape(m, k)
        mx = a.max(1, keepdims=True)
        out[k] = (mx[:, 0] + np.log(np.exp(a - mx).sum(1))) - math.log(k)
    return out


def _q(model, q_mean, q_tril):
    """q = N(q_mean, L L^T) as a batch of one, on the model's device and dtype."""
    dev, dt = _model_dtype(model)
    return torch.distributions.MultivariateNormal(torch.as_tensor(q_mean, dtype=dt, device=dev)[None],
                                                  scale_tril=torch.as_tensor(q_tril, dtype=dt, device=dev)[None])


@torch.no_grad()
def weighted_samples(model, x, proposal: str, n: int, q_mean=None, q_tril=None, box=(-4.0, 4.0),
                     seed: int = 0) -> WeightedSamples:
    """n samples of a proposal ('iwae': q = N(q_mean, q_tril q_tril^T), ``lvm.estimators.importance``; 'uniform':
    U(box^2) and 'prior': N(0, I), ``lvm.estimators.naive_mc``) with their log-weights."""
    xt = as_x(model, x)[None]
    if proposal == "iwae":
        est = importance(model, xt, _q(model, q_mean, q_tril), n, seed=seed, return_log_weights=True,
                         return_samples=True)
    else:
        est = naive_mc(model, xt, n, proposal=proposal, box=box, seed=seed, return_log_weights=True,
                       return_samples=True)
    log_w = est.log_weights[:, 0].double()
    return WeightedSamples(z=est.samples[:, 0].double().cpu().numpy(), log_w=log_w.cpu().numpy(),
                           ess=float(effective_sample_size(log_w)))


def convergence_steps(model, x, q_mean, q_tril, ks=DEFAULT_KS, repeats: int = 10, seed: int = 0,
                      box=(-4.0, 4.0), n_show: int = 200, estimators=ESTIMATORS):
    """Yield ``ConvergenceSnapshot`` after each repeat. Each repeat draws K = max(ks) samples per estimator (seeded
    ``seed + repeat``) through ``lvm.estimators`` (``importance`` with the encoder's q, ``naive_mc`` uniform / prior)
    and splits them into disjoint groups of k, so small k get many independent estimates of L_k."""
    ks = tuple(int(k) for k in ks)
    K = max(ks)
    xt = as_x(model, x)[None]
    q = _q(model, q_mean, q_tril)
    pooled = {name: {k: [] for k in ks} for name in estimators}
    samples = {name: weighted_samples(model, x, name, n_show, q_mean, q_tril, box, seed) for name in estimators}
    ess = {}
    for r in range(repeats):
        for name in estimators:
            s = seed * 1000 + r * 10 + estimators.index(name)
            if name == "iwae":
                est = importance(model, xt, q, K, seed=s, return_log_weights=True)
            else:
                est = naive_mc(model, xt, K, proposal=name, box=box, seed=s, return_log_weights=True)
            lw = est.log_weights[:, 0].double().cpu().numpy()
            ess[name] = float(est.ess[0])
            for k, v in lk_groups(lw, ks).items():
                pooled[name][k].append(v)
        stats = {}
        for name in estimators:
            mean, lo, hi, cnt = [], [], [], []
            for k in ks:
                v = np.concatenate(pooled[name][k])
                mean.append(v.mean())
                lo.append(np.quantile(v, 0.1))
                hi.append(np.quantile(v, 0.9))
                cnt.append(v.size)
            stats[name] = (np.array(mean), np.array(lo), np.array(hi), np.array(cnt))
        yield ConvergenceSnapshot(ks=ks, done=r + 1, repeats=repeats, stats=stats, ess=dict(ess), samples=samples,
                                  seed=seed)


# -- Jensen ----------------------------------------------------------------------------------------------------------
@torch.no_grad()
def jensen_estimates(model, x, q_mean, q_tril, k: int, repeats: int, seed: int = 0) -> np.ndarray:
    """``repeats`` independent importance-sampling estimates log p_hat(x) = log (1/k) sum_i w_i, z_i ~ q (R,)."""
    xt = as_x(model, x)[None].expand(repeats, -1)
    dev, dt = xt.device, xt.dtype
    m = torch.as_tensor(q_mean, dtype=dt, device=dev).expand(repeats, -1)
    L = torch.as_tensor(q_tril, dtype=dt, device=dev).expand(repeats, -1, -1)
    q = torch.distributions.MultivariateNormal(m, scale_tril=L)
    return importance(model, xt, q, int(k), seed=seed).value.double().cpu().numpy()


# -- ELBO vs log p(x) over the data set ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScatterSnapshot:
    """Encoder ELBO (Gauss-Hermite) and exact log p(x) for the first ``done`` of ``indices``."""

    indices: np.ndarray
    elbo: np.ndarray
    log_px: np.ndarray
    done: int


def scatter_steps(model, data_x: np.ndarray, indices: np.ndarray, box: np.ndarray, chunk: int = 100,
                  gh_nodes: int = 8):
    """Yield ``ScatterSnapshot`` per chunk: ELBO(q_phi(z|x)) by ``gh_nodes``^2 Gauss-Hermite nodes and exact
    log p(x) by ``lvm.estimators.log_marginal_adaptive`` (256^2 midpoint grid, coarse-to-fine) on ``box``."""
    dev, dt = _model_dtype(model)
    n = len(indices)
    elbo = np.full(n, np.nan)
    lpx = np.full(n, np.nan)
    boxt = torch.as_tensor(box, dtype=torch.float64)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        xs = torch.as_tensor(data_x[indices[a:b]]).to(device=dev, dtype=dt)
        with torch.no_grad():
            q = model.encode(xs)
            mean, std = q.mean, q.stddev
            elbo[a:b] = elbo_gauss_hermite(model, xs, mean, torch.diag_embed(std), n=gh_nodes).double().cpu().numpy()
        lpx[a:b] = log_marginal_adaptive(model, xs, size=256, block=8, box=boxt).log_px.double().cpu().numpy()
        yield ScatterSnapshot(indices=indices, elbo=elbo.copy(), log_px=lpx.copy(), done=b)


# -- the 1-D picture -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OneDPosterior:
    """A 1-D latent model's exact posterior on a dense grid: ``z`` (G,), ``log_joint`` (G,), ``log_px``."""

    z: np.ndarray
    log_joint: np.ndarray
    log_px: float

    @property
    def density(self) -> np.ndarray:
        return np.exp(self.log_joint - self.log_px)

    def elbo(self, mu: float, sigma: float) -> float:
        """ELBO(N(mu, sigma^2)) = int q (log p(x, z) - log q) dz on the grid (midpoint rule)."""
        z = self.z
        dz = z[1] - z[0]
        logq = -0.5 * ((z - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
        q = np.exp(logq)
        return float(np.sum(q * (self.log_joint - logq)) * dz / max(np.sum(q) * dz, 1e-300))


@torch.no_grad()
def one_d_posterior(model, x_obs, z_range=(-10.0, 10.0), n: int = 4001) -> OneDPosterior:
    z = torch.linspace(z_range[0], z_range[1], n, dtype=torch.float64)
    x = torch.as_tensor(np.atleast_1d(x_obs), dtype=torch.float64)[None]
    lj = model.log_prior(z[:, None]) + model.log_likelihood(x, z[:, None, None])[:, 0]
    dz = float(z[1] - z[0])
    log_px = float(torch.logsumexp(lj, 0)) + math.log(dz)
    return OneDPosterior(z=z.numpy(), log_joint=lj.numpy(), log_px=log_px)
