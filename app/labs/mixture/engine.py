"""The Mixture lab's glue to ``lvm.models.gmm`` (Qt-free, the lab's job module): stored half steps, EM runs resumed
from them, posteriors, BIC/AIC grids.

Model: z ~ Cat(pi), x | z=k ~ N(mu_k, Sigma_k), so p(x) = sum_k pi_k N(x; mu_k, Sigma_k) and, by Bayes' rule,
p(z=k | x) = pi_k N(x; mu_k, Sigma_k) / sum_j pi_j N(x; mu_j, Sigma_j).

The maths is ``lvm.models.gmm.GaussianMixture``'s (and ``lvm.models.gmm_selection``'s for BIC/AIC and collapse): a
stored half step becomes a model by ``from_params``; EM runs continue from it by ``em_steps(resume=...)``; the
posterior of the points for colouring is one E-step (``GaussianMixture.posterior``, ~3 ms for 100,000 2-D points on
one thread, measured here) so that scrubbing the history never waits for a worker. What is left here is the lab's
glue: its stored steps, its run configuration and its EM job (``em_run``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator, Iterator
from typing import cast

import numpy as np
import torch

from lvm.errors import ModelInputError
from lvm.models import gmm
from lvm.models.gmm_kernels import COV_TYPES  # noqa: F401 - the lab's covariance choices
from lvm.models.gmm_selection import collapsing_components

INITS = ("kmeans", "k-means++", "random_from_data", "random")  # lvm.models.gmm.INIT_PARAMS, in the lab's order


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
# a stored step as a model (the maths is lvm.models.gmm.GaussianMixture's)
# ------------------------------------------------------------------------------------------------------------------


def model_from_step(step: Step, dtype: torch.dtype = torch.float64, **kwargs) -> gmm.GaussianMixture:
    """A fitted ``GaussianMixture`` (CPU) with the parameters of ``step``."""
    return gmm.GaussianMixture.from_params(
        np.asarray(step.weights),
        np.asarray(step.means),
        np.asarray(step.covariances),
        step.cov_type,
        device="cpu",
        dtype=dtype,
        **kwargs,
    )


def step_full_covs(step: Step) -> np.ndarray:
    return gmm.full_covariances(step.covariances, step.cov_type, step.k, step.means.shape[1])


def posterior(X: np.ndarray, step: Step) -> tuple[np.ndarray, np.ndarray]:
    """(resp (N, K) float32 = p(z=k|x_n), log p(x_n) (N,) float64) under the parameters of ``step``."""
    resp, log_px = model_from_step(step, dtype=torch.float32).posterior(np.asarray(X, np.float32))
    return resp, log_px.astype(np.float64)


def blend_colours(resp: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(N, 3) float32 colour of each point: sum_k r_nk palette_k (an N x K @ K x 3 product, no threaded BLAS)."""
    return np.einsum("nk,kc->nc", resp, np.asarray(palette[: resp.shape[1]], np.float32))


def posterior_colours(X: np.ndarray, step: Step, palette: np.ndarray) -> np.ndarray:
    """``blend_colours`` of the posterior p(z=k|x_n) under ``step``'s parameters."""
    return blend_colours(posterior(X, step)[0], palette)


def log_density_grid(step: Step, x_range, y_range, n: int = 160) -> np.ndarray:
    """(n, n) log p(x) on a grid over the given ranges, indexed [ix, iy] (pixel centres)."""
    xs = np.linspace(float(x_range[0]), float(x_range[1]), n + 1)
    ys = np.linspace(float(y_range[0]), float(y_range[1]), n + 1)
    xc, yc = 0.5 * (xs[1:] + xs[:-1]), 0.5 * (ys[1:] + ys[:-1])
    gx, gy = np.meshgrid(xc, yc, indexing="ij")
    return model_from_step(step).score_samples(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(n, n)


def detect_collapse(step: Step, n_points: int, scale: float) -> tuple[int, ...]:
    """Components collapsing onto a point (``lvm.models.gmm_selection.collapsing_components``: under 1.5 points of
    mass, or a covariance eigenvalue below (1e-3 * data scale)^2), unioned with the model's own ``collapsed`` flags."""
    flagged = collapsing_components(step.weights, step_full_covs(step), n_points, scale)
    return tuple(sorted(set(flagged) | {int(k) for k in step.collapsed}))


def component_log_joint(x: np.ndarray, step: Step) -> np.ndarray:
    """log pi_k + log N(x; mu_k, Sigma_k) (K,) for one point x (D,): the numerators of Bayes' rule (in numpy; a
    covariance that is not positive definite is repaired as the fitted model does it)."""
    try:
        return gmm.log_component_joint(x, step.weights, step.means, step.covariances, step.cov_type)[0]
    except np.linalg.LinAlgError:
        return model_from_step(step).log_component_densities(np.asarray(x, np.float64).reshape(1, -1))[0]


def sample_model(step: Step, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n draws of the generative process (``GaussianMixture.sample``): z ~ Cat(pi), then x ~ N(mu_z, Sigma_z).
    Returns (x (n, D) float32, z (n,) int64)."""
    x, z = model_from_step(step, random_state=int(seed)).sample(int(n))
    return x.astype(np.float32), z.astype(np.int64)


# ------------------------------------------------------------------------------------------------------------------
# EM runs (worker side): GaussianMixture.em_steps, resumed from any stored half step
# ------------------------------------------------------------------------------------------------------------------


def _to_step(snap, cov_type: str) -> Step:
    return Step(
        iteration=int(snap.iteration),
        half=str(snap.half),
        weights=np.asarray(snap.weights, np.float64).copy(),
        means=np.asarray(snap.means, np.float64).copy(),
        covariances=np.asarray(snap.covariances, np.float64).copy(),
        cov_type=cov_type,
        log_likelihood=float(snap.log_likelihood),
        collapsed=tuple(int(c) for c in snap.collapsed),
    )


def init_step(X: np.ndarray, cfg: EMConfig) -> Step:
    """The initial parameters (k-means or random, by ``cfg.init``) as an 'init' step."""
    if len(X) < cfg.k:
        raise ModelInputError(f"{len(X)} points cannot fit {cfg.k} components; add points or lower K")
    gm = gmm.GaussianMixture(
        n_components=cfg.k,
        covariance_type=cfg.cov_type,
        init_params=cfg.init,
        random_state=cfg.seed,
        max_iter=1,
        tol=cfg.tol,
        reg_covar=cfg.reg_covar,
        device="cpu",
        dtype=torch.float64,
    )
    gen = cast(Generator[gmm.EMSnapshot, None, None], gm.em_steps(np.asarray(X, np.float32), max_iter=1))
    try:
        snap = next(gen)
    finally:
        gen.close()
    return _to_step(snap, cfg.cov_type)


def em_halfsteps(
    X: np.ndarray, cfg: EMConfig, start: Step, n_halves: int | None = None, delay: float = 0.0, token=None
) -> Iterator[Step]:
    """Continue EM from the stored half step ``start``, yielding each following half step ('E' then 'M' ...).

    Stops after ``n_halves`` half steps, at convergence (|delta log-lik| < tol) or after ``cfg.max_iter`` iterations.
    ``delay`` seconds pass between yields (the animation speed); ``token.cancelled`` is polled while waiting.
    """
    if len(X) < start.k:
        raise ModelInputError(f"{len(X)} points cannot fit {start.k} components; add points or lower K")
    iters = cfg.max_iter if n_halves is None else (n_halves + 2) // 2 + 1
    gm = model_from_step(start, tol=cfg.tol, reg_covar=cfg.reg_covar)
    count = 0
    gen = cast(
        Generator[gmm.EMSnapshot, None, None],
        gm.em_steps(np.asarray(X, np.float32), max_iter=max(iters, 1), resume=start.half, iteration=start.iteration),
    )
    try:
        for snap in gen:
            yield _to_step(snap, start.cov_type)
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


def em_run(
    X: np.ndarray,
    cfg: EMConfig,
    start: Step | None,
    n_halves: int | None,
    palette: np.ndarray,
    delay: float = 0.0,
    token=None,
    report: Callable[[float, str], None] | None = None,
) -> Iterator[tuple[Step, np.ndarray | None]]:
    """The lab's EM job: (half step, point colours) from ``start`` (None: a fresh ``init_step`` first) for
    ``n_halves`` half steps (None: until convergence). After each E-step the colours sum_k r_nk palette_k are computed
    here, in the worker, so the GUI thread only rasterises them. ``report(fraction, text)`` says how far it is."""
    what = f"{len(X):,} points"  # (the status bar says "Mixture lab: EM: " before it)
    if report is not None:
        report(0.0, what)
    if start is None:
        start = init_step(X, cfg)
        yield start, None
    if n_halves == 0:
        return
    for count, s in enumerate(em_halfsteps(X, cfg, start, n_halves=n_halves, delay=delay, token=token), 1):
        if report is not None:
            if n_halves:
                report(min(count / n_halves, 1.0), f"{what}, half step {count} of {n_halves}")
            else:
                report(
                    min(s.iteration / cfg.max_iter, 1.0), f"{what}, iteration {s.iteration} (at most {cfg.max_iter})"
                )
        yield s, (posterior_colours(X, s, palette) if s.half == "E" else None)


def em_to_convergence(
    X: np.ndarray, cfg: EMConfig, palette: np.ndarray, every: int = 10
) -> Iterator[tuple[Step, np.ndarray | None]]:
    """A second, independent EM run (the lab's "compare with seed" view): a fresh ``init_step`` with ``cfg.seed``,
    then EM until it converges. Yields (step, None) every ``every`` half steps, so the view can say how far it is,
    and last (the final step, its points' colours sum_k r_nk palette_k). Only the end is kept: no history."""
    start = init_step(X, cfg)
    yield start, None
    last = start
    for count, step in enumerate(em_halfsteps(X, cfg, start), 1):
        last = step
        if count % every == 0:
            yield step, None
    yield last, posterior_colours(X, last, palette)
