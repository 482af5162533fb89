"""What a latent model can show: the optional members of the latent-model protocol (``lvm.models.base``) it has.

The protocol's required members are ``latent_dim``, ``log_prior`` and ``log_likelihood``. Optional members unlock
more, and every lab and estimator asks here rather than guessing from a class:

- ``encode(x)`` -> q(z|x), a ``torch.distributions.Distribution`` with batch shape (B,): amortised inference
  (the encoder's q, the amortisation gap, proposals for importance sampling);
- ``bernoulli_logits(z)`` / ``gaussian_params(z)``: decoder fast paths (quadrature tables, inpainting), and the
  decoder's mean image;
- ``decode_mean(z)``: the decoder's mean E[x|z] for drawing, where neither fast path exists;
- ``sample(n)`` -> (z, x): ancestral samples;
- ``image_shape`` (or ``config.image_shape``): (height, width) to draw x as an image; ``data_dim``: the width of x.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from lvm.errors import ModelInputError

REQUIRED_MEMBERS = ("latent_dim", "log_prior", "log_likelihood")


@dataclasses.dataclass(frozen=True)
class ModelCapabilities:
    """The optional members ``model`` has, and the sizes it declares (None where it declares none)."""

    latent_dim: int
    data_dim: int | None
    image_shape: tuple[int, int] | None
    decoder: str  # "bernoulli", "gaussian", "autoregressive" or "generic" (log_likelihood only)
    has_encoder: bool
    can_sample: bool
    has_decoder_mean: bool

    @property
    def binary_pixels(self) -> bool:
        """p(x|z) is over binary pixels (a Bernoulli or autoregressive Bernoulli decoder)."""
        return self.decoder in ("bernoulli", "autoregressive")

    def missing(self, feature: str) -> str | None:
        """Why ``feature`` cannot be shown for this model, or None when it can. Features: ``encoder``,
        ``decoder-mean``, ``image``, ``sampler``, ``exact`` (quadrature needs latent_dim <= 2),
        ``plane`` (a 2-D latent plane needs latent_dim >= 2)."""
        if feature == "encoder" and not self.has_encoder:
            return (
                "the model has no encoder (no `encode(x)`): the encoder's q(z|x) and the amortisation gap are "
                "not defined"
            )
        if feature == "decoder-mean" and not self.has_decoder_mean:
            return (
                "the model has no decoder mean (no `bernoulli_logits`, `gaussian_params` or `decode_mean`): "
                "decoded images cannot be drawn"
            )
        if feature == "image" and self.image_shape is None:
            return (
                "the model declares no `image_shape` and its data width is not a square: x cannot be drawn as an image"
            )
        if feature == "sampler" and not (self.can_sample or self.has_decoder_mean):
            return "the model has no `sample(n)`: samples from p(x) cannot be drawn"
        if feature == "exact" and self.latent_dim > 2:
            return (
                f"the latent space is {self.latent_dim}-D: exact quadrature needs at most 2 dimensions, so log p(x) "
                "is an annealed importance sampling estimate"
            )
        if feature == "plane" and self.latent_dim < 2:
            return "the latent space is 1-D: there is no 2-D plane to draw"
        return None


def check_latent_model(model: Any, name: str = "the model") -> None:
    """Raise ModelInputError naming the first missing or invalid required member of the protocol."""
    for member in REQUIRED_MEMBERS:
        if not hasattr(model, member):
            raise ModelInputError(
                f"{name} is not a latent model: it has no `{member}` (a latent model needs latent_dim, "
                "log_prior(z) and log_likelihood(x, z))"
            )
    dim = model.latent_dim
    if isinstance(dim, bool) or not isinstance(dim, int | torch.SymInt) or int(dim) < 1:
        raise ModelInputError(f"{name}: `latent_dim` must be a positive integer, got {dim!r}")
    for member in ("log_prior", "log_likelihood"):
        if not callable(getattr(model, member)):
            raise ModelInputError(f"{name}: `{member}` must be callable")


def _has(model: Any, member: str) -> bool:
    """``hasattr`` that treats a property raising AttributeError (a VAE's other decoder's fast path) as absent."""
    try:
        return callable(getattr(model, member))
    except AttributeError:
        return False


def _data_dim(model: Any) -> int | None:
    for owner in (model, getattr(model, "config", None)):
        value = getattr(owner, "data_dim", None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _image_shape(model: Any, data_dim: int | None) -> tuple[int, int] | None:
    for owner in (model, getattr(model, "config", None)):
        shape = getattr(owner, "image_shape", None)
        if shape is not None:
            try:
                h, w = (int(s) for s in shape)
            except (TypeError, ValueError):
                continue
            if h > 0 and w > 0 and (data_dim is None or h * w == data_dim):
                return h, w
    if data_dim is not None and data_dim >= 16 and math.isqrt(data_dim) ** 2 == data_dim:
        side = math.isqrt(data_dim)
        return side, side
    return None


def describe(model: Any) -> ModelCapabilities:
    """The capabilities of a model of the protocol (raises ModelInputError for an object that is not one)."""
    check_latent_model(model)
    config_decoder = getattr(getattr(model, "config", None), "decoder", None)
    if config_decoder == "autoregressive":
        decoder = "autoregressive"
    elif _has(model, "bernoulli_logits"):
        decoder = "bernoulli"
    elif _has(model, "gaussian_params"):
        decoder = "gaussian"
    else:
        decoder = "generic"
    data_dim = _data_dim(model)
    return ModelCapabilities(
        latent_dim=int(model.latent_dim),
        data_dim=data_dim,
        image_shape=_image_shape(model, data_dim),
        decoder=decoder,
        has_encoder=_has(model, "encode"),
        can_sample=_has(model, "sample"),
        has_decoder_mean=decoder in ("bernoulli", "gaussian") or _has(model, "decode_mean"),
    )


def decoder_mean(model: Any, z: torch.Tensor) -> torch.Tensor:
    """E[x|z] for z (..., latent_dim) -> (..., D): sigmoid(logits), the Gaussian mean, or the model's decode_mean."""
    if _has(model, "decode_mean"):
        mean: torch.Tensor = model.decode_mean(z)
        return mean
    if _has(model, "bernoulli_logits"):
        return torch.sigmoid(model.bernoulli_logits(z))
    if _has(model, "gaussian_params"):
        gaussian_mean: torch.Tensor = model.gaussian_params(z)[0]
        return gaussian_mean
    raise ModelInputError(describe(model).missing("decoder-mean") or "the model has no decoder mean")
