"""Inpainting by self-normalised importance sampling over z: any latent dimension, any pixel-factorised decoder.

Observe the pixels x_O (mask m, 1 = observed). A decoder that factorises over pixels, p(x|z) = prod_j p(x_j|z)
(Bernoulli logits or a diagonal Gaussian), integrates the missing pixels out exactly:
log p(x_O|z) = sum_j m_j log p(x_j|z). With S draws z_s ~ q(z) from a proposal q,

    log w~_s = log p(z_s) + log p(x_O|z_s) - log q(z_s),      w_s = w~_s / sum_t w~_t,
    p(x_O) ~= (1/S) sum_s w~_s                                  (unbiased; its log is reported, biased low;
                                                                 standard error of the log ~ sqrt((S/ESS - 1)/S)),
    p(x_M|x_O) = E_{p(z|x_O)}[p(x_M|z)] ~= sum_s w_s p(x_M|z_s), so the completion E[x_j|x_O] ~= sum_s w_s E[x_j|z_s],
    ESS = 1 / sum_s w_s^2                                       (Kish's effective sample size, 1..S).

Samples of p(x_M|x_O): resample z_s with probabilities w_s, then x_M ~ p(x_M|z_s). The estimates are consistent
(they converge to the exact values as S grows); with an ESS of a few they are poor, and the ESS says so.

Proposals: ``"prior"``, z ~ N(0, I) (the prior of the app's models; any other prior is corrected by its weight), or
``"encoder"``, the model's q(z|x~) of the image x~ with the missing pixels filled with 0.5 (amortised inference
never saw holes, so it can be far off: the ESS tells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lvm.errors import ModelInputError
from lvm.latent_space import model_device
from lvm.models.base import LOG_2PI
from lvm.models.capabilities import describe

PROPOSALS = ("prior", "encoder")
MISSING_FILL = 0.5  # what the encoder proposal sees in the missing pixels


@dataclass(frozen=True, eq=False)
class SnisResult:
    """One SNIS inpainting: ``x`` (D,), ``mask`` (D,) bool (True = observed), ``z`` (S, d) the proposals' draws,
    ``log_weights`` (S,) normalised, ``ess``, ``log_p_obs`` the log of the unbiased estimate of p(x_O), ``predictive``
    (D,) sum_s w_s E[x|z_s], ``completion`` (D,) x_O with the predictive in the missing pixels, ``samples`` (R, D)
    and ``sample_means`` (R, D) completions from resampled z (sampled pixels, or E[x|z]), ``sample_z`` (R, d), and the
    ``proposal`` used."""

    x: torch.Tensor
    mask: torch.Tensor
    z: torch.Tensor
    log_weights: torch.Tensor
    ess: float
    log_p_obs: float
    predictive: torch.Tensor
    completion: torch.Tensor
    samples: torch.Tensor
    sample_means: torch.Tensor
    sample_z: torch.Tensor
    proposal: str

    @property
    def n_proposals(self) -> int:
        return int(self.z.shape[0])

    @property
    def log_p_obs_se(self) -> float:
        """The delta-method standard error of ``log_p_obs``: sd(w~) / (sqrt(S) mean(w~)) = sqrt((S / ESS - 1) / S)."""
        n = self.n_proposals
        return math.sqrt(max(n / self.ess - 1.0, 0.0) / n)


def snis_problem(model: Any) -> str | None:
    """Why ``model`` cannot be inpainted by SNIS (None: it can): it needs a pixel-factorised decoder."""
    caps = describe(model)
    if caps.decoder == "autoregressive":
        return (
            "inpainting needs a pixel-factorised decoder; this model's autoregressive decoder makes each pixel depend "
            "on the ones before it, so p(x_O|z) has no closed form"
        )
    if caps.decoder not in ("bernoulli", "gaussian"):
        return (
            "inpainting needs a pixel-factorised decoder (`bernoulli_logits` or `gaussian_params`): with "
            "`log_likelihood` alone the missing pixels cannot be integrated out"
        )
    return None


def default_proposal(model: Any) -> str:
    """The encoder when the model has one, else the prior."""
    return "encoder" if describe(model).has_encoder else "prior"


def _pixel_terms(model: Any, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x_j|z) (S, D) per pixel, E[x_j|z] (S, D)) for z (S, d), x (D,)."""
    if describe(model).decoder == "bernoulli":
        logits = model.bernoulli_logits(z)
        return x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits), torch.sigmoid(logits)
    mean, log_var = model.gaussian_params(z)
    return -0.5 * ((x - mean) ** 2 * torch.exp(-log_var) + log_var + LOG_2PI), mean


def _draw_pixels(model: Any, z: torch.Tensor, mean: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """x ~ p(x|z) for z (R, d) with decoder means ``mean`` (R, D): Bernoulli bits, or mean + sigma * eps."""
    if describe(model).decoder == "bernoulli":
        u = torch.rand(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        return (u < mean).to(mean.dtype)
    _, log_var = model.gaussian_params(z)
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
    return mean + torch.exp(0.5 * log_var) * eps


def _proposal(model: Any, proposal: str, x: torch.Tensor, m: torch.Tensor, d: int) -> torch.distributions.Distribution:
    """q(z), event shape (d,): N(0, I), or the encoder's q(z|x~) with the missing pixels filled with MISSING_FILL."""
    if proposal == "prior":
        zeros = torch.zeros(d, dtype=x.dtype, device=x.device)
        return torch.distributions.Independent(torch.distributions.Normal(zeros, torch.ones_like(zeros)), 1)
    missing = describe(model).missing("encoder")
    if missing:
        raise ModelInputError(f"the encoder proposal needs an encoder: {missing}")
    filled = torch.where(m.bool(), x, torch.full_like(x, MISSING_FILL))
    q: torch.distributions.Distribution = model.encode(filled[None])
    if tuple(q.batch_shape) != (1,) or tuple(q.event_shape) != (d,):
        raise ModelInputError(
            f"the model's encode(x) must return q(z|x) with batch shape (1,) and event shape ({d},) for one image; "
            f"got batch {tuple(q.batch_shape)}, event {tuple(q.event_shape)}"
        )
    return q


@torch.no_grad()
def snis_inpaint(
    model: Any,
    x: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray,
    n_proposals: int = 2048,
    n_samples: int = 16,
    proposal: str = "prior",
    generator: torch.Generator | None = None,
    chunk: int = 1024,
) -> SnisResult:
    """SNIS over z with ``n_proposals`` draws from ``proposal`` ("prior" or "encoder"), and ``n_samples``
    completions by resampling (see the module docstring). ``x`` (D,) pixel values, ``mask`` (D,) 1 = observed;
    the decoder runs in chunks of ``chunk`` draws. Random numbers come from ``generator`` (CPU)."""
    problem = snis_problem(model)
    if problem:
        raise ModelInputError(problem)
    if proposal not in PROPOSALS:
        raise ModelInputError(f"proposal must be one of {PROPOSALS}, got {proposal!r}")
    if n_proposals < 1 or n_samples < 0 or chunk < 1:
        raise ModelInputError("n_proposals and chunk must be at least 1 and n_samples at least 0")
    caps = describe(model)
    device = model_device(model)
    xt = torch.as_tensor(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32))
    mt = torch.as_tensor(np.asarray(mask.detach().cpu() if torch.is_tensor(mask) else mask, dtype=np.float32))
    if xt.dim() != 1 or mt.shape != xt.shape or (caps.data_dim is not None and xt.shape[0] != caps.data_dim):
        want = caps.data_dim if caps.data_dim is not None else "D"
        raise ModelInputError(f"x and mask must both have shape ({want},); got {tuple(xt.shape)} and {tuple(mt.shape)}")
    if not torch.isfinite(xt).all():
        raise ModelInputError("x must be finite")
    if ((mt != 0) & (mt != 1)).any():
        raise ModelInputError("the mask must hold 0 (missing) and 1 (observed) only")
    xt, mt = xt.to(device), mt.to(device)
    d = caps.latent_dim
    q = _proposal(model, proposal, xt, mt, d)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):  # (q.sample draws from the global generator: seeded from ``generator``)
        torch.manual_seed(seed)
        z = q.sample(torch.Size([n_proposals]))
    z = z.reshape(n_proposals, d) if proposal == "prior" else z[:, 0, :]
    log_q = q.log_prob(z if proposal == "prior" else z[:, None, :]).reshape(n_proposals)
    log_w, means = [], []
    for i in range(0, n_proposals, chunk):
        zc = z[i : i + chunk]
        ll, mean = _pixel_terms(model, zc, xt)
        log_w.append(model.log_prior(zc).reshape(-1) + (ll * mt).sum(-1) - log_q[i : i + chunk])
        means.append(mean)
    log_w_raw = torch.cat(log_w).double()
    if not torch.isfinite(log_w_raw).any():
        raise ModelInputError("every importance weight is zero or not finite: the proposal misses p(z | x_O)")
    log_w_raw = torch.nan_to_num(log_w_raw, nan=-math.inf)
    lse = torch.logsumexp(log_w_raw, 0)
    log_weights = log_w_raw - lse
    w = log_weights.exp()
    mean_all = torch.cat(means)
    predictive = (w.to(mean_all.dtype) @ mean_all).to(xt.dtype)
    keep = mt.bool()
    idx = torch.multinomial(w.float().cpu(), n_samples, replacement=True, generator=generator).to(device)
    zs, ms = z.index_select(0, idx), mean_all.index_select(0, idx).to(xt.dtype)
    drawn = _draw_pixels(model, zs, ms, generator).to(xt.dtype) if n_samples else ms
    return SnisResult(
        x=xt,
        mask=keep,
        z=z,
        log_weights=log_weights.float(),
        ess=float(1.0 / (w**2).sum()),
        log_p_obs=float(lse - math.log(n_proposals)),
        predictive=predictive,
        completion=torch.where(keep, xt, predictive),
        samples=torch.where(keep, xt, drawn),
        sample_means=torch.where(keep, xt, ms),
        sample_z=zs,
        proposal=proposal,
    )
