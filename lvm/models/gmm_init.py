"""Initialisation for Gaussian mixtures: a small torch k-means (k-means++ seeding, Lloyd iterations).

k-means minimises sum_n min_k ||x_n - c_k||^2. k-means++ (Arthur & Vassilvitskii 2007, greedy variant as in
scikit-learn) draws each new centre with probability proportional to the squared distance to the nearest centre
chosen so far, keeping the best of ``2 + floor(log k)`` candidates.
"""

from __future__ import annotations

import math
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

# what ``random_state`` may be (scikit-learn's convention)
RandomStateLike: TypeAlias = int | np.integer[Any] | np.random.RandomState | np.random.Generator | None


def numpy_rng(random_state: RandomStateLike) -> np.random.RandomState:
    """scikit-learn's ``check_random_state``: None -> global RNG, int -> RandomState(int), instances pass."""
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.RandomState(int(random_state.integers(2**31 - 1)))
    if isinstance(random_state, (int, np.integer)):
        return np.random.RandomState(int(random_state))
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, not {random_state!r}")


def sq_distances(X: torch.Tensor, C: torch.Tensor, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """||x_n - c_j||^2, (N, J), by ||x||^2 - 2 x.c + ||c||^2 clamped at 0."""
    if x_sq is None:
        x_sq = (X * X).sum(1)
    d = torch.addmm((C * C).sum(1), X, C.T, alpha=-2.0)
    return d.add_(x_sq.unsqueeze(1)).clamp_min_(0.0)


def kmeans_plusplus(
    X: torch.Tensor, k: int, rng: np.random.RandomState, x_sq: torch.Tensor | None = None
) -> tuple[torch.Tensor, npt.NDArray[np.int64]]:
    """Greedy k-means++ seeding. Returns ``(centres (k, D), indices (k,) numpy)``."""
    N = X.shape[0]
    if x_sq is None:
        x_sq = (X * X).sum(1)
    n_trials = 2 + int(math.log(k))
    first = int(rng.randint(N))
    indices = [first]
    closest = sq_distances(X, X[first : first + 1], x_sq)[:, 0]
    for _ in range(1, k):
        cum = torch.cumsum(closest.double(), 0)
        pot = float(cum[-1])
        if pot <= 0:  # all points coincide with centres: any unused point
            rest = np.setdiff1d(np.arange(N), indices)
            indices.append(int(rng.choice(rest)))
            cand_d = sq_distances(X, X[indices[-1] : indices[-1] + 1], x_sq)[:, 0]
            closest = torch.minimum(closest, cand_d)
            continue
        vals = torch.as_tensor(rng.uniform(size=n_trials) * pot, dtype=torch.float64, device=X.device)
        cand = torch.searchsorted(cum, vals).clamp_max_(N - 1)
        d = sq_distances(X, X[cand], x_sq)  # (N, trials)
        torch.minimum(d, closest.unsqueeze(1), out=d)
        best = int(torch.argmin(d.sum(0)))
        indices.append(int(cand[best]))
        closest = d[:, best].clone()
    idx = np.asarray(indices, dtype=np.int64)
    return X[torch.as_tensor(idx, device=X.device)].clone(), idx


def kmeans(
    X: torch.Tensor, k: int, rng: np.random.RandomState, max_iter: int = 300, tol: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's algorithm from k-means++ seeds. Stops when sum_k ||c_k^new - c_k||^2 <= tol * mean_d var(X_d).

    Empty clusters are moved to the points farthest from their centres. Returns ``(centres, labels)``.
    """
    N, D = X.shape
    x_sq = (X * X).sum(1)
    centres, _ = kmeans_plusplus(X, k, rng, x_sq)
    tol_abs = tol * float(X.var(0, unbiased=False).mean()) if N > 1 else 0.0
    labels = None
    for _ in range(max_iter):
        d = sq_distances(X, centres, x_sq)
        mind, labels = d.min(1)
        counts = torch.bincount(labels, minlength=k).to(X.dtype)
        sums = torch.zeros((k, D), dtype=X.dtype, device=X.device).index_add_(0, labels, X)
        empty = torch.nonzero(counts == 0).flatten()
        new = sums / counts.clamp_min(1).unsqueeze(1)
        if len(empty):
            far = torch.argsort(mind, descending=True)[: len(empty)]
            new[empty] = X[far]
        shift = float(((new - centres) ** 2).sum())
        centres = new
        if shift <= tol_abs:
            break
    labels = sq_distances(X, centres, x_sq).argmin(1)
    return centres, labels
