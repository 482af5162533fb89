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

``"fitted"`` (the default): a diagonal Gaussian fitted to p(z | x_O) itself, then widened by ``FIT_WIDEN``: the best of
``FIT_STARTS`` starting points (the encoder's mean and draws from its q, or from the prior) after ``MODE_STEPS`` Adam
steps on log p(z) + log p(x_O|z), then ``FIT_STEPS`` steps of reparameterised VI (``FIT_DRAWS`` draws a step) on the
ELBO of p(x_O, z), then one round of moment matching: ``MATCH_DRAWS`` draws from that Gaussian, weighted, give the mean
and full covariance of the next (shrunk towards the fitted diagonal by lambda = ESS / (ESS + d): few effective draws
lean on it), widened by ``MATCH_WIDEN``. The estimates stay importance-sampling estimates for that proposal (it is fixed
before the draws that make them). Measured on the bundled 10-D VAE with the top half of a digit hidden (digits #0, #5,
#12): the encoder's q(z|x~) gave log p(x_O) of -163 to -208 with an ESS of 1-2 of 2048 (it missed the posterior by about
100 nats); the fitted proposal -26 to -46 with an ESS of 3-96 after VI alone and 19-516 with the moment-matching round
(two seeds each), in about 0.3-0.6 s more.
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

PROPOSALS = ("prior", "encoder", "fitted")
MISSING_FILL = 0.5  # what the encoder proposal sees in the missing pixels
FIT_STARTS = 16  # the fitted proposal: starting points of the mode search ...
MODE_STEPS = 40  # ... its Adam steps ...
FIT_STEPS = 100  # ... the VI steps that follow ...
FIT_DRAWS = 16  # ... with this many draws a step ...
FIT_WIDEN = 1.3  # ... the fitted scales' widening (heavier than the target is safer than lighter) ...
MATCH_DRAWS = 512  # ... then one round of moment matching with this many draws ...
MATCH_WIDEN = 1.2  # ... and its widening


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
    """A Gaussian fitted to p(z | x_O) (module docstring)."""
    return "fitted"


def _log_weights(
    model: Any, q: torch.distributions.Distribution, n: int, x: torch.Tensor, m: torch.Tensor, chunk: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n draws z ~ q (event shape (d,), no batch), their log w~ = log p(z) + log p(x_O|z) - log q(z) (float64) and
    decoder means E[x|z] (n, D)."""
    with torch.random.fork_rng(devices=[]):  # (q.sample draws from the global generator: seeded from ``seed``)
        torch.manual_seed(seed)
        z = q.sample(torch.Size([n]))
    z = z.reshape(n, -1)
    log_q = q.log_prob(z).reshape(n)
    log_w, means = [], []
    for i in range(0, n, chunk):
        zc = z[i : i + chunk]
        ll, mean = _pixel_terms(model, zc, x)
        log_w.append(model.log_prior(zc).reshape(-1) + (ll * m).sum(-1) - log_q[i : i + chunk])
        means.append(mean)
    log_w_raw = torch.nan_to_num(torch.cat(log_w).double(), nan=-math.inf)
    if not torch.isfinite(log_w_raw).any():
        raise ModelInputError("every importance weight is zero or not finite: the proposal misses p(z | x_O)")
    return z, log_w_raw, torch.cat(means)


def _fitted(
    model: Any, x: torch.Tensor, m: torch.Tensor, start: torch.distributions.Distribution, seed: int
) -> torch.distributions.Distribution:
    """The ``"fitted"`` proposal (module docstring): a widened diagonal Gaussian fitted to p(z | x_O)."""

    def log_joint(z: torch.Tensor) -> torch.Tensor:
        ll, _ = _pixel_terms(model, z, x)
        value: torch.Tensor = model.log_prior(z).reshape(-1) + (ll * m).sum(-1)
        return value

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z0 = torch.cat(
            [start.mean.reshape(1, -1), start.sample(torch.Size([FIT_STARTS - 1])).reshape(FIT_STARTS - 1, -1)]
        )
    d = z0.shape[1]
    with torch.enable_grad():
        z = z0.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=0.1)
        for _ in range(MODE_STEPS):
            value = log_joint(z)
            opt.zero_grad()
            torch.autograd.backward(-value.sum())
            opt.step()
        with torch.no_grad():
            best = z[log_joint(z).argmax()].clone()
        mean = best.requires_grad_(True)
        log_scale = torch.full((d,), math.log(0.1), dtype=best.dtype, device=best.device, requires_grad=True)
        opt = torch.optim.Adam([mean, log_scale], lr=0.05)
        for _ in range(FIT_STEPS):
            eps = torch.randn(FIT_DRAWS, d, generator=g, dtype=best.dtype).to(best.device)
            elbo = log_joint(mean + log_scale.exp() * eps).mean() + log_scale.sum()  # + the entropy, up to a constant
            opt.zero_grad()
            torch.autograd.backward(-elbo)
            opt.step()
    loc, scale = mean.detach(), FIT_WIDEN * log_scale.detach().exp()
    fitted = torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)
    z, log_w, _ = _log_weights(model, fitted, MATCH_DRAWS, x, m, MATCH_DRAWS, seed + 1)
    w = torch.softmax(log_w, 0).to(z.dtype)
    ess = float(1.0 / (w.double() ** 2).sum())
    centre = w @ z
    spread = z - centre
    lam = ess / (ess + d)  # few effective draws lean on the fitted diagonal
    cov = lam * (w[:, None] * spread).T @ spread + (1.0 - lam) * torch.diag(scale**2)
    cov = 0.5 * (cov + cov.T) + 1e-6 * torch.eye(d, dtype=z.dtype, device=z.device)
    return torch.distributions.MultivariateNormal(centre, covariance_matrix=MATCH_WIDEN**2 * cov)


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
    start = ("encoder" if caps.has_encoder else "prior") if proposal == "fitted" else proposal
    q = _unbatched(_proposal(model, start, xt, mt, d), d)
    if proposal == "fitted":
        q = _fitted(model, xt, mt, q, int(torch.randint(0, 2**62, (1,), generator=generator)))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    z, log_w_raw, mean_all = _log_weights(model, q, n_proposals, xt, mt, chunk, seed)
    lse = torch.logsumexp(log_w_raw, 0)
    log_weights = log_w_raw - lse
    w = log_weights.exp()
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


def _unbatched(q: torch.distributions.Distribution, d: int) -> torch.distributions.Distribution:
    """q with event shape (d,) and no batch: a diagonal Normal as Independent(Normal), a MultivariateNormal as is."""
    if tuple(q.batch_shape) == (1,):
        if isinstance(q, torch.distributions.MultivariateNormal):
            return torch.distributions.MultivariateNormal(q.loc[0], scale_tril=q.scale_tril[0])
        return torch.distributions.Independent(torch.distributions.Normal(q.mean[0], q.stddev[0]), 1)
    return q
