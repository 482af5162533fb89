"""The application shell: start-up, loading, errors, workers, sessions, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from app.core.workers import TaskRunner
from app.core.workspace import GaussianQ, Workspace, read_session
from lvm.errors import SessionError

REPO = Path(__file__).resolve().parents[2]


def _run_app(*args, timeout=180):
    env = {
        "QT_QPA_PLATFORM": "offscreen",
        "PATH": "/usr/bin:/bin",
        "HOME": str(Path.home()),
        "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"],  # the run's own folders (tests/conftest.py)
        "LVM_EXPLORER_SETTINGS": os.environ["LVM_EXPLORER_SETTINGS"] + ".subprocess.ini",
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def test_smoke_in_subprocess():
    out = _run_app("--smoke")
    assert out.returncode == 0, out.stderr
    assert "smoke ok" in out.stdout and "dataset digits" in out.stdout


def test_list_views():
    out = _run_app("--list-views")
    assert out.stdout.split() == ["mixture", "latent", "inference", "inpainting", "infinite", "discrete"]


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


def test_cancelled_long_job_stops_at_its_next_yield(qtbot):
    """A cancelled generator job stops between two yields: at most one more step runs after the cancel (counted in
    steps, not seconds, so a loaded machine passes; without cancelling, the job would run for 10^9 steps)."""
    runner = TaskRunner()
    started = threading.Event()
    snapshots = []
    steps = []

    def long_job():
        started.set()
        for i in range(10**9):
            time.sleep(0.01)  # the job's own pace, not a wait of the test
            steps.append(i)
            yield i

    job = runner.submit("lab/long", long_job, on_snapshot=snapshots.append)
    assert started.wait(30)
    qtbot.waitUntil(lambda: len(snapshots) > 0, timeout=30000)
    runner.cancel("lab/")
    at_cancel = len(steps)
    assert job.done.wait(30)
    assert len(steps) <= at_cancel + 1, f"{len(steps) - at_cancel} steps ran after the cancel"
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=30000)
    assert runner.shutdown(30000)


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


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("format"), "not an LVM Explorer session"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.update(selected_index="x"), "selected_index"),
        (lambda d: d.update(seeds={"a": "b"}), "seeds"),
        (lambda d: d.update(q={"mean": [0, 0], "scale_tril": [[-1, 0], [0, 1]]}), "'q'"),
        (lambda d: d.update(dataset=None), "dataset"),
        (lambda d: d.update(views=[1]), "views"),
    ],
)
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
    import shiboken6
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    before = threading.active_count()
    window = MainWindow()
    window.show()
    with qtbot.waitSignal(window.loading_finished, timeout=60000):
        window.load_defaults()
    for name in ("mixture", "latent", "inference", "inpainting", "infinite"):
        window.set_view(name)
        qtbot.wait(50)  # a user's pace between tabs: the close below does not need any lab's work finished
    window.close()
    # the close cancels every job; a job stops at its next cancellation point, which a loaded machine reaches later
    qtbot.waitUntil(lambda: window.runner.pool.activeThreadCount() == 0, timeout=30000)
    window.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(window), timeout=10000)
    visible = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert not visible, visible
    assert threading.active_count() <= before + 1


def test_closing_the_window_closes_the_export_dialog_it_opened(qtbot, workspace_window):
    """A plot's context menu opens pyqtgraph's export dialog, a window of its own: it must not keep the app alive."""
    import pyqtgraph as pg

    lab = workspace_window.lab("mixture")
    workspace_window.set_view("mixture")
    view = lab.findChildren(pg.GraphicsView)[0]
    view.scene().contextMenuItem = view.centralWidget  # what a right click on the plot sets
    view.scene().showExportDialog()
    dialog = view.scene().exportDialog
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    workspace_window.close()
    assert not dialog.isVisible()


def test_void_calls_keep_none_refcount(qapp):
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


# -- start-up: remembered view and window geometry ----------------------------------------------------------------
def _run_main_in_process(qtbot, argv=()):
    """Run ``app.main.main(argv)`` here until its window has loaded; return (exit code, view name, window size)."""
    import shiboken6
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.main import main
    from app.main_window import MainWindow

    seen = {}

    def poll():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        # loaded: the window paints before its loads are submitted, so "not loading" alone is also true at first
        if not windows or windows[0].is_loading() or windows[0].workspace.dataset is None:
            QTimer.singleShot(50, poll)
            return
        window = windows[0]
        seen.update(view=window.current_view_name(), size=(window.width(), window.height()), window=window)
        window.close()
        window.deleteLater()
        QApplication.instance().quit()

    QTimer.singleShot(50, poll)  # polls until the window has loaded, however long that takes
    code = main(list(argv))
    # what main() left queued (its quit, the window's deleteLater) is delivered in an event loop of our own, which a
    # zero timer ends once the queue is drained; else the quit would end the next test's first event loop at once
    drain = QEventLoop()
    QTimer.singleShot(0, drain.quit)
    drain.exec()
    if "window" in seen:
        qtbot.waitUntil(lambda: not shiboken6.isValid(seen["window"]), timeout=10000)
    return code, seen.get("view"), seen.get("size")


@pytest.fixture
def settings():
    from app.core.settings import app_settings

    s = app_settings()
    yield s
    for key in ("last_view", "geometry"):
        s.remove(key)
    s.sync()


def test_stale_remembered_view_falls_back_to_the_default(qtbot, settings):
    settings.setValue("last_view", "no-such-lab")  # a settings file from another version
    settings.sync()
    code, view, _ = _run_main_in_process(qtbot)
    assert code == 0 and view == "mixture"
    assert settings.value("last_view") == "mixture"


def test_remembered_view_is_restored(qtbot, settings):
    settings.setValue("last_view", "infinite")
    code, view, _ = _run_main_in_process(qtbot)
    assert code == 0 and view == "infinite"


def test_unknown_view_on_the_command_line_exits_2():
    out = _run_app("--view", "no-such-lab", "--smoke", timeout=60)
    assert out.returncode == 2 and "--view" in out.stderr and "mixture" in out.stderr


def test_window_geometry_is_restored(qtbot, settings):
    from PySide6.QtWidgets import QMainWindow

    probe = QMainWindow()
    qtbot.addWidget(probe)
    probe.resize(700, 680)  # fits the offscreen screen (800x800); the width grows to the window's minimum width
    probe.move(30, 20)
    settings.setValue("geometry", probe.saveGeometry())
    code, _, size = _run_main_in_process(qtbot)
    assert code == 0 and size[1] == 680
    code, _, size = _run_main_in_process(qtbot, ["--size", "1400x700"])  # an explicit --size wins
    assert code == 0 and size[1] == 700


@pytest.mark.parametrize("saved", ["junk", b"\x01\xd9\xd0\xcb not a geometry", "tiny"])
def test_bad_remembered_geometry_is_ignored(qtbot, settings, saved):
    from PySide6.QtWidgets import QMainWindow

    if saved == "tiny":
        probe = QMainWindow()
        qtbot.addWidget(probe)
        probe.resize(60, 40)
        saved = probe.saveGeometry()
    settings.setValue("geometry", saved)
    code, _, size = _run_main_in_process(qtbot)
    assert code == 0 and size == (1360, 860)  # the default size


# -- sessions open all or nothing ----------------------------------------------------------------------------------
def _state(window):
    ws = window.workspace
    return (
        ws.dataset,
        ws.dataset_spec,
        ws.split,
        ws.model,
        ws.model_path,
        ws.selected_index,
        ws.q,
        dict(ws.seeds),
        ws.device_spec,
    )


@pytest.mark.parametrize("model", ["missing", "corrupt"])
def test_session_with_a_bad_model_leaves_the_workspace_untouched(qtbot, workspace_window, tmp_path, model):
    window = workspace_window
    window.workspace.select(5)
    window.workspace.set_q(GaussianQ.from_arrays([0.5, -1.0], [[0.3, 0.0], [0.1, 0.2]]))
    before = _state(window)
    model_path = tmp_path / "model.safetensors"
    if model == "corrupt":
        model_path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}...")
    d = window.workspace.session_dict()
    d.update(
        dataset="moons",
        split="train",
        model=str(model_path),
        selected_index=3,
        q=None,
        seeds={"global": 11},
        current_view="inference",
    )
    path = tmp_path / "lesson.lvmsession"
    path.write_text(json.dumps(d))
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        window.open_session(str(path))
    qtbot.waitUntil(lambda: "lesson.lvmsession" in window.last_error, timeout=30000)
    assert _state(window) == before
    assert window.current_view_name() != "inference"
    error = window.last_error
    assert "lesson.lvmsession" in error and "model.safetensors" in error and "unchanged" in error
    assert ("file not found" if model == "missing" else "model.safetensors:") in error


def test_session_with_a_bad_dataset_leaves_the_workspace_untouched(qtbot, workspace_window, tmp_path):
    window = workspace_window
    window.workspace.select(9)
    before = _state(window)
    d = window.workspace.session_dict()
    d.update(dataset=str(tmp_path / "gone.npz"), selected_index=1)
    path = tmp_path / "s.lvmsession"
    path.write_text(json.dumps(d))
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        window.open_session(str(path))
    assert _state(window) == before
    assert "s.lvmsession" in window.last_error and "gone.npz" in window.last_error


# -- exports are atomic ---------------------------------------------------------------------------------------------
EXPORTS = [
    ("png", lambda w, p: w.export_view(p)),
    ("svg", lambda w, p: w.export_view(p)),
    ("csv", lambda w, p: w.export_csv(p)),
]


@pytest.mark.parametrize("kind, export", EXPORTS, ids=[k for k, _ in EXPORTS])
def test_export_into_an_unwritable_folder_says_why_and_leaves_nothing(qtbot, workspace_window, tmp_path, kind, export):
    window = workspace_window
    window.set_view("mixture")
    blocker = tmp_path / "notafolder"
    blocker.write_text("a file where a folder is expected")
    window.last_error = None
    export(window, str(blocker / f"view.{kind}"))
    assert window.last_error is not None
    assert f"view.{kind}" in window.last_error and "is a file, not a folder" in window.last_error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notafolder"]


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root writes into read-only folders",
)
@pytest.mark.parametrize("kind, export", EXPORTS, ids=[k for k, _ in EXPORTS])
def test_export_into_a_read_only_folder_says_why(qtbot, workspace_window, tmp_path, kind, export):
    window = workspace_window
    window.set_view("mixture")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        window.last_error = None
        export(window, str(folder / f"view.{kind}"))
        assert window.last_error is not None and "permission" in window.last_error
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("kind, export", EXPORTS, ids=[k for k, _ in EXPORTS])
def test_export_over_an_existing_file_replaces_it_whole(qtbot, workspace_window, tmp_path, kind, export):
    window = workspace_window
    window.set_view("mixture")
    target = tmp_path / f"view.{kind}"
    junk = b"OLD-CONTENT " * 200_000  # longer than any export: a write in place would leave its tail
    target.write_bytes(junk)
    window.last_error = None
    export(window, str(target))
    assert window.last_error is None
    data = target.read_bytes()
    assert b"OLD-CONTENT" not in data
    if kind == "png":
        assert data.startswith(b"\x89PNG") and QImage(str(target)).width() > 100
    elif kind == "svg":
        assert b"<svg" in data and data.rstrip().endswith(b"</svg>")
    else:
        rows = data.decode().splitlines()
        assert rows[0].startswith("x1,x2") and len(rows) > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary file left


@pytest.mark.parametrize("kind, export", EXPORTS, ids=[k for k, _ in EXPORTS])
def test_export_failing_midway_keeps_the_previous_file(qtbot, workspace_window, tmp_path, monkeypatch, kind, export):
    import errno

    import lvm.io

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    window = workspace_window
    window.set_view("mixture")
    target = tmp_path / f"view.{kind}"
    target.write_bytes(b"the previous export")
    monkeypatch.setattr(lvm.io.os, "fsync", disk_full)  # the disk fills up before the data is safely down
    window.last_error = None
    export(window, str(target))
    assert f"view.{kind}" in window.last_error and "No space left" in window.last_error
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_svg_filter_appends_the_suffix(qtbot, workspace_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    import app.widgets.animation_export

    window = workspace_window
    monkeypatch.setattr(app.widgets.animation_export, "ask_figure_scale", lambda *a: 1.0)  # (PNG asks a size first)
    for kind in ("svg", "png"):
        monkeypatch.setattr(
            QFileDialog,
            "getSaveFileName",
            staticmethod(lambda *a, kind=kind, **k: (str(tmp_path / "drawing"), f"*.{kind}")),
        )
        window._ask_export(kind)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drawing.png", "drawing.svg"]
    assert b"<svg" in (tmp_path / "drawing.svg").read_bytes()
    assert (tmp_path / "drawing.png").read_bytes().startswith(b"\x89PNG")


def test_unknown_image_suffix_is_a_clear_error(qtbot, workspace_window, tmp_path):
    workspace_window.export_view(str(tmp_path / "view.xyz"))
    assert ".xyz" in workspace_window.last_error and ".png" in workspace_window.last_error
    assert list(tmp_path.iterdir()) == []


def test_screenshot_into_an_unwritable_folder_exits_2(tmp_path):
    blocker = tmp_path / "notafolder"
    blocker.write_text("x")
    out = _run_app("--data", "moons", "--view", "mixture", "--screenshot", str(blocker / "shot.png"))
    assert out.returncode == 2 and "shot.png" in out.stderr and "not a folder" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notafolder"]


def test_atomic_open_text_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from lvm.io import atomic_open_text

    target = tmp_path / "rows.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_open_text(target) as fh:
            fh.write("half a row")
            raise RuntimeError("the exporter broke midway")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]
    with atomic_open_text(target) as fh:
        fh.write("new,row\r\n")
    assert target.read_bytes() == b"new,row\r\n"  # newline="" by default, as csv wants


def test_every_write_in_the_code_is_atomic():
    """Files are written only through lvm.io (atomic_path and the helpers on it): no plain ``open(p, "w")``, no
    ``Path.write_text``/``write_bytes``, no Qt writer handed a file name (QImage.save(name), QSvgGenerator)."""
    import ast

    offenders = []
    for file in sorted([*(REPO / "app").rglob("*.py"), *(REPO / "lvm").rglob("*.py")]):
        if file == REPO / "lvm" / "io.py":
            continue
        tree = ast.parse(file.read_text(encoding="utf-8"))
        temps = {
            item.optional_vars.id
            for node in ast.walk(tree)
            if isinstance(node, (ast.With, ast.AsyncWith))
            for item in node.items
            if isinstance(item.context_expr, ast.Call)
            and getattr(item.context_expr.func, "id", getattr(item.context_expr.func, "attr", "")) == "atomic_path"
            and isinstance(item.optional_vars, ast.Name)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            where = f"{file.relative_to(REPO)}:{node.lineno}"
            if name == "open" and isinstance(node.func, ast.Name):
                mode = (
                    node.args[1]
                    if len(node.args) > 1
                    else next((k.value for k in node.keywords if k.arg == "mode"), None)
                )
                writes = isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
                first = node.args[0] if node.args else None
                if writes and not (isinstance(first, ast.Name) and first.id in temps):
                    offenders.append(f"{where}: open(..., {mode.value!r}) outside atomic_path")
            elif name in ("write_text", "write_bytes", "setFileName"):
                offenders.append(f"{where}: .{name}(...)")
    assert not offenders, "\n".join(offenders)


def test_an_exception_in_a_gui_slot_is_shown_to_the_user(qtbot, workspace_window, monkeypatch, capsys):
    """sys.excepthook (what PySide6 calls for an exception escaping a slot) prints it and shows it in the window."""
    import sys

    from app.main import install_excepthook
    from lvm.errors import DatasetError

    monkeypatch.setattr(sys, "excepthook", lambda *exc: None)
    install_excepthook(workspace_window)
    try:
        raise ValueError("boom")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    assert "internal error: ValueError: boom" in workspace_window.last_error
    sys.excepthook(DatasetError, DatasetError("a clear message"), None)
    assert workspace_window.last_error == "a clear message"


def test_loading_pays_torchs_lazy_imports_and_freezes_the_start_up_heap():
    """In a fresh process, once the defaults loaded and the background warm-up ran: torch._dynamo is imported (the
    first optimiser will not stall the GUI) and the start-up objects are frozen out of the garbage collector's full
    collections (app.core.warmup)."""
    import subprocess
    import sys

    code = (
        "import gc, sys; from PySide6.QtWidgets import QApplication; app = QApplication([]); "
        "from app.main_window import MainWindow; w = MainWindow(); w.warmed_up.connect(app.quit); "
        "w.load_defaults(); app.exec(); w.runner.shutdown(5000); "
        "print('dynamo' if 'torch._dynamo' in sys.modules else 'no-dynamo', gc.get_freeze_count() > 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["dynamo", "True"], out.stdout


def test_a_lab_built_on_first_use_is_frozen_out_of_later_collections(workspace_window, qtbot):
    """A lab's widgets and plot items (~10^5 objects) are long-lived: once it is built they are frozen, so that no
    later generation-1 or full collection walks them again (one such walk stalled a drag for 44 ms)."""
    import gc

    window = workspace_window
    name = next(n for n in ("infinite", "discrete", "inference", "latent") if n not in window.labs)
    gc.unfreeze()
    before = gc.get_freeze_count()
    window.set_view(name)
    qtbot.waitUntil(lambda: gc.get_freeze_count() > before + 10_000, timeout=10000)


def test_warm_up_runs_after_the_app_is_ready_and_formulas_after_it(qtbot):
    """Ready = the dataset and model loaded; torch's lazy imports (app.core.warmup) follow in the background, and the
    help panels' formulas are typeset only after them (matplotlib's import never beside torch._dynamo's)."""
    from app.main_window import MainWindow
    from app.widgets import formula_text

    window = MainWindow()
    qtbot.addWidget(window)
    order = []
    window.loading_finished.connect(lambda: order.append(("ready", window.is_warming_up())))
    window.warmed_up.connect(lambda: order.append(("warmed up", formula_text.typesetting_held())))
    window.show()
    with qtbot.waitSignal(window.warmed_up, timeout=120000):
        window.load_defaults()
    assert order == [("ready", False), ("warmed up", True)]
    qtbot.waitUntil(lambda: not formula_text.typesetting_held(), timeout=10000)
    window.runner.shutdown(5000)
