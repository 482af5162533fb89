"""``lvm bench [NAME...] [--quick] [--json]``."""

from __future__ import annotations

import argparse
import importlib
import json
from typing import TYPE_CHECKING, Any

from lvm.bench import BENCHMARKS, busy_loops
from lvm.device import DEVICE_CHOICES, resolve_device
from lvm.errors import LVMError

if TYPE_CHECKING:
    import torch

HELP = "measure speed against the reference implementations (scikit-learn, IWAE, plain PyTorch), side by side"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})"
    )
    p.add_argument("--quick", action="store_true", help="smaller problems, for a fast look")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="N",
        help="run N busy-loop processes beside the benchmarks (a loaded machine); default 0",
    )


def run(args: argparse.Namespace) -> int:
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise LVMError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    device = resolve_device(args.device)
    if not 0 <= args.load <= 64:
        raise LVMError(f"--load {args.load}: give a number of busy-loop processes from 0 to 64")
    with busy_loops(args.load):
        results = _run_all(names, args, device)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _run_all(names: list[str], args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as exc:
            if exc.name != BENCHMARKS[name]:
                raise
            raise LVMError(f"benchmark {name!r} is not built yet") from None
        results[name] = module.run(quick=args.quick, device=device)
        if not args.json:
            print(f"== {name}")
            for c in results[name]["cases"]:
                print(
                    f"  {c['name']}: ours {c['ours_s']:.4g} s, {c['reference']} {c['reference_s']:.4g} s, "
                    f"speedup {c['speedup']:.2f}x"
                )
        results[name]["load"] = args.load
    return results
