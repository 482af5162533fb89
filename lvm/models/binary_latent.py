"""A binary latent factor model (a one-layer sigmoid belief net) with K binary features z in {0,1}^K.

    p(z)     = prod_k Bernoulli(z_k; sigmoid(a_k))                 (factorised prior, learnable logits a)
    p(x | z) = prod_d Bernoulli(x_d; sigmoid(l_d(z))),  l(z) = W z + b   (or an MLP of z)

so log p(z) = a.z - sum_k softplus(a_k) and log p(x|z) = x.l(z) - sum_d softplus(l_d(z)). The marginal
p(x) = sum_z p(z) p(x|z) is a finite sum of 2^K terms (``lvm.estimators.discrete`` computes it exactly).

An amortised mean-field encoder q(z|x) = prod_k Bernoulli(z_k; sigmoid(e_k(x))) (an MLP of x) is the proposal for
importance sampling and the variational family for the ELBO/IWAE/VIMCO objectives.

It follows the latent-model protocol of ``lvm.models.base`` (``latent_dim``, ``log_prior``, ``log_likelihood`` and the
``bernoulli_logits`` fast path), so the generic Monte Carlo estimators of ``lvm.estimators`` accept it.

Checkpoints: ``save_binary_latent`` / ``load_binary_latent`` (safetensors + JSON metadata, kind ``binary-latent``;
nothing is ever unpickled, writes are atomic).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent

from lvm.errors import CheckpointError, ModelInputError

MAX_LATENT_DIM = 30
CHECKPOINT_KIND = "binary-latent"


@dataclasses.dataclass(frozen=True)
class BinaryLatentConfig:
    """Architecture: ``latent_dim`` K (1..30), ``data_dim`` D, ``decoder_hidden`` (empty: linear logits W z + b),
    ``encoder_hidden`` (the MLP of q(z|x); empty: linear)."""

    data_dim: int = 784
    latent_dim: int = 20
    decoder_hidden: tuple[int, ...] = ()
    encoder_hidden: tuple[int, ...] = (200,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder_hidden", tuple(int(h) for h in self.decoder_hidden))
        object.__setattr__(self, "encoder_hidden", tuple(int(h) for h in self.encoder_hidden))
        if not 1 <= int(self.latent_dim) <= MAX_LATENT_DIM:
            raise ModelInputError(
                f"latent_dim must be between 1 and {MAX_LATENT_DIM} (2^K configurations are "
                f"enumerated); got {self.latent_dim}"
            )
        if not 1 <= int(self.data_dim) <= 100_000:
            raise ModelInputError(f"data_dim must be between 1 and 100000; got {self.data_dim}")
        if (
            any(not 1 <= h <= 8192 for h in (*self.decoder_hidden, *self.encoder_hidden))
            or len(self.decoder_hidden) > 4
            or len(self.encoder_hidden) > 4
        ):
            raise ModelInputError("hidden layers: at most 4, each of 1..8192 units")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BinaryLatentConfig:
        if not isinstance(d, dict):
            raise ModelInputError("the architecture must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kwargs)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class BinaryLatentModel(nn.Module):
    """p(z) p(x|z) with z in {0,1}^K (see the module docstring); ``encode(x)`` is the mean-field Bernoulli q(z|x)."""

    standard_normal_prior = False

    def __init__(self, config: BinaryLatentConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or BinaryLatentConfig(**kwargs)
        c = self.config
        self.latent_dim, self.data_dim = int(c.latent_dim), int(c.data_dim)
        self.prior_logits = nn.Parameter(torch.zeros(self.latent_dim))
        self.decoder = _mlp([self.latent_dim, *c.decoder_hidden, self.data_dim])
        self.encoder = _mlp([self.data_dim, *c.encoder_hidden, self.latent_dim])

    # -- the generative model ----------------------------------------------------------------------------------------
    @property
    def is_linear(self) -> bool:
        """True when the decoder logits are l(z) = W z + b (enables the factorised enumeration)."""
        return len(self.decoder) == 1

    @property
    def weight(self) -> torch.Tensor:
        """W (D, K) of a linear decoder."""
        return cast(nn.Linear, self.decoder[0]).weight  # the first layer of every decoder is linear

    @property
    def bias(self) -> torch.Tensor:
        """b (D,) of a linear decoder."""
        return cast(nn.Linear, self.decoder[0]).bias

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = sum_k z_k a_k - softplus(a_k); z (..., K) -> (...)."""
        a = self.prior_logits.to(z.dtype)
        return z @ a - nn.functional.softplus(a).sum()

    def bernoulli_logits(self, z: torch.Tensor) -> torch.Tensor:
        """l(z) (..., D) for z (..., K)."""
        logits: torch.Tensor = self.decoder(z.to(self.prior_logits.dtype))
        return logits

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) = sum_d x_d l_d - softplus(l_d), broadcasting x (B, D) against z (S, B, K) -> (S, B)."""
        logits = self.bernoulli_logits(z)
        return (logits * x.to(logits.dtype)).sum(-1) - nn.functional.softplus(logits).sum(-1)

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(z) + log p(x|z)."""
        return self.log_prior(z) + self.log_likelihood(x, z)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z] = sigmoid(l(z))."""
        return torch.sigmoid(self.bernoulli_logits(z))

    def prior(self) -> Independent[Bernoulli]:
        return Independent(Bernoulli(logits=self.prior_logits), 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n draws (z, x) from p(z) p(x|z)."""
        dev = self.prior_logits.device
        z = (torch.rand(n, self.latent_dim, generator=generator, device=dev) < torch.sigmoid(self.prior_logits)).float()
        p = self.decode_mean(z)
        x = (torch.rand(p.shape, generator=generator, device=dev) < p).float()
        return z, x

    # -- the encoder -------------------------------------------------------------------------------------------------
    def encoder_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits e(x) (B, K) of q(z_k = 1 | x) = sigmoid(e_k(x))."""
        self._check_x(x)
        logits: torch.Tensor = self.encoder(x.to(self.prior_logits.dtype))
        return logits

    def encode(self, x: torch.Tensor) -> Independent[Bernoulli]:
        """q(z|x) = prod_k Bernoulli(sigmoid(e_k(x))), batch shape (B,), event shape (K,)."""
        return Independent(Bernoulli(logits=self.encoder_logits(x)), 1)

    def _check_x(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[-1] != self.data_dim:
            raise ModelInputError(f"x must have shape (batch, {self.data_dim}); got {tuple(x.shape)}")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def mean_field_bernoulli(logits: torch.Tensor) -> Independent[Bernoulli]:
    """A mean-field Bernoulli q(z) = prod_k Bernoulli(sigmoid(logits_k)) as a torch distribution (event dim K)."""
    return Independent(Bernoulli(logits=logits), 1)


def marginals_as_logits(marginals: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """logit(p) with p clamped to [eps, 1 - eps] (a q with probabilities 0 or 1 would miss configurations)."""
    p = marginals.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


# -- checkpoints -----------------------------------------------------------------------------------------------------
def save_binary_latent(
    model: BinaryLatentModel, path: str | os.PathLike[str], info: dict[str, Any] | None = None
) -> None:
    """Save weights + architecture + ``info`` as safetensors atomically; refuses NaN/inf weights."""
    from safetensors.torch import save as st_save

    from lvm.checkpoint import FORMAT, FORMAT_VERSION, _jsonable
    from lvm.io import atomic_write_bytes

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"the model's weights contain NaN or infinity ({bad[0]}); it diverged in training and "
            "is not saved. Retrain it with a smaller learning rate"
        )
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": CHECKPOINT_KIND,
        "config": json.dumps(model.config.to_dict()),
        "info": json.dumps(info or {}, default=_jsonable),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_binary_latent(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[BinaryLatentModel, dict[str, Any]]:
    """Load a ``binary-latent`` checkpoint: (model in eval mode on ``device``, info). Raises CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    from lvm.checkpoint import read_checkpoint

    path = Path(path)
    data, meta = read_checkpoint(path)
    if meta.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"{path}: holds a model of kind {meta.get('kind')!r}; the Discrete latents lab needs a "
            f"'{CHECKPOINT_KIND}' checkpoint (`lvm train-discrete`)"
        )
    try:
        config = BinaryLatentConfig.from_dict(json.loads(meta["config"]))
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, TypeError, ValueError, json.JSONDecodeError, ModelInputError) as exc:
        raise CheckpointError(f"{path}: the stored architecture is invalid ({exc}); the header was edited") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: the stored 'info' metadata is not a JSON object; the header was edited")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated tensor data ({exc})") from None
    with torch.device("meta"):
        expected = BinaryLatentModel(config).state_dict()
    if set(expected) != set(tensors):
        raise CheckpointError(f"{path}: weights do not match the stored architecture; the file was edited")
    for k, v in expected.items():
        t = tensors[k]
        if t.shape != v.shape or not t.is_floating_point() or not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: weight {k} has the wrong shape/dtype or contains NaN/inf")
    model = BinaryLatentModel(config)
    model.load_state_dict({k: t.to(torch.float32) for k, t in tensors.items()})
    model.eval()
    return model.to(device), info


def pretrained_binary_latent_path() -> Path:
    """The bundled K = 20 model (``resources/models/binary_latent_k20.safetensors``)."""
    from lvm.resources import resources_dir

    return resources_dir() / "models" / "binary_latent_k20.safetensors"
