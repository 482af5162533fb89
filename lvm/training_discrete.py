"""Training the binary latent model (``lvm.models.binary_latent``): two objectives, chosen by K.

- ``exact`` (K <= 12): the true log-likelihood, log p(x) = logsumexp_z log p(x, z) over all 2^K configurations,
  differentiated exactly (its gradient is E_{p(z|x)}[grad log p(x, z)]). The encoder q(z|x) is then fitted to the
  exact posterior marginals m_k = p(z_k = 1 | x) by minimising sum_k BCE(q_k, m_k) = KL(prod_k p(z_k|x) || q) + const
  (the mean-field q closest to the posterior in the forward KL, the best proposal for importance sampling).
- ``vimco`` (larger K): the multi-sample bound L_k = E[log (1/k) sum_i w_i], w_i = p(x, z_i) / q(z_i|x), z_i ~ q,
  maximised jointly in the model and the mean-field Bernoulli encoder. Its gradient in the model is the reparameter-free
  grad of log (1/k) sum w_i; in the encoder (z is discrete: no reparameterisation) the VIMCO estimator of Mnih &
  Rezende, "Variational inference for Monte Carlo objectives", ICML 2016: score-function terms with per-sample
  leave-one-out baselines,

      grad_phi L_k ~ sum_j [L_hat - L_hat_{-j}] grad log q(z_j) - sum_j w~_j grad log q(z_j),
      L_hat_{-j} = log (1/k) (sum_{i != j} w_i + exp(mean_{i != j} log w_i)),   w~_j = w_j / sum_i w_i.

Training runs as a generator of ``DiscreteTrainSnapshot`` (progress and cancel between steps).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from lvm.errors import ModelInputError
from lvm.estimators.discrete import configurations
from lvm.models.binary_latent import BinaryLatentModel

EXACT_TRAINING_MAX_K = 12
OBJECTIVES = ("auto", "exact", "vimco")
OBJECTIVE_DESCRIPTIONS = {
    "exact": "exact log-likelihood by enumerating all 2^K configurations (exact gradient); encoder fitted to the "
    "exact posterior marginals",
    "vimco": "VIMCO multi-sample bound (Mnih & Rezende 2016) with a mean-field Bernoulli encoder",
}


def choose_objective(latent_dim: int, objective: str = "auto") -> str:
    """``exact`` for K <= 12, else ``vimco`` (unless asked for explicitly)."""
    if objective not in OBJECTIVES:
        raise ModelInputError(f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
    if objective == "auto":
        return "exact" if latent_dim <= EXACT_TRAINING_MAX_K else "vimco"
    if objective == "exact" and latent_dim > 16:
        raise ModelInputError(
            f"exact training enumerates 2^K configurations per step; K = {latent_dim} is too many "
            "(use K <= 16 or the vimco objective)"
        )
    return objective


def exact_loss(model: BinaryLatentModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, mean log p(x) per x) for the exact objective (see the module docstring)."""
    z = configurations(model.latent_dim, device=x.device)
    logits = model.bernoulli_logits(z)  # (C, D)
    lj = x @ logits.T - F.softplus(logits).sum(-1) + model.log_prior(z)  # (B, C)
    log_px = torch.logsumexp(lj, 1)
    with torch.no_grad():
        marginals = torch.softmax(lj, 1) @ z
    enc = F.binary_cross_entropy_with_logits(model.encoder_logits(x), marginals, reduction="sum") / x.shape[0]
    return -log_px.mean() + enc, log_px.mean().detach()


def vimco_loss(
    model: BinaryLatentModel, x: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(surrogate loss to minimise, mean L_k estimate per x) for VIMCO with k >= 2 samples per x."""
    if k < 2:
        raise ModelInputError("VIMCO needs at least k = 2 samples per x (its baselines leave one out)")
    q_logits = model.encoder_logits(x)  # (B, K)
    with torch.no_grad():
        u = torch.rand((k, *q_logits.shape), generator=generator, device=x.device)
        z = (u < torch.sigmoid(q_logits)).float()  # (k, B, K)
    log_q = (z * F.logsigmoid(q_logits) + (1 - z) * F.logsigmoid(-q_logits)).sum(-1)  # (k, B)
    log_w = model.log_joint(x, z) - log_q
    bound = torch.logsumexp(log_w, 0) - math.log(k)  # (B,)
    with torch.no_grad():
        lw = log_w.detach()
        others_mean = (lw.sum(0, keepdim=True) - lw) / (k - 1)  # (k, B): geometric mean of the other weights
        rep = lw.unsqueeze(0).expand(k, k, lw.shape[1]).clone()  # rep[j] = log w with w_j replaced
        idx = torch.arange(k, device=x.device)
        rep[idx, idx] = others_mean
        leave_one_out = torch.logsumexp(rep, 1) - math.log(k)  # (k, B)
        signal = bound.detach().unsqueeze(0) - leave_one_out
    surrogate = bound + (signal * log_q).sum(0)
    return -surrogate.mean(), bound.mean().detach()


@dataclass(frozen=True)
class DiscreteTrainSnapshot:
    """``bound``: the running mean over the last steps of log p(x) (exact) or the L_k estimate (vimco), nats per x."""

    epoch: int
    epochs: int
    step: int
    steps: int
    objective: str
    bound: float
    seconds: float
    done: bool = False

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.steps)


def init_from_data(model: BinaryLatentModel, x: torch.Tensor, seed: int = 0) -> None:
    """Decoder bias = logit of the mean image (clamped), small random W, prior p(z_k = 1) = 0.5."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        mean = x.float().mean(0).clamp(1e-3, 1 - 1e-3)
        last = cast(nn.Linear, model.decoder[-1])  # every decoder ends in a linear layer
        last.bias.copy_(torch.log(mean) - torch.log1p(-mean))
        last.weight.copy_(0.01 * torch.randn(last.weight.shape, generator=g))
        model.prior_logits.zero_()


def train_steps(
    model: BinaryLatentModel,
    x_train: npt.ArrayLike | torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    objective: str = "auto",
    samples: int = 10,
    seed: int = 0,
    report_every: int = 20,
    init: bool = True,
) -> Iterator[DiscreteTrainSnapshot]:
    """Adam on mini-batches of binary ``x_train`` (N, D), yielding a snapshot every ``report_every`` steps and at the
    end (``done``). ``samples``: VIMCO's k."""
    x_all = torch.as_tensor(np.asarray(x_train, dtype=np.float32)).to(model.prior_logits.device)
    if x_all.dim() != 2 or x_all.shape[1] != model.data_dim:
        raise ModelInputError(f"training data must be (N, {model.data_dim}); got {tuple(x_all.shape)}")
    if epochs < 1 or batch_size < 1:
        raise ModelInputError("epochs and batch size must be at least 1")
    obj = choose_objective(model.latent_dim, objective)
    if init:
        init_from_data(model, x_all, seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator(device=x_all.device).manual_seed(int(seed))
    gcpu = torch.Generator().manual_seed(int(seed) + 1)
    n = x_all.shape[0]
    per_epoch = math.ceil(n / batch_size)
    steps = epochs * per_epoch
    t0 = time.perf_counter()
    recent: list[float] = []
    step = 0
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gcpu).to(x_all.device)
        for i in range(per_epoch):
            xb = x_all[perm[i * batch_size : (i + 1) * batch_size]]
            if obj == "exact":
                loss, bound = exact_loss(model, xb)
            else:
                loss, bound = vimco_loss(model, xb, samples, g)
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)  # = loss.backward(), which has no annotations
            opt.step()
            step += 1
            recent.append(float(bound))
            del recent[:-50]
            if step % report_every == 0 and step < steps:
                yield DiscreteTrainSnapshot(
                    epoch + 1, epochs, step, steps, obj, float(np.mean(recent)), time.perf_counter() - t0
                )
    model.eval()
    yield DiscreteTrainSnapshot(
        epochs, epochs, steps, steps, obj, float(np.mean(recent)), time.perf_counter() - t0, done=True
    )
