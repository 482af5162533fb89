"""The encoder's ELBO against the exact log p(x) over many x of a 2-D latent model: the gap per x is
KL(q_phi(z|x) || p(z|x)) = log p(x) - ELBO(q_phi(z|x)) >= 0.

ELBO(q_phi(z|x)) by n^2 Gauss-Hermite nodes in q's coordinates (``elbo_gauss_hermite``); log p(x) by the
coarse-to-fine midpoint rule of ``log_marginal_adaptive`` (a 256^2 fine grid over the box, summed only on each x's
support).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from lvm.errors import ModelInputError
from lvm.estimators.quadrature import elbo_gauss_hermite, log_marginal_adaptive
from lvm.estimators.validation import check_x
from lvm.gaussian_q import model_device_dtype

__all__ = ["EncoderGapSnapshot", "encoder_gap_steps"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class EncoderGapSnapshot:
    """Encoder ELBO and exact log p(x) for the first ``done`` of ``indices`` (the rest nan)."""

    indices: NDArray[np.int64]
    elbo: FloatArray
    log_px: FloatArray
    done: int

    @property
    def gap(self) -> FloatArray:
        """KL(q_phi(z|x) || p(z|x)) = log p(x) - ELBO for the computed x's."""
        out: FloatArray = self.log_px[: self.done] - self.elbo[: self.done]
        return out


def encoder_gap_steps(
    model: Any,
    data_x: NDArray[Any],
    indices: ArrayLike,
    box: ArrayLike,
    chunk: int = 100,
    gh_nodes: int = 8,
    size: int = 256,
) -> Iterator[EncoderGapSnapshot]:
    """Yield an ``EncoderGapSnapshot`` per chunk of ``chunk`` x's (``data_x[indices]``): ELBO(q_phi(z|x)) by
    ``gh_nodes``^2 Gauss-Hermite nodes and log p(x) by ``log_marginal_adaptive`` on a ``size``^2 grid over ``box``."""
    dev, dt = model_device_dtype(model)
    idx = np.asarray(indices, dtype=np.int64)
    n = len(idx)
    if n:
        if idx.min() < 0 or idx.max() >= len(data_x):
            raise ModelInputError(
                f"indices must lie in [0, {len(data_x)}) (rows of data_x); got {int(idx.min())}..{int(idx.max())}"
            )
        check_x(model, np.asarray(data_x)[idx], name="data_x")
    elbo = np.full(n, np.nan)
    lpx = np.full(n, np.nan)
    boxt = torch.as_tensor(np.asarray(box, dtype=np.float64))
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        xs = torch.as_tensor(np.asarray(data_x)[idx[a:b]]).to(device=dev, dtype=dt)
        with torch.no_grad():
            q = model.encode(xs)
            e = elbo_gauss_hermite(model, xs, q.mean, torch.diag_embed(q.stddev), n=gh_nodes)
            elbo[a:b] = e.double().cpu().numpy()
        lpx[a:b] = log_marginal_adaptive(model, xs, size=size, block=8, box=boxt).log_px.double().cpu().numpy()
        yield EncoderGapSnapshot(indices=idx, elbo=elbo.copy(), log_px=lpx.copy(), done=b)
