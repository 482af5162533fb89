"""How estimates of log p(x) converge with the number of samples k, for one x: the IWAE bound with a Gaussian proposal
q against naive Monte Carlo (uniform box, prior), and the spread of repeated estimates (Jensen made visible).

Every draw goes through ``lvm.estimators.montecarlo`` (``importance`` with q, ``naive_mc`` with the uniform box or the
prior). Per proposal r, log w_i = log p(x, z_i) - log r(z_i), z_i ~ r, and for k samples

    log p_hat_k = log (1/k) sum_i w_i,      L_k = E[log p_hat_k] <= log p(x)   (Jensen; IWAE with r = q).

One run of K = max(ks) samples is split into floor(K/k) disjoint groups of k (``lk_groups``), so a small k gets many
independent estimates of L_k from the same draws. Effective sample size of a run (Kish): ESS = (sum w)^2 / sum w^2.

Which estimate is closer at a given k is not settled by the story "a proposal near the posterior wins": importance
sampling needs r to *cover* p(z|x). With w = p(x, z) / r(z), E_r[w] = p(x) and

    E_r[w^2] / p(x)^2 = int p(z|x)^2 / r(z) dz = 1 + chi^2(p(z|x) || r),

so Kish's ESS of k draws tends to k / (1 + chi^2) (``proposal_coverage``, exact on the posterior's grid). Where r is
tiny but p(z|x) is not, rare draws carry huge weights: k draws mostly miss them, the estimate falls short and the
*measured* ESS (of the weights drawn) looks far better than k / (1 + chi^2). An encoder q off the posterior can so lose
to the broad prior at the same k (``naive_beats_proposal``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from lvm.estimators.montecarlo import Estimate, effective_sample_size, importance, naive_mc
from lvm.estimators.validation import check_gaussian_params, check_x
from lvm.gaussian_q import gaussian, model_x
from lvm.posterior_grid import PosteriorPicture

__all__ = [
    "PROPOSALS",
    "NAIVE",
    "DEFAULT_KS",
    "WeightedSamples",
    "LkStats",
    "ConvergenceSnapshot",
    "lk_groups",
    "weighted_samples",
    "convergence_steps",
    "naive_beats_proposal",
    "ProposalCoverage",
    "proposal_coverage",
    "jensen_estimates",
]

PROPOSALS = ("iwae", "uniform", "prior")  # importance with q; naive MC from a uniform box; naive MC from the prior
NAIVE = ("uniform", "prior")
DEFAULT_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class WeightedSamples:
    """Samples z (n, Dz) of one proposal with their log importance weights log w = log p(x, z) - log r(z) and
    Kish's ESS of the weights."""

    z: FloatArray
    log_w: FloatArray
    ess: float

    @property
    def normalised_weights(self) -> FloatArray:
        """w~_i = w_i / sum_j w_j."""
        w: FloatArray = np.exp(self.log_w - self.log_w.max())
        out: FloatArray = w / w.sum()
        return out


class LkStats(NamedTuple):
    """Per k (arrays over ``ks``): the mean of the estimates log p_hat_k (estimating L_k), their 10 % and 90 %
    quantiles and how many estimates were pooled."""

    mean: FloatArray
    q10: FloatArray
    q90: FloatArray
    n_estimates: NDArray[np.int64]


@dataclass(frozen=True)
class ConvergenceSnapshot:
    """L_k statistics after ``done`` of ``repeats`` repeats: ``stats[name]`` over ``ks``; ``ess[name]``: the ESS of
    the latest K-sample run (K = max(ks)); ``samples``: weighted samples of each proposal to draw (drawn once)."""

    ks: tuple[int, ...]
    done: int
    repeats: int
    stats: dict[str, LkStats]
    ess: dict[str, float]
    samples: dict[str, WeightedSamples]
    seed: int

    @property
    def k_max(self) -> int:
        return self.ks[-1]

    def final(self, name: str) -> float:
        """The mean estimate of L_k at the largest k for proposal ``name``."""
        return float(self.stats[name].mean[-1])


def lk_groups(log_w: ArrayLike, ks: Sequence[int]) -> dict[int, FloatArray]:
    """From one run of K log-weights, the estimates log (1/k) sum_{i in group} w_i over floor(K/k) disjoint groups
    of k consecutive samples, per k (a k > K is left out)."""
    lw = np.asarray(log_w, dtype=np.float64)
    out: dict[int, FloatArray] = {}
    K = lw.shape[0]
    for k in ks:
        m = K // k
        if m < 1:
            continue
        a = lw[: m * k].reshape(m, k)
        mx = a.max(1, keepdims=True)
        out[k] = (mx[:, 0] + np.log(np.exp(a - mx).sum(1))) - math.log(k)
    return out


def _one_x(model: Any, x: ArrayLike | torch.Tensor, q_mean: ArrayLike | None, q_tril: ArrayLike | None) -> torch.Tensor:
    """One x (any shape holding D values, flattened) as a checked (1, D) tensor; q = N(q_mean, q_tril q_tril^T)'s
    shapes checked when given (``lvm.estimators.validation``)."""
    xt = check_x(model, model_x(model, x)[None])
    if q_mean is not None and q_tril is not None:
        check_gaussian_params(model, np.asarray(q_mean, dtype=np.float64), np.asarray(q_tril, dtype=np.float64), 1)
    return xt


def _draw(
    model: Any,
    xt: torch.Tensor,
    proposal: str,
    n: int,
    q_mean: ArrayLike | None,
    q_tril: ArrayLike | None,
    box: tuple[float, float],
    seed: int,
    samples: bool,
) -> Estimate:
    if proposal == "iwae":
        if q_mean is None or q_tril is None:
            raise ValueError("the 'iwae' proposal needs q_mean and q_tril")
        q = gaussian(model, q_mean, q_tril)
        return importance(model, xt, q, n, seed=seed, return_log_weights=True, return_samples=samples)
    return naive_mc(
        model, xt, n, proposal=proposal, box=box, seed=seed, return_log_weights=True, return_samples=samples
    )


@torch.no_grad()
def weighted_samples(
    model: Any,
    x: ArrayLike | torch.Tensor,
    proposal: str,
    n: int,
    q_mean: ArrayLike | None = None,
    q_tril: ArrayLike | None = None,
    box: tuple[float, float] = (-4.0, 4.0),
    seed: int = 0,
) -> WeightedSamples:
    """n samples of a proposal ('iwae': q = N(q_mean, q_tril q_tril^T); 'uniform': U(box^2); 'prior': N(0, I))
    with their log-weights (the ``Estimate``'s own samples)."""
    est = _draw(model, _one_x(model, x, q_mean, q_tril), proposal, n, q_mean, q_tril, box, seed, samples=True)
    assert est.log_weights is not None and est.samples is not None
    log_w = est.log_weights[:, 0].double()
    return WeightedSamples(
        z=est.samples[:, 0].double().cpu().numpy(),
        log_w=log_w.cpu().numpy(),
        ess=float(effective_sample_size(log_w)),
    )


def _stats(pooled: dict[int, list[FloatArray]], ks: tuple[int, ...]) -> LkStats:
    vs = [np.concatenate(pooled[k]) for k in ks]
    return LkStats(
        mean=np.array([v.mean() for v in vs]),
        q10=np.array([np.quantile(v, 0.1) for v in vs]),
        q90=np.array([np.quantile(v, 0.9) for v in vs]),
        n_estimates=np.array([v.size for v in vs], dtype=np.int64),
    )


def convergence_steps(
    model: Any,
    x: ArrayLike | torch.Tensor,
    q_mean: ArrayLike,
    q_tril: ArrayLike,
    ks: Sequence[int] = DEFAULT_KS,
    repeats: int = 10,
    seed: int = 0,
    box: tuple[float, float] = (-4.0, 4.0),
    n_show: int = 200,
    proposals: Sequence[str] = PROPOSALS,
) -> Iterator[ConvergenceSnapshot]:
    """Yield a ``ConvergenceSnapshot`` after each repeat. Repeat r draws K = max(ks) samples per proposal (seed
    ``1000 seed + 10 r + proposal's index``) and splits them into disjoint groups of k (``lk_groups``)."""
    ks_t = tuple(sorted({int(k) for k in ks}))
    K = ks_t[-1]
    names = tuple(proposals)
    xt = _one_x(model, x, q_mean, q_tril)
    pooled: dict[str, dict[int, list[FloatArray]]] = {name: {k: [] for k in ks_t} for name in names}
    with torch.no_grad():
        samples = {name: weighted_samples(model, x, name, n_show, q_mean, q_tril, box, seed) for name in names}
    ess: dict[str, float] = {}
    for r in range(repeats):
        for i, name in enumerate(names):
            with torch.no_grad():
                est = _draw(model, xt, name, K, q_mean, q_tril, box, seed * 1000 + r * 10 + i, samples=False)
            assert est.log_weights is not None
            ess[name] = float(est.ess[0])
            for k, v in lk_groups(est.log_weights[:, 0].double().cpu().numpy(), ks_t).items():
                pooled[name][k].append(v)
        yield ConvergenceSnapshot(
            ks=ks_t,
            done=r + 1,
            repeats=repeats,
            stats={name: _stats(pooled[name], ks_t) for name in names},
            ess=dict(ess),
            samples=samples,
            seed=seed,
        )


def naive_beats_proposal(snapshot: ConvergenceSnapshot, proposal: str = "iwae") -> tuple[str, ...]:
    """The naive estimators (of ``NAIVE`` in the snapshot) whose mean estimate at the largest k is above the
    ``proposal``'s: closer to log p(x), since every L_k is <= log p(x)."""
    if proposal not in snapshot.stats:
        return ()
    ref = snapshot.final(proposal)
    return tuple(name for name in NAIVE if name in snapshot.stats and snapshot.final(name) > ref)


@dataclass(frozen=True)
class ProposalCoverage:
    """How well each proposal r covers p(z|x), exactly (midpoint rule on the posterior picture's fine grid):
    ``second_moment[name]`` = E_r[w^2] / p(x)^2 = int p(z|x)^2 / r(z) dz = 1 + chi^2(p || r) (inf where p(z|x) has
    mass that r cannot draw); ``q_mass_2sigma``: the posterior mass inside q's 2-sigma ellipse."""

    second_moment: dict[str, float]
    q_mass_2sigma: float

    def expected_ess(self, name: str, k: int) -> float:
        """The ESS that k draws of r approach: k / (1 + chi^2(p || r))."""
        return k / self.second_moment[name]


def _log_proposal(
    name: str, z: FloatArray, q_mean: ArrayLike, q_tril: ArrayLike, box: tuple[float, float]
) -> FloatArray:
    """log r(z) for z (n, Dz): 'iwae' N(q_mean, L L^T), 'prior' N(0, I), 'uniform' U(box^Dz) (-inf outside)."""
    dz = z.shape[1]
    if name == "iwae":
        L = np.asarray(q_tril, dtype=np.float64).reshape(dz, dz)
        u = np.linalg.solve(L, (z - np.asarray(q_mean, dtype=np.float64).reshape(1, dz)).T)
        logdet = float(np.log(np.abs(np.diag(L))).sum())
        out: FloatArray = -0.5 * (u * u).sum(0) - logdet - 0.5 * dz * math.log(2 * math.pi)
        return out
    if name == "prior":
        prior: FloatArray = -0.5 * (z * z).sum(1) - 0.5 * dz * math.log(2 * math.pi)
        return prior
    if name == "uniform":
        lo, hi = float(box[0]), float(box[1])
        inside = ((z >= lo) & (z <= hi)).all(1)
        return np.where(inside, -dz * math.log(hi - lo), -np.inf)
    raise ValueError(f"unknown proposal {name!r}; one of {', '.join(PROPOSALS)}")


def proposal_coverage(
    picture: PosteriorPicture,
    q_mean: ArrayLike,
    q_tril: ArrayLike,
    box: tuple[float, float] = (-4.0, 4.0),
    proposals: Sequence[str] = PROPOSALS,
) -> ProposalCoverage:
    """``ProposalCoverage`` of each proposal (as ``convergence_steps`` draws them) for the x of ``picture``:
    int p(z|x)^2 / r(z) dz = sum_g h p_g^2 / r(z_g) on the fine grid (the mass outside it, ``outside_mass``, is
    left out)."""
    z1, z2 = picture.points()
    g1, g2 = np.meshgrid(z1, z2, indexing="ij")
    z = np.stack([g1.ravel(), g2.ravel()], 1)
    log_p = picture.log_density.ravel()
    second: dict[str, float] = {}
    for name in proposals:
        terms = 2 * log_p - _log_proposal(name, z, q_mean, q_tril, box)
        top = float(terms.max())
        if not math.isfinite(top):  # r(z) = 0 where p(z|x) > 0
            second[name] = math.inf
            continue
        log_m2 = top + math.log(float(np.exp(terms - top).sum()) * picture.cell_area)
        second[name] = math.exp(log_m2) if log_m2 < 700.0 else math.inf
    return ProposalCoverage(second_moment=second, q_mass_2sigma=picture.mass_within_ellipse(q_mean, q_tril, 2.0))


@torch.no_grad()
def jensen_estimates(
    model: Any, x: ArrayLike | torch.Tensor, q_mean: ArrayLike, q_tril: ArrayLike, k: int, repeats: int, seed: int = 0
) -> FloatArray:
    """``repeats`` independent importance-sampling estimates log p_hat(x) = log (1/k) sum_i w_i, z_i ~ q (R,)."""
    xt = _one_x(model, x, q_mean, q_tril).expand(repeats, -1)
    q = gaussian(model, q_mean, q_tril, batch=repeats)
    out: FloatArray = importance(model, xt, q, int(k), seed=seed).value.double().cpu().numpy()
    return out
