"""Exact enumeration over z in {0,1}^K (``lvm.estimators.discrete``) against a plain PyTorch loop over z-chunks
(decode each chunk of 4,096 configurations, x l^T - sum softplus(l) + log p(z), logsumexp across chunks), measured
side by side; throughput in configurations x pixels (x images) per second.

Cases: K = 20 for one x (cold: the x-independent table a(z) computed too; warm: the table cached, as the lab has
it), K = 20 for 1,000 test images, and (not with ``--quick``; LVM_BENCH_K30=1 / 0 forces it on / off) K = 30 for
one x: 2^30 configurations streamed in bounded memory, progress on stderr. ``cost_curve`` measures time per x
against K (the lab's cost plot) and ``gradient_budget_s`` the lecture's budget, one gradient evaluation per training
data point.

Model: the bundled K = 20 model (``resources/models/binary_latent_k20.safetensors``); other K take its first K
features (K < 20) or repeat them (K > 20). Images: the bundled test digits thresholded at 0.5.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lvm.bench import case, median_time

if TYPE_CHECKING:
    from lvm.estimators.discrete import ZTable
    from lvm.models.binary_latent import BinaryLatentModel


def bundled_or_random(device: torch.device) -> tuple[BinaryLatentModel, str]:
    from lvm.models.binary_latent import (
        BinaryLatentModel,
        load_binary_latent,
        pretrained_binary_latent_path,
    )

    path = pretrained_binary_latent_path()
    if path.exists():
        return load_binary_latent(path, device)[0], path.name
    torch.manual_seed(0)
    return BinaryLatentModel(latent_dim=20).eval().to(device), "random-init K=20 model"


def model_with_k(base: BinaryLatentModel, k: int) -> BinaryLatentModel:
    """A linear model with ``k`` features made of ``base``'s features (first k, or repeated cyclically)."""
    from lvm.models.binary_latent import BinaryLatentConfig, BinaryLatentModel

    m = BinaryLatentModel(BinaryLatentConfig(data_dim=base.data_dim, latent_dim=k, encoder_hidden=())).to(
        base.prior_logits.device
    )
    cols = [i % base.latent_dim for i in range(k)]
    with torch.no_grad():
        scale = min(1.0, base.latent_dim / k)  # keep the logits' range as k grows
        m.weight.copy_(base.weight[:, cols] * scale)
        m.bias.copy_(base.bias)
        m.prior_logits.copy_(base.prior_logits[cols])
    return m.eval()


def test_images(n: int, device: torch.device) -> torch.Tensor:
    from lvm.data import load_dataset

    x = load_dataset("digits").split().x[:n]
    return torch.as_tensor((x > 0.5).astype(np.float32), device=device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_exact(
    model: BinaryLatentModel, x: torch.Tensor, device: torch.device, table: ZTable | None = None
) -> tuple[float, torch.Tensor]:
    from lvm.estimators.discrete import exact_log_marginal

    _sync(device)
    t0 = time.perf_counter()
    out = exact_log_marginal(model, x, table=table)
    _sync(device)
    return time.perf_counter() - t0, out


def cost_curve(
    base: BinaryLatentModel, x1: torch.Tensor, ks: Iterable[int], device: torch.device
) -> list[dict[str, Any]]:
    """Wall time of log p(x) for one x (table included) for each K (median of 3 up to K = 20)."""
    rows = []
    for k in ks:
        m = model_with_k(base, k)
        s = median_time(functools.partial(time_exact, m, x1, device), repeats=3 if k <= 20 else 1, warmup=0)
        rows.append({"k": int(k), "seconds": s, "configurations": 2**k})
    return rows


def gradient_budget_s(base: BinaryLatentModel, x: torch.Tensor, device: torch.device, repeats: int = 5) -> float:
    """Time per data point of one gradient evaluation of the training objective (a VIMCO step with k = 2 samples
    on a batch of 100): the lecture's budget, "one gradient evaluation per training data point"."""
    from lvm.models.binary_latent import BinaryLatentModel
    from lvm.training_discrete import vimco_loss

    m = BinaryLatentModel(base.config).to(device)
    m.load_state_dict(base.state_dict())
    xb = x[:100]
    g = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        m.zero_grad()
        torch.autograd.backward(vimco_loss(m, xb, 2, g)[0])  # = .backward(), which has no annotations
        _sync(device)

    return median_time(step, repeats=repeats, warmup=1) / xb.shape[0]


def run(quick: bool, device: torch.device, k30: bool | None = None) -> dict[str, Any]:
    from lvm.estimators.discrete import (
        build_table,
        enumerate_steps,
        reference_log_marginal,
    )

    model, name = bundled_or_random(device)
    D = model.data_dim
    x = test_images(1000, device)
    x1 = x[:1]
    cases = []
    reps = 3 if quick else 5

    # K = 20, one x
    table = build_table(model)
    cold = median_time(lambda: time_exact(model, x1, device), repeats=reps)
    warm = median_time(lambda: time_exact(model, x1, device, table), repeats=reps)
    ref = median_time(lambda: reference_log_marginal(model, x1), repeats=1 if quick else 3)
    diff = float((time_exact(model, x1, device)[1] - reference_log_marginal(model, x1)).abs().max())
    work = 2**20 * D
    cases.append(
        case(
            "K=20, one x (table a(z) computed too)",
            cold,
            "plain PyTorch loop over z-chunks",
            ref,
            configurations=2**20,
            throughput_conf_pixels_per_s=work / cold,
            reference_throughput_conf_pixels_per_s=work / ref,
            max_abs_difference_nats=diff,
            model=name,
            device=str(device),
        )
    )
    cases.append(
        case(
            "K=20, one x, table cached (the lab)",
            warm,
            "plain PyTorch loop over z-chunks",
            ref,
            throughput_conf_pixels_per_s=work / warm,
            table_build_s=table.seconds,
        )
    )

    # K = 20, 1,000 images
    n_ref = 100 if quick else 1000
    t_many, lp = time_exact(model, x, device)
    ref_many = median_time(lambda: reference_log_marginal(model, x[:n_ref]), repeats=1, warmup=0)
    ref_many *= 1000 / n_ref
    cases.append(
        case(
            "K=20, 1,000 test images (table computed too)",
            t_many,
            "plain PyTorch loop over z-chunks" + (" (100 images, x10)" if quick else ""),
            ref_many,
            throughput_conf_pixels_per_s=work * 1000 / t_many,
            exact_nll_first_1000=float(-lp.mean()),
            exact_nll_stderr=float(lp.std() / np.sqrt(len(lp))),
        )
    )

    out: dict[str, Any] = {"cases": cases}
    out["cost_curve"] = cost_curve(model, x1, (8, 12, 16, 18, 20) if quick else (8, 12, 16, 18, 20, 22, 24), device)
    out["gradient_budget_s_per_x"] = gradient_budget_s(model, x, device)

    if k30 is None:
        env = os.environ.get("LVM_BENCH_K30", "")
        k30 = (env != "0") if env else not quick
    if k30:
        m30 = model_with_k(model, 30)
        t0 = time.perf_counter()
        last_print = t0
        final = None
        for p in enumerate_steps(m30, x1, report_every_s=5.0):
            final = p
            if time.perf_counter() - last_print > 30 or p.result is not None:
                last_print = time.perf_counter()
                print(
                    f"  K=30: {p.done / p.total:.1%} of 2^30 configurations, {p.seconds:.0f} s, "
                    f"partial log p(x) {float(p.log_px_partial[0]):.2f}",
                    file=sys.stderr,
                    flush=True,
                )
        k30_s = time.perf_counter() - t0
        assert final is not None and final.result is not None  # the last snapshot carries the result
        est_ref = ref * 2**10  # the reference at K = 20, scaled by 2^10 (not run: hours)
        cases.append(
            case(
                "K=30, one x (2^30 configurations, streamed)",
                k30_s,
                "plain loop at K=20 x 2^10 (extrapolated)",
                est_ref,
                configurations=2**30,
                throughput_conf_pixels_per_s=2**30 * D / k30_s,
                log_px=float(final.result.log_px[0]),
            )
        )
    return out
