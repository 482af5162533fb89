"""2-D toy data sets for mixture models, seeded and sized by arguments. Each returns (x (n, 2) float32, y (n,) int64).

Every argument is validated before anything is drawn (a bad one raises ``DatasetError`` saying what is allowed):

- ``n``, the number of points: a whole number in 1 .. ``MAX_POINTS`` (2,000,000; 16 MB of float32 points);
- ``k``, the number of clusters or arms: a whole number in 1 .. ``MAX_CLUSTERS`` (1,000);
- ``seed``: a whole number in 0 .. ``MAX_SEED`` (2**64 - 1, an unsigned 64-bit integer, as
  ``numpy.random.default_rng`` takes);
- scales (``noise``, ``spread``, ``std``, ``radial_std``, ``tangential_std``, the ``radii``): finite, in 0 ..
  ``MAX_SCALE`` (1e6); ``rate`` finite in -1e6 .. 1e6.

Whole numbers may be given as integral floats (``n=1e3``). Arguments that pass but still push points beyond float32
(e.g. a huge ``radial_std`` in the pinwheel's exponential) are refused after drawing.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec, TypeAlias

import numpy as np
import numpy.typing as npt

from lvm.errors import DatasetError

MAX_POINTS = 2_000_000
MAX_CLUSTERS = 1_000
MAX_SEED = 2**64 - 1
MAX_SCALE = 1e6

# what every toy set returns: points x (n, 2) float32 and labels y (n,) int64
ToySet: TypeAlias = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]
_P = ParamSpec("_P")

# argument -> (lowest, highest, what it is); whole numbers
WHOLE_ARGS = {
    "n": (1, MAX_POINTS, "the number of points"),
    "k": (1, MAX_CLUSTERS, "the number of clusters"),
    "seed": (0, MAX_SEED, "the random seed"),
}
# argument -> (lowest, highest, what it is); finite reals
REAL_ARGS = {
    "noise": (0.0, MAX_SCALE, "the standard deviation of the added noise"),
    "spread": (0.0, MAX_SCALE, "the half-width of the square holding the centres"),
    "std": (0.0, MAX_SCALE, "the standard deviation of each blob"),
    "radial_std": (0.0, MAX_SCALE, "the radial standard deviation of each arm"),
    "tangential_std": (0.0, MAX_SCALE, "the tangential standard deviation of each arm"),
    "rate": (-MAX_SCALE, MAX_SCALE, "the rotation rate of the arms"),
    "radii": (0.0, MAX_SCALE, "a ring radius"),
}


def _whole(key: str, value: object, lo: int, hi: int, meaning: str) -> int:
    """``value`` as an int in [lo, hi]; integral floats are accepted, bools and fractions are not."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok = isinstance(value, numbers.Integral) or (math.isfinite(value) and float(value).is_integer())
        if ok:
            # typeshed's numbers.Real has no __int__, yet int() takes every Real (through __trunc__)
            whole: int = int(value)  # type: ignore[call-overload]
            if lo <= whole <= hi:
                return whole
    raise DatasetError(
        f"{key}={value!r} is not allowed; {key} ({meaning}) must be a whole number from {lo:,} to {hi:,}"
    )


def _real(key: str, value: object, lo: float, hi: float, meaning: str) -> float:
    """``value`` as a finite float in [lo, hi]."""
    if not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value):
        if lo <= float(value) <= hi:
            return float(value)
    raise DatasetError(
        f"{key}={value!r} is not allowed; {key} ({meaning}) must be a finite number from {lo:g} to {hi:g}"
    )


def _radii(value: object) -> tuple[float, ...]:
    """One radius or a sequence of 1 .. MAX_CLUSTERS radii, each finite in [0, MAX_SCALE]."""
    values = (value,) if isinstance(value, numbers.Real) else tuple(np.asarray(value, dtype=object).reshape(-1))
    if not 1 <= len(values) <= MAX_CLUSTERS:
        raise DatasetError(f"radii has {len(values)} values; give 1 to {MAX_CLUSTERS:,} ring radii")
    return tuple(_real("radii", v, *REAL_ARGS["radii"]) for v in values)


def check_arg(key: str, value: object) -> int | float | tuple[float, ...]:
    """The validated value of one toy-set argument (see the module docstring for the allowed ranges)."""
    if key in WHOLE_ARGS:
        return _whole(key, value, *WHOLE_ARGS[key])
    if key == "radii":
        return _radii(value)
    if key in REAL_ARGS:
        return _real(key, value, *REAL_ARGS[key])
    raise DatasetError(f"{key}: unknown argument")  # every toy parameter has a rule; see WHOLE_ARGS / REAL_ARGS


def check_args(fn: Callable[..., object], kwargs: Mapping[str, object]) -> dict[str, int | float | tuple[float, ...]]:
    """Validated keyword arguments for toy set ``fn``: unknown names and out-of-range values raise ``DatasetError``."""
    allowed = list(inspect.signature(fn).parameters)
    for key in kwargs:
        if key not in allowed:
            raise DatasetError(f"{fn.__name__} has no argument {key!r}; it takes {', '.join(allowed)}")
    return {key: check_arg(key, value) for key, value in kwargs.items()}


def _validated(fn: Callable[_P, ToySet]) -> Callable[_P, ToySet]:
    """Validate ``fn``'s arguments (defaults included) before drawing, and refuse non-finite float32 points after."""
    signature = inspect.signature(fn)
    draw: Callable[..., ToySet] = fn  # called with the validated keyword arguments

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> ToySet:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        try:
            clean = check_args(fn, bound.arguments)
        except DatasetError as exc:
            raise DatasetError(f"{fn.__name__}: {exc}") from None
        with np.errstate(over="ignore", invalid="ignore"):
            x, y = draw(**clean)
        if not np.isfinite(x).all():
            raise DatasetError(
                f"{fn.__name__}: these arguments push points beyond the float32 range; use smaller scales"
            )
        return x, y

    return wrapper


@_validated
def blobs(n: int = 1500, k: int = 4, seed: int = 0, spread: float = 6.0, std: float = 0.8) -> ToySet:
    """k isotropic Gaussian blobs: centres μ_j ~ U([-spread, spread]²), y ~ U{0..k-1}, x = μ_y + std·ε, ε ~ N(0, I₂)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-spread, spread, size=(k, 2))
    y = rng.integers(0, k, size=n)
    x = centres[y] + std * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int64)


@_validated
def moons(n: int = 1500, seed: int = 0, noise: float = 0.08) -> ToySet:
    """Two interleaving half circles: y ~ U{0, 1}, t ~ U(0, π), x = (cos t, sin t) for y = 0 and
    (1 - cos t, ½ - sin t) for y = 1, plus noise·ε, ε ~ N(0, I₂)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0, np.pi, size=n)
    x = np.where(y[:, None] == 0, np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), y.astype(np.int64)


@_validated
def rings(n: int = 1500, seed: int = 0, radii: Sequence[float] = (1.0, 2.5), noise: float = 0.1) -> ToySet:
    """Concentric noisy circles: y ~ U{0..len(radii)-1}, t ~ U(0, 2π), r = radii[y] + noise·ε, x = r (cos t, sin t)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(radii), size=n)
    t = rng.uniform(0, 2 * np.pi, size=n)
    r = np.asarray(radii)[y] + noise * rng.standard_normal(n)
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    return x.astype(np.float32), y.astype(np.int64)


@_validated
def pinwheel(
    n: int = 1500, k: int = 5, seed: int = 0, radial_std: float = 0.3, tangential_std: float = 0.05, rate: float = 0.25
) -> ToySet:
    """The pinwheel: k arms of stretched Gaussians bent by a rotation that grows with the radius.

    f = (1 + radial_std·ε₁, tangential_std·ε₂), angle θ = 2πy/k + rate·exp(f₁), x = 2·R(θ) f."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    features = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    features[:, 0] += 1.0
    angles = 2 * np.pi * y / k + rate * np.exp(features[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    x = np.stack([c * features[:, 0] - s * features[:, 1], s * features[:, 0] + c * features[:, 1]], 1) * 2
    return x.astype(np.float32), y.astype(np.int64)


@_validated
def anisotropic(n: int = 1500, k: int = 3, seed: int = 0) -> ToySet:
    """Blobs sheared by a linear map, x = b A with b from ``blobs`` and A fixed: full covariances are needed to fit
    them."""
    x, y = blobs(n=n, k=k, seed=seed, spread=4.0, std=0.7)
    transform = np.array([[0.6, -0.64], [-0.41, 0.85]], dtype=np.float32) * 2.0
    return (x @ transform).astype(np.float32), y


TOY_SETS: dict[str, Callable[..., ToySet]] = {
    "blobs": blobs,
    "moons": moons,
    "rings": rings,
    "pinwheel": pinwheel,
    "anisotropic": anisotropic,
}
