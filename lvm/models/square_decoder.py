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

    def posterior_modes(self, x: torch.Tensor | float) -> tuple[float, ...]:
        """The modes of p(z|x) in closed form. With S = sum_d x_d,
        log p(z|x) = -z^2/2 - sum_d (x_d - z^2)^2 / (2 s^2) + const, whose derivative z (2 (S - D z^2) / s^2 - 1)
        vanishes at z = 0 and at z^2 = mean(x) - s^2 / (2D). When mean(x) > s^2 / (2D) the posterior has two modes,
        +-sqrt(mean(x) - s^2 / (2D)) (z = 0 is then a minimum); otherwise one, at 0."""
        mean_x = float(torch.as_tensor(x, dtype=torch.float64).reshape(-1).mean())
        r2 = mean_x - self.s * self.s / (2 * self.data_dim)
        if r2 <= 0:
            return (0.0,)
        r = math.sqrt(r2)
        return (-r, r)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, 1, generator=generator, dtype=self.dtype)
        return z.pow(2) + self.s * torch.randn(n, self.data_dim, generator=generator, dtype=self.dtype)
