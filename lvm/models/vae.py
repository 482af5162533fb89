"""The variational autoencoder: z ~ N(0, I), x | z ~ Bernoulli(sigmoid(f_theta(z))) or
N(mu_theta(z), diag sigma_theta(z)^2).

The encoder q_phi(z|x) = N(mu_phi(x), diag sigma_phi(x)^2) is returned as a ``torch.distributions`` object.
It is a latent model (see ``lvm.models.base``) with the fast paths ``bernoulli_logits`` / ``gaussian_params``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from lvm.errors import ModelInputError
from lvm.models.base import bernoulli_log_likelihood, diagonal_gaussian_log_likelihood, standard_normal_log_prob

ACTIVATIONS = {"elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
DECODERS = ("bernoulli", "gaussian")


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Everything that fixes the architecture (stored in checkpoints)."""

    data_dim: int = 784
    latent_dim: int = 2
    hidden: tuple[int, ...] = (512, 512, 512)
    activation: str = "elu"
    decoder: str = "bernoulli"
    image_shape: tuple[int, int] | None = (28, 28)
    min_log_var: float = -9.0  # soft floor of the Gaussian decoder's log variance

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ModelInputError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.activation not in ACTIVATIONS:
            raise ModelInputError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        ints = (self.data_dim, self.latent_dim, *self.hidden)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in ints):
            raise ModelInputError("latent_dim, data_dim and hidden sizes must be integers")
        if self.latent_dim < 1 or self.data_dim < 1 or any(h < 1 for h in self.hidden):
            raise ModelInputError("latent_dim, data_dim and hidden sizes must be positive")
        if not isinstance(self.min_log_var, numbers.Real) or isinstance(self.min_log_var, bool):
            raise ModelInputError(f"min_log_var must be a number, got {self.min_log_var!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["image_shape"] = None if self.image_shape is None else list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        d = dict(d)
        for key in ("data_dim", "latent_dim"):
            if key in d:
                d[key] = int(d[key])
        if "min_log_var" in d:
            d["min_log_var"] = float(d["min_log_var"])
        d["hidden"] = tuple(int(h) for h in d["hidden"])
        d["image_shape"] = None if d.get("image_shape") is None else tuple(int(s) for s in d["image_shape"])
        return cls(**d)


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """VAE with a Gaussian encoder and a Bernoulli or diagonal-Gaussian decoder."""

    def __init__(self, config: VAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or VAEConfig(**kwargs)
        c = self.config
        self.latent_dim = c.latent_dim
        self.data_dim = c.data_dim
        self.encoder = mlp([c.data_dim, *c.hidden, 2 * c.latent_dim], c.activation)
        out = c.data_dim * (1 if c.decoder == "bernoulli" else 2)
        self.decoder = mlp([c.latent_dim, *reversed(c.hidden), out], c.activation)

    # -- encoder ---------------------------------------------------------------------------------------------------
    def encoder_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_phi(x), log sigma_phi(x)), each (B, latent_dim)."""
        self._check_x(x)
        h: torch.Tensor = self.encoder(x)
        mu, log_sigma = h.chunk(2, dim=-1)
        return mu, log_sigma.clamp(-12.0, 6.0)

    def encode(self, x: torch.Tensor) -> Independent[Normal]:
        """q_phi(z|x) = N(mu_phi(x), diag sigma_phi(x)^2), batch shape (B,), event shape (latent_dim,)."""
        mu, log_sigma = self.encoder_params(x)
        return Independent(Normal(mu, log_sigma.exp()), 1)

    # -- decoder ---------------------------------------------------------------------------------------------------
    # The fast paths of the latent-model protocol exist only for the decoder this VAE has, so that
    # ``hasattr(model, "bernoulli_logits")`` tells estimators which one to use.
    @property
    def bernoulli_logits(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Logits f_theta(z) of the pixel-factorised Bernoulli decoder: z (..., latent_dim) -> (..., data_dim)."""
        if self.config.decoder != "bernoulli":
            raise AttributeError("bernoulli_logits: this VAE has a Gaussian decoder; use gaussian_params")
        return self.decoder

    @property
    def gaussian_params(self) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """z (..., latent_dim) -> (mu_theta(z), log sigma_theta(z)^2) of the diagonal Gaussian decoder."""
        if self.config.decoder != "gaussian":
            raise AttributeError("gaussian_params: this VAE has a Bernoulli decoder; use bernoulli_logits")
        return self._gaussian_params

    def _gaussian_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu = first half of the decoder output; log sigma^2 = m + softplus(raw - m), a soft floor m."""
        out: torch.Tensor = self.decoder(z)
        mean, raw = out.chunk(2, dim=-1)
        m = self.config.min_log_var
        return mean, m + nn.functional.softplus(raw - m)

    def decode(self, z: torch.Tensor) -> Independent[Bernoulli] | Independent[Normal]:
        """p_theta(x|z) as a distribution with event shape (data_dim,)."""
        if self.config.decoder == "bernoulli":
            return Independent(Bernoulli(logits=self.bernoulli_logits(z)), 1)
        mean, log_var = self.gaussian_params(z)
        return Independent(Normal(mean, (0.5 * log_var).exp()), 1)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z]: sigmoid(logits) or the Gaussian mean, (..., data_dim)."""
        if self.config.decoder == "bernoulli":
            return torch.sigmoid(self.bernoulli_logits(z))
        return self.gaussian_params(z)[0]

    # -- latent-model protocol -------------------------------------------------------------------------------------
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I)."""
        return standard_normal_log_prob(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z); x (B, D), z (..., B, latent_dim) -> (..., B)."""
        if self.config.decoder == "bernoulli":
            return bernoulli_log_likelihood(x, self.bernoulli_logits(z))
        mean, log_var = self.gaussian_params(z)
        return diagonal_gaussian_log_likelihood(x, mean, log_var)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, x): n draws of z ~ N(0, I) and x ~ p(x|z)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        with torch.no_grad():
            if self.config.decoder == "bernoulli":
                p = torch.sigmoid(self.bernoulli_logits(z))
                x = (torch.rand(p.shape, generator=generator, device=device) < p).to(p.dtype)
            else:
                mean, log_var = self.gaussian_params(z)
                x = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=generator, device=device)
        return z, x

    # -- training objective ----------------------------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-x ELBO = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), one reparameterised sample, analytic KL."""
        mu, log_sigma = self.encoder_params(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + log_sigma.exp() * eps
        kl = 0.5 * (mu.pow(2) + (2 * log_sigma).exp() - 2 * log_sigma - 1).sum(-1)
        if self.config.decoder == "bernoulli":  # the same log p(x|z) as log_likelihood, one fused kernel
            rec = -nn.functional.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1)
            return rec - kl
        return self.log_likelihood(x, z) - kl

    def _check_x(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.data_dim:
            raise ModelInputError(f"the model expects {self.data_dim} features per sample, got shape {tuple(x.shape)}")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
