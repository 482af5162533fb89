"""``lvm data info SPEC [--json]``: splits, counts, shape, label histogram, pixel statistics."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from lvm.data import load_dataset

HELP = "inspect a dataset (folder in MNIST layout, .npz, or built-in name)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    info = sub.add_parser("info", help="splits, counts, shape, label histogram, pixel statistics")
    info.add_argument("spec", help="dataset spec")
    info.add_argument("--json", action="store_true")


def dataset_info(spec: str) -> dict[str, Any]:
    """Summary of a dataset: per split its count, labels histogram and value statistics."""
    ds = load_dataset(spec)
    splits: dict[str, dict[str, Any]] = {}
    for name, split in ds.splits.items():
        x = split.x
        entry: dict[str, Any] = {
            "count": int(x.shape[0]),
            "features": int(x.shape[1]),
            "min": float(x.min()),
            "max": float(x.max()),
            "mean": float(x.mean()),
            "std": float(x.std()),
            "binary": bool(np.isin(x[: min(len(x), 2000)], (0.0, 1.0)).all()),
        }
        if split.y is not None:
            values, counts = np.unique(split.y, return_counts=True)
            entry["labels"] = {str(int(v)): int(c) for v, c in zip(values, counts, strict=False)}
        splits[name] = entry
    return {
        "name": ds.name,
        "source": ds.source,
        "image_shape": None if ds.image_shape is None else list(ds.image_shape),
        "default_split": ds.default_split,
        "splits": splits,
    }


def run(args: argparse.Namespace) -> int:
    info = dataset_info(args.spec)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    shape = "x".join(map(str, info["image_shape"])) + " images" if info["image_shape"] else "points"
    print(f"{info['name']}  ({info['source']})  {shape}")
    for name, s in info["splits"].items():
        print(
            f"  {name:6s} {s['count']:>7,} samples x {s['features']} features  "
            f"min {s['min']:.3g} max {s['max']:.3g} mean {s['mean']:.4g} std {s['std']:.4g}"
            f"{'  (binary)' if s['binary'] else ''}"
        )
        if "labels" in s:
            print("         labels: " + "  ".join(f"{k}:{v}" for k, v in s["labels"].items()))
    return 0
