"""``lvm inpaint``: exact inpainting of one image with a 2-D VAE; writes a PNG and prints log p(x_O).

The PNG holds, left to right then row by row: the observed image (missing pixels shaded blue), the observed pixels
with the posterior predictive p(x_j = 1 | x_O) in the missing region (orange), then the sampled completions.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from lvm.device import DEVICE_CHOICES
from lvm.errors import DatasetError, ModelInputError

DEFAULT_SIZE = 128  # = lvm.inpainting.posterior.DEFAULT_SIZE (a literal: parsing arguments imports no torch)

HELP = "inpaint one image (hide part of it; exact posterior, predictive and sampled completions); writes a PNG"

SHADE = np.array([40.0, 70.0, 140.0])
TINT = np.array([255.0, 170.0, 60.0])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="VAE checkpoint (.safetensors), or a Python file (FILE.py[:FACTORY]) building a latent model (naming it "
        "runs it), with a 2-D (or 1-D) latent space and a Bernoulli decoder",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="a 28 x 28 8-bit grey or RGB PNG (white ink on black; see --invert)")
    src.add_argument("--index", type=int, help="index of an image in --data")
    p.add_argument("--data", default="digits", help="dataset spec for --index (default: digits)")
    p.add_argument("--split", default=None, help="split for --index (default: the dataset's default)")
    p.add_argument("--invert", action="store_true", help="invert a black-on-white --image")
    p.add_argument("--mask", default="top", help="missing region: top, bottom, left, right, random[:RATE], none")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--samples", type=int, default=16, help="sampled completions to draw (default 16)")
    p.add_argument(
        "--grid", type=int, default=DEFAULT_SIZE, help=f"latent grid points per axis (default {DEFAULT_SIZE})"
    )
    p.add_argument("--refine", type=int, default=4, help="refinement factor for the accuracy check (0: skip)")
    p.add_argument("--scale", type=int, default=4, help="pixel magnification of the PNG (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json", action="store_true", help="print a JSON summary only")


def _load_image(args: argparse.Namespace) -> np.ndarray:
    if args.image is not None:
        from lvm.imageio import read_png

        a = read_png(args.image).astype(np.float32)
        if a.ndim == 3:
            a = a.mean(-1)
        if a.shape != (28, 28):
            raise DatasetError(f"{args.image}: the image is {a.shape[1]} x {a.shape[0]}; the model needs 28 x 28")
        x = a / 255.0
        return 1.0 - x if args.invert else x
    from lvm.data import load_dataset

    data = load_dataset(args.data).split(args.split)
    if not 0 <= args.index < len(data):
        raise DatasetError(f"--index {args.index} is out of range; {args.data} has {len(data)} images")
    return np.asarray(data.x[args.index], dtype=np.float32)


def _tile(x: np.ndarray, mask: np.ndarray, fill: np.ndarray | None) -> np.ndarray:
    grey = np.repeat((np.clip(x, 0, 1) * 255.0)[:, None], 3, -1)
    if fill is None:
        miss = grey * 0.35 + SHADE * 0.65
    else:
        f = np.clip(fill, 0, 1)[:, None]
        miss = (1 - f) * np.array([25.0, 35.0, 70.0]) + f * TINT
    return np.where(mask[:, None], grey, miss).reshape(28, 28, 3).astype(np.uint8)


def _box_error(model: Any, grid: Any, x: np.ndarray, mask: np.ndarray, log_p_obs: float) -> float:
    """The quadrature box's error for log p(x_obs), in nats (``lvm.estimators.quadrature.box_error``)."""
    import torch

    from lvm.estimators.quadrature import box_error

    xt, m = grid.prepare(x, mask)
    err = box_error(model, xt.reshape(1, -1), grid.box, log_px=torch.tensor([log_p_obs]), mask=m.reshape(1, -1))
    return float(err[0])


def run(args: argparse.Namespace) -> int:
    import torch

    from lvm.device import resolve_device
    from lvm.imageio import image_grid, write_png
    from lvm.inpainting import InpaintGrid, make_mask, refined_log_p_obs
    from lvm.models.capabilities import describe
    from lvm.user_models import load_any_model

    if args.samples < 0 or args.grid < 2 or args.scale < 1:
        raise ModelInputError("--samples must be >= 0, --grid >= 2 and --scale >= 1")
    device = resolve_device(args.device)
    model, _ = load_any_model(args.model, device, allow_code=True)  # (naming the file on the command line: consent)
    caps = describe(model)
    if caps.data_dim != 784:
        raise ModelInputError(
            f"{args.model}: the model is for {caps.data_dim or 'an undeclared number of'}-pixel data; inpainting "
            "needs 28 x 28 (declare `data_dim = 784`)"
        )
    if caps.decoder != "bernoulli" or caps.latent_dim > 2:
        raise ModelInputError(
            f"{args.model}: exact inpainting needs a Bernoulli decoder (`bernoulli_logits`) and at most 2 latent "
            f"dimensions; this model has a {caps.decoder} decoder and {caps.latent_dim} latent dimensions"
        )
    x = _load_image(args).reshape(-1)
    mask = make_mask(args.mask, (28, 28), seed=args.seed)
    grid = InpaintGrid.build(model, size=args.grid)
    res = grid.infer(x, mask, n_samples=args.samples, generator=torch.Generator(device="cpu").manual_seed(args.seed))
    refined = refined_log_p_obs(grid, x, mask, factor=args.refine) if args.refine > 1 else None
    box_err = _box_error(model, grid, x, mask, res.log_p_obs if refined is None else refined)

    tiles = [_tile(x, mask, None), _tile(x, mask, res.predictive.cpu().numpy())]
    tiles += [_tile(x, mask, s) for s in res.samples.cpu().numpy()]
    picture = image_grid(np.stack(tiles), cols=min(len(tiles), 6), pad=1)
    picture = np.repeat(np.repeat(picture, args.scale, 0), args.scale, 1)
    write_png(args.out, picture)

    summary = {
        "log_p_obs": res.log_p_obs,
        "observed": int(mask.sum()),
        "missing": int((~mask).sum()),
        "grid": args.grid,
        "box": grid.box.tolist(),
        "box_error": box_err,
        "mask": args.mask,
        "posterior_mean_z": res.posterior_mean(grid).cpu().tolist(),
        "samples": args.samples,
        "out": args.out,
    }
    if refined is not None:
        summary.update(
            refined_grid=args.grid * args.refine, refined_log_p_obs=refined, refinement_change=refined - res.log_p_obs
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"log p(x_obs) = {res.log_p_obs:.4f} nats ({summary['observed']} observed, {summary['missing']} missing "
            f"pixels; {args.grid}^2 grid)"
        )
        if refined is not None:
            print(
                f"  {args.grid * args.refine}^2 grid: {refined:.4f} (refinement change {refined - res.log_p_obs:+.2e})"
            )
        print(f"  box error {box_err:.1e} nats (the posterior's mass outside the box)")
        print(f"wrote {args.out}: observed, predictive mean, {args.samples} sampled completions")
    return 0
