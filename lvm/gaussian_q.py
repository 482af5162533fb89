"""One Gaussian q(z) = N(mean, L L^T) for one x, held as numpy arrays (what a user edits), and what follows from it.

The plane's parametrisation (mu1, mu2, sigma1, sigma2, rho): Sigma = [[s1^2, rho s1 s2], [rho s1 s2, s2^2]] with its
Cholesky factor L = [[s1, 0], [rho s2, s2 sqrt(1 - rho^2)]] (L L^T = Sigma). The encoder's q_phi(z|x) =
N(mu_phi(x), diag sigma_phi(x)^2), so its L = diag sigma_phi(x). ELBO(q) by Gauss-Hermite quadrature in q's own
coordinates (``lvm.estimators.quadrature.elbo_gauss_hermite``); then KL(q || p(z|x)) = log p(x) - ELBO(q).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch.distributions import MultivariateNormal

from lvm.estimators.quadrature import elbo_gauss_hermite
from lvm.threads import single_thread

__all__ = [
    "RHO_LIMIT",
    "GH_NODES",
    "params_to_tril",
    "tril_to_params",
    "cov_to_tril",
    "model_device_dtype",
    "model_x",
    "gaussian",
    "encoder_q",
    "gaussian_elbo",
]

RHO_LIMIT = 0.999  # |rho| is clipped here: L stays invertible
# 16^2 nodes. Their error, against a dense midpoint rule over q's +-7 sigma box (600^2 points; the bundled 2-D VAE,
# three digits, q centred on the encoder's mean): about 1e-3 nats for sigma = 0.05 (an encoder's q), up to 1 nat
# for sigma = 0.3 and up to 12 nats for sigma = 1 (the prior as q): a wide q averages log p(x|z) over features far
# smaller than itself, which no fixed set of nodes resolves. 32^2 nodes are off by up to 2 nats at sigma = 1.
GH_NODES = 16

FloatArray = NDArray[np.float64]


def params_to_tril(mu1: float, mu2: float, s1: float, s2: float, rho: float) -> tuple[FloatArray, FloatArray]:
    """(mean (2,), scale_tril (2, 2)) of N(mu, Sigma), Sigma = [[s1^2, rho s1 s2], [rho s1 s2, s2^2]]."""
    rho = float(np.clip(rho, -RHO_LIMIT, RHO_LIMIT))
    L = np.array([[s1, 0.0], [rho * s2, s2 * math.sqrt(1.0 - rho * rho)]], dtype=np.float64)
    return np.array([mu1, mu2], dtype=np.float64), L


def tril_to_params(mean: ArrayLike, scale_tril: ArrayLike) -> tuple[float, float, float, float, float]:
    """(mu1, mu2, sigma1, sigma2, rho) of N(mean, L L^T): the inverse of ``params_to_tril``."""
    m = np.asarray(mean, dtype=np.float64).reshape(2)
    L = np.asarray(scale_tril, dtype=np.float64).reshape(2, 2)
    cov = L @ L.T
    s1, s2 = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    return float(m[0]), float(m[1]), s1, s2, float(cov[0, 1] / (s1 * s2))


def cov_to_tril(cov: ArrayLike) -> FloatArray:
    """The Cholesky factor L (lower, positive diagonal) of a symmetric positive definite ``cov``; the symmetric
    part is used and 1e-12 I added (rounding). ``numpy.linalg.LinAlgError`` when it is not positive definite."""
    c = np.asarray(cov, dtype=np.float64)
    c = 0.5 * (c + c.T) + 1e-12 * np.eye(c.shape[0])
    L: FloatArray = np.linalg.cholesky(c).astype(np.float64)
    return L


def model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of a ``torch.nn.Module``'s first parameter; (cpu, float64) for other models."""
    if isinstance(model, torch.nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None:
            return p.device, p.dtype
    return torch.device("cpu"), torch.float64


def model_x(model: Any, x: ArrayLike | torch.Tensor) -> torch.Tensor:
    """One x as a flat (D,) tensor on the model's device and dtype."""
    dev, dt = model_device_dtype(model)
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(device=dev, dtype=dt).reshape(-1)


def gaussian(model: Any, mean: ArrayLike, scale_tril: ArrayLike, batch: int = 1) -> MultivariateNormal:
    """q = N(mean, L L^T) as a batch of ``batch`` copies (batch shape (batch,)), on the model's device and dtype."""
    dev, dt = model_device_dtype(model)
    m = torch.as_tensor(np.asarray(mean, dtype=np.float64), dtype=dt, device=dev)
    L = torch.as_tensor(np.asarray(scale_tril, dtype=np.float64), dtype=dt, device=dev)
    return MultivariateNormal(m.expand(batch, -1), scale_tril=L.expand(batch, -1, -1))


@torch.no_grad()
def encoder_q(model: Any, x: ArrayLike | torch.Tensor) -> tuple[FloatArray, FloatArray] | None:
    """The encoder's q_phi(z|x) as (mean (Dz,), scale_tril = diag sigma_phi(x) (Dz, Dz)), float64; None for a model
    without ``encode``. One x: on one intra-op thread (``lvm.threads``: on the GUI thread, beside a worker using the
    other core, two threads made this 1.2-5.7 ms instead of about 1)."""
    if not hasattr(model, "encode"):
        return None
    with single_thread():
        q = model.encode(model_x(model, x)[None])
    mean = q.mean[0].double().cpu().numpy()
    std = q.stddev[0].double().cpu().numpy()
    return mean, np.diag(std)


@torch.no_grad()
def gaussian_elbo(
    model: Any, x: ArrayLike | torch.Tensor, mean: ArrayLike, scale_tril: ArrayLike, n: int = GH_NODES
) -> float:
    """ELBO(q) = E_q[log p(x, z) - log q(z)] for q = N(mean, L L^T), by n^Dz Gauss-Hermite nodes."""
    xt = model_x(model, x)
    m = torch.as_tensor(np.asarray(mean, dtype=np.float64), device=xt.device, dtype=xt.dtype)
    L = torch.as_tensor(np.asarray(scale_tril, dtype=np.float64), device=xt.device, dtype=xt.dtype)
    return float(elbo_gauss_hermite(model, xt, m, L, n=n))
