"""Switching the device while work runs (issue 18): every job is cancelled or finishes cleanly, the model a worker
holds is never moved under it, and nothing computed for the old model is drawn for the new one.

The machines that run the suite have no GPU, so the switch is "auto" -> "cpu": the same device, but the workspace
treats it as a switch all the same (a copy of the model, a device event, then a model event).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


@pytest.fixture
def window(qtbot):
    from app.core.workspace import Workspace
    from app.main_window import MainWindow
    from lvm.models.vae import VAE

    win = MainWindow(Workspace(device="auto"))
    qtbot.addWidget(win)
    win.resize(1360, 860)
    win.show()
    with qtbot.waitSignal(win.loading_finished, timeout=60000):
        win.load_dataset("digits")
    torch.manual_seed(0)
    win.workspace.set_model(VAE(data_dim=784, latent_dim=2, hidden=(48,)).eval(), None, {})
    yield win
    win.runner.cancel()
    win.runner.shutdown(10000)


def _switch(window, qtbot, what: str) -> None:
    """Change what the running work depends on: the device, the model, or the dataset."""
    from lvm.models.vae import VAE

    if what == "device":
        window.set_device("cpu")
    elif what == "model":
        window.workspace.set_model(VAE(data_dim=784, latent_dim=2, hidden=(32,)).eval(), None, {})
    else:
        with qtbot.waitSignal(window.loading_finished, timeout=60000):
            window.load_dataset("digits")


SWITCHES = ["device", "model", "dataset"]


def _params(model) -> list[tuple[int, torch.device]]:
    return [(p.data_ptr(), p.device) for p in model.parameters()]


def test_the_model_a_worker_holds_is_never_moved_in_place(window):
    ws = window.workspace
    old = ws.model
    before = _params(old)
    events: list[str] = []
    ws.events.device.connect(lambda d: events.append("device"))
    ws.events.model.connect(lambda m: events.append("model"))
    window.set_device("cpu")
    assert ws.model is not old and _params(old) == before
    assert events == ["device", "model"]
    for a, b in zip(old.parameters(), ws.model.parameters(), strict=False):
        assert torch.equal(a, b.to(a.device))  # the same weights
    window.set_device("cpu")  # no switch: nothing happens
    assert events == ["device", "model"]


def test_em_keeps_running_through_a_device_switch(window, qtbot):
    window.set_view("mixture")
    lab = window.lab("mixture")
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    lab.reset_button.click()
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    lab.speed.setValue(20)
    QTest.mouseClick(lab.run_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(lab.history) >= 3, timeout=30000)
    n = len(lab.history)
    window.set_device("cpu")
    # EM on the points does not use the VAE: it goes on (or ends converged) and its log-likelihood never decreases
    qtbot.waitUntil(lambda: len(lab.history) > n or not lab.is_em_running(), timeout=30000)
    lab.pause()
    qtbot.waitUntil(lambda: not lab.is_em_running(), timeout=10000)
    lls = [s.log_likelihood for s in lab.history if s.half == "M" and np.isfinite(s.log_likelihood)]
    assert all(b >= a - 1e-4 * abs(a) for a, b in zip(lls, lls[1:], strict=False))


def test_training_goes_on_through_a_device_switch_and_its_model_lands_on_the_new_device(window, qtbot):
    window.set_view("latent")
    lab = window.lab("latent")
    panel = lab.train_panel
    panel.epochs.setValue(50)
    QTest.mouseClick(panel.train_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: lab.trained_model is not None, timeout=60000)
    window.set_device("cpu")
    assert lab.is_training()
    QTest.mouseClick(panel.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not lab.runner.is_busy(lab.channel("train")), timeout=30000)
    ws = window.workspace
    assert ws.model is lab.trained_model
    assert all(p.device == ws.device for p in ws.model.parameters())


@pytest.mark.parametrize("what", SWITCHES)
def test_optimising_q_is_cancelled_by_a_switch(window, qtbot, what):
    window.set_view("inference")
    lab = window.lab("inference")
    window.workspace.select(3)
    qtbot.waitUntil(lambda: lab.kl.mean is not None and not lab.is_busy(), timeout=60000)
    lab.kl.optimise(steps=100_000, lr=0.01)
    channel = lab.channel("optimise")
    qtbot.waitUntil(lambda: channel in lab.runner.running_channels(), timeout=10000)
    job = lab.runner._running[channel]
    _switch(window, qtbot, what)
    assert job.cancelled  # its snapshots (q for the old model) are never delivered: TaskRunner drops them
    qtbot.waitUntil(lambda: job.done.is_set(), timeout=30000)
    assert lab.kl.best_button.text().startswith("q = best Gaussian")


@pytest.mark.parametrize("what", SWITCHES)
def test_an_inpainting_job_in_flight_is_cancelled_by_a_switch(window, qtbot, what):
    window.set_view("inpainting")
    lab = window.lab("inpainting")
    qtbot.waitUntil(lambda: lab.grid is not None and lab.result is not None and not lab.is_busy(), timeout=60000)
    lab.optimise_steps = 100_000
    lab.optimise()
    channel = lab.channel("optimise")
    qtbot.waitUntil(lambda: channel in lab.runner.running_channels(), timeout=10000)
    job = lab.runner._running[channel]
    old_grid, old_result = lab.grid, lab.result
    _switch(window, qtbot, what)
    assert job.cancelled and lab.optimise_button.isEnabled()
    # the lab completes the digit again for what it now shows
    qtbot.waitUntil(
        lambda: lab.result is not None and lab.result is not old_result and not lab.is_busy(), timeout=60000
    )
    assert lab._grid_model is window.workspace.model
    if what != "dataset":
        assert lab.grid is not old_grid


def test_asking_for_cuda_without_a_gpu_says_so_in_window_words(workspace_window, qtbot):
    """The Device menu's cuda on a machine without a GPU: a message in the GUI's words (no command-line flags), the
    device unchanged."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    window = workspace_window
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Device")
    before = str(window.workspace.device)
    next(a for a in menu.actions() if a.text() == "cuda").trigger()
    assert window.last_error is not None
    assert "--device" not in window.last_error and "Device → auto" in window.last_error
    assert str(window.workspace.device) == before and window.device_combo.currentText() == window.workspace.device_spec
