"""``lvm bench``: speed figures measured side by side against a reference in one run.

Each benchmark module defines ``run(quick: bool, device: torch.device) -> dict`` returning
``{"cases": [{"name", "ours_s", "reference", "reference_s", "speedup", ...accuracy figures}]}``;
times are medians of repeats and ``speedup = reference_s / ours_s``.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

# benchmark name -> module
BENCHMARKS: dict[str, str] = {
    "gmm": "lvm.bench.gmm",
    "vae": "lvm.bench.vae",
    "eval": "lvm.bench.eval",
    "inpaint": "lvm.bench.inpaint",
    "gui": "lvm.bench.gui",
    "discrete": "lvm.bench.discrete",
    "startup": "lvm.bench.startup",
    "ais": "lvm.bench.ais",
    "images": "lvm.bench.images",
}


# a busy loop that ends by itself when the process that started it is gone (killed, crashed, timed out)
BUSY_LOOP = "import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n    pass"  # argv[1]: the parent's pid
_load = 0  # busy-loop processes running beside the benchmarks now (``busy_loops``)


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[None]:
    """Run ``n`` busy-loop processes (``BUSY_LOOP``) for the duration of the block: a loaded
    machine, as a user's often is (``lvm bench --load N``)."""
    global _load
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())]) for _ in range(max(0, n))]
    _load = len(procs)
    try:
        yield
    finally:
        _load = 0
        for proc in procs:
            proc.kill()
            proc.wait()


def current_load() -> int:
    """How many busy-loop processes ``busy_loops`` runs now (0 on a quiet machine)."""
    return _load


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, inner: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs; each run times ``inner``
    calls in a row and counts their mean (for calls too short to time one by one)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def case(name: str, ours_s: float, reference: str, reference_s: float, **figures: Any) -> dict[str, Any]:
    """One benchmark case row, with ``speedup = reference_s / ours_s``."""
    return {
        "name": name,
        "ours_s": ours_s,
        "reference": reference,
        "reference_s": reference_s,
        "speedup": reference_s / ours_s if ours_s > 0 else float("inf"),
        **figures,
    }


def app_env() -> dict[str, str]:
    """The environment for a process of the app (Qt): offscreen without a display, this checkout importable."""
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return env


def app_json(module: str, args: list[str], what: str, timeout_s: int = 1800) -> dict[str, Any]:
    """Run ``python -m module *args`` (an app benchmark: this library never imports Qt) and return the JSON it prints
    last; ``what`` names it in errors."""
    from lvm.errors import LVMError

    cmd = [sys.executable, "-m", module, *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=app_env(), cwd=REPO_ROOT)
    except FileNotFoundError as exc:
        raise LVMError(f"cannot start {what}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise LVMError(f"{what} did not finish within {timeout_s // 60} minutes") from None
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-15:])
        raise LVMError(f"{what} failed (exit {out.returncode}); is the app installed (PySide6)?\n{tail}")
    try:
        result: dict[str, Any] = json.loads(out.stdout[out.stdout.index("{") :])
        return result
    except ValueError:
        raise LVMError(f"{what} printed no JSON:\n{out.stdout[-2000:]}") from None


def shared_data_dir() -> Path:
    """The developers' data folder: ``$LVM_SHARED_DATA`` or ``../shared/data`` beside the checkout.

    Benchmarks (a developer tool) may read it; the app never does.
    """
    import os
    from pathlib import Path

    from lvm.errors import LVMError

    env = os.environ.get("LVM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" for p in here.parents[:4]] + [Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if (c / "mnist").is_dir():
            return c
    raise LVMError("benchmark data not found: set LVM_SHARED_DATA to the folder holding mnist/ and binarized_mnist/")
