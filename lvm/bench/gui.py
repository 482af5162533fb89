"""``lvm bench gui``: does the GUI freeze? Runs ``python -m app.bench_gui --json`` in a subprocess (this library never
imports Qt) and reports one case per scripted scenario.

For each scenario ``ours_s`` is the longest stall of the GUI event loop (a 10 ms timer's lateness) and the reference is
the 50 ms budget (100 ms under ``--load N``), so ``speedup`` >= 1 means "within budget"; ``p99_frame_s`` is the 99th
percentile of the time between two timer ticks.
"""

from __future__ import annotations

from typing import Any

import torch

from lvm.bench import app_json, case, current_load

BUDGET_S = 0.05  # longest stall on a quiet machine
LOADED_BUDGET_S = 0.1  # ... and with busy-loop processes beside the app (``lvm bench gui --load 2``)


def run(quick: bool, device: torch.device) -> dict[str, Any]:
    args = ["--json", "--device", str(device.type if hasattr(device, "type") else device)]
    result = app_json("app.bench_gui", args + (["--quick"] if quick else []), "the GUI benchmark")
    budget = LOADED_BUDGET_S if current_load() else BUDGET_S
    cases = []
    for r in result["cases"]:
        extra = {k: v for k, v in r.items() if k not in ("name", "longest_stall_s")}
        cases.append(
            case(f"gui {r['name']}", max(r["longest_stall_s"], 1e-6), f"{budget * 1000:.0f} ms budget", budget, **extra)
        )
    return {"cases": cases, "all_within_budget": result.get("all_within_budget"), "worst": result.get("worst")}
