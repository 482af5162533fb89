"""``lvm eval``: mean test log-likelihood of a VAE checkpoint by exact quadrature, IWAE and the ELBO.

Methods (comma-separated): ``quadrature[:GRID]`` (exact for 1-D/2-D latents, coarse-to-fine midpoint rule on a
GRID^Dz grid; default ``--grid``), ``iwae:K`` (importance sampling with the encoder as proposal, K samples: the
IWAE bound L_K), ``elbo[:K]`` (ELBO with the encoder, K samples per image, analytic KL; default K = 1).
For each method: mean log p(x) per image in nats, its standard error across images (std / sqrt(N)) and wall time.
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="VAE checkpoint (.safetensors)")
    p.add_argument("--data", required=True, help="dataset spec: folder, .npz or built-in name")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--methods",
        default="quadrature,iwae:5000,elbo",
        help="comma-separated: quadrature[:GRID], iwae:K, elbo[:K] (default: %(default)s)",
    )
    p.add_argument("--grid", type=int, default=512, help="quadrature grid points per latent axis (default 512)")
    p.add_argument("--batch-size", type=int, default=100, help="images per batch for IWAE/ELBO (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", action="store_true", help="print only JSON")


def parse_methods(text: str, grid: int) -> list[tuple[str, int]]:
    """'quadrature,iwae:5000,elbo' -> [('quadrature', 256), ('iwae', 5000), ('elbo', 1)]."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, arg = item.partition(":")
        name = name.strip().lower()
        if name not in ("quadrature", "iwae", "elbo"):
            raise LVMError(f"unknown method {item!r}; use quadrature[:GRID], iwae:K or elbo[:K]")
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


def _quadrature(model: LatentModel, x: torch.Tensor, size: int) -> torch.Tensor:
    from lvm.estimators.quadrature import log_marginal_adaptive

    block = 8 if size % 8 == 0 else 1
    return log_marginal_adaptive(model, x, size=size, block=block).log_px


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
    model: EncoderModel, x: torch.Tensor, methods: list[tuple[str, int]], batch_size: int = 100, seed: int = 0
) -> list[dict[str, Any]]:
    """Run each method on x; return one dict per method (mean log-likelihood, NLL, stderr, seconds)."""
    import torch

    from lvm.estimators.montecarlo import elbo, importance

    rows = []
    for name, n in methods:
        g = torch.Generator(device=x.device).manual_seed(seed)
        t0 = time.perf_counter()
        if name == "quadrature":
            v = _quadrature(model, x, n)
            label = f"quadrature:{n}"
        elif name == "iwae":
            v = _batched(model, x, batch_size, importance, n, g)
            label = f"iwae:{n}"
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
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from lvm.checkpoint import load_model
    from lvm.data import load_dataset
    from lvm.device import resolve_device

    methods = parse_methods(args.methods, args.grid)
    if args.limit is not None and args.limit < 1:
        raise LVMError("--limit must be positive")
    if args.batch_size < 1:
        raise LVMError("--batch-size must be positive")
    device = resolve_device(args.device)
    model, info = load_model(args.model, device)
    split = load_dataset(args.data).split(args.split)
    x = np.asarray(split.x, dtype=np.float32)
    if args.limit is not None:
        x = x[: args.limit]
    if x.ndim != 2 or x.shape[1] != model.data_dim:
        raise LVMError(
            f"{args.data} ({args.split}): {x.shape[-1]} features per image, but the model expects "
            f"{model.data_dim}; evaluate the model on the kind of data it was trained on"
        )
    if x.shape[0] == 0:
        raise LVMError(f"{args.data} ({args.split}) has no images")
    if model.config.decoder == "bernoulli" and (x.min() < 0 or x.max() > 1):
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
        + (
            ""
            if binary or model.config.decoder != "bernoulli"
            else " (non-binary data: a Bernoulli likelihood of grey pixels)"
        )
    )
    print(f"{'method':<18}{'log p(x)':>12}{'NLL':>10}{'stderr':>9}{'time (s)':>10}")
    for r in rows:
        print(
            f"{r['method']:<18}{r['mean_log_likelihood']:>12.3f}{r['nll']:>10.3f}{r['stderr']:>9.3f}{r['seconds']:>10.2f}"
        )
    return 0
