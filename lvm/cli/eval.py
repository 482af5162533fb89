"""``lvm eval``: mean test log-likelihood of a VAE checkpoint by exact quadrature, IWAE and the ELBO.

Methods (comma-separated): ``quadrature[:GRID]`` (exact for 1-D/2-D latents, coarse-to-fine midpoint rule on a
GRID^Dz grid; default ``--grid``), ``iwae:K`` (importance sampling with the encoder as proposal, K samples: the
IWAE bound L_K), ``elbo[:K]`` (ELBO with the encoder, K samples per image, analytic KL; default K = 1),
``ais[:CHAINSxSTEPS]`` (annealed importance sampling, ``lvm.estimators.ais``, default 16x1000, from the encoder's
q(z|x) when the model has one, else from N(0, I): any latent dimension, an estimate with a per-image se, never exact).
For each method: mean log p(x) per image in nats, its standard error across images (std / sqrt(N)) and wall time.
``--model`` also takes a Python file that builds a latent model (``lvm.user_models``); a method the model cannot run
(iwae and elbo without an encoder) is listed as skipped, with why.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lvm.device import DEVICE_CHOICES
from lvm.errors import LVMError

if TYPE_CHECKING:  # torch is imported in the functions: the CLI parses its arguments without it
    import torch

    from lvm.estimators.montecarlo import Estimate
    from lvm.models.base import EncoderModel, LatentModel

HELP = "evaluate a VAE checkpoint's test log-likelihood (exact quadrature, IWAE, ELBO) in nats"


DEFAULT_METHODS = "quadrature,iwae:5000,elbo"  # d <= 2: exact quadrature
DEFAULT_METHODS_HIGH_DIM = "ais:16x1000,iwae:5000,elbo"  # d > 2: AIS is the reference


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="VAE checkpoint (.safetensors), or a Python file (FILE.py or FILE.py:FACTORY) that builds a latent model "
        "(naming it runs it)",
    )
    p.add_argument("--data", required=True, help="dataset spec: folder, .npz or built-in name")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated: quadrature[:GRID], iwae:K, elbo[:K], ais[:CHAINSxSTEPS] (default: {DEFAULT_METHODS} "
        f"for a latent space of at most 2 dimensions, {DEFAULT_METHODS_HIGH_DIM} above)",
    )
    p.add_argument("--grid", type=int, default=512, help="quadrature grid points per latent axis (default 512)")
    p.add_argument("--batch-size", type=int, default=100, help="images per batch for IWAE/ELBO (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", action="store_true", help="print only JSON")


def parse_methods(text: str, grid: int) -> list[tuple[str, int] | tuple[str, int, int]]:
    """'quadrature,iwae:5000,elbo,ais:16x1000' -> [('quadrature', 256), ('iwae', 5000), ('elbo', 1),
    ('ais', 16, 1000)]."""
    out: list[tuple[str, int] | tuple[str, int, int]] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, arg = item.partition(":")
        name = name.strip().lower()
        if name == "ais":
            out.append(("ais", *parse_ais_spec(arg)))
            continue
        if name not in ("quadrature", "iwae", "elbo"):
            raise LVMError(f"unknown method {item!r}; use quadrature[:GRID], iwae:K, elbo[:K] or ais[:CHAINSxSTEPS]")
        if not arg and name == "iwae":
            raise LVMError("iwae needs a sample count, e.g. iwae:5000")
        try:
            n = int(arg) if arg else (grid if name == "quadrature" else 1)
        except ValueError:
            raise LVMError(f"method {item!r}: {arg!r} is not a whole number") from None
        if n < 1:
            raise LVMError(f"method {item!r}: the number must be positive")
        out.append((name, n))
    if not out:
        raise LVMError("no methods given; use e.g. --methods quadrature,iwae:5000,elbo")
    return out


def parse_ais_spec(arg: str) -> tuple[int, int]:
    """'16x1000' -> (16, 1000) chains and steps; '' -> the default (16, 1000)."""
    if not arg.strip():
        return 16, 1000
    chains, sep, steps = arg.strip().lower().partition("x")
    try:
        k, t = int(chains), int(steps)
    except ValueError:
        k = t = 0
    if not sep or k < 1 or t < 1:
        raise LVMError(
            f"ais:{arg}: give chains and steps as CHAINSxSTEPS with positive whole numbers, e.g. ais:16x1000"
        )
    return k, t


def _ais(
    model: LatentModel, x: torch.Tensor, chains: int, steps: int, batch: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AIS log p(x) per image, its se and ESS, over batches of x; from the encoder's q(z|x) where there is one."""
    import torch

    from lvm.estimators.ais import ais
    from lvm.models.capabilities import describe

    has_encoder = describe(model).has_encoder
    values, ses, esss = [], [], []
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        with torch.no_grad():
            q = model.encode(xb) if has_encoder else None  # type: ignore[attr-defined]
        r = ais(model, xb, chains, steps, initial=q, generator=generator)
        values.append(r.log_px)
        ses.append(r.stderr)
        esss.append(r.ess)
    return torch.cat(values), torch.cat(ses), torch.cat(esss)


def _quadrature(model: LatentModel, x: torch.Tensor, size: int) -> torch.Tensor:
    from lvm.estimators.quadrature import log_marginal_adaptive

    block = 8 if size % 8 == 0 else 1
    return log_marginal_adaptive(model, x, size=size, block=block).log_px


def _box_errors(model: LatentModel, x: torch.Tensor, log_px: torch.Tensor) -> torch.Tensor:
    """Per x, the posterior mass outside the integration box as log(1 + M_out / M_box) (nats): the quadrature's
    error from its box, beside its grid error."""
    from lvm.estimators.quadrature import box_error, choose_box

    return box_error(model, x, choose_box(model, x), log_px=log_px)


def _batched(
    model: EncoderModel,
    x: torch.Tensor,
    batch: int,
    estimator: Callable[..., Estimate],
    k: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """``estimator(model, x_b, q(z|x_b), k, generator=generator).value`` over batches of x."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch]
            out.append(estimator(model, xb, model.encode(xb), k, generator=generator).value)
    return torch.cat(out)


def evaluate(
    model: EncoderModel,
    x: torch.Tensor,
    methods: list[tuple[str, int]] | list[tuple[str, int] | tuple[str, int, int]],
    batch_size: int = 100,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run each method on x; return one dict per method (mean log-likelihood, NLL, stderr, seconds)."""
    import torch

    from lvm.estimators.montecarlo import elbo, importance
    from lvm.models.capabilities import describe

    rows: list[dict[str, Any]] = []
    for name, n, *more in methods:
        extra: dict[str, Any] = {}
        skip = skip_reason(model, name)
        if skip is not None:  # (a user's model without an encoder)
            rows.append({"method": f"{name}:{n}", "skipped": skip})
            continue
        g = torch.Generator(device=x.device).manual_seed(seed)
        t0 = time.perf_counter()
        if name == "quadrature":
            v = _quadrature(model, x, n)
            label = f"quadrature:{n}"
            errors = _box_errors(model, x, v)
            extra = {"box_error_max": float(errors.max()), "box_error_mean": float(errors.mean())}
        elif name == "iwae":
            v = _batched(model, x, batch_size, importance, n, g)
            label = f"iwae:{n}"
        elif name == "ais":
            steps = more[0] if more else 1000
            v, per_x_se, ess = _ais(model, x, n, steps, batch_size, g)
            label = f"ais:{n}x{steps}"
            extra = {
                "estimate": "AIS estimate ± se",  # (never exact)
                "ais_stderr": float(per_x_se.double().pow(2).sum().sqrt() / per_x_se.numel()),
                "ais_mean_ess": float(ess.double().mean()),
                "ais_start": "encoder q(z|x)" if describe(model).has_encoder else "N(0, I)",
            }
        else:
            v = _batched(model, x, batch_size, elbo, n, g)
            label = f"elbo:{n}"
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        v = v.double().cpu()
        mean = float(v.mean())
        se = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
        rows.append(
            {
                "method": label,
                "mean_log_likelihood": mean,
                "nll": -mean,
                "stderr": se,
                "seconds": seconds,
                "n": int(v.numel()),
                **extra,
            }
        )
    return rows


def skip_reason(model: LatentModel, method: str) -> str | None:
    """Why ``method`` cannot run on ``model`` (lvm.models.capabilities), or None when it can."""
    from lvm.models.capabilities import describe

    if method in ("iwae", "elbo"):  # (the encoder's q is their proposal)
        return describe(model).missing("encoder")
    return None


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from lvm.data import load_dataset
    from lvm.device import resolve_device
    from lvm.models.capabilities import describe
    from lvm.user_models import load_any_model

    if args.methods is not None:
        parse_methods(args.methods, args.grid)  # (a typo is reported before the model loads)
    if args.limit is not None and args.limit < 1:
        raise LVMError("--limit must be positive")
    if args.batch_size < 1:
        raise LVMError("--batch-size must be positive")
    device = resolve_device(args.device)
    model, info = load_any_model(args.model, device, allow_code=True)  # (naming the file on the command line: consent)
    caps = describe(model)
    if args.methods is None:
        args.methods = DEFAULT_METHODS if caps.latent_dim <= 2 else DEFAULT_METHODS_HIGH_DIM
    methods = parse_methods(args.methods, args.grid)
    split = load_dataset(args.data).split(args.split)
    x = np.asarray(split.x, dtype=np.float32)
    if args.limit is not None:
        x = x[: args.limit]
    if x.ndim != 2 or (caps.data_dim is not None and x.shape[1] != caps.data_dim):
        raise LVMError(
            f"{args.data} ({args.split}): {x.shape[-1]} features per image, but the model expects "
            f"{caps.data_dim}; evaluate the model on the kind of data it was trained on"
        )
    if x.shape[0] == 0:
        raise LVMError(f"{args.data} ({args.split}) has no images")
    if caps.binary_pixels and (x.min() < 0 or x.max() > 1):
        raise LVMError("a Bernoulli decoder needs pixel values in [0, 1]; this data is outside that range")
    binary = bool(np.all((x == 0) | (x == 1)))
    xt = torch.from_numpy(x).to(device)
    rows = evaluate(model, xt, methods, batch_size=args.batch_size, seed=args.seed)
    result = {
        "model": str(args.model),
        "data": str(args.data),
        "split": args.split,
        "n_images": int(x.shape[0]),
        "binary_data": binary,
        "latent_dim": int(model.latent_dim),
        "device": str(device),
        "methods": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{args.model} on {args.data} [{args.split}], {x.shape[0]} images, device {device}"
        + ("" if binary or not caps.binary_pixels else " (non-binary data: a Bernoulli likelihood of grey pixels)")
    )
    print(f"{'method':<18}{'log p(x)':>12}{'NLL':>10}{'stderr':>9}{'time (s)':>10}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['method']:<18}skipped: {r['skipped']}")
            continue
        print(
            f"{r['method']:<18}{r['mean_log_likelihood']:>12.3f}{r['nll']:>10.3f}{r['stderr']:>9.3f}{r['seconds']:>10.2f}"
        )
        if "estimate" in r:
            print(
                f"{'':<18}{r['estimate']}: mean {r['mean_log_likelihood']:.3f} ± {r['ais_stderr']:.3f} (AIS se of the "
                f"mean; the stderr column is across images), mean ESS {r['ais_mean_ess']:.1f}, from {r['ais_start']}"
            )
        if "box_error_max" in r:
            print(
                f"{'':<18}exact up to the grid and the box: posterior mass outside the box costs at most "
                f"{r['box_error_max']:.1e} nats (mean {r['box_error_mean']:.1e})"
            )
    return 0
