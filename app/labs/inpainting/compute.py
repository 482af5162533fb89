"""The Inpainting lab's computations, Qt-free. Each runs in a worker (``app.core.workers.TaskRunner``) on copies of
the drawing and returns, or yields, results that are never changed afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lvm.errors import LVMError
from lvm.inpainting import DEFAULT_SIZE, InpaintGrid, InpaintResult, meanfield_elbo, optimise_phi
from lvm.inpainting.local_posterior import LocalPosteriorGrid, Rect, mass_box
from lvm.inpainting.meanfield import MeanFieldSnapshot
from lvm.inpainting.snis import SnisResult, default_proposal, snis_inpaint, snis_problem
from lvm.inpainting.uncertainty import PredictiveEntropy, predictive_entropy
from lvm.models.capabilities import describe
from lvm.threads import single_thread

GRID_SIZE = DEFAULT_SIZE
N_SAMPLES = 16  # sampled completions shown
ELBO_SAMPLES = 256  # completions per ELBO(phi) estimate
OPTIMISE_SAMPLES = 32  # completions per optimiser step
REPORT_EVERY = 5  # optimiser steps per snapshot
ENTROPY_SAMPLES = 256  # exact completions per estimate of the predictive's entropy
SNIS_PROPOSALS = 2048  # draws of z per SNIS update (a model the grid cannot take: d > 2, a Gaussian decoder)
IMAGE_PIXELS = 28 * 28


@dataclass(frozen=True)
class Inference:
    """The exact inference for one drawing, the rectangle holding 99.9 % of p(z | x_O) (2-D latents), and the
    posterior's relative density on the fine heatmap's grid ``local`` it was computed on (None without one)."""

    result: InpaintResult
    mass_box: Rect | None
    seconds: float
    density: np.ndarray | None = None
    local: LocalPosteriorGrid | None = None


def model_problem(model: object) -> str | None:
    """Why ``model`` cannot inpaint exactly on a latent grid here (None: it can)."""
    if model is None:
        return "open a model (File → Open model…) to inpaint"
    try:
        caps = describe(model)
    except LVMError as exc:
        return str(exc)
    if caps.latent_dim not in (1, 2) or caps.decoder != "bernoulli":
        if caps.decoder == "autoregressive":
            return (
                "exact inpainting here needs a pixel-factorised Bernoulli decoder; this model's autoregressive decoder "
                "makes each pixel depend on the ones before it (open or train a bernoulli model)"
            )
        return "exact inpainting needs a 1-D or 2-D latent model with a Bernoulli decoder"
    return None


def inference_mode(model: object) -> tuple[str | None, str]:
    """How this lab inpaints with ``model``: ("grid", "") exactly on a latent grid, ("snis", why) by self-normalised
    importance sampling over z (any latent dimension, a pixel-factorised decoder), or (None, why it cannot)."""
    problem = model_problem(model)
    if problem is None:
        return "grid", ""
    if model is None or not _describable(model):
        return None, problem
    caps = describe(model)
    if caps.data_dim not in (None, IMAGE_PIXELS) or (caps.image_shape not in (None, (28, 28))):
        return None, f"this lab draws 28 × 28 images; the model's data has {caps.data_dim} values"
    snis = snis_problem(model)
    if snis is not None:
        return None, snis
    if caps.latent_dim > 2:
        return "snis", f"the latent space is {caps.latent_dim}-D; the exact grid needs at most 2 dimensions"
    return "snis", f"the decoder is {caps.decoder}; the exact grid here needs a Bernoulli decoder"


def _describable(model: object) -> bool:
    try:
        describe(model)
    except LVMError:
        return False
    return True


def snis_infer(model: Any, x: np.ndarray, mask: np.ndarray, seed: int, n_samples: int = N_SAMPLES) -> SnisInference:
    """SNIS over z for one drawing (``lvm.inpainting.snis``): the encoder's q of the image with the missing pixels at
    0.5 as the proposal when the model has an encoder, else the prior; ``SNIS_PROPOSALS`` draws, seeded."""
    t0 = time.perf_counter()
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with single_thread():
        result = snis_inpaint(
            model, x, mask, SNIS_PROPOSALS, n_samples=n_samples, proposal=default_proposal(model), generator=gen
        )
    return SnisInference(result, time.perf_counter() - t0)


@dataclass(frozen=True)
class SnisInference:
    """The SNIS inference for one drawing."""

    result: SnisResult
    seconds: float


def proposal_text(result: SnisResult) -> str:
    """The proposal in words (shown in the lab)."""
    if result.proposal == "fitted":
        return "proposal: a Gaussian fitted to p(z|x_O) (mode search, then VI), widened 1.3×"
    if result.proposal == "encoder":
        return "proposal: the encoder's q(z|x̃), x̃ = the image with its missing pixels set to 0.5"
    return "proposal: the prior N(0, I)"


def build_grid(model: Any) -> InpaintGrid:
    return InpaintGrid.build(model, size=GRID_SIZE)


def grid_text(grid: InpaintGrid) -> str:
    box = grid.box
    square = "²" if grid.latent_dim == 2 else ""
    return (
        f"grid {grid.size}² over [{float(box[0, 0]):.1f}, {float(box[0, 1]):.1f}]{square}; "
        f"tables {grid.nbytes / 1e6:.0f} MB, decoded in {grid.build_seconds * 1000:.0f} ms"
    )


def infer(
    grid: InpaintGrid,
    x: np.ndarray,
    mask: np.ndarray,
    seed: int,
    n_samples: int = N_SAMPLES,
    local: LocalPosteriorGrid | None = None,
) -> Inference:
    """p(z | x_O) on the grid, log p(x_O), the predictive and ``n_samples`` completions drawn with ``seed``; with a
    fine grid ``local`` that has a rectangle, the posterior's density on it too (``local`` is never changed once it
    has one, so a worker may read it)."""
    t0 = time.perf_counter()
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    result = grid.infer(x, mask, n_samples=n_samples, generator=gen)
    box, density = None, None
    if grid.latent_dim == 2:
        w = np.exp(result.log_post.cpu().numpy()).reshape(grid.shape)
        box = mass_box(w, grid.box.cpu().numpy())
        if local is not None and local.rect is not None:
            with single_thread():  # two matrix-vector products: OpenMP's fork/join costs more than it saves
                density = local.density(grid, x, mask)
    return Inference(result, box, time.perf_counter() - t0, density, local if density is not None else None)


def local_posterior(grid: InpaintGrid, rect: Rect, n: int = 48) -> LocalPosteriorGrid:
    """The fine heatmap's tables for ``rect`` (n^2 decoder calls, ~100 ms on one thread)."""
    local = LocalPosteriorGrid(n)
    with single_thread():
        local.set_rect(grid, rect)
    return local


def elbo_steps(
    grid: InpaintGrid,
    x: np.ndarray,
    mask: np.ndarray,
    phis: dict[str, np.ndarray],
    seed: int,
    n_samples: int = ELBO_SAMPLES,
) -> Iterator[tuple[dict[str, tuple[float, float]], float]]:
    """ELBO(phi) +- stderr for each phi, with ``seed``: yields (the estimates so far, log p(x_O)) after each."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    lp = grid.infer(x, mask, n_samples=0).log_p_obs
    out: dict[str, tuple[float, float]] = {}
    for key, phi in phis.items():
        if (~np.asarray(mask, bool)).sum() == 0:  # nothing missing: q is the empty product, ELBO = log p(x_O)
            out[key] = (lp, 0.0)
        else:
            with single_thread():
                est = meanfield_elbo(grid, x, mask, phi, n_samples=n_samples, generator=gen)
            out[key] = (est.elbo, est.stderr)
        yield dict(out), lp


def optimise_steps(
    grid: InpaintGrid, x: np.ndarray, mask: np.ndarray, phi0: np.ndarray | None, steps: int, seed: int
) -> Iterator[MeanFieldSnapshot]:
    """``lvm.inpainting.optimise_phi`` from ``phi0`` (None: the predictive) with ``seed``."""
    yield from optimise_phi(
        grid, x, mask, phi0=phi0, steps=steps, n_samples=OPTIMISE_SAMPLES, seed=int(seed), report_every=REPORT_EVERY
    )


def uncertainty(grid: InpaintGrid, x: np.ndarray, mask: np.ndarray, seed: int) -> PredictiveEntropy:
    """The exact predictive's entropy, jointly (Monte Carlo with ``seed``) and summed over the pixels' marginals."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with single_thread():
        return predictive_entropy(grid, x, mask, n_samples=ENTROPY_SAMPLES, generator=gen)
