"""``lvm bench startup``: how fast the app and the CLI start, against the import floor measured in the same run.

Each figure is the median over cold processes (5, or 2 with ``--quick``), each a fresh interpreter:

- the floor: ``python -c pass``, ``import PySide6.QtWidgets``, ``import pyqtgraph`` (numpy included), ``import torch``;
- ``first paint``: ``lvm-explorer --smoke`` from the interpreter's start to the main window painted (target 1.0 s);
- ``ready``: to the first lab usable with its first result drawn (target: ``import torch`` + 1.0 s);
- ``lvm --help`` and an argument error (target 0.3 s each: no torch import).

``speedup`` = target / ours, so >= 1 means "meets the target".
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lvm.bench import app_env, case
from lvm.errors import LVMError

ROOT = Path(__file__).resolve().parents[2]
FLOOR = {
    "python -c pass": "pass",
    "import PySide6.QtWidgets": "import PySide6.QtWidgets",
    "import pyqtgraph": "import pyqtgraph",
    "import torch": "import torch",
}
SMOKE = re.compile(r"first paint (\d+) ms, ready ([\d.]+) s, warm-up done ([\d.]+) s")


def _wall(args: list[str], ok_codes: tuple[int, ...] = (0,)) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=app_env(), cwd=ROOT, timeout=300)
    wall = time.perf_counter() - t0
    if out.returncode not in ok_codes:
        raise LVMError(f"{' '.join(args)} exited {out.returncode}:\n{out.stderr[-1500:]}")
    return wall


def _smoke() -> tuple[float, float, float]:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--smoke"], capture_output=True, text=True, env=app_env(), cwd=ROOT, timeout=300
    )
    match = SMOKE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise LVMError(f"lvm-explorer --smoke failed (exit {out.returncode}):\n{out.stdout[-800:]}{out.stderr[-1500:]}")
    return float(match.group(1)) / 1000, float(match.group(2)), float(match.group(3))


def run(quick: bool, device: Any = None) -> dict[str, Any]:
    repeats = 2 if quick else 5
    floor = {
        name: statistics.median(_wall([sys.executable, "-c", code]) for _ in range(repeats))
        for name, code in FLOOR.items()
    }
    smokes = [_smoke() for _ in range(repeats)]
    paint = statistics.median(s[0] for s in smokes)
    ready = statistics.median(s[1] for s in smokes)
    warm = statistics.median(s[2] for s in smokes)
    help_s = statistics.median(_wall([sys.executable, "-m", "lvm", "--help"]) for _ in range(repeats))
    error_s = statistics.median(
        _wall([sys.executable, "-m", "lvm", "eval", "--no-such-flag"], ok_codes=(2,)) for _ in range(repeats)
    )
    torch_s = floor["import torch"]
    floor_figures = {f"floor {name} s": round(t, 3) for name, t in floor.items()}
    return {
        "cases": [
            case("first paint of the main window", paint, "target 1.0 s", 1.0, **floor_figures),
            case(
                "ready (first lab's first result drawn)",
                ready,
                "import torch + 1.0 s",
                torch_s + 1.0,
                import_torch_s=round(torch_s, 3),
                warm_up_done_s=round(warm, 3),
            ),
            case("lvm --help", help_s, "target 0.3 s", 0.3),
            case("lvm argument error", error_s, "target 0.3 s", 0.3),
        ],
        "repeats": repeats,
    }
