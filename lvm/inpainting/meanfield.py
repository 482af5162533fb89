"""Mean-field variational inpainting: q(x_M; phi) = prod_{i in M} phi_i^{x_i} (1 - phi_i)^{1 - x_i}.

For the observed pixels x_O, every q over the missing pixels x_M gives a lower bound (Jensen):

    ELBO(phi) = E_q[log p(x_O, x_M)] + H(q) <= log p(x_O),
    log p(x_O) - ELBO(phi) = KL(q(x_M) || p(x_M | x_O))  (the gap),
    H(q) = -sum_{i in M} [phi_i log phi_i + (1 - phi_i) log(1 - phi_i)]   (closed form).

The expectation is estimated with K completions x^k ~ q, each scored by its exact log p(x_O, x^k_M) = log p(x^k)
(quadrature on the decoded grid: one GEMM for all K). ``stderr`` = std_k(log p(x^k)) / sqrt(K).

Maximising over phi (``optimise_phi``), in logit space theta = logit(phi). Write f(x) = log p(x) and

    Delta_i(x) = f(x with x_i = 1) - f(x with x_i = 0) = logit p(x_i = 1 | x_{-i})     (does not depend on x_i).

Because E_q[f] is affine in each phi_i, dE_q[f]/dphi_i = E_q[Delta_i] exactly, and dH/dphi_i = -theta_i, so

    dELBO/dtheta_i = phi_i (1 - phi_i) (E_q[Delta_i] - theta_i),

and the natural gradient (the Fisher information of Bernoulli(sigmoid(theta_i)) is phi_i (1 - phi_i)) is
E_q[Delta_i] - theta_i: its zero is the mean-field fixed point theta_i = E_{q_{-i}}[logit p(x_i = 1 | x_{-i})].
Delta_i is exact on the grid for every pixel at once. With a_g = log p(x, z_g) and w_g = softmax(a)_g (the grid
posterior of the completion x), flipping pixel i adds +-L_gi to a_g, so

    Delta_i(x) = log sum_g w_g e^{L_gi}          if x_i = 0,
    Delta_i(x) = -log sum_g w_g e^{-L_gi}        if x_i = 1

(``log_odds``: after the GEMM for a, one GEMM w (K x C) @ e^{+-(L - shift)} (C x |M|), ``LogitRange``). The sums run
over the C cells where some completion of the batch has log w_g > -T, T = R + 2 log G + 30, R the largest range
over the grid of one missing pixel's logit: each kept sum is >= w_{g*} e^{L_{g*i}} >= e^{L_{g*i}} / G (g* the
completion's best cell), the left-out cells add at most G e^{-T} e^{max_g L_gi}, so Delta_i is off by less than
G^2 e^{R - T} = e^-30. The GEMM for a first runs over a ``GridSupport`` (cells within ``SUPPORT_NATS`` of the best
for x_O); where its bound on the left-out cells (``log_odds``) does not hold, on the whole grid.

Unlike the score-function estimator (f_k - b_k)(x^k_i - phi_i) with a leave-one-out baseline b_k (used before),
whose noise is the variation of f over all |M| pixels, this Rao-Blackwellised estimate 1/K sum_k Delta_i(x^k) only
varies with what the other pixels say about pixel i. Measured at the predictive on the shipped model (digit 12 of
the bundled test set, top half hidden, K = 32): per-coordinate signal/noise 0.03 for the score function (the
sign right for 20% of the pixels; Adam then moved every logit by ~lr per step at random, downhill from -50.4 to
-53.5) and ~120 for Delta. The update is a stochastic natural-gradient step (damped parallel mean-field / SVI) with
a Robbins-Monro step size:

    theta <- clamp(theta + rho_t (1/K sum_k Delta(x^k) - theta), +-logit(1 - clip)),
    rho_t = lr (1 + (t - 1) / decay)^-0.6          (sum rho_t = inf, sum rho_t^2 < inf);

rho = 1 is the undamped parallel update theta <- E[Delta]. ``clip`` = 1e-6 (it was 1e-3, which alone cost 1.4 nats
at the predictive there: -48.97 -> -50.37). The mean-field ELBO has local optima (from phi = 0.5 an iterate can
settle on another digit's mode); the steps only promise a stationary point.

Every ``report_every`` steps (and at the start and the end) ELBO(phi_t) is estimated with common random numbers,
a fixed set of uniforms U (``select_samples`` x D), x^k = [U_k < phi_t] on M: differences between iterates then
have a small variance, and the best phi so far (the start included) is kept. Snapshots carry the best phi; the
final one re-estimates its ELBO with ``eval_samples`` fresh completions (independent of the selection, unbiased).
The generator yields ``MeanFieldSnapshot``s and can be stopped between yields.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import numpy.typing as npt
import torch

from lvm.errors import ModelInputError
from lvm.inpainting.masks import MaskLike
from lvm.inpainting.posterior import GridSupport, ImageLike, InpaintGrid, one_thread

PHI_PRESETS = ("half", "ones", "template", "predictive")
TEMPLATE_CLIP = (0.02, 0.98)
SUPPORT_NATS = 150.0  # optimise_phi's cells (``log_odds``): enough for a q near p(x_M | x_O) on the shipped model
SUPPORT_RETRY = 10  # steps on the whole grid after the support did not hold a batch


@dataclass(frozen=True)
class ElboEstimate:
    """ELBO(phi) = ``expected_log_joint`` + ``entropy``; ``stderr`` of the Monte Carlo part; K = ``n_samples``."""

    elbo: float
    stderr: float
    expected_log_joint: float
    entropy: float
    n_samples: int


@dataclass(frozen=True, eq=False)
class MeanFieldSnapshot:
    """One report of ``optimise_phi``: ``phi`` (D,) numpy (observed entries are 0 and ignored) is the best phi so
    far (found at ``best_step``; 0 = the start) and ``elbo`` its common-random-number ELBO estimate (the final
    snapshot, ``done``, re-estimates it with ``eval_samples`` fresh completions); ``current_elbo`` is the same
    estimate for this step's iterate and ``start_elbo`` for the start; log p(x_O) and the gap
    log p(x_O) - ELBO = KL(q || p(x_M | x_O))."""

    step: int
    steps: int
    phi: np.ndarray
    elbo: float
    stderr: float
    log_p_obs: float
    gap: float
    done: bool = False
    best_step: int = 0
    current_elbo: float = float("nan")
    start_elbo: float = float("nan")
    step_size: float = float("nan")

    @property
    def progress(self) -> float:
        return self.step / max(self.steps, 1)


def bernoulli_entropy(phi: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """H(q) = sum over missing pixels of the binary entropy of phi (nats)."""
    p = phi.double().clamp(0.0, 1.0)
    h: torch.Tensor = -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))
    return (h * missing.double()).sum()


def sample_completions(
    x: torch.Tensor, missing: torch.Tensor, phi: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """K completions (K, D): observed pixels from x, missing pixels ~ Bernoulli(phi)."""
    u = torch.rand((k, x.shape[-1]), generator=generator, device=x.device)
    return torch.where(missing, (u < phi).float(), x)


def _prepare(
    grid: InpaintGrid, x: ImageLike, mask: MaskLike, phi: torch.Tensor | npt.ArrayLike
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    xt, m = grid.prepare(x, mask)
    if xt.dim() != 1:
        raise ModelInputError("the mean-field ELBO takes one image")
    missing = m < 0.5
    phi = torch.as_tensor(np.asarray(phi.detach().cpu() if torch.is_tensor(phi) else phi, dtype=np.float32))
    phi = phi.reshape(-1).to(xt.device)
    if phi.numel() == int(missing.sum()) and phi.numel() != xt.numel():
        full = torch.zeros_like(xt)
        full[missing] = phi
        phi = full
    if phi.numel() != xt.numel():
        raise ModelInputError(f"phi must have {xt.numel()} entries (or one per missing pixel); got {phi.numel()}")
    if not torch.isfinite(phi).all() or phi.min() < 0 or phi.max() > 1:
        raise ModelInputError("phi must lie in [0, 1]")
    return xt, m, missing, phi


@torch.no_grad()
def meanfield_elbo(
    grid: InpaintGrid,
    x: ImageLike,
    mask: MaskLike,
    phi: torch.Tensor | npt.ArrayLike,
    n_samples: int = 256,
    generator: torch.Generator | None = None,
    chunk: int = 256,
) -> ElboEstimate:
    """Monte Carlo ELBO(phi) with exact log p(x^k) per sampled completion (see the module docstring)."""
    xt, m, missing, phi = _prepare(grid, x, mask, phi)
    support = grid.support(xt, m)
    vals = []
    for i in range(0, n_samples, chunk):
        xs = sample_completions(xt, missing, phi, min(chunk, n_samples - i), generator)
        vals.append(support.log_marginal(xs).double())
    f = torch.cat(vals)
    ent = float(bernoulli_entropy(phi, missing))
    mean = float(f.mean())
    se = float(f.std(unbiased=True) / math.sqrt(len(f))) if len(f) > 1 else float("nan")
    return ElboEstimate(elbo=mean + ent, stderr=se, expected_log_joint=mean, entropy=ent, n_samples=len(f))


def preset_phi(
    name: str,
    x: ImageLike,
    mask: MaskLike,
    template: ImageLike | None = None,
    clip: tuple[float, float] = TEMPLATE_CLIP,
    predictive: ImageLike | None = None,
) -> npt.NDArray[np.float32]:
    """phi (D,) for a preset: ``half`` (0.5 everywhere), ``ones`` (1 everywhere), ``template`` (a template image,
    e.g. another test-set 9, clipped to ``clip``) or ``predictive`` (p(x_j = 1 | x_O), clipped). Entries at
    observed pixels are set to 0 (ignored)."""
    d = np.asarray(x).reshape(-1).shape[0]
    from lvm.inpainting.masks import as_mask

    missing = ~as_mask(mask, d)
    if name == "half":
        phi = np.full(d, 0.5)
    elif name == "ones":
        phi = np.ones(d)
    elif name in ("template", "predictive"):
        src = template if name == "template" else predictive
        if src is None:
            raise ModelInputError(
                f"phi preset {name!r} needs a {'template image' if name == 'template' else 'predictive'}"
            )
        src = np.asarray(src.detach().cpu() if torch.is_tensor(src) else src, dtype=np.float64).reshape(-1)
        if src.size != d:
            raise ModelInputError(f"the {name} has {src.size} pixels; the image has {d}")
        phi = np.clip(src, *clip)
    else:
        raise ModelInputError(f"unknown phi preset {name!r}; choose one of {', '.join(PHI_PRESETS)}")
    return np.where(missing, phi, 0.0).astype(np.float32)


@dataclass(eq=False)
class LogitRange:
    """For the pixels ``cols``: lmax_i = max_g L_gi and lmin_i = min_g L_gi over the whole grid, and the ``dtype``
    of ``log_odds``' sums of w_g e^{+-(L_gi - lmax_i / lmin_i)} (terms in (0, 1], the largest >= e^{-R - log G}):
    float32 where R + 2 log G <= 70 (R = max_i lmax_i - lmin_i), so that the terms float32 flushes to zero, at most
    G of them below e^-87, change a sum by less than e^-17 of itself; float64 otherwise."""

    cols: torch.Tensor
    lmax: torch.Tensor
    lmin: torch.Tensor
    dtype: torch.dtype

    @property
    def span(self) -> float:
        return float((self.lmax - self.lmin).max()) if self.cols.numel() else 0.0

    @classmethod
    @torch.no_grad()
    def build(cls, grid: InpaintGrid, cols: torch.Tensor) -> LogitRange:
        cols = cols.to(grid.device)
        lc = grid.logits.index_select(1, cols)
        lmax, lmin = lc.max(0).values.double(), lc.min(0).values.double()
        span = float((lmax - lmin).max()) if cols.numel() else 0.0
        dtype = torch.float32 if span + 2 * math.log(lc.shape[0]) <= 70.0 else torch.float64
        return cls(cols=cols, lmax=lmax, lmin=lmin, dtype=dtype)


@torch.no_grad()
def log_odds(
    grid: InpaintGrid,
    xs: torch.Tensor,
    cols: torch.Tensor,
    support: GridSupport | None = None,
    bounds: LogitRange | None = None,
    margin: float = 30.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(f (K,), Delta (K, |cols|)) for complete images ``xs`` (K, D): f_k = log p(x^k) and
    Delta_ki = log p(x^k with x_i = 1) - log p(x^k with x_i = 0) for the pixels i = ``cols`` (float64).

    Delta_i = lmax_i + log sum_g w_g e^{L_gi - lmax_i} where x_i = 0 and -lmin_i - log sum_g w_g e^{lmin_i - L_gi}
    where x_i = 1, w = the grid posterior of x^k (module docstring; ``bounds`` = ``LogitRange.build(grid, cols)``,
    which also picks the precision). The sums keep the cells with log w_g > -T for some k,
    T = R + 2 log G + ``margin``, which is off by at most e^-margin. With a ``support``, the cells outside it are
    bounded first: they hold at most e^{r_k} = e^{log_dropped} / sum_{g in support} e^{a_g} of p(x^k), so they move
    the sum for Delta_ki by at most the factor 1 + e^{r_k + M_i - S_ki} (M_i = lmax_i or -lmin_i, S_ki = log of the
    kept sum); where any of these exceeds e^-margin the whole batch is redone on the whole grid (exact either way)."""
    f, delta, _ = _log_odds(grid, xs, support, bounds or LogitRange.build(grid, cols), margin)
    return f, delta


def _log_odds(
    grid: InpaintGrid, xs: torch.Tensor, support: GridSupport | None, bounds: LogitRange, margin: float
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``log_odds`` and whether the support sufficed."""
    xs = xs.to(grid.device)
    cut = bounds.span + 2 * math.log(grid.points.shape[0]) + margin
    on_one = xs.index_select(1, bounds.cols) > 0.5
    if support is not None:
        a = xs @ support.logits.T + support.const  # (K, C) = log p(x^k, z_g) on C cells
        lse = torch.logsumexp(a, -1)
        rest = (support.log_dropped - lse).double()
        if bool((rest < -margin).all()):
            delta = _log_odds_on(a, lse, support.logits, bounds, on_one, cut)
            s = torch.where(on_one, -delta, delta)  # S_ki
            m = torch.where(on_one, -bounds.lmin, bounds.lmax)  # M_i
            if bool((rest.unsqueeze(-1) + m - s < -margin).all()):
                return lse.double() + grid.log_cell, delta, True
    a = grid.log_joint_full(xs)
    lse = torch.logsumexp(a, -1)
    return lse.double() + grid.log_cell, _log_odds_on(a, lse, grid.logits, bounds, on_one, cut), False


def _log_odds_on(
    a: torch.Tensor, lse: torch.Tensor, logits: torch.Tensor, bounds: LogitRange, on_one: torch.Tensor, cut: float
) -> torch.Tensor:
    """Delta (K, |cols|) from a = log p(x^k, z_g) (K, C) on cells with ``logits`` (C, D), the cells with
    log w < -cut in every row left out (``log_odds``)."""
    lw = a - lse.unsqueeze(-1)
    keep = torch.nonzero(lw.max(0).values > -cut).flatten()
    w = lw.index_select(1, keep).exp().to(bounds.dtype)  # (K, C')
    lc = logits.index_select(1, bounds.cols).index_select(0, keep).to(bounds.dtype)  # (C', |cols|)
    lmax, lmin = bounds.lmax.to(bounds.dtype), bounds.lmin.to(bounds.dtype)
    to_one = torch.log(w @ torch.exp(lc - lmax)).double() + bounds.lmax  # Delta where x_i = 0
    to_zero = -(torch.log(w @ torch.exp(lmin - lc)).double() - bounds.lmin)  # Delta where x_i = 1
    return torch.where(on_one, to_zero, to_one)


class _Best(TypedDict):
    """The best iterate of ``optimise_phi`` so far."""

    theta: torch.Tensor
    elbo: float
    stderr: float
    step: int


def optimise_phi(
    grid: InpaintGrid,
    x: ImageLike,
    mask: MaskLike,
    phi0: torch.Tensor | npt.ArrayLike | None = None,
    steps: int = 300,
    n_samples: int = 32,
    lr: float = 1.0,
    seed: int = 0,
    eval_samples: int = 512,
    report_every: int = 5,
    log_p_obs: float | None = None,
    clip: float = 1e-6,
    single_thread: bool | None = None,
    decay: float = 10.0,
    select_samples: int = 256,
) -> Iterator[MeanFieldSnapshot]:
    """Maximise ELBO(phi) over the missing pixels' phi by stochastic natural-gradient steps with the exact
    per-pixel (Rao-Blackwellised) gradient, keeping the best phi by a common-random-number ELBO estimate (module
    docstring). ``phi0`` (default: the predictive p(x_j = 1 | x_O)) is clipped to [clip, 1 - clip] and phi stays
    there; ``lr`` in (0, 1] is the first step rho_1 (1 = the undamped parallel mean-field update), halving after
    ~2 ``decay`` steps; each step uses ``n_samples`` completions. Every ``report_every`` steps the iterate is
    scored on ``select_samples`` fixed completions and a snapshot of the best phi is yielded; a final one
    (``done``) re-estimates the best phi's ELBO with ``eval_samples`` fresh completions. Stop the generator
    between yields to cancel. ``single_thread`` (default: on CPU) runs each step on one thread (``one_thread``),
    which measured faster on a busy 2-core machine."""
    if single_thread is None:
        single_thread = grid.device.type == "cpu"
    if n_samples < 1 or select_samples < 1 or report_every < 1:
        raise ModelInputError("optimise_phi needs n_samples, select_samples and report_every of at least 1")
    if not 0.0 < lr <= 1.0:
        raise ModelInputError(f"lr is the natural-gradient step size and must lie in (0, 1]; got {lr}")
    if not 0.0 < clip < 0.5:
        raise ModelInputError(f"clip must lie in (0, 0.5); got {clip}")
    g = torch.Generator(device="cpu").manual_seed(seed)
    if phi0 is None:
        phi0 = grid.infer(x, mask, n_samples=0).predictive
    xt, m, missing, phi = _prepare(grid, x, mask, phi0)
    if log_p_obs is None:
        log_p_obs = grid.infer(xt, m, n_samples=0).log_p_obs
    cols = torch.nonzero(missing).flatten()
    support = grid.support(xt, m, threshold=SUPPORT_NATS)
    lim = math.log((1 - clip) / clip)
    theta = torch.zeros(xt.shape[0], dtype=torch.float64, device=xt.device)
    theta[cols] = torch.logit(phi[cols].double().clamp(clip, 1 - clip))
    with one_thread(single_thread):
        bounds = LogitRange.build(grid, cols)
        u_sel = torch.rand((select_samples, xt.shape[0]), generator=g).to(xt.device)

    def crn_elbo(phi: torch.Tensor) -> tuple[float, float]:
        """ELBO(phi) on the fixed uniforms u_sel: (estimate, stderr)."""
        vals = []
        for i in range(0, select_samples, 256):
            xs = torch.where(missing, (u_sel[i : i + 256] < phi.float()).float(), xt)
            vals.append(support.log_marginal(xs).double())
        f = torch.cat(vals)
        se = float(f.std() / math.sqrt(len(f))) if len(f) > 1 else float("nan")
        return float(f.mean()) + float(bernoulli_entropy(phi, missing)), se

    with one_thread(single_thread):
        start_elbo, start_se = crn_elbo(torch.sigmoid(theta))
    best: _Best = {"theta": theta.clone(), "elbo": start_elbo, "stderr": start_se, "step": 0}
    state = {"retry": 1}

    @torch.no_grad()
    def step_once(step: int, theta: torch.Tensor) -> tuple[torch.Tensor, float]:
        phi = torch.sigmoid(theta)
        u = torch.rand((n_samples, xt.shape[0]), generator=g).to(xt.device)
        xs = torch.where(missing, (u < phi.float()).float(), xt)
        try_support = step >= state["retry"]
        _, delta, ok = _log_odds(grid, xs, support if try_support else None, bounds, 30.0)  # (K, |M|)
        if try_support and not ok:
            state["retry"] = step + SUPPORT_RETRY  # the completions left the support: whole grid a while
        rho = lr * (1.0 + (step - 1) / decay) ** -0.6
        new = theta.clone()
        new[cols] = (theta[cols] + rho * (delta.mean(0) - theta[cols])).clamp(-lim, lim)
        return new, rho

    for step in range(1, steps + 1):
        with one_thread(single_thread):
            theta, rho = step_once(step, theta)
            scored = step % report_every == 0 or step == steps
            if scored:
                cur, cur_se = crn_elbo(torch.sigmoid(theta))
                if cur > best["elbo"]:
                    best = {"theta": theta.clone(), "elbo": cur, "stderr": cur_se, "step": step}
        if scored and step < steps:
            yield MeanFieldSnapshot(
                step=step,
                steps=steps,
                phi=_phi_np(torch.sigmoid(best["theta"]), missing),
                elbo=best["elbo"],
                stderr=best["stderr"],
                log_p_obs=log_p_obs,
                gap=log_p_obs - best["elbo"],
                best_step=best["step"],
                current_elbo=cur,
                start_elbo=start_elbo,
                step_size=rho,
            )
    phi = torch.sigmoid(best["theta"])
    with one_thread(single_thread):
        est = meanfield_elbo(grid, xt, m, phi.float(), n_samples=eval_samples, generator=g)
    yield MeanFieldSnapshot(
        step=steps,
        steps=steps,
        phi=_phi_np(phi, missing),
        elbo=est.elbo,
        stderr=est.stderr,
        log_p_obs=log_p_obs,
        gap=log_p_obs - est.elbo,
        done=True,
        best_step=best["step"],
        current_elbo=cur if steps else start_elbo,
        start_elbo=start_elbo,
        step_size=rho if steps else float("nan"),
    )


def _phi_np(phi: torch.Tensor, missing: torch.Tensor) -> np.ndarray:
    return torch.where(missing, phi, torch.zeros_like(phi)).float().cpu().numpy()
