"""``lvm bench eval``: exact log p(x) by coarse-to-fine quadrature against IWAE (k = 5000) on binarized MNIST.

Model: the shipped pretrained VAE ``resources/models/vae2d.safetensors``; data: the binarized-MNIST test split
from the developers' shared data folder. IWAE-5000 on all 10,000 images takes ~10 minutes, so it is timed on a
subset (``iwae_subset`` images) and extrapolated per image to the full set (stated in the case's fields).
Accuracy figures: the refinement change (fine grid 256 -> 512 on ``refine_subset`` images) and the largest
difference between the coarse-to-fine sum and the dense 256^2 grid (``adaptive_vs_dense_max``: nothing lost).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from lvm.bench import case, median_time, shared_data_dir
from lvm.errors import LVMError

MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "vae2d.safetensors"


def _load(device):
    from lvm.checkpoint import load_model
    from lvm.data import load_dataset

    if not MODEL.exists():
        raise LVMError(f"{MODEL} is missing: the pretrained VAE is not bundled yet; train it with `lvm train-vae` "
                       "and save it there")
    model, _ = load_model(MODEL, device)
    path = shared_data_dir() / "binarized_mnist" / "binarized_mnist.npz"
    if not path.exists():
        raise LVMError(f"{path} is missing; the eval benchmark needs binarized MNIST in the shared data folder")
    x = load_dataset(path).split("test").x
    return model, torch.from_numpy(np.asarray(x, dtype=np.float32)).to(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(quick: bool, device: torch.device) -> dict:
    from lvm.estimators.montecarlo import importance
    from lvm.estimators.quadrature import LatentGrid, choose_box, log_marginal, log_marginal_adaptive

    model, x_all = _load(device)
    n = 1000 if quick else x_all.shape[0]
    iwae_subset = 20 if quick else 200
    refine_subset = 200 if quick else 1000
    k = 5000
    x = x_all[:n]
    box = choose_box(model, x)

    holder = {}

    def quad():
        holder["r"] = log_marginal_adaptive(model, x, size=256, box=box)
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
            xb = xs[i:i + 100]
            vals.append(importance(model, xb, model.encode(xb), k, generator=g).value)
    _sync(device)
    iwae_subset_s = time.perf_counter() - t0
    iwae = torch.cat(vals)
    iwae_s = iwae_subset_s / xs.shape[0] * n

    # accuracy: refinement 256 -> 512, and coarse-to-fine vs the dense 256 grid, on a subset
    xr = x[:refine_subset]
    fine = log_marginal_adaptive(model, xr, size=512, block=16, box=box).log_px
    change = (fine - res.log_px[:refine_subset]).abs()
    t0 = time.perf_counter()
    dense = log_marginal(LatentGrid.build(model, 256, box=box), xr)
    _sync(device)
    dense_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    adaptive_sub = log_marginal_adaptive(model, xr, size=256, box=box).log_px
    _sync(device)
    adaptive_sub_s = time.perf_counter() - t0
    lost = (dense - adaptive_sub).abs()

    quad_lp = res.log_px.double()
    cases = [
        case(f"quadrature 256^2 (coarse-to-fine), {n} test images", quad_s,
             f"IWAE k={k} (timed on {xs.shape[0]} images, extrapolated to {n})", iwae_s,
             n_images=int(n), iwae_k=k, iwae_subset=int(xs.shape[0]), iwae_subset_s=iwae_subset_s,
             extrapolated=True,
             nll_quadrature=float(-quad_lp.mean()), nll_quadrature_on_iwae_subset=float(-quad_lp[idx].mean()),
             nll_iwae_on_subset=float(-iwae.double().mean()),
             refinement_subset=int(refine_subset), refinement_max_change=float(change.max()),
             refinement_mean_change=float(change.mean()),
             adaptive_vs_dense_max=float(lost.max()), points_per_x=res.points_per_x,
             table_fraction=res.fraction, decoded_fraction=res.decoded_fraction,
             box=[[float(v) for v in row] for row in res.box.tolist()]),
        case(f"coarse-to-fine vs dense 256^2 grid, {refine_subset} images", adaptive_sub_s,
             "dense grid (decode all 65,536 points, one GEMM over all)", dense_s,
             max_abs_difference=float(lost.max())),
    ]
    return {"cases": cases}
