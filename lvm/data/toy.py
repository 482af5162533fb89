"""2-D toy data sets for mixture models, seeded and sized by arguments. Each returns (x (n, 2) float32, y (n,) int64)."""

from __future__ import annotations

import numpy as np


def blobs(n: int = 1500, k: int = 4, seed: int = 0, spread: float = 6.0, std: float = 0.8):
    """k isotropic Gaussian blobs with centres uniform in [-spread, spread]^2."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-spread, spread, size=(k, 2))
    y = rng.integers(0, k, size=n)
    x = centres[y] + std * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int64)


def moons(n: int = 1500, seed: int = 0, noise: float = 0.08):
    """Two interleaving half circles."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0, np.pi, size=n)
    x = np.where(y[:, None] == 0,
                 np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int64)


def rings(n: int = 1500, seed: int = 0, radii=(1.0, 2.5), noise: float = 0.1):
    """Concentric noisy circles."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(radii), size=n)
    t = rng.uniform(0, 2 * np.pi, size=n)
    r = np.asarray(radii)[y] + noise * rng.standard_normal(n)
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    return x.astype(np.float32), y.astype(np.int64)


def pinwheel(n: int = 1500, k: int = 5, seed: int = 0, radial_std: float = 0.3, tangential_std: float = 0.05, rate: float = 0.25):
    """The pinwheel: k arms of stretched Gaussians bent by a rotation that grows with the radius."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    angles = 2 * np.pi * y / k + rate * np.exp(features[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    x = np.stack([c * features[:, 0] - s * features[:, 1], s * features[:, 0] + c * features[:, 1]], 1) * 2
    return x.astype(np.float32), y.astype(np.int64)


def anisotropic(n: int = 1500, k: int = 3, seed: int = 0):
    """Blobs sheared by a linear map: full covariances are needed to fit them."""
    x, y = blobs(n=n, k=k, seed=seed, spread=4.0, std=0.7)
    transform = np.array([[0.6, -0.64], [-0.41, 0.85]], dtype=np.float32) * 2.0
    return (x @ transform).astype(np.float32), y


TOY_SETS = {"blobs": blobs, "moons": moons, "rings": rings, "pinwheel": pinwheel, "anisotropic": anisotropic}
