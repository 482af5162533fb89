"""The linear-Gaussian latent model (probabilistic PCA): everything in closed form, the estimators' test bed.

p(z) = N(0, I_Dz),  p(x|z) = N(W z + b, s^2 I_D)  =>  p(x) = N(b, W W^T + s^2 I),
p(z|x) = N(mu, Sigma) with Sigma = (I + W^T W / s^2)^-1 and mu = Sigma W^T (x - b) / s^2.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, MultivariateNormal

from lvm.models.base import diagonal_gaussian_log_likelihood, standard_normal_log_prob


class LinearGaussianModel:
    """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I); W (D, Dz), b (D,), s > 0. Implements the latent-model protocol."""

    standard_normal_prior = True

    def __init__(self, W: torch.Tensor, b: torch.Tensor | None = None, s: float = 1.0) -> None:
        W = torch.as_tensor(W)
        if W.dim() != 2:
            raise ValueError(f"W must be (data_dim, latent_dim); got shape {tuple(W.shape)}")
        if not s > 0:
            raise ValueError(f"s must be positive; got {s}")
        self.W = W
        self.b = torch.zeros(W.shape[0], dtype=W.dtype) if b is None else torch.as_tensor(b, dtype=W.dtype)
        self.s = float(s)
        self.latent_dim = int(W.shape[1])
        self.data_dim = int(W.shape[0])

    # --- the protocol ---------------------------------------------------------------------------------------
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def gaussian_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = z.to(self.W.dtype) @ self.W.T + self.b
        return mean, torch.full_like(mean, 2.0 * math.log(self.s))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.gaussian_params(z)
        return diagonal_gaussian_log_likelihood(x.to(mean.dtype), mean, log_var)

    # --- closed forms ---------------------------------------------------------------------------------------
    def marginal(self) -> MultivariateNormal:
        """p(x) = N(b, W W^T + s^2 I)."""
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.data_dim, dtype=self.W.dtype)
        return MultivariateNormal(self.b, covariance_matrix=cov)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x (B, D) -> (B,)."""
        marginal: Distribution = self.marginal()  # MultivariateNormal.log_prob has no annotations
        return marginal.log_prob(x.to(self.W.dtype))

    def posterior(self, x: torch.Tensor) -> MultivariateNormal:
        """p(z|x) = N(Sigma W^T (x - b) / s^2, Sigma), batch shape (B,)."""
        x = x.to(self.W.dtype)
        prec = torch.eye(self.latent_dim, dtype=self.W.dtype) + self.W.T @ self.W / self.s**2
        cov = torch.linalg.inv(prec)
        cov = 0.5 * (cov + cov.T)
        mean = ((x - self.b) @ self.W) @ cov.T / self.s**2
        return MultivariateNormal(mean, covariance_matrix=cov.expand(mean.shape[:-1] + cov.shape))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of x from p(x)."""
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=self.W.dtype)
        eps = torch.randn(n, self.data_dim, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.s * eps

    @classmethod
    def random(
        cls, data_dim: int = 5, latent_dim: int = 2, s: float = 0.5, seed: int = 0, dtype: torch.dtype = torch.float64
    ) -> LinearGaussianModel:
        """A random instance for tests and demos."""
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(data_dim, latent_dim, generator=g, dtype=dtype)
        b = 0.5 * torch.randn(data_dim, generator=g, dtype=dtype)
        return cls(W, b, s)
