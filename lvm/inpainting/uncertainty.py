"""How uncertain is a completion? The entropy of the exact posterior predictive p(x_M | x_O) against the mean-field
q(x_M; phi)'s, in nats.

- Mean-field q = prod_{i in M} Bernoulli(phi_i): H(q) = sum_i h(phi_i), h(p) = -p log p - (1 - p) log(1 - p)
  (closed form, ``lvm.inpainting.meanfield.bernoulli_entropy``).
- Exact predictive, a mixture over z of pixel-factorised Bernoullis: its entropy has no closed form, but
  H[p(x_M | x_O)] = -E_{x_M ~ p(x_M | x_O)} [log p(x_M | x_O)] with log p(x_M | x_O) = log p(x) - log p(x_O), both
  exact on the decoded grid, and exact samples x_M (z_g ~ p(z_g | x_O) on the grid, then
  x_j ~ Bernoulli(sigma(l_j(z_g)))): a Monte Carlo mean with its standard error (``predictive_entropy``).
- The per-pixel view: sum_i h(p(x_i = 1 | x_O)), the summed entropies of the predictive's marginals. It is at least
  the joint entropy (subadditivity), with equality when the pixels are independent given x_O, as they are under q.

Mode-seeking mean-field fits (``optimise_phi`` maximises the ELBO, i.e. minimises KL(q || p(x_M | x_O))) commit to
one completion where the model still allows several, so H(q) typically falls far below both numbers: q under-states
the uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lvm.inpainting.masks import MaskLike
from lvm.inpainting.posterior import ImageLike, InpaintGrid

__all__ = ["PredictiveEntropy", "binary_entropy", "predictive_entropy"]


@dataclass(frozen=True)
class PredictiveEntropy:
    """H[p(x_M | x_O)] ~ ``joint`` +- ``stderr`` (``n_samples`` exact completions), ``marginal_sum`` =
    sum_{i in M} h(p(x_i = 1 | x_O)) (exact), and the number of missing pixels, all in nats."""

    joint: float
    stderr: float
    marginal_sum: float
    n_missing: int
    n_samples: int


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """h(p) = -p log p - (1 - p) log(1 - p) elementwise, in nats (0 at p = 0 and p = 1)."""
    p = p.double().clamp(0.0, 1.0)
    out: torch.Tensor = -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))
    return out


@torch.no_grad()
def predictive_entropy(
    grid: InpaintGrid,
    x: ImageLike,
    mask: MaskLike,
    n_samples: int = 256,
    generator: torch.Generator | None = None,
    chunk: int = 256,
) -> PredictiveEntropy:
    """The entropy of the exact posterior predictive p(x_M | x_O) on ``grid`` (see the module docstring): the Monte
    Carlo mean of -log p(x^k_M | x_O) over ``n_samples`` exact completions x^k, and the summed marginal entropies."""
    if n_samples < 2:
        raise ValueError("predictive_entropy needs at least 2 samples (for its standard error)")
    base = grid.infer(x, mask, n_samples=0)
    missing = ~base.mask
    marginal = float((binary_entropy(base.predictive) * missing.double()).sum())
    if not bool(missing.any()):
        return PredictiveEntropy(0.0, 0.0, 0.0, 0, n_samples)
    support = grid.support(x, mask)
    vals = []
    done = 0
    while done < n_samples:
        k = min(chunk, n_samples - done)
        completions = grid.infer(x, mask, n_samples=k, generator=generator).samples
        vals.append(base.log_p_obs - support.log_marginal(completions).double())  # -log p(x_M | x_O)
        done += k
    f = torch.cat(vals)
    stderr = float(f.std(unbiased=True) / math.sqrt(len(f)))
    return PredictiveEntropy(float(f.mean()), stderr, marginal, int(missing.sum()), len(f))
