"""The worker facility's two request policies on one channel: latest wins (hover), and keep running (a pen)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from app.core import workers
from app.core.cpu_share import BUSY_CORES, QUIET_NICENESS, LoadMeter, worker_niceness
from app.core.workers import TaskRunner


def _gated_jobs(gate: threading.Event):
    def make(i):
        def fn(token):
            if i == 0:
                gate.wait(30)
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
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=30000)
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
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=30000)
    assert results == [0, 19]
    runner.shutdown()


def test_keep_running_results_keep_flowing_during_a_stream_of_requests(qtbot):
    """Requests every 5 ms, each job 20 ms: several results arrive while the stream goes on (latest wins alone
    would cancel every running job and show nothing until the stream stops). The stream goes on until three results
    arrived, however long a loaded machine takes (at most 6000 requests, > 30 s), so it is counted, not timed."""
    import time

    runner = TaskRunner()
    results: list[int] = []

    def make(i):
        def fn():
            time.sleep(0.02)
            return i

        return fn

    i = 0
    while (i < 60 or len(results) < 3) and i < 6000:
        runner.submit("pen", make(i), on_result=results.append, keep_running=True)
        qtbot.wait(5)  # the pace of the request stream (a pen), not a wait for a result
        i += 1
    during = len(results)
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=30000)
    assert during >= 3, f"{during} results during a stream of {i} requests"
    assert results == sorted(results) and results[-1] == i - 1
    runner.shutdown()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
@pytest.mark.parametrize("niceness", [QUIET_NICENESS, 0])
def test_each_job_runs_at_the_nice_value_of_its_start(qtbot, monkeypatch, niceness):
    """A job's thread takes the nice value ``worker_niceness`` gives at its start (the GUI thread keeps its own)."""
    monkeypatch.setattr(workers, "worker_niceness", lambda: niceness)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    runner = TaskRunner()
    seen: list[int] = []
    for i in range(3):  # one after another: a new job never inherits an earlier job's value
        runner.submit(f"nice{i}", lambda: os.getpriority(os.PRIO_PROCESS, 0), on_result=seen.append)
        qtbot.waitUntil(lambda i=i: len(seen) > i, timeout=30000)
    assert seen == [max(before, niceness)] * 3
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # only the worker thread was changed
    runner.shutdown()


class FakeCpu:
    """A machine whose busy time and own CPU time advance as the test says."""

    def __init__(self):
        self.t, self.busy, self.own = 0.0, 0.0, 0.0

    def read(self):
        return self.busy, self.own

    def run(self, seconds: float, others: float, own: float) -> None:
        self.t += seconds
        self.busy += seconds * (others + own)
        self.own += seconds * own


def test_workers_yield_to_the_gui_only_while_other_processes_leave_the_cpu_idle():
    cpu = FakeCpu()
    meter = LoadMeter(read=cpu.read, clock=lambda: cpu.t)
    assert worker_niceness(meter) == QUIET_NICENESS  # no window yet: assume a quiet machine
    cpu.run(1.0, others=0.1, own=1.5)  # the app's own work is not "load"
    assert meter.others_busy_cores() == pytest.approx(0.1)
    assert worker_niceness(meter) == QUIET_NICENESS
    cpu.run(1.0, others=2.0, own=0.6)  # two busy processes beside it
    assert meter.others_busy_cores() == pytest.approx(2.0)
    assert worker_niceness(meter) == 0
    cpu.run(0.1, others=0.0, own=0.0)  # a window shorter than WINDOW_S: the load measured last stands
    assert worker_niceness(meter) == 0
    for _ in range(3):
        cpu.run(0.5, others=0.0, own=1.0)
        meter.sample()
    assert worker_niceness(meter) == QUIET_NICENESS  # the newest window only: the load went away
    assert LoadMeter(read=lambda: None).others_busy_cores() is None  # no /proc: nothing measured


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measured from /proc/stat")
def test_a_busy_process_beside_the_app_is_measured(qtbot):
    from lvm.bench import busy_loops

    meter = LoadMeter()
    with busy_loops(2):  # (two: even a one-core machine gives them half a core between them)
        qtbot.waitUntil(lambda: (meter.others_busy_cores() or 0.0) >= BUSY_CORES, timeout=20000)


def test_keep_running_starts_the_waiting_request_before_the_result_is_drawn(qtbot):
    """While ``on_result`` of the finished job runs (the GUI thread drawing it), the newest waiting request is
    already running in the worker: drawing and computing overlap."""
    runner = TaskRunner()
    gate, started = threading.Event(), threading.Event()
    seen: list[tuple[int, bool]] = []

    def make(i):
        def fn():
            if i == 0:
                gate.wait(30)
            else:
                started.set()
            return i

        return fn

    def on_result(i):
        seen.append((i, started.wait(30) if i == 0 else True))

    for i in range(3):
        runner.submit("pen", make(i), on_result=on_result, keep_running=True)
    gate.set()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=30000)
    assert seen == [(0, True), (2, True)]
    runner.shutdown()


def test_a_closed_runner_starts_nothing_and_delivers_nothing(qtbot):
    """After the window's close: work asked for by a workspace that outlives the window never runs (its results would
    reach deleted widgets)."""
    runner = TaskRunner()
    assert runner.close(5000)
    ran, done, results = [], [], []
    job = runner.submit(
        "lab/late", lambda: ran.append(1) or 42, on_result=results.append, on_done=lambda: done.append(1)
    )
    assert job.cancelled and done == [1] and not runner.is_busy()
    qtbot.wait(50)  # (nothing may happen: a fixed wait checks that nothing arrives; it cannot fail because of load)
    assert ran == [] and results == []


def test_torch_warm_up_runs_once_even_when_two_threads_ask_at_once(monkeypatch):
    """app.core.warmup: the first optimiser's imports happen once, never in two threads at the same time (a job that
    trains, fits or optimises calls it first; so does the start-up's background warm-up)."""
    import threading
    import time

    import torch

    from app.core import warmup

    monkeypatch.setattr(warmup, "_warm", False)
    built, inside, overlap = [], [0], []
    real_adam = torch.optim.Adam

    def slow_adam(*args, **kwargs):
        inside[0] += 1
        overlap.append(inside[0])
        time.sleep(0.05)
        built.append(1)
        inside[0] -= 1
        return real_adam(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", slow_adam)
    threads = [threading.Thread(target=warmup.warm_up_torch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert built == [1] and max(overlap) == 1 and warmup._warm


def test_torch_warm_up_waits_for_running_jobs_and_jobs_wait_for_it(monkeypatch):
    """app.core.warmup's gate: torch's lazy imports are not safe beside other torch work, so the warm-up starts only
    when no job runs, and a job submitted meanwhile starts only when the warm-up is done."""
    import threading

    from app.core import warmup

    monkeypatch.setattr(warmup, "_warm", False)
    events: list[str] = []
    warming, release_warm_up = threading.Event(), threading.Event()

    def fake_imports():
        events.append("warm-up starts")
        warming.set()
        assert release_warm_up.wait(10)
        events.append("warm-up ends")

    monkeypatch.setattr(warmup, "_first_optimiser_step", fake_imports)
    job_running, release_job = threading.Event(), threading.Event()

    def first_job():
        with warmup.torch_job():
            events.append("job 1 runs")
            job_running.set()
            assert release_job.wait(10)
            events.append("job 1 ends")

    def second_job():
        with warmup.torch_job():
            events.append("job 2 runs")

    threads = [threading.Thread(target=first_job)]
    threads[0].start()
    assert job_running.wait(10)
    threads.append(threading.Thread(target=warmup.warm_up_torch))
    threads[1].start()
    threads[1].join(0.2)
    assert events == ["job 1 runs"]  # the warm-up waits for the running job
    release_job.set()
    assert warming.wait(10)
    threads.append(threading.Thread(target=second_job))
    threads[2].start()
    threads[2].join(0.2)
    assert events[-1] == "warm-up starts"  # the new job waits for the warm-up
    release_warm_up.set()
    for t in threads:
        t.join(10)
    assert events == ["job 1 runs", "job 1 ends", "warm-up starts", "warm-up ends", "job 2 runs"] and warmup._warm


def test_while_torch_warms_up_other_threads_import_nothing_new(monkeypatch, tmp_path):
    """Another thread's import of a module not loaded yet (the GUI thread opening a lab) waits for the warm-up's
    imports to end (torch's cyclic import graph is not safe beside them); modules already loaded import at once."""
    import sys
    import threading

    from app.core import warmup

    monkeypatch.setattr(warmup, "_warm", False)
    (tmp_path / "lvm_fresh_module_for_the_test.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    warming, release = threading.Event(), threading.Event()
    events: list[str] = []

    def fake_imports():
        warming.set()
        assert release.wait(10)
        events.append("warm-up ends")

    monkeypatch.setattr(warmup, "_first_optimiser_step", fake_imports)
    warm = threading.Thread(target=warmup.warm_up_torch)
    warm.start()
    assert warming.wait(10)

    def import_fresh():
        import lvm_fresh_module_for_the_test  # noqa: F401

        events.append("imported")

    def import_loaded():
        import json  # noqa: F401

        events.append("json")

    loaded = threading.Thread(target=import_loaded)
    loaded.start()
    loaded.join(5)
    fresh = threading.Thread(target=import_fresh)
    fresh.start()
    fresh.join(0.3)
    assert events == ["json"]  # a loaded module at once; the new one waits
    release.set()
    for t in (warm, fresh):
        t.join(10)
    assert events == ["json", "warm-up ends", "imported"]
    assert "lvm_fresh_module_for_the_test" in sys.modules
    sys.modules.pop("lvm_fresh_module_for_the_test")


def test_the_warm_up_never_runs_beside_a_job_still_importing(monkeypatch, tmp_path):
    """The deadlock it had: a job building its own first optimiser was importing torch._dynamo (holding its import
    locks) when the warm-up started after its one-second wait; the warm-up's import of the same module waited for
    those locks while the job's next import waited for the warm-up. Now the warm-up is put off instead."""
    import sys
    import threading

    from app.core import warmup

    (tmp_path / "slow_lazy_module.py").write_text(
        "import threading\nimport builtins\n"
        "builtins._lvm_test_importing.set()\n"
        "assert builtins._lvm_test_release.wait(10)\n"
        "import fresh_module_after_release  # a new import: the gate would hold it while the warm-up ran\n"
    )
    (tmp_path / "fresh_module_after_release.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    importing, release = threading.Event(), threading.Event()
    monkeypatch.setattr(builtins, "_lvm_test_importing", importing, raising=False)
    monkeypatch.setattr(builtins, "_lvm_test_release", release, raising=False)
    monkeypatch.setattr(warmup, "_warm", False)
    monkeypatch.setattr(warmup, "RUNNING_JOBS_WAIT_S", 0.2)

    def warm_up_imports():
        import slow_lazy_module  # noqa: F401 - the same lazy module the job is importing

    monkeypatch.setattr(warmup, "_first_optimiser_step", warm_up_imports)

    def job():
        with warmup.torch_job():
            import slow_lazy_module  # noqa: F401

    worker = threading.Thread(target=job, daemon=True)
    worker.start()
    assert importing.wait(10)
    assert warmup.warm_up_torch() is False  # a job still runs after the wait: put off, nothing imported beside it
    assert warmup._warming_thread is None and not warmup._warm_up_waiting

    def quick_job():
        with warmup.torch_job():
            pass

    other = threading.Thread(target=quick_job, daemon=True)
    other.start()
    other.join(2)
    assert not other.is_alive()  # new jobs were not held back by the put-off warm-up
    release.set()
    worker.join(10)
    assert not worker.is_alive()  # the job finished its imports: no deadlock
    assert warmup.warm_up_torch_when_idle(patience_s=5) is True and warmup._warm
    for name in ("slow_lazy_module", "fresh_module_after_release"):
        sys.modules.pop(name, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's schedstat")
def test_this_threads_schedule_counts_its_run_time_and_its_wait_for_a_core():
    """Spinning 0.3 s of wall time adds about that much run time; pinned to one core beside a busy process pinned
    there too, the thread also waits for the core (the GUI bench's measure of CPU contention)."""
    from app.core.cpu_share import this_threads_schedule
    from lvm.bench import BUSY_LOOP

    before = this_threads_schedule()
    if before is None:
        pytest.skip("no /proc/thread-self/schedstat here")

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    spin(0.3)
    after = this_threads_schedule()
    assert after is not None and after[0] - before[0] > 0.05 and after[0] >= before[0] and after[1] >= before[1]
    core = min(os.sched_getaffinity(0))
    mask = os.sched_getaffinity(0)
    pinned = f"import os\nos.sched_setaffinity(0, {{{core}}})\n" + BUSY_LOOP
    busy = subprocess.Popen([sys.executable, "-c", pinned, str(os.getpid())])
    try:
        os.sched_setaffinity(threading.get_native_id(), {core})
        waited0 = this_threads_schedule()[1]
        deadline = time.perf_counter() + 20
        while this_threads_schedule()[1] - waited0 < 0.05 and time.perf_counter() < deadline:
            spin(0.05)
        assert this_threads_schedule()[1] - waited0 >= 0.05
    finally:
        os.sched_setaffinity(threading.get_native_id(), mask)
        busy.kill()
        busy.wait()
