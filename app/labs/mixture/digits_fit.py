"""Clustering handwritten digits with a Gaussian mixture, Qt-free (the work behind the Mixture lab's digits page).

Feature spaces: raw pixels (784-D, diagonal covariances: full ones would need 300k parameters per component), the first
50 principal components (full covariances), or the VAE's encoder means mu_phi(x) when a model is loaded. Component
means are shown as images: pixels directly, mean + mu_k W for PCA, the decoder mean f_theta(mu_k) for the VAE.
Purity = (1/N) sum_k max_c |cluster k and class c|; NMI = I(cluster; class) / sqrt(H(cluster) H(class)).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from app.labs.mixture.state import DIGIT_SPACES
from lvm.errors import ModelInputError
from lvm.latent_space import encode_dataset, model_device
from lvm.models import gmm
from lvm.models.capabilities import decoder_mean, describe
from lvm.models.gmm_metrics import normalized_mutual_info, purity
from lvm.models.pca import pca_fit

SPACES = DIGIT_SPACES
TILE_GAP = 2


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def purity_nmi(labels: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """(purity, NMI) of ``clusters`` against ``labels`` (``lvm.models.gmm_metrics``)."""
    return purity(clusters, labels), normalized_mutual_info(clusters, labels)


def pca(X: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), components (n, D)) with orthonormal rows (``lvm.models.pca.pca_fit``)."""
    mean, comps = pca_fit(torch.as_tensor(X), n)
    return _np(mean).astype(np.float32), _np(comps).astype(np.float32)


@dataclasses.dataclass
class DigitsResult:
    space: str
    indices: np.ndarray  # (N,) indices into the workspace split
    resp: np.ndarray  # (N, K)
    mean_images: np.ndarray  # (K, H*W) in [0, 1]
    weights: np.ndarray
    purity: float | None
    nmi: float | None
    log_likelihood: float
    n_iter: int
    gmm: gmm.GaussianMixture
    embed: Callable[[np.ndarray], np.ndarray]  # (M, D) images -> (M, F) features


Features = Callable[[np.ndarray], np.ndarray]


def _feature_space(X: np.ndarray, space: str, model=None) -> tuple[Features, Features, float]:
    """(images -> features, feature-space means -> images, reg_covar) of one of ``SPACES``, fitted to ``X``."""
    if space == SPACES[0]:
        return (lambda imgs: np.asarray(imgs, np.float32)), (lambda means: np.clip(means, 0, 1)), 1e-2
    if space == SPACES[1]:
        mean, comps = pca(X, min(50, X.shape[1], len(X) - 1))
        return (
            (lambda imgs: (np.asarray(imgs, np.float32) - mean) @ comps.T),
            (lambda means: np.clip(mean + means @ comps, 0, 1)),
            1e-3,
        )
    problem = latent_space_problem(model)
    if problem is not None:
        raise ModelInputError(problem)
    device = model_device(model)

    def embed(imgs: np.ndarray) -> np.ndarray:
        return encode_dataset(model, np.asarray(imgs, np.float32))[0]  # the encoder means

    def to_images(means: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = decoder_mean(model, torch.as_tensor(means, dtype=torch.float32, device=device))
        return np.clip(out.float().cpu().numpy(), 0, 1)

    return embed, to_images, 1e-6


def latent_space_problem(model: Any) -> str | None:
    """Why the digits cannot be clustered in ``model``'s latent space (None: they can): it needs an encoder (the
    features mu_phi(x)) and a decoder mean (the component means as images)."""
    if model is None:
        return "the latent space needs a model; open or train one first"
    try:
        caps = describe(model)
    except ModelInputError as exc:
        return str(exc)
    return caps.missing("encoder") or caps.missing("decoder-mean")


def fit_digits(
    x_all: np.ndarray,
    y_all: np.ndarray | None,
    space: str,
    k: int,
    n: int,
    seed: int,
    cov_type: str,
    model=None,
    token=None,
    max_iter: int = 100,
) -> Iterator[tuple[Any, ...]]:
    """Generator: ('progress', fraction, text) ... then ('done', DigitsResult). Runs in a worker."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x_all), size=min(n, len(x_all)), replace=False))
    X = np.ascontiguousarray(x_all[idx], dtype=np.float32)
    yield "progress", 0.02, "preparing features"
    embed, to_images, reg = _feature_space(X, space, model)
    F = embed(X)
    F = np.ascontiguousarray(F, dtype=np.float32)
    if len(F) < k:
        raise ModelInputError(f"{len(F)} digits cannot fit {k} components; use more digits or fewer components")
    gm = gmm.GaussianMixture(
        n_components=k,
        covariance_type=cov_type,
        init_params="kmeans",
        random_state=seed,
        max_iter=max_iter,
        tol=1e-4,
        reg_covar=reg,
        device="cpu",
    )
    last: gmm.EMSnapshot | None = None
    for snap in gm.em_steps(F, max_iter=max_iter):
        if token is not None and token.cancelled:
            return
        last = snap
        if snap.half == "M":
            yield (
                "progress",
                0.05 + 0.9 * min(snap.iteration / max_iter, 1.0),
                f"EM iteration {snap.iteration}, log-lik {snap.log_likelihood:.2f}",
            )
    if last is None:
        raise ModelInputError("EM produced no step; use more digits")
    fitted = gmm.GaussianMixture.from_params(_np(last.weights), _np(last.means), _np(last.covariances), cov_type)
    resp = _np(fitted.predict_proba(F)).astype(np.float32)
    hard = resp.argmax(1)
    purity = nmi = None
    if y_all is not None:
        purity, nmi = purity_nmi(y_all[idx], hard)
    result = DigitsResult(
        space=space,
        indices=idx,
        resp=resp,
        mean_images=to_images(_np(last.means)),
        weights=_np(last.weights),
        purity=purity,
        nmi=nmi,
        log_likelihood=float(last.log_likelihood),
        n_iter=int(last.iteration),
        gmm=fitted,
        embed=embed,
    )
    yield "done", result


def tile(images: np.ndarray, shape: tuple[int, int], cols: int) -> np.ndarray:
    """A (rows*(h+gap), cols*(w+gap)) grid image (row-major, first image top-left); gaps are -1 (drawn dark)."""
    h, w = shape
    m = len(images)
    rows = max(1, -(-m // cols))
    grid = np.full((rows * (h + TILE_GAP), cols * (w + TILE_GAP)), -0.25, np.float32)
    for i in range(m):
        r, c = divmod(i, cols)
        grid[r * (h + TILE_GAP) : r * (h + TILE_GAP) + h, c * (w + TILE_GAP) : c * (w + TILE_GAP) + w] = images[
            i
        ].reshape(h, w)
    return grid
