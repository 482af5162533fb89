"""lvm.threads.single_thread: one intra-op thread inside, the previous count back when the last user leaves."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from lvm.threads import single_thread

REPO = Path(__file__).resolve().parents[2]


def test_one_thread_inside_and_the_count_restored_after():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with single_thread():
            assert torch.get_num_threads() == 1
            with single_thread():  # nested: still one, and leaving the inner block keeps it
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with single_thread(enabled=False):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_each_thread_gets_one_thread_and_restores_its_own_count():
    """Two overlapping users in two threads: both run on one thread (the second user used to find the count already
    "saved" by the first and ran on all threads, as torch's count is per calling thread), and each gets its own count
    back."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    entered, release = threading.Event(), threading.Event()
    seen = []

    def worker():
        torch.set_num_threads(2)
        with single_thread():
            entered.set()
            release.wait(10)
            seen.append(torch.get_num_threads())
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=worker)
    try:
        t.start()
        assert entered.wait(10)
        with single_thread():
            assert torch.get_num_threads() == 1  # this thread too, while the worker is inside
        assert torch.get_num_threads() == 2
        release.set()
        t.join(10)
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        release.set()
        t.join(10)
        torch.set_num_threads(before)


@pytest.mark.parametrize("entry", ["import app", "import lvm.cli"])
def test_the_app_and_the_cli_make_openmp_threads_wait_passively(entry):
    """lvm.prefer_passive_openmp: set before torch loads (spinning OpenMP threads on a busy machine made a small
    product loop 18x slower); a policy the user chose is kept."""
    code = f"{entry}, os, sys; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.split() == ["PASSIVE", "False"], out.stderr
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.split() == ["ACTIVE", "False"], out.stderr
