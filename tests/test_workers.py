"""The worker facility's two request policies on one channel: latest wins (hover), and keep running (a pen)."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from app.workers import WORKER_NICENESS, TaskRunner


def _gated_jobs(gate: threading.Event):
    def make(i):
        def fn(token):
            if i == 0:
                gate.wait(5)
            return i
        return fn
    return make


def test_latest_wins_per_channel(qtbot):
    """Hover: the running request is cancelled (its result dropped), the queued ones replaced by the newest."""
    runner = TaskRunner()
    results: list[int] = []
    gate = threading.Event()
    make = _gated_jobs(gate)
    for i in range(20):
        runner.submit("hover", make(i), on_result=results.append)
    gate.set()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert results == [19]
    runner.shutdown()


def test_keep_running_delivers_the_running_job_and_the_newest_request(qtbot):
    """A continuous stroke: the running update finishes and is drawn, the queued ones collapse to the newest."""
    runner = TaskRunner()
    results: list[int] = []
    gate = threading.Event()
    make = _gated_jobs(gate)
    for i in range(20):
        runner.submit("pen", make(i), on_result=results.append, keep_running=True)
    gate.set()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert results == [0, 19]
    runner.shutdown()


def test_keep_running_results_keep_flowing_during_a_stream_of_requests(qtbot):
    """Requests every 5 ms, each job 20 ms: several results arrive while the stream goes on (latest wins alone
    would cancel every running job and show nothing until the stream stops)."""
    import time

    runner = TaskRunner()
    results: list[int] = []

    def make(i):
        def fn():
            time.sleep(0.02)
            return i
        return fn

    for i in range(60):
        runner.submit("pen", make(i), on_result=results.append, keep_running=True)
        qtbot.wait(5)
    during = len(results)
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert during >= 3
    assert results == sorted(results) and results[-1] == 59
    runner.shutdown()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_worker_threads_run_below_the_gui_threads_priority(qtbot):
    """Jobs run at nice >= 10 (the GUI thread keeps its own), so a busy worker cannot starve the event loop."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    runner = TaskRunner()
    seen: list[int] = []
    runner.submit("nice", lambda: os.getpriority(os.PRIO_PROCESS, 0), on_result=seen.append)
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen[0] >= max(before, WORKER_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # only the worker thread was lowered
    runner.shutdown()


def test_keep_running_starts_the_waiting_request_before_the_result_is_drawn(qtbot):
    """While ``on_result`` of the finished job runs (the GUI thread drawing it), the newest waiting request is
    already running in the worker: drawing and computing overlap."""
    runner = TaskRunner()
    gate, started = threading.Event(), threading.Event()
    seen: list[tuple[int, bool]] = []

    def make(i):
        def fn():
            if i == 0:
                gate.wait(5)
            else:
                started.set()
            return i
        return fn

    def on_result(i):
        seen.append((i, started.wait(2.0) if i == 0 else True))

    for i in range(3):
        runner.submit("pen", make(i), on_result=on_result, keep_running=True)
    gate.set()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert seen == [(0, True), (2, True)]
    runner.shutdown()
