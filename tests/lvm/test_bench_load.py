"""``lvm bench --load N``: busy-loop processes run beside the benchmarks and are gone afterwards."""

from __future__ import annotations

import os

import pytest

from lvm.bench import busy_loops, current_load


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] in "RSD"  # (a zombie "Z" has ended)


def test_busy_loops_run_for_the_block_and_end_with_it(monkeypatch):
    import subprocess

    started: list[subprocess.Popen] = []
    real = subprocess.Popen

    def spy(*args, **kwargs):
        proc = real(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(subprocess, "Popen", spy)
    with busy_loops(2):
        assert current_load() == 2 and len(started) == 2
        assert all(_running(p.pid) for p in started)
    assert current_load() == 0
    assert all(p.returncode is not None for p in started)


def test_bench_refuses_a_silly_load(capsys):
    from lvm.cli import main

    assert main(["bench", "gmm", "--load", "1000"]) == 2
    assert "--load 1000" in capsys.readouterr().err


@pytest.mark.parametrize("load, budget", [(0, 0.05), (2, 0.1)])
def test_the_gui_budget_is_100_ms_under_load(monkeypatch, load, budget):
    import json
    import subprocess

    import lvm.bench
    from lvm.bench import gui

    fake = {"cases": [{"name": "drag-q", "longest_stall_s": 0.07, "p99_frame_s": 0.02}]}
    monkeypatch.setattr(
        lvm.bench.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, json.dumps(fake), "")
    )
    monkeypatch.setattr(gui, "current_load", lambda: load)
    (row,) = gui.run(quick=True, device="cpu")["cases"]
    assert row["reference_s"] == budget and (row["speedup"] >= 1) == (load > 0)


def test_a_busy_loop_ends_when_its_parent_is_gone():
    """A run killed before it could stop its busy loops (a timeout, a crash) leaves none behind."""
    import subprocess
    import sys
    import time

    from lvm.bench import BUSY_LOOP

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys\n"
            f"loop = subprocess.Popen([sys.executable, '-c', {BUSY_LOOP!r}, str(os.getpid())])\n"
            "print(loop.pid, flush=True)\nos._exit(0)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = int(parent.stdout.readline())
    parent.wait(30)
    deadline = time.monotonic() + 30
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # (another process's state: polled)
    assert not _running(pid)


def test_median_time_times_inner_calls_as_one_run_and_counts_their_mean(monkeypatch):
    """``median_time(fn, repeats, warmup, inner)`` calls ``fn`` warmup + repeats x inner times and returns the median
    over runs of the mean time per call."""
    import lvm.bench as bench

    clock = iter(range(0, 1000, 10))  # each perf_counter() reading 10 s after the last
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(clock)))
    calls = []
    assert bench.median_time(lambda: calls.append(1), repeats=3, warmup=2, inner=5) == 10 / 5
    assert len(calls) == 2 + 3 * 5
