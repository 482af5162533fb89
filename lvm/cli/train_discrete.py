"""``lvm train-discrete``: train a binary latent model (z in {0,1}^K) and report its exact test NLL by enumeration."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from lvm.device import DEVICE_CHOICES
from lvm.errors import LVMError

# literals for parsing without importing torch (tests/lvm/test_discrete.py checks them against the library)
MAX_LATENT_DIM = 30  # = lvm.models.binary_latent.MAX_LATENT_DIM
OBJECTIVES = ("auto", "exact", "vimco")  # = lvm.training_discrete.OBJECTIVES

HELP = (
    "train a binary latent factor model (K binary features, exact training for K <= 12, VIMCO above) and "
    "report its exact test NLL by enumerating all 2^K configurations"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset spec (binary images; grey levels are thresholded at 0.5)")
    p.add_argument("--k", type=int, default=20, help=f"number of binary latent features, 1..{MAX_LATENT_DIM}")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, help="checkpoint file to write (.safetensors)")
    p.add_argument("--objective", choices=OBJECTIVES, default="auto")
    p.add_argument("--samples", type=int, default=10, help="VIMCO: samples per x")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--encoder-hidden", default="200", help="hidden sizes of q(z|x), comma-separated ('' = linear)")
    p.add_argument("--eval-split", default="test")
    p.add_argument("--eval-limit", type=int, default=1000, help="exact NLL on the first N images of --eval-split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", action="store_true", help="print only a JSON summary")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from lvm.data import load_dataset
    from lvm.device import resolve_device
    from lvm.estimators.discrete import exact_log_marginal
    from lvm.models.binary_latent import (
        BinaryLatentConfig,
        BinaryLatentModel,
        save_binary_latent,
    )
    from lvm.training_discrete import (
        OBJECTIVE_DESCRIPTIONS,
        choose_objective,
        train_steps,
    )

    if not 1 <= args.k <= MAX_LATENT_DIM:
        raise LVMError(f"--k must be between 1 and {MAX_LATENT_DIM}")
    if args.epochs < 1:
        raise LVMError("--epochs must be at least 1")
    try:
        enc_hidden = tuple(int(h) for h in args.encoder_hidden.split(",") if h.strip())
    except ValueError:
        raise LVMError(f"--encoder-hidden {args.encoder_hidden!r}: give comma-separated integers") from None
    out = Path(args.out)
    if out.is_dir():
        raise LVMError(f"--out {args.out!r} is a folder; give a file name such as model.safetensors")
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    ds = load_dataset(args.data)
    train = (ds.split(ds.default_split).x > 0.5).astype(np.float32)
    evaluation = ds.split(args.eval_split if args.eval_split in ds.splits else None)
    x_eval = torch.as_tensor((evaluation.x[: args.eval_limit] > 0.5).astype(np.float32), device=device)
    model = BinaryLatentModel(
        BinaryLatentConfig(data_dim=train.shape[1], latent_dim=args.k, encoder_hidden=enc_hidden)
    ).to(device)
    objective = choose_objective(args.k, args.objective)
    t0 = time.perf_counter()
    last = None
    for snap in train_steps(
        model,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        objective=objective,
        samples=args.samples,
        seed=args.seed,
        report_every=100,
    ):
        last = snap
        if not args.json and (snap.step % 500 == 0 or snap.done):
            print(
                f"epoch {snap.epoch}/{snap.epochs} step {snap.step}/{snap.steps} {snap.objective} "
                f"bound {snap.bound:.2f} ({snap.seconds:.0f} s)",
                flush=True,
            )
    train_s = time.perf_counter() - t0
    assert last is not None  # train_steps yields at least its final snapshot
    t1 = time.perf_counter()
    log_px = exact_log_marginal(model, x_eval)
    eval_s = time.perf_counter() - t1
    nll = float(-log_px.mean())
    se = float(log_px.std() / np.sqrt(len(log_px))) if len(log_px) > 1 else float("nan")
    argv = sys.argv[sys.argv.index("train-discrete") + 1 :] if "train-discrete" in sys.argv else []
    info = {
        "command": " ".join(["lvm", "train-discrete", *map(shlex.quote, argv)]),
        "dataset": str(args.data),
        "objective": objective,
        "objective_description": OBJECTIVE_DESCRIPTIONS[objective],
        "epochs": args.epochs,
        "samples": args.samples,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "train_seconds": round(train_s, 1),
        "final_train_bound": last.bound,
        "eval_split": args.eval_split,
        "eval_images": len(log_px),
        "exact_test_nll": nll,
        "exact_test_nll_stderr": se,
        "exact_eval_seconds": round(eval_s, 2),
    }
    save_binary_latent(model, out, info)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(
            f"exact NLL on {len(log_px)} {args.eval_split} images: {nll:.2f} +- {se:.2f} nats "
            f"(2^{args.k} configurations each, {eval_s:.1f} s); training {train_s:.0f} s; saved {out}"
        )
    return 0
