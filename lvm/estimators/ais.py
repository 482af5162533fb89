"""Annealed importance sampling (Neal 2001) with HMC transitions, and bidirectional Monte Carlo (Grosse et al. 2015).

AIS estimates p(x) = integral p(z) p(x|z) dz for any latent dimension. Along the geometric path

    f_b(z) = r(z)^(1 - b) p(x, z)^b,   0 = b_0 < b_1 < ... < b_T = 1,

from a normalised Gaussian r(z) (default N(0, I): the prior p(z) itself for a standard normal prior, so that
f_b(z) = p(z) p(x|z)^b; or a q(z|x) given as ``initial``) to the unnormalised posterior f_1(z) = p(x, z) with
normaliser Z_1 = p(x), each chain starts at z_0 ~ r, and for t = 1..T

    log w += log f_{b_t}(z_{t-1}) - log f_{b_{t-1}}(z_{t-1}) = (b_t - b_{t-1}) [log p(x, z_{t-1}) - log r(z_{t-1})],
    z_t ~ HMC transition leaving f_{b_t} invariant (no transition after the last weight update).

E[w] = p(x) exactly, for any T and any transitions that leave their f_b invariant. With K independent chains
log p_hat(x) = logmeanexp_k log w_k: a stochastic lower bound (E log p_hat <= log p(x), Jensen), consistent as K or
T grows. Its standard error is the delta method's se(log p_hat) = sqrt((K / ESS - 1) / (K - 1)) with Kish's
ESS = (sum w)^2 / sum w^2 of the final weights (``lvm.estimators.montecarlo.log_stderr``); it is an *estimate*
("AIS estimate +- se"), never exact, and it cannot see modes that no chain found.

Schedule: ``"sigmoid"`` (Grosse et al. 2015, used by Wu et al. 2017): b_t = (s(d (2t/T - 1)) - s(-d)) /
(s(d) - s(-d)) with s the logistic function and d = 4: small steps near b = 0 and b = 1, where log f_b changes
fastest relative to the chains' spread; or ``"linear"``: b_t = t / T.

Transitions: HMC with ``leapfrog_steps`` leapfrog steps of size eps and a Metropolis test, gradients of
log p(x|z) by autograd (``torch.autograd.grad`` without ``create_graph``; the decoder's Bernoulli / Gaussian fast
path is used where the model has one), log r and a standard normal prior's gradients in closed form. Each
evaluation's gradient is reused by the next leapfrog step and by the next transition, so a transition costs
``leapfrog_steps`` decoder forward+backward passes. The momentum is partly kept between transitions
(``momentum_persistence`` a: p <- a p + sqrt(1 - a^2) xi, negated on rejection; Horowitz 1991, used in AIS by
Sohl-Dickstein & Culpepper 2012), which leaves f_b x N(p; 0, I) invariant, so the weights are unchanged, and lets
one-leapfrog-step transitions travel like long trajectories. Measured (16 chains x 1000 steps from the prior,
3 seeds): on the shipped 2-D VAE against quadrature (16 test images) a = 0 erred by 12.2 nats rms and a = 0.8 by
1.1; on a d = 10 linear-Gaussian model (D = 20, s = 0.5) 1.8 and 0.77 nats. Hence a = 0.8 by default.

Step size. Wu et al. (2017) adapt eps during AIS towards a 0.65 acceptance rate (x1.02 when the smoothed acceptance
rate is above target, x0.98 below, clamped to [1e-4, 0.5], smoothing 0.9). If a chain's step size followed its own
acceptances, eps at step t would depend on that chain's earlier states and the kernel at t would no longer be a
fixed f_b-invariant kernel given the past: E[w] = p(x) (and BDMC's sandwich) would then hold only approximately.
Here ``pilot_chains`` extra chains per x run alongside (same tensor, same schedule) and only they adapt: every
scoring chain of that x uses the pilots' step size, which is independent of the scoring chains, so each scoring
chain's weight is exactly unbiased and the pilots' weights are discarded. ``pilot_chains=0``: a fixed step size.

Cost (``lvm bench ais``): one x, 16 chains + 4 pilots, 1000 steps, float32, one leapfrog step a transition, on the
shipped 10-D VAE's 3x512 ELU decoder took 1.35 s (best of 5) on the 2-core development CPU shared with other jobs,
against 1.14 s for a bare loop of the same 1000 decoder forward+backward passes on 20 rows (the floor); two leapfrog
steps would double it, too close to the 3 s budget on a loaded machine. Hence ``leapfrog_steps=1`` by default
(HMC with one leapfrog step is the Metropolis-adjusted Langevin algorithm; with the kept momentum, generalised HMC).
On the shipped 10-D VAE and 20 binarized-MNIST test images, ``lvm eval --methods ais:16x1000`` (from the encoder)
gave -94.42 ± 0.01 nats a image (ESS 15.3 of 16) where IWAE-5000 gave -94.52.

Starting point. From the prior, 1000 steps is short for a sharp VAE posterior (the 2-D VAE's posterior sd is
~0.04): the estimate is low by ~0.4 nats on average with ESS ~2 of 16. Given the encoder's q(z|x) as ``initial``,
the same run erred by <= 0.06 nats (se 0.01-0.03, ESS ~16), so ``lvm eval`` starts from the encoder when there is
one. The estimator is valid either way.

Everything is batched: all B x K chains (plus pilots) are one (K', B, Dz) tensor, on x's/the model's device.

BDMC (Grosse et al. 2015): on data simulated from the model, (z*, x) ~ p(z) p(x|z), z* is an exact sample of
p(z|x). Reverse AIS started at z* and annealed from b = 1 to b = 0 estimates 1/p(x) without bias, so
-logmeanexp(log w_rev) is a stochastic *upper* bound on log p(x) while forward AIS gives a stochastic *lower*
bound; the gap between them bounds both estimators' error on such data and shrinks to 0 as T grows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from lvm.errors import ModelInputError
from lvm.estimators.montecarlo import (
    Estimate,
    effective_sample_size,
    log_stderr,
    make_generator,
    model_log_likelihood,
    prior_is_standard_normal,
)
from lvm.models.base import LOG_2PI, LatentModel
from lvm.models.capabilities import check_latent_model, describe
from lvm.threads import single_thread

__all__ = [
    "AISProgress",
    "AISResult",
    "BDMCResult",
    "ais",
    "ais_steps",
    "annealing_schedule",
    "bdmc",
    "bdmc_simulated",
    "simulate",
    "LABEL",
]

LABEL = "AIS estimate ± se"  # how every AIS figure is labelled (an estimate, never "exact")

SCHEDULES = ("sigmoid", "linear")
SIGMOID_SHARPNESS = 4.0  # d in the sigmoidal schedule (Grosse et al. 2015)
# Wu et al. (2017)'s adaptation constants
STEP_SIZE_MIN, STEP_SIZE_MAX = 1e-4, 0.5
STEP_SIZE_INCREASE, STEP_SIZE_DECREASE = 1.02, 0.98
ACCEPTANCE_SMOOTHING = 0.9
DEFAULT_LEAPFROG_STEPS = 1  # the 3 s budget for 16 chains x 1000 steps (module docstring)
SINGLE_THREAD_ROWS = 512  # chains x batch up to which a CPU run uses one torch thread


@dataclass(frozen=True)
class AISResult:
    """AIS per x: ``log_px`` (B,) = logmeanexp over chains of the final log weights (``log_weights`` (K, B)),
    ``stderr`` (B,) its delta-method standard error, ``ess`` (B,) Kish's ESS of the final weights, ``acceptance``
    (B,) the scoring chains' mean HMC acceptance probability, ``step_size`` (B,) the last step size used.
    float64 on the device the chains ran on. ``label``: how to show it ("AIS estimate ± se")."""

    log_px: torch.Tensor
    stderr: torch.Tensor
    ess: torch.Tensor
    acceptance: torch.Tensor
    step_size: torch.Tensor
    log_weights: torch.Tensor
    steps: int
    chains: int
    leapfrog_steps: int
    schedule: str
    label: str = LABEL

    def to_estimate(self) -> Estimate:
        """The ``Estimate`` every other estimator returns (k = chains)."""
        return Estimate(
            value=self.log_px, stderr=self.stderr, ess=self.ess, k=self.chains, log_weights=self.log_weights
        )

    def describe(self, i: int = 0) -> str:
        """'AIS estimate ± se: -93.412 ± 0.021 nats (16 chains x 1000 steps, ESS 15.2)' for x number i."""
        return (
            f"{self.label}: {float(self.log_px[i]):.3f} ± {float(self.stderr[i]):.3f} nats "
            f"({self.chains} chains x {self.steps} steps, ESS {float(self.ess[i]):.1f})"
        )


@dataclass(frozen=True)
class AISProgress:
    """A snapshot after ``step`` of ``steps``: ``beta`` = b_step, ``log_normaliser`` (B,) the running estimate of
    log Z_b (logmeanexp of the partial log weights; log p(x) at the end), ``acceptance`` the scoring chains' mean
    acceptance so far, ``step_size`` their mean step size now. The last snapshot carries ``result``."""

    step: int
    steps: int
    beta: float
    log_normaliser: torch.Tensor
    acceptance: float
    step_size: float
    result: AISResult | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.steps


@dataclass(frozen=True)
class BDMCResult:
    """Bidirectional Monte Carlo per x: ``lower`` (B,) forward AIS log p_hat (a stochastic lower bound), ``upper``
    (B,) -logmeanexp of the reverse log weights (a stochastic upper bound), ``gap`` = upper - lower; ``forward``
    the forward run, ``reverse_log_weights`` (K, B)."""

    lower: torch.Tensor
    upper: torch.Tensor
    gap: torch.Tensor
    forward: AISResult
    reverse_log_weights: torch.Tensor
    steps: int
    chains: int

    @property
    def mean_lower(self) -> float:
        return float(self.lower.mean())

    @property
    def mean_upper(self) -> float:
        return float(self.upper.mean())

    @property
    def mean_gap(self) -> float:
        return float(self.gap.mean())


def annealing_schedule(steps: int, kind: str = "sigmoid", device: torch.device | str = "cpu") -> torch.Tensor:
    """b_0 = 0 < b_1 < ... < b_steps = 1 (float64, steps + 1 values); see the module docstring."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ModelInputError(f"steps must be a positive whole number; got {steps!r}")
    if kind not in SCHEDULES:
        raise ModelInputError(f"schedule must be one of {SCHEDULES}; got {kind!r}")
    t = torch.linspace(0.0, 1.0, int(steps) + 1, dtype=torch.float64, device=device)
    if kind == "linear":
        return t
    d = SIGMOID_SHARPNESS
    s = torch.sigmoid(d * (2.0 * t - 1.0))
    lo, hi = 1.0 / (1.0 + math.exp(d)), 1.0 / (1.0 + math.exp(-d))
    b = (s - lo) / (hi - lo)
    b[0], b[-1] = 0.0, 1.0
    return b


# --- the reference distribution r(z) ------------------------------------------------------------------------------
class _Gaussian:
    """r(z) = N(loc, L L^T) with batch (B,) or N(0, I): sampling, log density and its gradient in closed form."""

    def __init__(
        self, dz: int, loc: torch.Tensor | None = None, scale: torch.Tensor | None = None, tril: bool = False
    ) -> None:
        self.dz, self.loc, self.scale, self.tril = dz, loc, scale, tril
        if loc is not None and scale is not None and tril:
            eye = torch.eye(dz, dtype=scale.dtype, device=scale.device).expand(scale.shape)
            self.inv_tril: torch.Tensor = torch.linalg.solve_triangular(scale, eye, upper=False)
            self.precision: torch.Tensor = self.inv_tril.transpose(-1, -2) @ self.inv_tril
            self.log_det = torch.diagonal(scale, dim1=-2, dim2=-1).log().sum(-1)
        elif scale is not None:
            self.log_det = scale.log().sum(-1)

    def sample(self, n: int, shape: tuple[int, ...], g: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        eps = torch.randn((n, *shape, self.dz), generator=g, device=like.device, dtype=like.dtype)
        if self.loc is None or self.scale is None:
            return eps
        if self.tril:
            return self.loc + (self.scale @ eps.unsqueeze(-1)).squeeze(-1)
        return self.loc + self.scale * eps

    def whitened(self, z: torch.Tensor) -> torch.Tensor:
        if self.loc is None or self.scale is None:
            return z
        if self.tril:
            return (self.inv_tril @ (z - self.loc).unsqueeze(-1)).squeeze(-1)
        return (z - self.loc) / self.scale

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u = self.whitened(z)
        lp = -0.5 * (u.pow(2).sum(-1) + self.dz * LOG_2PI)
        return lp if self.loc is None else lp - self.log_det

    def grad(self, z: torch.Tensor) -> torch.Tensor:
        if self.loc is None or self.scale is None:
            return -z
        if self.tril:
            return -(self.precision @ (z - self.loc).unsqueeze(-1)).squeeze(-1)
        return -(z - self.loc) / self.scale.pow(2)


def _reference(
    initial: Distribution | None, dz: int, batch: int, device: torch.device, dtype: torch.dtype
) -> _Gaussian:
    if initial is None:
        return _Gaussian(dz)
    if isinstance(initial, Independent) and isinstance(initial.base_dist, Normal):
        loc, scale, tril = initial.base_dist.loc, initial.base_dist.scale, False
    elif isinstance(initial, MultivariateNormal):
        loc, scale, tril = initial.loc, initial.scale_tril, True
    else:
        raise ModelInputError(
            "initial must be None (N(0, I)), a diagonal Normal (Independent(Normal(...), 1)) or a "
            f"MultivariateNormal; got {type(initial).__name__}"
        )
    if tuple(loc.shape) != (batch, dz):
        raise ModelInputError(
            f"initial must have batch shape ({batch},) and event shape ({dz},), one q per x; got loc of shape "
            f"{tuple(loc.shape)}"
        )
    loc = loc.detach().to(device=device, dtype=dtype)
    scale = scale.detach().to(device=device, dtype=dtype)
    if not (torch.isfinite(loc).all() and torch.isfinite(scale).all()):
        raise ModelInputError("initial has NaN or inf in its mean or scale")
    return _Gaussian(dz, loc, scale, tril)


# --- input checks -------------------------------------------------------------------------------------------------
def _model_device(model: Any) -> torch.device | None:
    if isinstance(model, torch.nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None:
            return p.device
    return None


def _prepare_x(model: LatentModel, x: Any, dtype: torch.dtype) -> torch.Tensor:
    check_latent_model(model)
    if dtype not in (torch.float32, torch.float64):
        raise ModelInputError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    try:
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(f"x must be an array of numbers of shape (batch, data_dim); {exc}") from None
    if xt.dim() == 1:
        xt = xt.unsqueeze(0)
    if xt.dim() != 2 or xt.shape[0] == 0:
        raise ModelInputError(f"x must have shape (batch, data_dim) with batch >= 1; got {tuple(xt.shape)}")
    if xt.dtype.is_complex:
        raise ModelInputError(f"x must hold real numbers; got {xt.dtype}")
    xt = xt.to(dtype)
    if not torch.isfinite(xt).all():
        raise ModelInputError("x contains NaN or inf; clean the data first")
    width = describe(model).data_dim
    if width is not None and xt.shape[1] != width:
        raise ModelInputError(f"x has {xt.shape[1]} columns but the model's data dimension is {width}")
    device = _model_device(model)
    return xt if device is None else xt.to(device)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ModelInputError(f"{name} must be a whole number >= {minimum}; got {value!r}")
    return int(value)


# --- the sampler ---------------------------------------------------------------------------------------------------
class _Target:
    """log r(z), log p(x, z) and their gradients for all chains (K', B, Dz) at once."""

    def __init__(self, model: LatentModel, x: torch.Tensor, r: _Gaussian) -> None:
        self.model, self.x, self.r = model, x, r
        self.standard_prior = prior_is_standard_normal(model)

    def evaluate(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log r (K', B) f64, log p(x, z) (K', B) f64, grad log r, grad log p(x, z)) at z."""
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            ll = model_log_likelihood(self.model, self.x, zg)
            if self.standard_prior:
                objective = ll
                lp = -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * LOG_2PI)
            else:
                lp = self.model.log_prior(zg)
                objective = ll + lp
            if ll.shape != z.shape[:-1]:
                raise ModelInputError(
                    f"the model's log_likelihood returned shape {tuple(ll.shape)} for z of shape {tuple(z.shape)}; "
                    f"it must return {tuple(z.shape[:-1])} (one value per sample and x)"
                )
            (grad,) = torch.autograd.grad(objective.sum(), zg, allow_unused=True)
        gj = torch.zeros_like(z) if grad is None else grad.to(z.dtype)
        if self.standard_prior:
            gj = gj - z
        log_joint = ll.detach().double() + lp.detach().double()
        return self.r.log_prob(z).double(), log_joint, self.r.grad(z), gj


class _Chains:
    """The state of all chains (K + pilots, B, Dz) and one annealing step at a time; rows [:chains] score, the rest
    (pilots) set the step size."""

    def __init__(
        self,
        target: _Target,
        z: torch.Tensor,
        chains: int,
        leapfrog_steps: int,
        step_size: float,
        target_acceptance: float,
        persistence: float,
        g: torch.Generator | None,
    ) -> None:
        total, batch, _ = z.shape
        self.target, self.z, self.chains, self.g = target, z, chains, g
        self.leapfrog_steps, self.target_acceptance = leapfrog_steps, target_acceptance
        self.persistence, self.fresh = persistence, math.sqrt(1.0 - persistence**2)
        self.adapt = total > chains
        self.log_w = torch.zeros(chains, batch, dtype=torch.float64, device=z.device)
        self.eps = torch.full((batch,), float(step_size), dtype=z.dtype, device=z.device)
        self.smoothed = torch.full((batch,), float(target_acceptance), dtype=torch.float64, device=z.device)
        self.accept_sum = torch.zeros(batch, dtype=torch.float64, device=z.device)
        self.transitions = 0
        self.a, self.j, self.ga, self.gj = target.evaluate(z)
        self.momentum = self._normal() if persistence > 0 else None

    def _normal(self) -> torch.Tensor:
        return torch.randn(self.z.shape, generator=self.g, device=self.z.device, dtype=self.z.dtype)

    def reweight(self, b_from: float, b_to: float) -> None:
        """log w += log f_{b_to}(z) - log f_{b_from}(z) = (b_to - b_from) (log p(x, z) - log r(z))."""
        k = self.chains
        self.log_w += (b_to - b_from) * (self.j[:k] - self.a[:k])

    def transition(self, b: float) -> None:
        """One HMC transition leaving f_b invariant (momentum partly kept when ``persistence`` > 0, Horowitz 1991:
        p <- persistence p + sqrt(1 - persistence^2) xi, negated on rejection), then the pilots' step-size update."""
        e = self.eps.view(1, -1, 1)
        p0 = self._normal()
        if self.momentum is not None:
            p0 = self.persistence * self.momentum + self.fresh * p0
        p = p0 + (0.5 * e) * ((1.0 - b) * self.ga + b * self.gj)
        z1 = self.z
        for leap in range(self.leapfrog_steps):
            z1 = z1 + e * p
            a1, j1, ga1, gj1 = self.target.evaluate(z1)
            kick = e if leap < self.leapfrog_steps - 1 else 0.5 * e
            p = p + kick * ((1.0 - b) * ga1 + b * gj1)
        log_f0 = self.a + b * (self.j - self.a)
        log_f1 = a1 + b * (j1 - a1)
        log_ratio = log_f1 - log_f0 - 0.5 * (p.pow(2).sum(-1) - p0.pow(2).sum(-1)).double()
        log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=-math.inf)
        u = torch.rand(log_ratio.shape, generator=self.g, device=log_ratio.device, dtype=torch.float64)
        accept = torch.log(u) < log_ratio
        alpha = torch.exp(log_ratio.clamp(max=0.0))
        keep = accept.unsqueeze(-1)
        self.z = torch.where(keep, z1, self.z)
        if self.momentum is not None:
            self.momentum = torch.where(keep, p, -p0)
        self.ga = torch.where(keep, ga1, self.ga)
        self.gj = torch.where(keep, gj1, self.gj)
        self.a = torch.where(accept, a1, self.a)
        self.j = torch.where(accept, j1, self.j)
        self.accept_sum += alpha[: self.chains].mean(0)
        self.transitions += 1
        if self.adapt:
            rate = alpha[self.chains :].mean(0)
            self.smoothed = ACCEPTANCE_SMOOTHING * self.smoothed + (1.0 - ACCEPTANCE_SMOOTHING) * rate
            up = self.smoothed > self.target_acceptance
            factor = torch.where(up, STEP_SIZE_INCREASE, STEP_SIZE_DECREASE).to(self.eps.dtype)
            self.eps = (self.eps * factor).clamp(STEP_SIZE_MIN, STEP_SIZE_MAX)

    def log_normaliser(self) -> torch.Tensor:
        return torch.logsumexp(self.log_w, 0) - math.log(self.chains)

    def acceptance(self) -> torch.Tensor:
        return self.accept_sum / max(self.transitions, 1)

    def result(self, steps: int, schedule: str) -> AISResult:
        ess = effective_sample_size(self.log_w, 0)
        return AISResult(
            log_px=self.log_normaliser(),
            stderr=log_stderr(ess, self.chains),
            ess=ess,
            acceptance=self.acceptance(),
            step_size=self.eps.double(),
            log_weights=self.log_w.clone(),
            steps=steps,
            chains=self.chains,
            leapfrog_steps=self.leapfrog_steps,
            schedule=schedule,
        )


def _anneal(chains: _Chains, betas: torch.Tensor, every: int, schedule: str) -> Iterator[AISProgress]:
    """Move ``chains`` along ``betas`` (weight update, then a transition at the new b except after the last),
    yielding a snapshot every ``every`` steps and at the end. Small problems run on one torch thread
    (``lvm.threads.single_thread``: OpenMP's fork/join costs more than a 20-row GEMM), entered between yields only."""
    steps = betas.shape[0] - 1
    b_list = betas.tolist()
    small = chains.z.device.type == "cpu" and chains.z.shape[0] * chains.z.shape[1] <= SINGLE_THREAD_ROWS
    t = 0
    while t < steps:
        stop = min(steps, t + every)
        with torch.no_grad(), single_thread(small):
            for t in range(t + 1, stop + 1):  # noqa: B020 - t continues where the last block stopped
                chains.reweight(b_list[t - 1], b_list[t])
                if t < steps:
                    chains.transition(b_list[t])
        yield AISProgress(
            step=t,
            steps=steps,
            beta=b_list[t],
            log_normaliser=chains.log_normaliser(),
            acceptance=float(chains.acceptance().mean()),
            step_size=float(chains.eps.double().mean()),
            result=chains.result(steps, schedule) if t == steps else None,
        )


def _check_options(
    chains: Any,
    steps: Any,
    leapfrog_steps: Any,
    pilot_chains: Any,
    step_size: Any,
    target_acceptance: Any,
    persistence: Any,
    every: Any,
) -> tuple[int, int, int, int, int]:
    k = _positive_int("chains", chains)
    t = _positive_int("steps", steps)
    lf = _positive_int("leapfrog_steps", leapfrog_steps)
    pilots = _positive_int("pilot_chains", pilot_chains, minimum=0)
    ev = _positive_int("every", every)
    if not (isinstance(step_size, int | float) and math.isfinite(step_size) and step_size > 0):
        raise ModelInputError(f"step_size must be a positive number; got {step_size!r}")
    if not (isinstance(target_acceptance, int | float) and 0.0 < target_acceptance < 1.0):
        raise ModelInputError(f"target_acceptance must lie strictly between 0 and 1; got {target_acceptance!r}")
    if not (isinstance(persistence, int | float) and 0.0 <= persistence < 1.0):
        raise ModelInputError(f"momentum_persistence must lie in [0, 1); got {persistence!r}")
    return k, t, lf, pilots, ev


def ais_steps(
    model: LatentModel,
    x: Any,
    chains: int = 16,
    steps: int = 1000,
    *,
    leapfrog_steps: int = DEFAULT_LEAPFROG_STEPS,
    step_size: float = 0.05,
    target_acceptance: float = 0.65,
    pilot_chains: int = 4,
    momentum_persistence: float = 0.8,
    schedule: str = "sigmoid",
    initial: Distribution | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    seed: int | None = 0,
    every: int = 50,
) -> Iterator[AISProgress]:
    """AIS for x (B, D) (or one x (D,); numpy or torch): yields an ``AISProgress`` every ``every`` steps and at the
    end, whose last snapshot carries the ``AISResult``. Cancel by not asking for the next snapshot.

    ``chains`` scoring chains per x (their weights make the estimate) and ``pilot_chains`` that adapt the step size
    (module docstring); ``initial``: r(z), None for N(0, I), or a diagonal/full Gaussian q with batch (B,), e.g. an
    encoder's q(z|x). ``dtype``: of the chains and x (float64 needs a model that computes in float64); log weights
    are accumulated in float64. Runs on the model's device (x is moved there)."""
    k, t, lf, pilots, ev = _check_options(
        chains, steps, leapfrog_steps, pilot_chains, step_size, target_acceptance, momentum_persistence, every
    )
    xt = _prepare_x(model, x, dtype)
    betas = annealing_schedule(t, schedule)
    dz = int(model.latent_dim)
    g = make_generator(seed, generator, xt.device)
    r = _reference(initial, dz, xt.shape[0], xt.device, dtype)
    z0 = r.sample(k + pilots, (xt.shape[0],), g, xt)
    state = _Chains(_Target(model, xt, r), z0, k, lf, step_size, target_acceptance, momentum_persistence, g)
    yield from _anneal(state, betas, ev, schedule)


def ais(model: LatentModel, x: Any, chains: int = 16, steps: int = 1000, **options: Any) -> AISResult:
    """Run ``ais_steps`` to the end and return its ``AISResult`` (the options are ``ais_steps``'s)."""
    options.setdefault("every", int(steps) if isinstance(steps, int | np.integer) and steps > 0 else 1)
    last: AISProgress | None = None
    for last in ais_steps(model, x, chains, steps, **options):  # noqa: B007 - the last snapshot is the result
        pass
    assert last is not None and last.result is not None  # steps >= 1 always yields a final snapshot
    return last.result


# --- bidirectional Monte Carlo -------------------------------------------------------------------------------------
def simulate(model: LatentModel, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, x): n draws z ~ N(0, I) and x ~ p(x|z) from a model with a standard normal prior and a Bernoulli or
    Gaussian decoder fast path (``bernoulli_logits`` / ``gaussian_params``)."""
    n = _positive_int("n", n)
    if not prior_is_standard_normal(model):
        raise ModelInputError("simulating data needs a standard normal prior p(z) = N(0, I)")
    caps = describe(model)
    device = _model_device(model) or torch.device("cpu")
    z = torch.randn(n, caps.latent_dim, generator=generator, device=device)
    with torch.no_grad():
        if caps.decoder == "bernoulli":
            logits = model.bernoulli_logits(z)  # type: ignore[attr-defined]
            u = torch.rand(logits.shape, generator=generator, device=device, dtype=logits.dtype)
            x = (u < torch.sigmoid(logits)).to(logits.dtype)
        elif caps.decoder == "gaussian":
            mean, log_var = model.gaussian_params(z)  # type: ignore[attr-defined]
            noise = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype)
            x = mean + torch.exp(0.5 * log_var) * noise
        else:
            raise ModelInputError(
                "simulating data needs a decoder with a Bernoulli or Gaussian fast path (bernoulli_logits or "
                f"gaussian_params); this model's decoder is {caps.decoder}"
            )
    return z.to(x.dtype), x


def bdmc(
    model: LatentModel,
    x: Any,
    z_true: Any,
    chains: int = 16,
    steps: int = 1000,
    *,
    leapfrog_steps: int = DEFAULT_LEAPFROG_STEPS,
    step_size: float = 0.05,
    target_acceptance: float = 0.65,
    pilot_chains: int = 4,
    momentum_persistence: float = 0.8,
    schedule: str = "sigmoid",
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    seed: int | None = 0,
) -> BDMCResult:
    """Bidirectional Monte Carlo on x (B, D) simulated with latents ``z_true`` (B, Dz) (exact posterior samples):
    forward AIS from N(0, I) (lower bound) and reverse AIS from z_true, b = 1 -> 0 (upper bound), same schedule."""
    k, t, lf, pilots, _ = _check_options(
        chains, steps, leapfrog_steps, pilot_chains, step_size, target_acceptance, momentum_persistence, 1
    )
    xt = _prepare_x(model, x, dtype)
    dz = int(model.latent_dim)
    zt = torch.as_tensor(np.asarray(z_true) if not isinstance(z_true, torch.Tensor) else z_true)
    if zt.dim() == 1:
        zt = zt.unsqueeze(0)
    if tuple(zt.shape) != (xt.shape[0], dz):
        raise ModelInputError(f"z_true must have shape ({xt.shape[0]}, {dz}), one latent per x; got {tuple(zt.shape)}")
    zt = zt.to(device=xt.device, dtype=dtype)
    if not torch.isfinite(zt).all():
        raise ModelInputError("z_true contains NaN or inf")
    g = make_generator(seed, generator, xt.device)
    forward = ais(
        model,
        xt,
        k,
        t,
        leapfrog_steps=lf,
        step_size=step_size,
        target_acceptance=target_acceptance,
        pilot_chains=pilots,
        momentum_persistence=momentum_persistence,
        schedule=schedule,
        dtype=dtype,
        generator=g,
    )
    r = _reference(None, dz, xt.shape[0], xt.device, dtype)
    betas = annealing_schedule(t, schedule).flip(0)
    z0 = zt.unsqueeze(0).expand(k + pilots, -1, -1).clone()
    state = _Chains(_Target(model, xt, r), z0, k, lf, step_size, target_acceptance, momentum_persistence, g)
    for _ in _anneal(state, betas, t, schedule):
        pass
    reverse_log_w = state.log_w
    upper = -(torch.logsumexp(reverse_log_w, 0) - math.log(k))
    lower = forward.log_px
    return BDMCResult(
        lower=lower,
        upper=upper,
        gap=upper - lower,
        forward=forward,
        reverse_log_weights=reverse_log_w,
        steps=t,
        chains=k,
    )


def bdmc_simulated(
    model: LatentModel, n: int, chains: int = 16, steps: int = 1000, *, seed: int | None = 0, **options: Any
) -> tuple[torch.Tensor, torch.Tensor, BDMCResult]:
    """Simulate n pairs (z, x) from the model (``simulate``) and run ``bdmc`` on them: (z, x, result)."""
    g = make_generator(0 if seed is None else seed, None, _model_device(model) or "cpu")
    z, x = simulate(model, n, g)
    return z, x, bdmc(model, x, z, chains, steps, generator=g, **options)
