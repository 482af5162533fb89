"""Inpainting speed: one update (posterior + predictive + 16 samples) of a new drawing with the decoded grid cached,
against re-decoding the grid for every update (what a naive implementation does), and the grid's precompute time;
an update while drawing (a stroke moves on by a brush dab, 3 x 3 pixels, per update: incremental) against the same
update reading every table whole (``dense_update``); the
hidden-half accuracy of the predictive against a mean-image baseline; and the lecture's mean-field question
(``meanfield``): ELBO(phi) of each preset and after ``optimise_phi`` from it (as the lab runs it: 150 steps, 32
completions each), against log p(x_O), on the same digit.

Model: the bundled 2-D VAE when present, else a randomly initialised VAE of the default architecture (timings
depend only on the architecture). Image: a bundled test digit with the top half missing.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from lvm.bench import case, median_time
from lvm.resources import pretrained_model_path

if TYPE_CHECKING:
    from lvm.models.vae import VAE


def _model(device: torch.device) -> tuple[VAE, str]:
    from lvm.checkpoint import load_model
    from lvm.models.vae import VAE

    path = pretrained_model_path()
    if path.exists():
        return load_model(path, device)[0], path.name
    torch.manual_seed(0)
    return VAE().eval().to(device), "random-init VAE (default architecture)"


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    from lvm.data import load_dataset
    from lvm.estimators.quadrature import box_error
    from lvm.inpainting import InpaintGrid, make_mask, refined_log_p_obs

    model, name = _model(device)
    digits = load_dataset("digits").split().x
    x = np.asarray(digits[12], dtype=np.float32)
    other = np.asarray(digits[13], dtype=np.float32)
    mask = make_mask("top")
    strokes = stroke_frames(x, mask, 200)
    cases = []
    sizes = (64,) if quick else (64, 96, 128)
    repeats = 5 if quick else 15
    for size in sizes:
        grid = InpaintGrid.build(model, size=size)
        build_s = median_time(
            functools.partial(InpaintGrid.build, model, size=size), repeats=1 if quick else 3, warmup=0
        )
        gen = torch.Generator(device="cpu").manual_seed(0)
        update = functools.partial(_update, grid, mask, gen)
        ours = _median_over(update, (x, other), repeats, 2)  # each update a new drawing: nothing incremental

        def redecode_and_infer(size: int = size, gen: torch.Generator = gen) -> object:
            return InpaintGrid.build(model, size=size).infer(x, mask, n_samples=16, generator=gen)

        ref = median_time(redecode_and_infer, repeats=1 if quick else 3, warmup=0)
        res = grid.infer(x, mask, n_samples=0)
        refined = refined_log_p_obs(grid, x, mask, factor=4)
        xt, m = grid.prepare(x, mask)
        box_err = box_error(model, xt.reshape(1, -1), grid.box, log_px=torch.tensor([refined]), mask=m.reshape(1, -1))
        cases.append(
            case(
                f"inpaint update {size}^2 grid (posterior + predictive + 16 samples)",
                ours,
                "re-decode the grid per update",
                ref,
                grid_precompute_s=build_s,
                table_mb=grid.nbytes / 1e6,
                log_p_obs=res.log_p_obs,
                refinement_change=refined - res.log_p_obs,
                refined_grid=size * 4,
                box_error=float(box_err[0]),
                updates_per_s=1.0 / ours,
                model=name,
                device=str(device),
            )
        )
        drawing = _median_over(update, strokes, len(strokes), 4)
        dense = _median_over(functools.partial(dense_update, grid, mask, gen), strokes, repeats, 2)
        cases.append(
            case(
                f"inpaint update {size}^2 grid while drawing (a 3 x 3 dab per update)",
                drawing,
                "the same update reading every table whole",
                dense,
                updates_per_s=1.0 / drawing,
                model=name,
                device=str(device),
            )
        )
    return {
        "cases": cases,
        "hidden_top_accuracy": hidden_top_accuracy(model, 1000 if quick else None),
        "meanfield": meanfield_presets(model, steps=40 if quick else 150),
    }


def _update(grid: Any, mask: npt.NDArray[np.bool_], gen: torch.Generator, x: npt.NDArray[np.float32]) -> object:
    return grid.infer(x, mask, n_samples=16, generator=gen)


def _median_over(update: Callable[[Any], object], inputs: Sequence[Any], repeats: int, warmup: int) -> float:
    """``median_time`` of ``update(input)``, the inputs taken in turn (cycling)."""
    it = itertools.cycle(inputs)
    return median_time(lambda: update(next(it)), repeats=repeats, warmup=warmup)


def stroke_frames(x: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_], n: int) -> list[npt.NDArray[np.float32]]:
    """The ink after each of ``n`` brush dabs (3 x 3 pixels set to 1) along a loop through the observed half."""
    img = x.reshape(28, 28).copy()
    observed = mask.reshape(28, 28)
    frames = []
    for i in range(n):
        r = int(20 + 5 * np.sin(i * 0.15))
        c = int(14 + 10 * np.cos(i * 0.11))
        img[r - 1 : r + 2, c - 1 : c + 2] = np.where(observed[r - 1 : r + 2, c - 1 : c + 2], 1.0, 0.0)
        frames.append(img.reshape(-1).copy())
    return frames


@torch.no_grad()
def dense_update(
    grid: Any, mask: npt.NDArray[np.bool_], gen: torch.Generator, x: npt.NDArray[np.float32], n_samples: int = 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One update computed from every table whole (the reference): a = L(m x) + S m + log p(z), w = softmax(a),
    the predictive w @ sigma(L), and ``n_samples`` completions."""
    xt, m = grid.prepare(x, mask)
    with grid.update_threads():
        a = grid.logits @ (m * xt) + grid.log_sig_neg @ m + grid.log_prior
        w = torch.softmax(a, 0)
        pred = w @ grid.probs
        idx = torch.multinomial(w, n_samples, replacement=True, generator=gen)
        p_s = grid.probs.index_select(0, idx)
        samples = torch.where(m.bool(), xt, (torch.rand(p_s.shape, generator=gen) < p_s).float())
    return w, pred, samples


def meanfield_presets(
    model: VAE, steps: int = 150, index: int = 12, size: int = 128, samples: int = 4096
) -> dict[str, Any]:
    """Digit ``index`` of the bundled test set (a 9), top half hidden: ELBO(phi) for phi = 0.5, 1, another 9 (the
    lab's template: the first other 9) and the predictive, then after optimising phi from each; every ELBO on the same
    ``samples`` uniforms (common random numbers), with its standard error; the optimisation's wall time."""
    import time

    from lvm.data import load_dataset
    from lvm.inpainting import InpaintGrid, make_mask, meanfield_elbo, optimise_phi, preset_phi

    ds = load_dataset("digits").split()
    x, mask = np.asarray(ds.x[index], np.float32), make_mask("top")
    template = ds.x[[j for j in np.flatnonzero(ds.y == 9) if j != index][0]]
    grid = InpaintGrid.build(model, size=size)
    r = grid.infer(x, mask, n_samples=0)
    starts = {
        "half": preset_phi("half", x, mask),
        "ones": preset_phi("ones", x, mask),
        "template": preset_phi("template", x, mask, template=template),
        "predictive": preset_phi("predictive", x, mask, predictive=r.predictive.cpu().numpy()),
    }

    def elbo(phi: npt.NDArray[np.float32]) -> tuple[float, float]:
        est = meanfield_elbo(grid, x, mask, phi, n_samples=samples, generator=torch.Generator().manual_seed(99))
        return float(est.elbo), float(est.stderr)

    rows: dict[str, dict[str, float]] = {}
    for name, phi0 in starts.items():
        t0 = time.perf_counter()
        last = None
        for snap in optimise_phi(grid, x, mask, phi0=phi0, steps=steps, n_samples=32, seed=0, report_every=5):
            last = snap
        seconds = time.perf_counter() - t0
        assert last is not None  # optimise_phi yields at least its final snapshot
        (e0, se0), (e1, se1) = elbo(phi0), elbo(last.phi)
        rows[name] = {
            "elbo_start": e0,
            "stderr_start": se0,
            "elbo_optimised": e1,
            "stderr_optimised": se1,
            "optimise_s": seconds,
        }
    return {"index": index, "log_p_obs": r.log_p_obs, "steps": steps, "grid": size, "presets": rows}


@torch.no_grad()
def hidden_top_accuracy(model: VAE, limit: int | None = None, size: int = 128) -> dict[str, Any]:
    """Top half hidden on the bundled test digits (thresholded at 0.5): pixel accuracy and cross-entropy on the hidden
    half of the predictive mean p(x_j = 1 | x_O) against a mean-image baseline (the mean of the same images)."""
    from lvm.data import load_dataset
    from lvm.inpainting import InpaintGrid, make_mask

    x = torch.as_tensor(load_dataset("digits").split().x[:limit])
    xb = (x > 0.5).float()
    hidden = ~torch.as_tensor(make_mask("top")).reshape(-1).bool()
    _, pred = InpaintGrid.build(model, size=size).posterior_batch(xb, ~hidden)
    target = xb[:, hidden]
    baseline = xb.mean(0)[hidden].expand_as(target)

    def scores(p: torch.Tensor) -> tuple[float, float]:
        p = p.clamp(1e-6, 1 - 1e-6)
        accuracy = ((p > 0.5).float() == target).float().mean().item()
        ce = -(target * p.log() + (1 - target) * (1 - p).log()).sum(1).mean().item()
        return accuracy, ce

    (acc, ce), (acc_b, ce_b) = scores(pred[:, hidden].cpu()), scores(baseline)
    return {
        "images": int(x.shape[0]),
        "grid": size,
        "accuracy_predictive": acc,
        "accuracy_mean_image": acc_b,
        "cross_entropy_predictive_nats": ce,
        "cross_entropy_mean_image_nats": ce_b,
    }
