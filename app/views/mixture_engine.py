"""Qt-free computations behind the Mixture lab: half-step EM runs, posteriors of 2-D points, BIC/AIC grids.

Model: z ~ Cat(pi), x | z=k ~ N(mu_k, Sigma_k), so p(x) = sum_k pi_k N(x; mu_k, Sigma_k) and, by Bayes' rule,
p(z=k | x) = pi_k N(x; mu_k, Sigma_k) / sum_j pi_j N(x; mu_j, Sigma_j).

The EM itself is ``lvm.models.gmm.GaussianMixture.em_steps``; runs continue from any stored half step through
``means_init`` / ``weights_init`` / ``precisions_init``. The posterior of 2-D points for colouring is evaluated here in
numpy (K small 2x2 solves; ~3 ms for 100,000 points) so that scrubbing the history never waits for a worker.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterator

import numpy as np
import torch

from lvm.errors import ModelInputError
from lvm.models import gmm

COV_TYPES = ("full", "tied", "diag", "spherical")
INITS = ("kmeans", "k-means++", "random_from_data", "random")


@dataclasses.dataclass(frozen=True)
class EMConfig:
    k: int = 4
    cov_type: str = "full"
    init: str = "kmeans"
    seed: int = 0
    max_iter: int = 300
    tol: float = 1e-5
    reg_covar: float = 1e-6


@dataclasses.dataclass(frozen=True)
class Step:
    """One stored half step: parameters after it, the mean log-likelihood per point, collapsing components."""

    iteration: int
    half: str  # 'init' | 'E' | 'M'
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # shaped by cov_type
    cov_type: str
    log_likelihood: float
    collapsed: tuple = ()

    @property
    def k(self) -> int:
        return int(self.weights.shape[0])


# ------------------------------------------------------------------------------------------------------------------
# covariances and posteriors (numpy)
# ------------------------------------------------------------------------------------------------------------------

def full_covariances(cov: np.ndarray, cov_type: str, k: int, d: int) -> np.ndarray:
    """(K, D, D) covariances from the compact form of ``cov_type``."""
    cov = np.asarray(cov, dtype=np.float64)
    if cov_type == "full":
        return cov.reshape(k, d, d)
    if cov_type == "tied":
        return np.broadcast_to(cov.reshape(d, d), (k, d, d)).copy()
    if cov_type == "diag":
        return np.stack([np.diag(c) for c in cov.reshape(k, d)])
    if cov_type == "spherical":
        return cov.reshape(k)[:, None, None] * np.eye(d)[None]
    raise ValueError(f"unknown covariance type {cov_type!r}")


def precisions(cov: np.ndarray, cov_type: str) -> np.ndarray:
    """Sigma^-1 in the compact form of ``cov_type`` (what ``precisions_init`` takes)."""
    cov = np.asarray(cov, dtype=np.float64)
    if cov_type in ("full", "tied"):
        return np.linalg.inv(cov)
    return 1.0 / cov


def step_full_covs(step: Step) -> np.ndarray:
    return full_covariances(step.covariances, step.cov_type, step.k, step.means.shape[1])


def log_joint(X: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(N, K) log pi_k + log N(x_n; mu_k, Sigma_k), Sigma_k full (K, D, D)."""
    X = np.asarray(X, dtype=np.float64)
    N, D = X.shape
    out = np.empty((N, len(weights)), dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(weights, dtype=np.float64))
    for k in range(len(weights)):
        L = np.linalg.cholesky(covs[k] + 1e-12 * np.eye(D))
        sol = np.linalg.solve(L, (X - means[k]).T)  # (D, N)
        maha = np.einsum("dn,dn->n", sol, sol)
        out[:, k] = logw[k] - 0.5 * (D * np.log(2 * np.pi) + maha) - np.log(np.diag(L)).sum()
    return out


def log_joint_2d(X: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(N, K) float32 log pi_k + log N(x; mu_k, Sigma_k) for D = 2 in closed form: with P = Sigma^-1,
    (x-mu)^T P (x-mu) = P00 dx^2 + 2 P01 dx dy + P11 dy^2 and log det Sigma = log(S00 S11 - S01^2). No BLAS calls
    (a threaded GEMM on an N x 2 block is slower than this when cores are busy)."""
    X = np.asarray(X, dtype=np.float32)
    covs = np.asarray(covs, np.float64)
    det = np.maximum(covs[:, 0, 0] * covs[:, 1, 1] - covs[:, 0, 1] ** 2, 1e-300)
    p00, p11, p01 = covs[:, 1, 1] / det, covs[:, 0, 0] / det, -covs[:, 0, 1] / det
    with np.errstate(divide="ignore"):
        const = np.log(np.asarray(weights, np.float64)) - np.log(2 * np.pi) - 0.5 * np.log(det)
    out = np.empty((X.shape[0], len(weights)), dtype=np.float32)
    x, y = X[:, 0], X[:, 1]
    for k in range(len(weights)):
        dx = x - np.float32(means[k, 0])
        dy = y - np.float32(means[k, 1])
        out[:, k] = (np.float32(-0.5 * p00[k]) * dx * dx + np.float32(-p01[k]) * dx * dy
                     + np.float32(-0.5 * p11[k]) * dy * dy + np.float32(const[k]))
    return out


def posterior(X: np.ndarray, step: Step) -> tuple[np.ndarray, np.ndarray]:
    """(resp (N, K) float32 = p(z=k|x_n), log p(x_n) (N,)) under the parameters of ``step``."""
    covs = step_full_covs(step)
    if step.means.shape[1] == 2:
        lj = log_joint_2d(X, step.weights, step.means, covs)
    else:
        lj = log_joint(X, step.weights, step.means, covs).astype(np.float32)
    m = lj.max(1, keepdims=True)
    m = np.where(np.isfinite(m), m, np.float32(0.0))
    e = np.exp(lj - m)
    s = e.sum(1, keepdims=True)
    e /= np.maximum(s, np.float32(1e-30))
    return e, (np.log(np.maximum(s, np.float32(1e-30))) + m)[:, 0].astype(np.float64)


def blend_colours(resp: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(N, 3) float32 colour of each point: sum_k r_nk palette_k (an N x K @ K x 3 product, no threaded BLAS)."""
    return np.einsum("nk,kc->nc", resp, np.asarray(palette[:resp.shape[1]], np.float32))


def posterior_colours(X: np.ndarray, step: Step, palette: np.ndarray) -> np.ndarray:
    """``blend_colours`` of the posterior p(z=k|x_n) under ``step``'s parameters."""
    return blend_colours(posterior(X, step)[0], palette)


def log_density_grid(step: Step, x_range, y_range, n: int = 160) -> np.ndarray:
    """(n, n) log p(x) on a grid over the given ranges, indexed [ix, iy] (pixel centres)."""
    xs = np.linspace(*x_range, n + 1)
    ys = np.linspace(*y_range, n + 1)
    xc, yc = 0.5 * (xs[1:] + xs[:-1]), 0.5 * (ys[1:] + ys[:-1])
    gx, gy = np.meshgrid(xc, yc, indexing="ij")
    lj = log_joint(np.stack([gx.ravel(), gy.ravel()], 1), step.weights, step.means, step_full_covs(step))
    m = lj.max(1, keepdims=True)
    return (np.log(np.exp(lj - m).sum(1)) + m[:, 0]).reshape(n, n)


def detect_collapse(step: Step, n_points: int, scale: float) -> tuple[int, ...]:
    """Components collapsing onto a point: fewer than 1.5 points of mass, or a covariance eigenvalue below
    (1e-3 * data scale)^2. Unioned with the model's own ``collapsed`` flags."""
    covs = step_full_covs(step)
    lam_min = np.linalg.eigvalsh(covs)[:, 0]
    small = (step.weights * n_points < 1.5) | (lam_min < (1e-3 * scale) ** 2)
    return tuple(sorted(set(int(k) for k in np.nonzero(small)[0]) | set(int(k) for k in step.collapsed)))


# ------------------------------------------------------------------------------------------------------------------
# EM runs (worker side)
# ------------------------------------------------------------------------------------------------------------------

def _make_model(cfg: EMConfig, start: Step | None, max_iter: int):
    kwargs = dict(n_components=cfg.k, covariance_type=cfg.cov_type, init_params=cfg.init, random_state=cfg.seed,
                  max_iter=max_iter, tol=cfg.tol, reg_covar=cfg.reg_covar, device="cpu", dtype=torch.float64)
    if start is not None:
        w = np.asarray(start.weights, np.float64)
        kwargs.update(weights_init=w / w.sum(), means_init=np.asarray(start.means, np.float64),
                      precisions_init=precisions(start.covariances, start.cov_type))
    return gmm.GaussianMixture(**kwargs)


def model_from_step(step: Step):
    """A fitted ``GaussianMixture`` with the parameters of ``step``."""
    return gmm.GaussianMixture.from_params(np.asarray(step.weights), np.asarray(step.means),
                                           np.asarray(step.covariances), step.cov_type)


def _to_step(snap, cov_type: str, iteration: int) -> Step:
    return Step(iteration=iteration, half=str(snap.half), weights=np.asarray(snap.weights, np.float64).copy(),
                means=np.asarray(snap.means, np.float64).copy(), covariances=np.asarray(snap.covariances, np.float64).copy(),
                cov_type=cov_type, log_likelihood=float(snap.log_likelihood),
                collapsed=tuple(int(c) for c in (getattr(snap, "collapsed", ()) or ())))


def init_step(X: np.ndarray, cfg: EMConfig) -> Step:
    """The initial parameters (k-means or random, by ``cfg.init``) as an 'init' step."""
    if len(X) < cfg.k:
        raise ModelInputError(f"{len(X)} points cannot fit {cfg.k} components; add points or lower K")
    gm = _make_model(cfg, None, max_iter=1)
    gen = gm.em_steps(np.asarray(X, np.float32), max_iter=1)
    try:
        snap = next(gen)
    finally:
        gen.close()
    return _to_step(snap, cfg.cov_type, 0)


def em_halfsteps(X: np.ndarray, cfg: EMConfig, start: Step, n_halves: int | None = None, delay: float = 0.0,
                 token=None) -> Iterator[Step]:
    """Continue EM from the stored half step ``start``, yielding each following half step ('E' then 'M' ...).

    Stops after ``n_halves`` half steps, at convergence (|delta log-lik| < tol) or after ``cfg.max_iter`` iterations.
    ``delay`` seconds pass between yields (the animation speed); ``token.cancelled`` is polled while waiting.
    """
    if len(X) < start.k:
        raise ModelInputError(f"{len(X)} points cannot fit {start.k} components; add points or lower K")
    iters = cfg.max_iter if n_halves is None else (n_halves + 2) // 2 + 1
    gm = _make_model(dataclasses.replace(cfg, k=start.k, cov_type=start.cov_type), start, max_iter=max(iters, 1))
    skip = 2 if start.half == "E" else 1  # the run's own 'init' (and its first E, when start was an E) repeat start
    iteration, count = start.iteration, 0
    gen = gm.em_steps(np.asarray(X, np.float32), max_iter=max(iters, 1))
    try:
        for snap in gen:
            if skip:
                skip -= 1
                continue
            if str(snap.half) == "E":
                iteration += 1
            yield _to_step(snap, start.cov_type, iteration)
            count += 1
            if n_halves is not None and count >= n_halves:
                return
            end = time.monotonic() + delay
            while delay > 0 and time.monotonic() < end:
                if token is not None and token.cancelled:
                    return
                time.sleep(min(0.01, max(end - time.monotonic(), 0.0)))
    finally:
        gen.close()


def sample_model(step: Step, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n draws of the generative process: z ~ Cat(pi), then x ~ N(mu_z, Sigma_z). Returns (x (n, D), z (n,))."""
    rng = np.random.default_rng(seed)
    w = np.asarray(step.weights, np.float64)
    z = rng.choice(len(w), size=n, p=w / w.sum())
    covs = step_full_covs(step)
    D = step.means.shape[1]
    x = np.empty((n, D))
    for k in range(len(w)):
        idx = np.nonzero(z == k)[0]
        if idx.size:
            L = np.linalg.cholesky(covs[k] + 1e-12 * np.eye(D))
            x[idx] = step.means[k] + rng.standard_normal((idx.size, D)) @ L.T
    return x.astype(np.float32), z.astype(np.int64)


def bic_grid(X: np.ndarray, ks, seeds, cov_type: str, init: str = "kmeans", token=None):
    """Yield (k, seed, bic, aic) for each K and seed: BIC = -2 log L + p log N, AIC = -2 log L + 2 p."""
    Xf = np.asarray(X, np.float32)
    for k in ks:
        if k > len(Xf):
            break
        for seed in seeds:
            if token is not None and token.cancelled:
                return
            gm = gmm.GaussianMixture(n_components=int(k), covariance_type=cov_type, init_params=init,
                                     random_state=int(seed), max_iter=200, device="cpu").fit(Xf)
            yield int(k), int(seed), float(gm.bic(Xf)), float(gm.aic(Xf))
