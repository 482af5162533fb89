"""Principal component analysis in torch.

With the centred data Xc = X - mean, the top n right singular vectors V_n of Xc (rows of ``components``, unit
norm, ordered by decreasing variance) give the projection z = (x - mean) V_n^T and the reconstruction
x ~ mean + z V_n. Signs follow scikit-learn's convention: each component's largest |entry| is positive.
"""

from __future__ import annotations

import torch

from lvm.errors import ModelInputError


def pca_fit(X: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (D,), components (n, D))`` of X (N, D), via the eigendecomposition of the D x D covariance
    (accumulated in float64: fast for N >> D)."""
    X = torch.as_tensor(X)
    if X.ndim != 2:
        raise ModelInputError(f"PCA needs a 2-D (N, D) array, got shape {tuple(X.shape)}")
    N, D = X.shape
    if not 1 <= n <= min(N, D):
        raise ModelInputError(
            f"cannot keep {n} principal components of {N} samples with {D} features; choose 1..{min(N, D)}"
        )
    X64 = X.to(torch.float64)
    mean = X64.mean(0)
    Xc = X64 - mean
    cov = Xc.T @ Xc / max(N - 1, 1)
    evals, evecs = torch.linalg.eigh(cov)
    comps = evecs[:, torch.argsort(evals, descending=True)[:n]].T.contiguous()
    idx = comps.abs().argmax(1)
    signs = torch.sign(comps[torch.arange(n), idx])
    signs[signs == 0] = 1
    comps = comps * signs.unsqueeze(1)
    return mean.to(X.dtype if X.is_floating_point() else torch.float64), comps.to(
        X.dtype if X.is_floating_point() else torch.float64
    )


def pca_transform(X: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """z = (x - mean) V^T, (N, n)."""
    return (torch.as_tensor(X, dtype=components.dtype) - mean) @ components.T


def pca_inverse(Z: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """x = mean + z V, (N, D)."""
    return torch.as_tensor(Z, dtype=components.dtype) @ components + mean
