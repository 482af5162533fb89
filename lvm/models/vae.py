"""The variational autoencoder: z ~ N(0, I), x | z ~ Bernoulli(sigmoid(f_theta(z))) or
N(mu_theta(z), diag sigma_theta(z)^2), or an autoregressive Bernoulli decoder.

The encoder q_phi(z|x) = N(mu_phi(x), diag sigma_phi(x)^2) is returned as a ``torch.distributions`` object.
It is a latent model (see ``lvm.models.base``) with the fast paths ``bernoulli_logits`` / ``gaussian_params``.

The autoregressive decoder (``decoder="autoregressive"``) is strong enough to model the images without z, the
classic setting of posterior collapse: in raster order,

    p(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i)),   l = f_theta(z) + W_< x + V_m relu(U_m x + c) + b,

with W_< strictly lower triangular and U_m, V_m masked as in MADE (Germain et al. 2015): hidden unit k has a degree
m_k in 1..D-1 and sees x_1..x_{m_k}; logit i sees the units with m_k < i. So l_i depends on x_<i (and z) only, every
conditional p(x_i | x_<i, z) comes out of one pass, log p(x|z) is exact in one pass, and quadrature over z works as for
any latent model (there is no z-only fast path: the logits depend on x). Sampling is sequential
(``sample_autoregressive``, O(B D (D + H)) in all, one pass's cost); ``decode_mean`` is the deterministic pass that
feeds each pixel's probability to the next ones in place of a sampled bit, an approximation of E[x|z] for pictures.
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
DECODERS = ("bernoulli", "gaussian", "autoregressive")
BINARY_DECODERS = ("bernoulli", "autoregressive")  # decoders of binary pixels (the data must lie in [0, 1])


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
    autoregressive_hidden: int = 1024  # the autoregressive decoder's masked hidden layer (MADE) width

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise ModelInputError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.activation not in ACTIVATIONS:
            raise ModelInputError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        ints = (self.data_dim, self.latent_dim, *self.hidden, self.autoregressive_hidden)
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in ints):
            raise ModelInputError("latent_dim, data_dim and hidden sizes must be integers")
        if self.latent_dim < 1 or self.data_dim < 1 or any(h < 1 for h in (*self.hidden, self.autoregressive_hidden)):
            raise ModelInputError("latent_dim, data_dim and hidden sizes must be positive")
        if not isinstance(self.min_log_var, numbers.Real) or isinstance(self.min_log_var, bool):
            raise ModelInputError(f"min_log_var must be a number, got {self.min_log_var!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["image_shape"] = None if self.image_shape is None else list(self.image_shape)
        if self.decoder != "autoregressive":
            del d["autoregressive_hidden"]  # (only the autoregressive decoder has one)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        d = dict(d)
        for key in ("data_dim", "latent_dim", "autoregressive_hidden"):
            if key in d:
                d[key] = int(d[key])
        if "min_log_var" in d:
            d["min_log_var"] = float(d["min_log_var"])
        d["hidden"] = tuple(int(h) for h in d["hidden"])
        d["image_shape"] = None if d.get("image_shape") is None else tuple(int(s) for s in d["image_shape"])
        return cls(**d)


class AutoregressiveLinear(nn.Linear):
    """x (..., D) -> (..., D): output i = b_i + sum_{j<i} W_ij x_j, the strictly lower triangle of W (MADE's mask for
    a direct connection in raster order): pixel i's logit sees only the pixels before it."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.tril(-1), self.bias)


def made_degrees(dim: int, hidden: int) -> torch.Tensor:
    """The hidden units' degrees m_k in 1..dim-1, spread evenly (deterministic: no masks to store)."""
    return 1 + (torch.arange(hidden) * max(dim - 1, 1)) // hidden


class Autoregressive(nn.Module):
    """The x-part of the autoregressive decoder's logits, W_< x + V_m relu(U_m x + c) + b (see the module docstring):
    output i depends on x_1..x_{i-1} only."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.direct = AutoregressiveLinear(dim)
        self.inner = nn.Linear(dim, hidden)  # U, c (masked in forward)
        self.outer = nn.Linear(hidden, dim)  # V (masked), its bias is b
        self._masks: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def masks(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(M_U (H, D): unit k sees input j iff j + 1 <= m_k, M_V (D, H): output i sees unit k iff m_k <= i), 0/1
        float tensors (1-based degrees: input j has degree j + 1, output i degree i + 1)."""
        if device not in self._masks:
            m = made_degrees(self.dim, self.hidden).to(device)
            j = torch.arange(self.dim, device=device)
            mu = (j[None, :] + 1 <= m[:, None]).float()
            mv = (m[None, :] <= j[:, None]).float()
            self._masks[device] = (mu, mv)
        return self._masks[device]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, mv = self.masks(x.device)
        h = torch.relu(nn.functional.linear(x, self.inner.weight * mu.to(x.dtype), self.inner.bias))
        out: torch.Tensor = self.direct(x) + nn.functional.linear(
            h, self.outer.weight * mv.to(x.dtype), self.outer.bias
        )
        return out


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
        out = c.data_dim * (2 if c.decoder == "gaussian" else 1)
        self.decoder = mlp([c.latent_dim, *reversed(c.hidden), out], c.activation)
        if c.decoder == "autoregressive":
            self.autoregressive = Autoregressive(c.data_dim, c.autoregressive_hidden)

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

    def autoregressive_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x_i = 1 | x_<i, z) for every i at once: f_theta(z) + W_masked x + b, broadcasting x (B, D)
        against z (..., B, latent_dim) -> (..., B, D). Autoregressive decoder only."""
        if self.config.decoder != "autoregressive":
            raise AttributeError("autoregressive_logits: this VAE's decoder is not autoregressive")
        out: torch.Tensor = self.decoder(z) + self.autoregressive(x.to(z.dtype))
        return out

    @torch.no_grad()
    def sample_autoregressive(
        self, z: torch.Tensor, generator: torch.Generator | None = None, mean_field: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel by pixel, in raster order: p_i = sigmoid(l_i(x_<i, z)), then x_i ~ Bernoulli(p_i) (``mean_field``:
        x_i = p_i, the deterministic pass of ``decode_mean``). z (B, latent_dim) -> (x (B, D), the conditionals p).

        Incremental, one pass's work in all: after x_i is set, the output logits gain x_i W_<[:, i], the hidden
        pre-activations of the units that see x_i gain x_i U[:, i], and the units of degree i + 1 (they have seen
        all their inputs) are complete: their relu goes into the logits of the pixels after them."""
        ar = self.autoregressive
        mu, mv = ar.masks(z.device)
        dt = z.dtype
        W = ar.direct.weight.tril(-1).to(dt)
        U = (ar.inner.weight * mu).to(dt)  # (H, D)
        V = (ar.outer.weight * mv).to(dt)  # (D, H)
        degrees = made_degrees(ar.dim, ar.hidden).to(z.device)
        a = self.decoder(z) + ar.direct.bias + ar.outer.bias  # the logits so far
        pre = ar.inner.bias.to(dt).expand(a.shape[0], -1).clone()  # the hidden pre-activations so far
        x = torch.zeros_like(a)
        p = torch.zeros_like(a)
        u = None if mean_field else torch.rand(a.shape, generator=generator, device=a.device, dtype=dt)
        done = [torch.nonzero(degrees == i + 1).flatten() for i in range(ar.dim)]
        for i in range(a.shape[-1]):
            p[:, i] = torch.sigmoid(a[:, i])
            x[:, i] = p[:, i] if u is None else (u[:, i] < p[:, i]).to(dt)
            xi = x[:, i : i + 1]
            a += xi * W[:, i]
            pre += xi * U[:, i]
            units = done[i]
            if units.numel():
                a += torch.relu(pre[:, units]) @ V[:, units].T
        return x, p

    def decode(self, z: torch.Tensor) -> Independent[Bernoulli] | Independent[Normal]:
        """p_theta(x|z) as a distribution with event shape (data_dim,) (pixel-factorised decoders only)."""
        if self.config.decoder == "autoregressive":
            raise ModelInputError(
                "an autoregressive decoder's p(x|z) is not a product over pixels: use log_likelihood(x, z) or "
                "sample_autoregressive(z)"
            )
        if self.config.decoder == "bernoulli":
            return Independent(Bernoulli(logits=self.bernoulli_logits(z)), 1)
        mean, log_var = self.gaussian_params(z)
        return Independent(Normal(mean, (0.5 * log_var).exp()), 1)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z]: sigmoid(logits) or the Gaussian mean, (..., data_dim); for the autoregressive decoder its
        deterministic mean-field pass (each pixel's probability fed to the next ones), an approximation."""
        if self.config.decoder == "autoregressive":
            flat = z.reshape(-1, z.shape[-1])
            return self.sample_autoregressive(flat, mean_field=True)[0].reshape(*z.shape[:-1], self.data_dim)
        if self.config.decoder == "bernoulli":
            return torch.sigmoid(self.bernoulli_logits(z))
        return self.gaussian_params(z)[0]

    # -- latent-model protocol -------------------------------------------------------------------------------------
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I)."""
        return standard_normal_log_prob(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z); x (B, D), z (..., B, latent_dim) -> (..., B). Autoregressive: the sum of the exact
        conditionals log p(x_i | x_<i, z), all from one pass."""
        if self.config.decoder == "autoregressive":
            return bernoulli_log_likelihood(x, self.autoregressive_logits(x, z))
        if self.config.decoder == "bernoulli":
            return bernoulli_log_likelihood(x, self.bernoulli_logits(z))
        mean, log_var = self.gaussian_params(z)
        return diagonal_gaussian_log_likelihood(x, mean, log_var)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, x): n draws of z ~ N(0, I) and x ~ p(x|z)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        with torch.no_grad():
            if self.config.decoder == "autoregressive":
                x = self.sample_autoregressive(z, generator)[0]
            elif self.config.decoder == "bernoulli":
                p = torch.sigmoid(self.bernoulli_logits(z))
                x = (torch.rand(p.shape, generator=generator, device=device) < p).to(p.dtype)
            else:
                mean, log_var = self.gaussian_params(z)
                x = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=generator, device=device)
        return z, x

    # -- training objective ----------------------------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-x ELBO = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), one reparameterised sample, analytic KL."""
        rec, kl = self.elbo_terms(x, generator)
        return rec - kl

    def elbo_terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ELBO's two terms per x: (log p(x|z) at one reparameterised z ~ q(z|x), the analytic
        KL(q(z|x) || N(0, I)) = 1/2 sum_k (mu_k^2 + sigma_k^2 - 2 log sigma_k - 1)). A KL near 0 for every x: the
        posterior has collapsed onto the prior, z carries no information about x."""
        mu, log_sigma = self.encoder_params(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + log_sigma.exp() * eps
        kl = 0.5 * (mu.pow(2) + (2 * log_sigma).exp() - 2 * log_sigma - 1).sum(-1)
        if self.config.decoder in BINARY_DECODERS:  # the same log p(x|z) as log_likelihood, one fused kernel
            logits = self.decoder(z) if self.config.decoder == "bernoulli" else self.autoregressive_logits(x, z)
            rec = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
            return rec, kl
        return self.log_likelihood(x, z), kl

    def _check_x(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.data_dim:
            raise ModelInputError(f"the model expects {self.data_dim} features per sample, got shape {tuple(x.shape)}")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
