"""``lvm train-vae``: train a VAE on a dataset and save a checkpoint."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lvm.device import DEVICE_CHOICES
from lvm.errors import LVMError

if TYPE_CHECKING:
    from lvm.models.vae import VAE
    from lvm.training import ScheduleState, TrainSnapshot

ACTIVATION_NAMES = ("elu", "gelu", "relu", "silu", "tanh")  # = sorted(lvm.models.vae.ACTIVATIONS), without torch

HELP = "train a VAE (2-D latent by default) by maximising the ELBO (or log p(x) itself); saves a safetensors checkpoint"
ARCHITECTURE = {"latent_dim": 2, "decoder": "bernoulli", "hidden": "512,512,512", "activation": "elu"}  # the defaults


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset spec: folder, .npz or built-in name")
    p.add_argument("--split", default=None, help="training split (default: train, else the first)")
    p.add_argument("--valid-split", default=None, help="validation split (default: valid, else test, if present)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, help="checkpoint file to write (.safetensors)")
    p.add_argument(
        "--init",
        default=None,
        help="start from this checkpoint's weights and architecture (fine-tuning) instead of a new model",
    )
    p.add_argument("--latent-dim", type=int, default=None, help="(default 2)")
    p.add_argument("--decoder", choices=["bernoulli", "gaussian"], default=None, help="(default bernoulli)")
    p.add_argument("--hidden", default=None, help="hidden layer sizes, comma-separated (default 512,512,512)")
    p.add_argument("--activation", choices=ACTIVATION_NAMES, default=None, help="(default elu)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--lr",
        type=float,
        default=1e-3,
        help="peak learning rate of the one-cycle schedule (2e-3 diverged on the 3 x 512 model)",
    )
    p.add_argument(
        "--schedule",
        choices=["onecycle", "constant", "cosine"],
        default="onecycle",
        help="onecycle (default): up to --lr and down; constant; cosine: from --lr down to 0 (fine-tuning)",
    )
    p.add_argument(
        "--objective",
        choices=["elbo", "grid"],
        default="elbo",
        help="elbo (default); grid (1-D/2-D latent): the decoder maximises log p(x) on a randomly shifted grid, the "
        "encoder the ELBO",
    )
    p.add_argument("--grid-size", type=int, default=64, help="(--objective grid) points per latent axis (default 64)")
    p.add_argument("--binarization", choices=["dynamic", "threshold", "none"], default="dynamic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", action="store_true", help="print only a JSON summary")


def _command_line() -> str:
    argv = sys.argv[sys.argv.index("train-vae") + 1 :] if "train-vae" in sys.argv else []
    return " ".join(["lvm", "train-vae", *map(shlex.quote, argv)])


def run(args: argparse.Namespace) -> int:
    from lvm.data import load_dataset
    from lvm.device import resolve_device
    from lvm.training import TrainConfig, schedule_state_at, train_vae

    if args.epochs < 1:
        raise LVMError("--epochs must be at least 1")
    out = Path(args.out)
    if out.is_dir():
        raise LVMError(f"--out {args.out!r} is a folder; give a file name such as model.safetensors")
    device = resolve_device(args.device)
    ds = load_dataset(args.data)
    train_name = args.split or ds.default_split
    train = ds.split(train_name)
    # never validate on the training split (the bundled digits have a single split: no validation then)
    valid_name = args.valid_split or next((s for s in ("valid", "test") if s in ds.splits and s != train_name), None)
    valid = ds.split(valid_name) if valid_name else None
    model, init_info, previous = _initial_model(args, ds.dim, ds.image_shape)
    tc = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        binarization=args.binarization,
        seed=args.seed,
        objective=args.objective,
        grid_size=args.grid_size,
        previous=previous,  # (--init: the step count goes on from the checkpoint's)
    )
    t0 = time.perf_counter()
    last = None
    saved_epochs = 0

    def info_now(snap: TrainSnapshot) -> dict[str, Any]:
        return {
            "dataset": ds.source,
            "split": train_name,
            "epochs_completed": int(snap.epoch),
            "train_command": _command_line(),
            "seed": args.seed,
            "lr": args.lr,
            "schedule": args.schedule,
            "batch_size": args.batch_size,
            "binarization": args.binarization,
            "objective": args.objective,
            **({"grid_size": args.grid_size, "train_log_p": snap.train_log_p} if args.objective == "grid" else {}),
            **({"init": init_info} if init_info is not None else {}),
            "train_elbo": snap.train_elbo,
            "valid_elbo": snap.valid_elbo,
            "valid_split": valid_name,
            "train_seconds": round(time.perf_counter() - t0, 1),
            "stopped_reason": snap.stopped_reason,
            **training_state(snap),
        }

    def training_state(snap: TrainSnapshot) -> dict[str, Any]:  # where the schedule ended: `continue` resumes there
        state = schedule_state_at(tc, snap)
        return {} if state is None else {"training_state": state.to_dict()}

    for snap in train_vae(model, train.x, None if valid is None else valid.x, tc, device):
        last = snap
        if not snap.done and int(snap.epoch) > saved_epochs:  # each completed epoch is saved (atomically): a run
            saved_epochs = int(snap.epoch)  # killed later leaves it intact and loadable
            _save(model, args.out, info_now(snap))
        if not args.json:
            val = "" if snap.valid_elbo is None else f"  valid ELBO {snap.valid_elbo:8.2f}"
            if snap.train_log_p is not None:
                val += f"  train log p(x) {snap.train_log_p:8.2f}"
            bar = "#" * int(30 * snap.progress)
            print(
                f"\r[{bar:<30}] epoch {snap.epoch:6.2f}/{tc.epochs}  train ELBO {snap.train_elbo:8.2f}{val}"
                f"  {snap.images_per_s:7.0f} img/s",
                end="\n" if snap.step % (10 * tc.report_every) == 0 or float(snap.epoch).is_integer() else "",
                file=sys.stderr,
                flush=True,
            )
    if last is not None and last.stopped_reason == "nan":
        print(
            "\ntraining hit a NaN/inf loss: stopped and restored the last good weights (try a smaller --lr)",
            file=sys.stderr,
        )
    assert last is not None  # train_vae yields at least its final snapshot
    info = info_now(last)
    _save(model, args.out, info)
    summary = {"out": args.out, "parameters": model.num_parameters(), **info}
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0


def _initial_model(
    args: argparse.Namespace, data_dim: int, image_shape: Any
) -> tuple[VAE, dict[str, Any] | None, ScheduleState | None]:
    """A new VAE of the architecture asked for, or (``--init``) the checkpoint's, with what its metadata says of how
    it was made (kept in the new checkpoint: the whole recipe) and where its schedule ended."""
    from lvm.models.vae import VAE, VAEConfig

    given = {k: getattr(args, k) for k in ARCHITECTURE if getattr(args, k) is not None}
    if args.init is not None:
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise LVMError(f"--init takes the architecture from the checkpoint: leave out {flags}")
        from lvm.checkpoint import load_model

        model, info = load_model(args.init)
        if model.data_dim != data_dim:
            raise LVMError(f"--init {args.init}: the model takes {model.data_dim} features, the data has {data_dim}")
        keep = ("train_command", "epochs_completed", "objective", "train_elbo", "valid_elbo", "train_seconds", "init")
        from lvm.training import schedule_state_from_info

        made = {"path": Path(args.init).name, **{k: info[k] for k in keep if k in info}}
        return model, made, schedule_state_from_info(info)
    arch = {**ARCHITECTURE, **given}
    try:
        hidden = tuple(int(h) for h in str(arch["hidden"]).split(","))
    except ValueError:
        raise LVMError(f"--hidden {arch['hidden']!r}: give comma-separated integers, e.g. 512,512") from None
    config = VAEConfig(
        data_dim=data_dim,
        latent_dim=int(arch["latent_dim"]),
        hidden=hidden,
        activation=str(arch["activation"]),
        decoder=str(arch["decoder"]),
        image_shape=image_shape,
    )
    return VAE(config), None, None


def _save(model: VAE, out: str, info: dict[str, Any]) -> None:
    """Write ``model``'s weights atomically to ``out`` (copied to the CPU; training goes on with the model as it is)."""
    from lvm.checkpoint import save_model

    try:
        save_model(model, out, info)
    except OSError as exc:
        raise LVMError(f"cannot write {out}: {exc.strerror or exc}; the previous file, if any, is unchanged") from None
