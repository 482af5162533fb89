"""Shared fixtures. GUI tests run offscreen; settings go to a temporary file; ../shared data is optional.

The suite never touches the user's own settings: ``LVM_EXPLORER_SETTINGS`` and ``XDG_CONFIG_HOME`` point into a fresh
temporary folder of this run (always, even when the caller's environment sets them), and subprocesses inherit both.

``LVM_TEST_LOAD=N python -m pytest`` runs the suite with N busy-loop processes beside it (a loaded machine).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app and the CLI run (lvm.prefer_passive_openmp)
TEST_CONFIG_DIR = Path(tempfile.mkdtemp(prefix="lvm-test-config-"))
os.environ["XDG_CONFIG_HOME"] = str(TEST_CONFIG_DIR)
os.environ["LVM_EXPLORER_SETTINGS"] = str(TEST_CONFIG_DIR / "lvm-explorer-test-settings.ini")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI replays the same examples on every run (a red CI is then reproducible); locally hypothesis explores afresh.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LVM_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(min(2, torch.get_num_threads()))
# torch's first optimiser imports torch._dynamo (~1,900 modules): done once here, as the app does while it loads
# (app.core.warmup), so no test has a worker importing it while the GUI thread imports matplotlib for a help panel
from app.core.warmup import warm_up_torch  # noqa: E402
from lvm.bench import BUSY_LOOP  # noqa: E402  (the same loop as `lvm bench --load`; it ends if this run is killed)

warm_up_torch()

# A test's window builds a lab when it is shown, as each test expects: the app's building of labs ahead while the user
# is idle has its own tests (tests/app/test_labs_ahead.py), which turn it on.
from app.main_window import MainWindow  # noqa: E402

MainWindow.build_labs_ahead = False


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (MNIST IDX and binarized MNIST); skips the test where it is absent."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pretrained_model_path() -> Path:
    path = REPO / "resources" / "models" / "vae2d.safetensors"
    if not path.exists():
        pytest.skip("pretrained model not bundled yet")
    return path


@pytest.fixture
def tiny_vae():
    """A small randomly initialised 2-D-latent Bernoulli VAE on 28x28 images (fast)."""
    from lvm.models.vae import VAE

    torch.manual_seed(0)
    return VAE(data_dim=784, latent_dim=2, hidden=(64,), decoder="bernoulli").eval()


@pytest.fixture
def open_lab(qtbot):
    """``open_lab(LabClass, model=None, dataset="digits", size=(1280, 760), workspace=None)``: a lab on its own
    TaskRunner and a Workspace (CPU; the bundled ``dataset``, ``model`` when given; or ``workspace`` as it is),
    shown; its runner is shut down after the test."""
    from app.core.workers import TaskRunner
    from app.core.workspace import Workspace

    runners = []

    def make(lab_class, model=None, dataset: str | None = "digits", size=(1280, 760), workspace=None):
        runner = TaskRunner()
        runners.append(runner)
        ws = workspace
        if ws is None:
            ws = Workspace(device="cpu")
            if dataset is not None:
                from lvm.data import load_dataset

                ws.set_dataset(load_dataset(dataset), dataset)
            if model is not None:
                ws.set_model(model)
        lab = lab_class(ws, runner)
        qtbot.addWidget(lab)
        lab.resize(*size)
        lab.show()
        qtbot.waitExposed(lab)
        return lab

    yield make
    for runner in runners:  # close: jobs a lab submits from here on (a resize while it is deleted) never run
        runner.close(20000)


@pytest.fixture
def shown_plot(qtbot):
    """A factory: ``shown_plot(width, height)`` is a ``pg.PlotWidget`` of that size, shown and exposed (closed with
    the test)."""

    def make(width: int = 420, height: int = 320):
        import pyqtgraph as pg

        w = pg.PlotWidget()
        qtbot.addWidget(w)
        w.resize(width, height)
        w.show()
        qtbot.waitExposed(w)
        return w

    return make


@pytest.fixture
def workspace_window(qtbot):
    """A MainWindow on the bundled digits (and the bundled model when present), loaded and shown."""
    from app.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.warmed_up, timeout=60000):  # (loaded, then the background warm-up: app.core.warmup)
        window.load_defaults()
    yield window
    presenter = getattr(window, "presenter", None)
    if (
        presenter is not None and presenter.active
    ):  # (a test failed in presenter mode: its look must not reach the next)
        presenter.leave()
    window.runner.shutdown(5000)


@pytest.fixture(autouse=True)
def _no_input_state_outlives_its_test():
    """Random input (a press without its release, a popup left open) must not reach the next test: Qt keeps the
    buttons held down application-wide (a left click on a slider is then ignored while it thinks the right button is
    down), and a popup grabs the mouse. After each test, release every held button and close every popup."""
    yield
    if "PySide6.QtWidgets" not in sys.modules:
        return
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QWidget

    for _ in range(20):
        popup = QApplication.activePopupWidget()
        if popup is None:
            break
        popup.close()
    held = QApplication.mouseButtons()
    if held != Qt.MouseButton.NoButton:
        target = QWidget()
        target.show()
        for button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton):
            if held & button:
                QTest.mouseRelease(target, button)
        target.close()
        target.deleteLater()


@pytest.fixture(autouse=True)
def _nothing_stays_frozen():
    """The app ``gc.freeze()``s what is alive after building a lab (``app.core.warmup``): in a session that is the
    app's own long-lived state, but in this process it would also be the windows of earlier tests, never collected
    again. Unfrozen after each test, they are collected as usual."""
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _no_unexpected_worker_errors():
    """Any unexpected exception in a worker thread fails the test that caused it."""
    if "app.core.workers" not in sys.modules:
        yield
        return
    from app.core import workers

    before = len(workers.unexpected_errors)
    yield
    new = workers.unexpected_errors[before:]
    del workers.unexpected_errors[before:]
    assert not new, "exception(s) in worker threads:\n" + "\n".join(new)


_load_processes: list[subprocess.Popen] = []


def pytest_sessionstart(session):
    """``LVM_TEST_LOAD=N``: start N busy-loop processes for the whole run (ended in ``pytest_sessionfinish``)."""
    try:
        n = int(os.environ.get("LVM_TEST_LOAD", "0"))
    except ValueError:
        raise pytest.UsageError(f"LVM_TEST_LOAD={os.environ['LVM_TEST_LOAD']!r} must be a whole number") from None
    for _ in range(max(0, n)):
        _load_processes.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())]))
    if n > 0:
        os.environ["LVM_TEST_LOAD_PIDS"] = " ".join(str(proc.pid) for proc in _load_processes)
        print(f"\nLVM_TEST_LOAD: {n} busy-loop processes run beside the suite", flush=True)


def pytest_sessionfinish(session, exitstatus):
    for proc in _load_processes:
        proc.kill()
        proc.wait()
    _load_processes.clear()


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")
    parser.addoption("--monkey-events", type=int, default=None, help="random GUI events per view in the monkey test")
    parser.addoption("--monkey-seed", type=int, default=None, help="seed of the monkey test")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
