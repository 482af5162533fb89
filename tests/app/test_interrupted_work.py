"""Interrupted work loses nothing (issue 18): a training run killed mid-epoch, a session save that fails."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_training_killed_mid_epoch_leaves_the_last_saved_checkpoint_loadable(tmp_path):
    from lvm.checkpoint import load_model

    out = tmp_path / "vae.safetensors"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lvm",
            "train-vae",
            "--data",
            "digits",
            "--epochs",
            "500",
            "--hidden",
            "32",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--json",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # (polling a file another process writes: no event to wait for)
        assert out.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint"
        first = out.stat().st_mtime_ns
        while out.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.05)  # a second epoch saved: the kill below lands in the middle of training
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    model, info = load_model(out)
    assert info["epochs_completed"] >= 2 and model.config.hidden == (32,)


ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
STEPS = {  # each step of lvm.io's atomic write, failing as on a full disk
    "create": ("lvm.io.tempfile.mkstemp", None),
    "write": ("pathlib.Path.write_bytes", None),
    "fsync": ("lvm.io.os.fsync", None),
    "rename": ("lvm.io.os.replace", None),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_session_save_that_fails_says_why_and_keeps_the_previous_file(workspace_window, tmp_path, monkeypatch, step):
    window = workspace_window
    path = tmp_path / "class.lvmsession"
    window.save_session(str(path))
    before = path.read_bytes()
    assert json.loads(before)["dataset"] == "digits"
    window.workspace.select(7)  # something new to save

    def full_disk(*args, **kwargs):
        raise ENOSPC

    monkeypatch.setattr(STEPS[step][0], full_disk)
    window.save_session(str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["class.lvmsession"]  # no temporary file left behind
    assert str(path) in window.last_error and "No space left on device" in window.last_error


def test_a_session_save_where_its_folder_cannot_be_says_why(workspace_window, tmp_path):
    blocker = tmp_path / "file"  # a file where the folder should be (fails for root too, unlike a permission)
    blocker.write_text("x")
    workspace_window.save_session(str(blocker / "class.lvmsession"))
    assert "is a file, not a folder" in workspace_window.last_error
    assert blocker.read_text() == "x"


@pytest.fixture
def training_window(qtbot):
    import torch

    from app.core.recovery import recovery_file
    from app.main_window import MainWindow
    from lvm.models.vae import VAE

    recovery_file().unlink(missing_ok=True)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.loading_finished, timeout=60000):
        window.load_dataset("digits")
    torch.manual_seed(0)
    window.workspace.set_model(VAE(data_dim=784, latent_dim=2, hidden=(32,)).eval(), None, {})
    window.set_view("latent")
    yield window
    window.runner.shutdown(10000)
    recovery_file().unlink(missing_ok=True)


def _train_a_little(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    lab = window.lab("latent")
    lab.train_panel.epochs.setValue(100)
    QTest.mouseClick(lab.train_panel.train_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: lab.trained_model is not None, timeout=60000)
    return lab


def test_closing_while_training_keeps_the_model_and_the_next_start_offers_it(training_window, qtbot):
    import torch
    from PySide6.QtWidgets import QMessageBox

    from app.core.recovery import recovery_file
    from app.main_window import MainWindow

    lab = _train_a_little(training_window, qtbot)
    training_window.close()
    assert not lab.is_training()
    trained = training_window.workspace.model
    assert trained is lab.trained_model and recovery_file().exists()

    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    box = second.offer_recovered_model()
    assert box is not None and box.isVisible() and "not saved" in box.text()
    open_button = next(b for b in box.buttons() if b.text() == "Open")
    with qtbot.waitSignal(second.loading_finished, timeout=30000):
        open_button.click()
    ws = second.workspace
    assert ws.model_path is None and ws.model_info.get("trained_in")
    for a, b in zip(trained.parameters(), ws.model.parameters(), strict=False):
        assert torch.equal(a.detach().cpu(), b.detach().cpu())
    assert not recovery_file().exists()  # opened: it is the (still unsaved) model of this window now
    assert isinstance(box, QMessageBox)
    second.runner.shutdown(5000)


def test_discarding_the_kept_model_removes_it(training_window, qtbot):
    from app.core.recovery import recovery_file
    from app.main_window import MainWindow

    _train_a_little(training_window, qtbot)
    assert training_window.keep_unsaved_model() == recovery_file()
    second = MainWindow()
    qtbot.addWidget(second)
    box = second.offer_recovered_model()
    next(b for b in box.buttons() if b.text() == "Discard").click()
    assert not recovery_file().exists() and second.workspace.model is None


def test_a_saved_or_loaded_model_is_not_kept_on_close(training_window, qtbot, tmp_path):
    from app.core.recovery import recovery_file

    _train_a_little(training_window, qtbot)
    training_window.lab("latent").cancel_training()
    training_window.save_model(str(tmp_path / "mine.safetensors"))
    training_window.close()
    assert not recovery_file().exists()
