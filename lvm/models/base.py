"""The latent-model protocol every estimator works with.

A latent model defines p(x, z) = p(z) p(x|z). Any object with these members works:

- ``latent_dim``: int, the size of z.
- ``log_prior(z)``: log p(z) for z of shape (..., latent_dim) -> (...).
- ``log_likelihood(x, z)``: log p(x|z); x of shape (B, D) and z of shape (S, B, latent_dim) (or any
  leading sample dims broadcasting against x's batch) -> (S, B).

Optional fast paths, used by quadrature and inpainting when present:

- ``bernoulli_logits(z)``: (..., latent_dim) -> (..., D) logits of a pixel-factorised Bernoulli decoder.
- ``gaussian_params(z)``: (..., latent_dim) -> (mean (..., D), log_var (..., D)) of a diagonal Gaussian decoder.

and, for the functions that need them, an amortised encoder ``encode(x)`` -> q(z|x) with batch shape (B,). The
protocols ``BernoulliDecoderModel``, ``GaussianDecoderModel`` and ``EncoderModel`` name these extended models for
annotations; code that only may use a fast path asks ``hasattr(model, "bernoulli_logits")`` at run time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from torch.distributions import Distribution

LOG_2PI = math.log(2.0 * math.pi)


@runtime_checkable
class LatentModel(Protocol):
    latent_dim: int

    def log_prior(self, z: torch.Tensor) -> torch.Tensor: ...

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...


class BernoulliDecoderModel(LatentModel, Protocol):
    """A latent model with a pixel-factorised Bernoulli decoder: logits (..., D) for z (..., latent_dim)."""

    def bernoulli_logits(self, z: torch.Tensor) -> torch.Tensor: ...


class GaussianDecoderModel(LatentModel, Protocol):
    """A latent model with a diagonal Gaussian decoder: (mean, log_var), each (..., D), for z (..., latent_dim)."""

    def gaussian_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class GaussianDecoderModule(GaussianDecoderModel, Protocol):
    """A ``GaussianDecoderModel`` that is a torch module: its parameters give the device and dtype to work in."""

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


class EncoderModel(LatentModel, Protocol):
    """A latent model with an amortised encoder: q(z|x) with batch shape (B,), event shape (latent_dim,)."""

    def encode(self, x: torch.Tensor) -> Distribution: ...


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * LOG_2PI)


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d), broadcasting x against logits."""
    return (x * torch.nn.functional.logsigmoid(logits) + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum(-1)


def diagonal_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(log_var))) summed over the last dimension."""
    return -0.5 * (((x - mean) ** 2) * torch.exp(-log_var) + log_var + LOG_2PI).sum(-1)
