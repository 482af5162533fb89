"""Choosing a Gaussian mixture: information criteria over a grid of K and seeds, and components that collapse.

Information criteria (lower is better), with log L = sum_n log p(x_n) and p the number of free parameters:

    BIC = -2 log L + p log N,        AIC = -2 log L + 2 p,

p = (K - 1) + K D + (covariance parameters: K D (D + 1) / 2 full, D (D + 1) / 2 tied, K D diag, K spherical).

A component collapses onto a point when Sigma_k -> 0: N(x; mu_k, Sigma_k) at that point, and the likelihood, grow
without bound. It is flagged when it holds less than ``min_points`` points of mass (N pi_k < 1.5) or the smallest
eigenvalue of Sigma_k falls below (``rel_eig`` * data scale)^2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from lvm.errors import ModelInputError
from lvm.models import gmm


@dataclass(frozen=True)
class CriterionPoint:
    """One fit of the grid: K components from seed ``seed``; its BIC, AIC and mean log-likelihood per point."""

    k: int
    seed: int
    bic: float
    aic: float
    mean_log_likelihood: float


def n_free_parameters(k: int, d: int, covariance_type: str) -> int:
    """p = (K - 1) weights + K D means + the covariances' free entries (see the module docstring)."""
    cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}
    if covariance_type not in cov:
        raise ModelInputError(f"covariance_type must be one of {sorted(cov)}, got {covariance_type!r}")
    return (k - 1) + k * d + cov[covariance_type]


def information_criteria(
    X: np.ndarray,
    ks: Iterable[int],
    seeds: Sequence[int],
    covariance_type: str = "full",
    init_params: str = "kmeans",
    max_iter: int = 200,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[CriterionPoint]:
    """Fit a K-component mixture by EM from each seed, for each K in ``ks`` (ascending; K > N ends the grid), and
    yield its BIC and AIC on ``X`` as soon as it is fitted. ``should_stop()`` is polled before each fit."""
    Xf = np.asarray(X, np.float32)
    if Xf.ndim != 2 or len(Xf) < 1:
        raise ModelInputError(f"X must be (N, D) with N >= 1, got shape {Xf.shape}")
    n, d = Xf.shape
    for k in ks:
        if k > n:
            return
        for seed in seeds:
            if should_stop is not None and should_stop():
                return
            gm = gmm.GaussianMixture(
                n_components=int(k),
                covariance_type=covariance_type,
                init_params=init_params,
                random_state=int(seed),
                max_iter=max_iter,
                device="cpu",
            ).fit(Xf)
            mean_ll = float(gm.score(Xf))
            p = n_free_parameters(int(k), d, covariance_type)
            yield CriterionPoint(
                k=int(k),
                seed=int(seed),
                bic=-2.0 * n * mean_ll + p * float(np.log(n)),
                aic=-2.0 * n * mean_ll + 2.0 * p,
                mean_log_likelihood=mean_ll,
            )


def best_k(points: Iterable[CriterionPoint], criterion: str = "bic") -> int | None:
    """The K of the lowest ``criterion`` ('bic' or 'aic') over all fits (None when there are none)."""
    if criterion not in ("bic", "aic"):
        raise ModelInputError(f"criterion must be 'bic' or 'aic', got {criterion!r}")
    best = min(points, key=lambda p: getattr(p, criterion), default=None)
    return None if best is None else best.k


def collapsing_components(
    weights: np.ndarray,
    full_covariances: np.ndarray,
    n_points: int,
    scale: float,
    min_points: float = 1.5,
    rel_eig: float = 1e-3,
) -> tuple[int, ...]:
    """Indices k with N pi_k < ``min_points`` or lambda_min(Sigma_k) < (``rel_eig`` * ``scale``)^2.

    ``weights`` (K,), ``full_covariances`` (K, D, D) (``gmm.full_covariances`` expands tied/diag/spherical ones)."""
    w = np.asarray(weights, np.float64)
    covs = np.asarray(full_covariances, np.float64)
    if covs.ndim != 3 or covs.shape[0] != w.shape[0] or covs.shape[1] != covs.shape[2]:
        raise ModelInputError(f"full_covariances must be (K, D, D) with K = {w.shape[0]}, got {covs.shape}")
    lam_min = np.linalg.eigvalsh(covs)[:, 0]
    small = (w * n_points < min_points) | (lam_min < (rel_eig * scale) ** 2)
    return tuple(int(k) for k in np.nonzero(small)[0])
