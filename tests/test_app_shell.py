"""The application shell: start-up, loading, errors, workers, sessions, export."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from app.state import GaussianQ, Workspace, read_session
from app.workers import TaskRunner
from lvm.errors import SessionError

REPO = Path(__file__).resolve().parents[1]


def _run_app(*args, timeout=180):
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
           "LVM_EXPLORER_SETTINGS": "/tmp/lvm-subprocess-settings.ini"}
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)


def test_smoke_in_subprocess():
    out = _run_app("--smoke")
    assert out.returncode == 0, out.stderr
    assert "smoke ok" in out.stdout and "dataset digits" in out.stdout


def test_list_views():
    out = _run_app("--list-views")
    assert out.stdout.split() == ["mixture", "latent", "inference", "inpainting", "infinite"]


def test_screenshot_is_not_blank(tmp_path):
    path = tmp_path / "shot.png"
    out = _run_app("--view", "mixture", "--screenshot", str(path))
    assert out.returncode == 0, out.stderr
    img = QImage(str(path))
    assert img.width() > 600 and img.height() > 400
    ptr = img.convertToFormat(QImage.Format_Grayscale8)
    arr = np.frombuffer(ptr.constBits(), np.uint8, ptr.sizeInBytes())
    assert arr.std() > 5  # not a blank image


def test_bad_cli_arguments_exit_2():
    out = _run_app("--data", "digits", "--size", "big", "--smoke")
    assert out.returncode == 2 and "--size" in out.stderr


def test_bad_dataset_shows_error_and_keeps_workspace(qtbot, workspace_window, tmp_path):
    window = workspace_window
    before = window.workspace.dataset
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"this is not a zip file")
    with qtbot.waitSignal(window.loading_finished, timeout=20000):
        window.load_dataset(str(bad))
    assert window.workspace.dataset is before
    assert "broken.npz" in window.last_error
    assert "broken.npz" in window.statusBar().currentMessage()


def test_cancelled_long_job_stops_within_a_second(qtbot):
    runner = TaskRunner()
    started = threading.Event()
    snapshots = []

    def long_job():
        started.set()
        for i in range(10**9):
            time.sleep(0.01)
            yield i

    job = runner.submit("lab/long", long_job, on_snapshot=snapshots.append)
    assert started.wait(5)
    qtbot.waitUntil(lambda: len(snapshots) > 0, timeout=5000)
    t0 = time.perf_counter()
    runner.cancel("lab/")
    assert job.done.wait(1.0)
    assert time.perf_counter() - t0 < 1.0
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=2000)
    assert runner.shutdown(2000)


def test_latest_wins_per_channel(qtbot):
    runner = TaskRunner()
    results = []
    gate = threading.Event()

    def make(i):
        def fn(token):
            if i == 0:
                gate.wait(5)
            return i
        return fn

    for i in range(20):
        runner.submit("hover", make(i), on_result=results.append)
    gate.set()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert results == [19]  # the running first request was cancelled, the queued ones replaced by the newest
    runner.shutdown()


def test_worker_errors_reach_the_user(qtbot, workspace_window):
    from lvm.errors import LVMError

    def fails():
        raise LVMError("a clear message")

    with qtbot.waitSignal(workspace_window.runner.job_error, timeout=5000):
        workspace_window.runner.submit("test/x", fails)
    assert workspace_window.last_error == "a clear message"


def test_session_round_trip(qtbot, workspace_window, tmp_path):
    window = workspace_window
    ws = window.workspace
    ws.select(42)
    ws.set_q(GaussianQ.from_arrays([0.5, -1.0], [[0.3, 0.0], [0.1, 0.2]]))
    ws.set_seed("global", 7)
    path = tmp_path / "lesson.lvmsession"
    window.save_session(str(path))
    data = json.loads(path.read_text())
    assert data["selected_index"] == 42 and data["dataset"] == "digits" and data["seeds"]["global"] == 7

    other = Workspace()
    from app.main_window import MainWindow

    second = MainWindow(other)
    qtbot.addWidget(second)
    with qtbot.waitSignal(second.loading_finished, timeout=60000):
        second.open_session(str(path))
    qtbot.waitUntil(lambda: other.selected_index == 42, timeout=20000)
    assert other.q == ws.q and other.seeds["global"] == 7 and other.dataset_spec == "digits"
    second.runner.shutdown()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("format"), "not an LVM Explorer session"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.update(selected_index="x"), "selected_index"),
    (lambda d: d.update(seeds={"a": "b"}), "seeds"),
    (lambda d: d.update(q={"mean": [0, 0], "scale_tril": [[-1, 0], [0, 1]]}), "'q'"),
    (lambda d: d.update(dataset=None), "dataset"),
    (lambda d: d.update(views=[1]), "views"),
])
def test_bad_session_files(tmp_path, mutate, message):
    d = Workspace().session_dict()
    d["dataset"] = "digits"
    mutate(d)
    path = tmp_path / "s.lvmsession"
    path.write_text(json.dumps(d))
    with pytest.raises(SessionError, match=message):
        read_session(path)


def test_bad_session_keeps_workspace(qtbot, workspace_window, tmp_path):
    path = tmp_path / "s.lvmsession"
    path.write_text("{not json")
    before = (workspace_window.workspace.dataset, workspace_window.workspace.selected_index)
    workspace_window.open_session(str(path))
    assert "not a session file" in workspace_window.last_error
    assert (workspace_window.workspace.dataset, workspace_window.workspace.selected_index) == before


def test_export_png_and_svg(qtbot, workspace_window, tmp_path):
    workspace_window.export_view(str(tmp_path / "v.png"))
    workspace_window.export_view(str(tmp_path / "v.svg"))
    assert QImage(str(tmp_path / "v.png")).width() > 100
    assert "<svg" in (tmp_path / "v.svg").read_text()


def test_window_closes_without_leaks(qtbot):
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    before = threading.active_count()
    window = MainWindow()
    window.show()
    with qtbot.waitSignal(window.loading_finished, timeout=60000):
        window.load_defaults()
    for name in ("mixture", "latent", "inference", "inpainting", "infinite"):
        window.set_view(name)
        qtbot.wait(50)
    window.close()
    assert window.runner.pool.activeThreadCount() == 0
    window.deleteLater()
    qtbot.wait(100)
    visible = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not visible, visible
    assert threading.active_count() <= before + 1


def test_void_calls_keep_none_refcount():
    """PySide6 6.12.0 on CPython 3.11 dropped None's refcount on every void call (issue 10): guard against it."""
    from PySide6.QtWidgets import QGraphicsRectItem, QWidget

    item, widget = QGraphicsRectItem(0, 0, 1, 1), QWidget()
    before = sys.getrefcount(None)
    for _ in range(2000):
        item.show()
        item.hide()
        item.setVisible(True)
        widget.setVisible(False)
    assert abs(sys.getrefcount(None) - before) < 50
