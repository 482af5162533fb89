"""``lvm bench [NAME...] [--quick] [--json]``."""

from __future__ import annotations

import argparse
import importlib
import json

from lvm.bench import BENCHMARKS
from lvm.device import DEVICE_CHOICES, resolve_device
from lvm.errors import LVMError

HELP = "measure speed against the reference implementations (scikit-learn, IWAE, plain PyTorch), side by side"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    p.add_argument("--quick", action="store_true", help="smaller problems, for a fast look")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)


def run(args: argparse.Namespace) -> int:
    names = args.names or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise LVMError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    device = resolve_device(args.device)
    results = {}
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
                print(f"  {c['name']}: ours {c['ours_s']:.4g} s, {c['reference']} {c['reference_s']:.4g} s, speedup {c['speedup']:.2f}x")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0
