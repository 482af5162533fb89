"""``lvm bench ais``: annealed importance sampling's speed against its floor, and its accuracy against closed forms.

1. Speed: one x, 16 chains x 1000 steps (``lvm.estimators.ais.ais`` defaults: 4 pilot chains, one leapfrog step a
   transition) on the 3x512 ELU decoder of a ``VAE(latent_dim=10)`` (random weights: the cost does not depend on
   them) and on the shipped 2-D VAE, against the floor measured side by side: a bare loop of as many decoder
   forward + backward passes on as many rows (chains + pilots) under the same thread setting. The budget is 3 s on
   the 2-core development CPU. Both are timed alternately, ``repeats`` times; the best (least disturbed) run of each
   is reported beside the median, as other jobs share the machine.
2. Accuracy: AIS on a d = 10 linear-Gaussian model (x simulated from it) against the closed form log p(x): the mean
   difference in nats, and each x's difference in its stated standard errors (z = (AIS - exact) / se).
3. BDMC on data simulated from the same model: mean lower and upper bounds, the gap, and where the truth lies.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from lvm.bench import case
from lvm.estimators.ais import ais, bdmc_simulated
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.threads import single_thread

BUDGET_S = 3.0
CHAINS, STEPS, PILOTS = 16, 1000, 4


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _alternate(fns: list[Callable[[], object]], repeats: int, device: torch.device) -> list[list[float]]:
    """Wall times of each fn, run alternately ``repeats`` times after one warm-up each."""
    for fn in fns:
        fn()
        _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[i].append(time.perf_counter() - t0)
    return times


def _floor(
    decoder: torch.nn.Module, x: torch.Tensor, latent_dim: int, rows: int, passes: int, device: torch.device
) -> Callable[[], None]:
    """``passes`` bare decoder forward + backward passes (Bernoulli log-likelihood, gradient wrt z) on ``rows`` z."""
    z = torch.randn(rows, 1, latent_dim, device=device)

    def loop() -> None:
        with single_thread(device.type == "cpu"):
            for _ in range(passes):
                zz = z.detach().requires_grad_(True)
                logits = decoder(zz)
                ll = (logits * x).sum(-1) - torch.nn.functional.softplus(logits).sum(-1)
                torch.autograd.grad(ll.sum(), zz)

    return loop


def _speed_case(name: str, model: Any, device: torch.device, repeats: int) -> dict[str, Any]:
    from lvm.estimators.ais import simulate

    model.requires_grad_(False)
    _, x = simulate(model, 1, torch.Generator(device=device).manual_seed(0))
    holder: dict[str, Any] = {}

    def ours() -> None:
        holder["r"] = ais(model, x, CHAINS, STEPS, seed=0)

    floor = _floor(model.decoder, x, int(model.latent_dim), CHAINS + PILOTS, STEPS, device)
    ours_t, floor_t = _alternate([ours, floor], repeats, device)
    r = holder["r"]
    return case(
        name,
        statistics.median(ours_t),
        f"floor: {STEPS} bare decoder forward+backward passes on {CHAINS + PILOTS} rows",
        statistics.median(floor_t),
        ours_best_s=min(ours_t),
        reference_best_s=min(floor_t),
        overhead_best=min(ours_t) / min(floor_t),
        budget_s=BUDGET_S,
        within_budget=min(ours_t) <= BUDGET_S,
        repeats=repeats,
        chains=CHAINS,
        steps=STEPS,
        pilot_chains=PILOTS,
        leapfrog_steps=r.leapfrog_steps,
        log_px=float(r.log_px[0]),
        stderr=float(r.stderr[0]),
        ess=float(r.ess[0]),
        acceptance=float(r.acceptance[0]),
    )


def _closed_form_case(n_x: int, steps: int) -> dict[str, Any]:
    model = LinearGaussianModel.random(data_dim=20, latent_dim=10, s=1.0, seed=0)
    x = model.sample(n_x, torch.Generator().manual_seed(1))
    model.log_marginal(x[:1])  # (warm-up: torch.linalg's first call)
    t0 = time.perf_counter()
    exact = model.log_marginal(x)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = ais(model, x, CHAINS, steps, seed=0)  # (the linear-Gaussian model computes on the CPU)
    ais_s = time.perf_counter() - t0
    diff = r.log_px.cpu() - exact
    z = diff / r.stderr.cpu()
    return case(
        f"AIS {CHAINS} chains x {steps} steps vs closed form, linear-Gaussian d=10, D=20, s=1 ({n_x} x)",
        ais_s,
        "closed form log N(x; b, W W^T + s^2 I)",
        exact_s,
        mean_difference_nats=float(diff.mean()),
        rms_difference_nats=float(diff.pow(2).mean().sqrt()),
        mean_stderr_nats=float(r.stderr.mean()),
        mean_abs_z=float(z.abs().mean()),
        max_abs_z=float(z.abs().max()),
        within_3_se=float((z.abs() <= 3).double().mean()),
        mean_ess=float(r.ess.mean()),
        acceptance=float(r.acceptance.mean()),
    )


def _bdmc_case(n_x: int, steps: int) -> dict[str, Any]:
    model = LinearGaussianModel.random(data_dim=20, latent_dim=10, s=1.0, seed=0)
    t0 = time.perf_counter()
    _, x, b = bdmc_simulated(model, n_x, CHAINS, steps, seed=2)
    bdmc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = model.log_marginal(x)
    exact_s = time.perf_counter() - t0
    return case(
        f"BDMC {CHAINS} chains x {steps} steps on {n_x} x simulated from the linear-Gaussian d=10 model",
        bdmc_s,
        "closed form",
        exact_s,
        mean_lower=b.mean_lower,
        mean_exact=float(exact.mean()),
        mean_upper=b.mean_upper,
        mean_gap_nats=b.mean_gap,
        max_gap_nats=float(b.gap.max()),
        lower_below_exact=float((b.lower <= exact).double().mean()),
        upper_above_exact=float((b.upper >= exact).double().mean()),
    )


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    from lvm.checkpoint import load_model
    from lvm.models.vae import VAE
    from lvm.resources import pretrained_model_path

    repeats = 2 if quick else 5
    torch.manual_seed(0)
    cases = [
        _speed_case(
            f"AIS 1 x, {CHAINS} chains x {STEPS} steps, 3x512 ELU decoder (d=10)",
            VAE(latent_dim=10).to(device),
            device,
            repeats,
        )
    ]
    shipped_10d = pretrained_model_path("vae10d")
    if shipped_10d.exists():
        model_10d, _ = load_model(shipped_10d, device)
        cases.append(
            _speed_case(f"AIS 1 x, {CHAINS} chains x {STEPS} steps, shipped 10-D VAE", model_10d, device, repeats)
        )
    if pretrained_model_path().exists():
        shipped, _ = load_model(pretrained_model_path(), device)
        cases.append(
            _speed_case(f"AIS 1 x, {CHAINS} chains x {STEPS} steps, shipped 2-D VAE", shipped, device, repeats)
        )
    cases.append(_closed_form_case(8 if quick else 32, 300 if quick else STEPS))
    cases.append(_bdmc_case(8 if quick else 32, 300 if quick else STEPS))
    return {
        "cases": cases,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
