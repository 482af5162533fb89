"""Clustering scores against known labels: purity and normalized mutual information (pure numpy).

With the contingency table n_ck = #{n : cluster c, label k}, N = sum n_ck:

- purity = 1/N sum_c max_k n_ck (each cluster votes for its majority label);
- NMI = I(C; Y) / ((H(C) + H(Y)) / 2) (arithmetic normalisation, scikit-learn's default), with
  I = sum_ck n_ck/N log(N n_ck / (n_c. n_.k)) and H the entropies of the marginals; 1 when both are constant.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def contingency(pred: npt.ArrayLike, labels: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """(n_clusters, n_labels) counts over the distinct values of ``pred`` and ``labels``."""
    p = np.asarray(pred).ravel()
    y = np.asarray(labels).ravel()
    if p.shape != y.shape:
        raise ValueError(f"pred and labels differ in length: {p.shape[0]} vs {y.shape[0]}")
    _, pi = np.unique(p, return_inverse=True)
    _, li = np.unique(y, return_inverse=True)
    table = np.zeros((pi.max() + 1 if pi.size else 0, li.max() + 1 if li.size else 0), dtype=np.int64)
    np.add.at(table, (pi, li), 1)
    return table


def purity(pred: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Fraction of samples whose cluster's majority label is their own label."""
    t = contingency(pred, labels)
    return float(t.max(1).sum() / t.sum()) if t.size else 0.0


def _entropy(counts: npt.NDArray[np.float64]) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(pred: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """I(C; Y) / mean(H(C), H(Y)); 1.0 when both partitions are a single class."""
    t = contingency(pred, labels).astype(np.float64)
    n = t.sum()
    if n == 0:
        return 0.0
    hc, hy = _entropy(t.sum(1)), _entropy(t.sum(0))
    if hc == 0 and hy == 0:
        return 1.0
    rows, cols = t.sum(1, keepdims=True), t.sum(0, keepdims=True)
    nz = t > 0
    mi = float((t[nz] / n * np.log(n * t[nz] / (rows @ cols)[nz])).sum())
    denom = 0.5 * (hc + hy)
    return float(max(mi, 0.0) / denom) if denom > 0 else 0.0
