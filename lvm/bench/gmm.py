"""``lvm bench gmm``: EM for Gaussian mixtures, ours (float32 and float64) against scikit-learn, side by side.

Each case fits both from the same initial parameters (K data points as means, equal weights, the global covariance
as every component's) for exactly ``ITERS`` iterations (tol=0) and reports the time per iteration and the final
mean log-likelihood (the last E-step's, ``lower_bound_``) of each. The work is the same on both sides: scikit-learn's
``fit`` is its ``fit_predict`` (ITERS E and M steps, then one more E-step for the labels), so ours is timed with
``fit_predict`` too; both totals are divided by ITERS. ``ours_s`` is our float32 time; the float64
figures are extra fields. ``cpu_*_s``: the process's CPU time per iteration in the same runs (all threads; on a
machine shared with other work the wall times move with the load, the CPU times much less).
"""

from __future__ import annotations

import gzip
import statistics
import struct
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from lvm.bench import case, median_time, shared_data_dir

ITERS = 10


def _synthetic(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    k = 5
    centres = rng.uniform(-8, 8, size=(k, 2))
    shapes = rng.randn(k, 2, 2) * 0.7
    y = rng.randint(k, size=n)
    x: np.ndarray = centres[y] + np.einsum("nd,nde->ne", rng.randn(n, 2), shapes[y])
    return x


def _read_idx_gz(path: Path) -> np.ndarray:  # fallback when lvm.data is unavailable
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _mnist_train() -> np.ndarray:
    folder = shared_data_dir() / "mnist"
    try:
        from lvm.data import load_dataset
    except ImportError:
        x = _read_idx_gz(folder / "train-images-idx3-ubyte.gz")
        return x.reshape(len(x), -1).astype(np.float32) / 255.0
    return np.asarray(load_dataset(str(folder)).split("train").x, dtype=np.float32)


def _init(X: np.ndarray, k: int, cov_type: str, reg: float, seed: int = 0) -> dict[str, npt.NDArray[np.float64]]:
    rng = np.random.RandomState(seed)
    means = X[rng.choice(len(X), k, replace=False)].astype(np.float64)
    if cov_type == "full":
        cov = np.cov(X, rowvar=False, bias=True) + reg * np.eye(X.shape[1])
        prec = np.repeat(np.linalg.inv(cov)[None], k, 0)
        prec = 0.5 * (prec + prec.transpose(0, 2, 1))
    else:  # diag
        prec = np.repeat((1.0 / (X.var(0) + reg))[None], k, 0)
    return {"weights_init": np.full(k, 1.0 / k), "means_init": means, "precisions_init": prec}


def _case(name: str, X: np.ndarray, k: int, cov_type: str, device: torch.device, repeats: int) -> dict[str, Any]:
    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    from lvm.models.gmm import GaussianMixture

    reg = 1e-6
    init = _init(X, k, cov_type, reg)
    common: dict[str, Any] = dict(covariance_type=cov_type, max_iter=ITERS, tol=0.0, reg_covar=reg, **init)
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    results: dict[str, float] = {}
    models: dict[str, Any] = {}  # ours and scikit-learn's, fitted
    cpu: dict[str, list[float]] = {"f32": [], "f64": [], "sk": []}  # CPU seconds of each run

    def cpu_timed(key: str, fn: Callable[[], None]) -> Callable[[], None]:
        def timed() -> None:
            c0 = time.process_time()
            fn()
            cpu[key].append(time.process_time() - c0)

        return timed

    def fit_ours(dtype: torch.dtype, data: np.ndarray) -> Callable[[], None]:
        def fn() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = GaussianMixture(k, device=device, dtype=dtype, **common)
                m.fit_predict(data)  # the same work as scikit-learn's fit (a final E-step for the labels)
            if device.type == "cuda":
                torch.cuda.synchronize()
            models[str(dtype)] = m

        return fn

    def fit_sklearn() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models["sklearn"] = SKGaussianMixture(k, **common).fit(X64)

    results["f32"] = median_time(cpu_timed("f32", fit_ours(torch.float32, X32)), repeats=repeats) / ITERS
    results["f64"] = median_time(cpu_timed("f64", fit_ours(torch.float64, X64)), repeats=repeats) / ITERS
    results["sk"] = median_time(cpu_timed("sk", fit_sklearn), repeats=repeats) / ITERS
    cpu_s = {key: statistics.median(times[-repeats:]) / ITERS for key, times in cpu.items()}  # (not the warm-up)
    ll_sk = float(models["sklearn"].lower_bound_)
    ll32 = float(models[str(torch.float32)].lower_bound_)
    ll64 = float(models[str(torch.float64)].lower_bound_)
    return case(
        name,
        results["f32"],
        "scikit-learn (float64)",
        results["sk"],
        n_samples=int(X.shape[0]),
        n_features=int(X.shape[1]),
        k=k,
        covariance_type=cov_type,
        iterations=ITERS,
        ours_f64_s=results["f64"],
        speedup_f32=results["sk"] / results["f32"],
        speedup_f64=results["sk"] / results["f64"],
        cpu_f32_s=cpu_s["f32"],
        cpu_f64_s=cpu_s["f64"],
        cpu_sklearn_s=cpu_s["sk"],
        loglik_sklearn=ll_sk,
        loglik_f32=ll32,
        loglik_f64=ll64,
        rel_diff_f32=abs(ll32 - ll_sk) / abs(ll_sk),
        rel_diff_f64=abs(ll64 - ll_sk) / abs(ll_sk),
        n_iter=[
            int(models[str(torch.float32)].n_iter_),
            int(models[str(torch.float64)].n_iter_),
            int(models["sklearn"].n_iter_),
        ],
    )


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    """Three cases: 100k x 2 (K=5, full), MNIST on 50 PCA components (K=10, full), MNIST pixels (K=10, diag)."""
    from lvm.models.pca import pca_fit, pca_transform

    repeats = 1 if quick else 3
    cases = []
    n_syn = 20_000 if quick else 100_000
    cases.append(_case(f"synthetic {n_syn} x 2, K=5, full", _synthetic(n_syn), 5, "full", device, repeats))
    try:
        mnist = _mnist_train()
    except Exception as exc:  # the data folder is missing: report what ran
        return {"cases": cases, "skipped": f"MNIST cases: {exc}"}
    if quick:
        mnist = mnist[np.random.RandomState(0).choice(len(mnist), 10_000, replace=False)]
    xt = torch.as_tensor(mnist, dtype=torch.float64)
    mean, comps = pca_fit(xt, 50)
    pca50 = pca_transform(xt, mean, comps).numpy()
    n = len(mnist)
    cases.append(_case(f"MNIST train {n} on 50 PCA components, K=10, full", pca50, 10, "full", device, repeats))
    cases.append(_case(f"MNIST train {n} x 784 pixels, K=10, diag", mnist, 10, "diag", device, repeats))
    return {"cases": cases}
