"""Toy latent models for the lecture's 1-D pictures.

``SquareDecoderToy1D`` has a bimodal posterior: p(z) = N(0, 1), x_d | z ~ N(z^2, s^2) for d = 1..D. Since
z and -z give the same x, p(z|x) is symmetric with two modes near +-sqrt(mean(x)) whenever mean(x) is well
above 0 (one mode at 0 when x <= 0). A single Gaussian q cannot fit it: the Inference lab's example of an
approximation gap and of IWAE's trouble with a mis-placed proposal.
"""

from __future__ import annotations

import math

import torch

from lvm.models.base import diagonal_gaussian_log_likelihood, standard_normal_log_prob


class SquareDecoderToy1D:
    """1-D latent, p(z) = N(0, 1), p(x|z) = N(z^2 1_D, s^2 I_D): a bimodal posterior for x well above 0."""

    standard_normal_prior = True
    latent_dim = 1

    def __init__(self, s: float = 0.5, data_dim: int = 1, dtype: torch.dtype = torch.float64):
        if not s > 0:
            raise ValueError(f"s must be positive; got {s}")
        self.s = float(s)
        self.data_dim = int(data_dim)
        self.dtype = dtype

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def gaussian_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = z.to(self.dtype).pow(2).expand(*z.shape[:-1], self.data_dim)
        return mean, torch.full_like(mean, 2.0 * math.log(self.s))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.gaussian_params(z)
        return diagonal_gaussian_log_likelihood(x.to(mean.dtype), mean, log_var)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, 1, generator=generator, dtype=self.dtype)
        return z.pow(2) + self.s * torch.randn(n, self.data_dim, generator=generator, dtype=self.dtype)
