"""``lvm bench eval``: exact log p(x) by coarse-to-fine quadrature against IWAE (k = 5000) on binarized MNIST.

Model: the shipped pretrained VAE ``resources/models/vae2d.safetensors``; data: the binarized-MNIST test split
from the developers' shared data folder. IWAE-5000 on all 10,000 images takes ~10 minutes, so it is timed on a
subset (``iwae_subset`` images) and extrapolated per image to the full set (stated in the case's fields).
Accuracy figures: the refinement change (grid GRID -> 2 GRID on every image), the box's error (``box_error``: the
posterior mass outside the box, max and mean over the images) and the largest difference between the
coarse-to-fine sum and the dense GRID^2 grid (``adaptive_vs_dense_max``: nothing lost).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lvm.bench import case, median_time, shared_data_dir
from lvm.errors import LVMError
from lvm.resources import pretrained_model_path

if TYPE_CHECKING:
    from lvm.estimators.quadrature import AdaptiveResult
    from lvm.models.vae import VAE

MODEL = pretrained_model_path()


def _load(device: torch.device) -> tuple[VAE, torch.Tensor]:
    from lvm.checkpoint import load_model
    from lvm.data import load_dataset

    if not MODEL.exists():
        raise LVMError(
            f"{MODEL} is missing: the pretrained VAE is not bundled yet; train it with `lvm train-vae` "
            "and save it there"
        )
    model, _ = load_model(MODEL, device)
    path = shared_data_dir() / "binarized_mnist" / "binarized_mnist.npz"
    if not path.exists():
        raise LVMError(f"{path} is missing; the eval benchmark needs binarized MNIST in the shared data folder")
    x = load_dataset(path).split("test").x
    return model, torch.from_numpy(np.asarray(x, dtype=np.float32)).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


GRID = 512  # points per latent axis; 512 -> 1024 changed the mean NLL by 1e-4 nats here (256 -> 512: 0.03)


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    from lvm.estimators.montecarlo import importance
    from lvm.estimators.quadrature import LatentGrid, box_error, choose_box, log_marginal, log_marginal_adaptive

    model, x_all = _load(device)
    n = 1000 if quick else x_all.shape[0]
    iwae_subset = 20 if quick else 200
    refine_subset = 200 if quick else n
    k = 5000
    size = GRID
    x = x_all[:n]
    box = choose_box(model, x)

    holder: dict[str, AdaptiveResult] = {}

    def quad() -> None:
        holder["r"] = log_marginal_adaptive(model, x, size=size, box=box)
        _sync(device)

    quad_s = median_time(quad, repeats=1 if not quick else 2, warmup=0 if not quick else 1)
    res = holder["r"]

    # IWAE-5000 on a subset spread over the set (every n // subset-th image), extrapolated per image
    idx = torch.arange(0, n, max(1, n // iwae_subset), device=x.device)[:iwae_subset]
    xs = x[idx]
    g = torch.Generator(device=x.device).manual_seed(0)
    t0 = time.perf_counter()
    vals = []
    with torch.no_grad():
        for i in range(0, xs.shape[0], 100):
            xb = xs[i : i + 100]
            vals.append(importance(model, xb, model.encode(xb), k, generator=g).value)
    _sync(device)
    iwae_subset_s = time.perf_counter() - t0
    iwae = torch.cat(vals)
    iwae_s = iwae_subset_s / xs.shape[0] * n

    # accuracy: refinement GRID -> 2 GRID (all images), and coarse-to-fine vs the dense grid on a subset
    fine = log_marginal_adaptive(model, x, size=2 * size, block=16, box=box).log_px
    change = (fine - res.log_px).abs()
    refine_mean_shift = float((fine.double() - res.log_px.double()).mean())
    box_err = box_error(model, x, box, log_px=fine)  # the box's error, beside the grid's
    xr = x[: min(refine_subset, 1000)]
    t0 = time.perf_counter()
    dense = log_marginal(LatentGrid.build(model, size, box=box), xr)
    _sync(device)
    dense_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    adaptive_sub = log_marginal_adaptive(model, xr, size=size, box=box).log_px
    _sync(device)
    adaptive_sub_s = time.perf_counter() - t0
    lost = (dense - adaptive_sub).abs()

    quad_lp = res.log_px.double()
    cases = [
        case(
            f"quadrature {size}^2 (coarse-to-fine), {n} test images",
            quad_s,
            f"IWAE k={k} (timed on {xs.shape[0]} images, extrapolated to {n})",
            iwae_s,
            n_images=int(n),
            iwae_k=k,
            iwae_subset=int(xs.shape[0]),
            iwae_subset_s=iwae_subset_s,
            extrapolated=True,
            nll_quadrature=float(-quad_lp.mean()),
            nll_quadrature_on_iwae_subset=float(-quad_lp[idx].mean()),
            nll_iwae_on_subset=float(-iwae.double().mean()),
            refinement=f"{size} -> {2 * size} grid on all {n} images",
            refinement_max_change=float(change.max()),
            refinement_mean_abs_change=float(change.mean()),
            refinement_mean_nll_change=-refine_mean_shift,
            box_error_max=float(box_err.max()),
            box_error_mean=float(box_err.mean()),
            adaptive_vs_dense_max=float(lost.max()),
            points_per_x=res.points_per_x,
            table_fraction=res.fraction,
            decoded_fraction=res.decoded_fraction,
            box=[[float(v) for v in row] for row in res.box.tolist()],
        ),
        case(
            f"coarse-to-fine vs dense {size}^2 grid, {xr.shape[0]} images",
            adaptive_sub_s,
            f"dense grid (decode all {size * size:,} points, one GEMM over all)",
            dense_s,
            max_abs_difference=float(lost.max()),
        ),
    ]
    return {"cases": cases}
