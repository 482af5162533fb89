"""``lvm bench gui``: does the GUI freeze? Runs ``python -m app.bench_gui --json`` in a subprocess (this library never
imports Qt) and reports one case per scripted scenario.

For each scenario ``ours_s`` is the longest stall of the GUI event loop (a 10 ms timer's lateness) and the reference is
the 50 ms budget (100 ms under ``--load N``), so ``speedup`` >= 1 means "within budget"; ``p99_frame_s`` is the 99th
percentile of the time between two timer ticks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from lvm.bench import case, current_load
from lvm.errors import LVMError

BUDGET_S = 0.05  # longest stall on a quiet machine
LOADED_BUDGET_S = 0.1  # ... and with busy-loop processes beside the app (``lvm bench gui --load 2``)


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "app.bench_gui",
        "--json",
        "--device",
        str(device.type if hasattr(device, "type") else device),
    ]
    if quick:
        cmd.append("--quick")
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=root)
    except FileNotFoundError as exc:
        raise LVMError(f"cannot start the GUI benchmark: {exc}") from None
    except subprocess.TimeoutExpired:
        raise LVMError("the GUI benchmark did not finish within 30 minutes") from None
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        raise LVMError(f"the GUI benchmark failed (exit {out.returncode}); is the app installed (PySide6)?\n{tail}")
    try:
        start = out.stdout.index("{")
        result = json.loads(out.stdout[start:])
    except ValueError:
        raise LVMError(f"the GUI benchmark printed no JSON:\n{out.stdout[-2000:]}") from None
    budget = LOADED_BUDGET_S if current_load() else BUDGET_S
    cases = []
    for r in result["cases"]:
        extra = {k: v for k, v in r.items() if k not in ("name", "longest_stall_s")}
        cases.append(
            case(f"gui {r['name']}", max(r["longest_stall_s"], 1e-6), f"{budget * 1000:.0f} ms budget", budget, **extra)
        )
    return {"cases": cases, "all_within_budget": result.get("all_within_budget"), "worst": result.get("worst")}
