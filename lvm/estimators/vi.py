"""Per-x variational inference with a full-covariance Gaussian q(z) = N(m, L L^T), and the gap decomposition.

Maximises ELBO(q) = E_q[log p(x|z)] + E_q[log p(z)] + H(q) over (m, L) by Adam with a cosine-decayed step size.
L is lower triangular with a positive diagonal: L = tril(A, -1) + diag(exp(d)). The objective is either
Gauss-Hermite quadrature in q's coordinates (``objective="gauss_hermite"``, deterministic, for Dz <= 3) or the
reparameterised Monte Carlo estimate with ``n_samples`` draws z = m + L eps (``objective="reparam"``).

The best Gaussian q* gives the gap decomposition of an amortised encoder q_phi (Cremer et al., 2018):

    log p(x) - ELBO(q_phi) = [ELBO(q*) - ELBO(q_phi)] + [log p(x) - ELBO(q*)]
                             amortization gap          approximation gap
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import numpy as np
import torch
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from lvm.errors import ModelInputError
from lvm.estimators.montecarlo import make_generator, model_log_likelihood
from lvm.estimators.quadrature import _elbo_gauss_hermite
from lvm.estimators.validation import XLike, check_gaussian_params, check_x
from lvm.models.base import LatentModel

__all__ = ["VISnapshot", "vi_steps", "fit_gaussian_q", "GapDecomposition", "gap_decomposition"]

# a starting q: a Normal / MultivariateNormal distribution or a (mean, scale_tril) pair
QInit: TypeAlias = Distribution | tuple[torch.Tensor, torch.Tensor] | None


@dataclass(frozen=True)
class VISnapshot:
    """One step of VI: ``mean`` (B, Dz) / (Dz,), ``scale_tril`` (B, Dz, Dz) / (Dz, Dz), ``elbo`` (B,) / () the
    objective at these parameters (detached copies; safe to hand to another thread)."""

    step: int
    mean: torch.Tensor
    scale_tril: torch.Tensor
    elbo: torch.Tensor

    @property
    def q(self) -> MultivariateNormal:
        return MultivariateNormal(self.mean, scale_tril=self.scale_tril)


def _init_params(model: LatentModel, x: torch.Tensor, init: QInit) -> tuple[torch.Tensor, torch.Tensor]:
    dz = int(model.latent_dim)
    b = x.shape[0]
    if init is None and hasattr(model, "encode"):
        with torch.no_grad():
            init = model.encode(x)
    if init is None:
        return torch.zeros(b, dz, dtype=x.dtype), torch.eye(dz, dtype=x.dtype).expand(b, dz, dz).clone()
    if isinstance(init, Distribution):
        if isinstance(init, MultivariateNormal):
            m, L = init.loc, init.scale_tril
        elif isinstance(init, Independent) and isinstance(init.base_dist, Normal):
            m, L = init.base_dist.loc, torch.diag_embed(init.base_dist.scale)
        else:
            raise ModelInputError("init must be a Normal/MultivariateNormal distribution or a (mean, scale_tril) pair")
    else:
        m, L = init
    m, L = check_gaussian_params(model, torch.as_tensor(m).detach(), torch.as_tensor(L).detach(), b)
    return m.to(x).expand(b, dz).clone(), L.to(x).expand(b, dz, dz).clone()


def vi_steps(
    model: LatentModel,
    x: XLike,
    steps: int = 400,
    lr: float = 0.1,
    objective: str = "gauss_hermite",
    n_nodes: int = 16,
    n_samples: int = 64,
    init: QInit = None,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    every: int = 1,
) -> Iterator[VISnapshot]:
    """Fit q = N(m, L L^T) to p(z|x) for one x (D,) or a batch (B, D), yielding a snapshot every ``every`` steps.

    ``init``: a Normal/MultivariateNormal distribution or (mean, scale_tril); default the model's encoder when it
    has ``encode``, else N(0, I). The final snapshot (step == steps) is always yielded. Each x is fitted
    independently (the summed objective separates). Cancel by not asking for the next snapshot.
    """
    if objective not in ("gauss_hermite", "reparam"):
        raise ModelInputError(f"objective must be 'gauss_hermite' or 'reparam'; got {objective!r}")
    unbatched = (x.dim() if isinstance(x, torch.Tensor) else np.ndim(x)) == 1
    # a model without parameters: x keeps its floating dtype (integers become float64)
    floating = x.dtype.is_floating_point if isinstance(x, torch.Tensor) else np.asarray(x).dtype.kind == "f"
    xb = check_x(model, x, allow_single=True, dtype=None if floating else torch.float64)
    m0, L0 = _init_params(model, xb, init)
    dz = m0.shape[-1]
    mean = m0.clone().requires_grad_(True)
    log_diag = torch.log(torch.diagonal(L0, dim1=-2, dim2=-1).abs().clamp_min(1e-6)).clone().requires_grad_(True)
    off = torch.tril(L0, -1).clone().requires_grad_(True)
    tril_mask = torch.tril(torch.ones(dz, dz, dtype=torch.bool, device=m0.device), -1)
    opt = torch.optim.Adam([mean, log_diag, off], lr=lr)
    g = make_generator(seed, generator, m0.device)

    def scale_tril() -> torch.Tensor:
        return torch.where(tril_mask, off, torch.zeros_like(off)) + torch.diag_embed(torch.exp(log_diag))

    def objective_value() -> torch.Tensor:
        L = scale_tril()
        if objective == "gauss_hermite":
            return cast(torch.Tensor, _elbo_gauss_hermite(model, xb, mean, L, n_nodes, False, False))
        eps = torch.randn((n_samples,) + tuple(mean.shape), generator=g, device=mean.device, dtype=mean.dtype)
        z = mean + torch.einsum("bij,sbj->sbi", L, eps)
        q: Distribution = MultivariateNormal(mean, scale_tril=L)  # MultivariateNormal.log_prob has no annotations
        return (model_log_likelihood(model, xb, z) + model.log_prior(z) - q.log_prob(z)).mean(0)

    def snap(step: int, value: torch.Tensor) -> VISnapshot:
        L = scale_tril().detach().clone()
        m = mean.detach().clone()
        v = value.detach().clone()
        if unbatched:
            return VISnapshot(step, m[0], L[0], v[0])
        return VISnapshot(step, m, L, v)

    for step in range(steps + 1):
        value = objective_value()
        if step % max(1, every) == 0 or step == steps:
            yield snap(step, value)
        if step == steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * step / steps)))
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(-value.sum())  # = .backward(), which has no annotations
        opt.step()


def fit_gaussian_q(model: LatentModel, x: XLike, **kwargs: Any) -> VISnapshot:
    """Run ``vi_steps`` to the end and return the last snapshot (its ``.q`` is the fitted MultivariateNormal)."""
    last = None
    kwargs.setdefault("every", 10**9)
    for snap in vi_steps(model, x, **kwargs):
        last = snap
    if last is None:
        raise ModelInputError(f"steps must be at least 0; got {kwargs.get('steps')}")
    return last


@dataclass(frozen=True)
class GapDecomposition:
    """total = log p(x) - ELBO(encoder) = amortization + approximation (nats, per x or averaged)."""

    total: torch.Tensor
    amortization: torch.Tensor
    approximation: torch.Tensor


def gap_decomposition(
    log_px: torch.Tensor | float, elbo_encoder: torch.Tensor | float, elbo_best_gaussian: torch.Tensor | float
) -> GapDecomposition:
    """Split the encoder's gap: amortization = ELBO(q*) - ELBO(q_enc), approximation = log p(x) - ELBO(q*)."""
    log_px, elbo_encoder, elbo_best_gaussian = (torch.as_tensor(v) for v in (log_px, elbo_encoder, elbo_best_gaussian))
    return GapDecomposition(
        total=log_px - elbo_encoder,
        amortization=elbo_best_gaussian - elbo_encoder,
        approximation=log_px - elbo_best_gaussian,
    )
