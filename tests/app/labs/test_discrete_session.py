"""Sessions keep the Discrete latents lab's model: a model trained in the lab through its real widgets travels in the
saved session (base64 safetensors bytes in ``views.discrete.model``) and a FRESH PROCESS restores it, with the lab's
settings; what cannot be kept is said before saving.

Run as a script, this file is that fresh process: ``python tests/app/labs/test_discrete_session.py SESSION`` opens
SESSION, shows the lab, waits for the exact sum and prints ``probe(window)`` as JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def model_fingerprint(model) -> str | None:
    """SHA-256 over the architecture and every weight (float32 bytes, in name order): equal iff the same model."""
    if model is None:
        return None
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def probe(window) -> dict:
    """What the user made in the lab, read from its widgets and its model (not from ``view_state``)."""
    lab = window.lab("discrete")
    a = lab.state.analysis
    out = {
        "model": model_fingerprint(lab.state.model),
        "model_label": lab.model_label.text(),
        "panel": lab.tabs.tabText(lab.tabs.currentIndex()),
        "boxes": {key: box.value() for key, box in lab.setting_boxes.items()},
        "selected_index": window.workspace.selected_index,
        "log_px": None if a is None else round(a.log_px, 4),
    }
    return json.loads(json.dumps(out))


def restore_in_fresh_process(session: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, str(session)],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _lab(qtbot, window):
    window.set_view("discrete")
    lab = window.lab("discrete")
    qtbot.waitUntil(lambda: lab.state.analysis is not None and not lab.is_busy(), timeout=60000)
    return lab


def _type(qtbot, box, text: str) -> None:
    from PySide6.QtCore import Qt

    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)


def test_a_model_trained_in_the_lab_comes_back_in_a_fresh_process(qtbot, workspace_window, tmp_path):
    import torch
    from PySide6.QtCore import Qt
    from test_discrete_lab import click_tab

    window = workspace_window
    lab = _lab(qtbot, window)
    click_tab(qtbot, lab.tabs, lab.train.title)
    _type(qtbot, lab.train.k, "4")
    _type(qtbot, lab.train.epochs, "1")
    _type(qtbot, lab.train.seed, "5")
    torch.set_num_threads(1)
    qtbot.mouseClick(lab.train.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_training() and lab.state.trained_here, timeout=60000)
    qtbot.waitUntil(lambda: lab.state.analysis is not None and lab.state.analysis.latent_dim == 4, timeout=60000)
    _type(qtbot, lab.estimators.repeats, "7")
    window.workspace.select(3)
    qtbot.waitUntil(lambda: lab.state.analysis is not None and lab.state.analysis.index == 3, timeout=60000)
    before = probe(window)
    assert "K = 4" in before["model_label"] and "trained in this lab: 1 epoch on" in before["model_label"]
    assert before["boxes"]["train_seed"] == 5 and before["boxes"]["repeats"] == 7 and before["panel"] == "Train"

    path = tmp_path / "discrete.lvmsession"
    assert window.save_session(str(path)) is None, "nothing is lost: no question expected"
    saved = json.loads(path.read_text())["views"]["discrete"]
    data = base64.b64decode(saved["model"]["data"])
    assert data[8 : 8 + int.from_bytes(data[:8], "little")].find(b'"binary-latent"') > 0  # safetensors, its kind
    after = restore_in_fresh_process(path)
    assert after == before, {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}


def test_a_session_without_a_trained_model_brings_back_the_bundled_one(qtbot, workspace_window, tmp_path):
    from app.labs.discrete.state import fresh_model

    window = workspace_window
    lab = _lab(qtbot, window)
    bundled = model_fingerprint(lab.state.model)
    path = tmp_path / "bundled.lvmsession"
    assert window.save_session(str(path)) is None
    assert json.loads(path.read_text())["views"]["discrete"]["model"] is None
    lab.set_model(fresh_model(3), {}, "test", trained_here=True)
    window.open_session(str(path))
    qtbot.waitUntil(lambda: not window.is_loading() and lab.state.model is not None, timeout=60000)
    qtbot.waitUntil(lambda: model_fingerprint(lab.state.model) == bundled, timeout=60000)
    assert not lab.state.trained_here


def test_what_a_session_cannot_keep_is_said_before_saving(qtbot, workspace_window, tmp_path):
    import torch
    from PySide6.QtCore import Qt

    from app.labs.discrete.state import fresh_model

    window = workspace_window
    lab = _lab(qtbot, window)
    # training is running: the session would keep the model from before the run
    lab.train.k.setValue(16)
    lab.train.epochs.setValue(200)
    qtbot.mouseClick(lab.train.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lab.is_training, timeout=10000)
    path = tmp_path / "losses.lvmsession"
    box = window.save_session(str(path))
    assert box is not None and "training is running in the Discrete latents lab" in box.text()
    assert not path.exists()
    box.reject()
    qtbot.mouseClick(lab.train.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=30000)
    # a trained model with NaN weights cannot be saved: said, and the user may save without it
    window.set_view("mixture")  # (the lab, hidden, analyses nothing with it)
    model = fresh_model(3)
    with torch.no_grad():
        model.decoder[0].weight.fill_(float("nan"))
    lab.set_model(model, {}, "diverged", trained_here=True)
    box = window.save_session(str(path))
    assert box is not None and "Discrete latents lab cannot be saved" in box.text() and "NaN" in box.text()
    assert not path.exists()
    save = next(b for b in box.buttons() if b.text() == "Save without them")
    qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
    assert path.exists() and json.loads(path.read_text())["views"]["discrete"]["model"] is None


def test_a_damaged_embedded_model_is_refused_and_said(qtbot, workspace_window):
    window = workspace_window
    lab = _lab(qtbot, window)
    before = lab.state.model
    messages = []
    window.workspace.events.message.connect(messages.append)
    pickle = base64.b64encode(b"\x80\x04 a pickle, never loaded").decode()
    for data, said in (("not base64!", "base64"), (pickle, "pickle"), (12, "base64")):
        lab.restore_view_state({**lab.view_state(), "model": {"data": data, "source": "x"}})
        assert lab.state.model is before
        assert (
            "Discrete latents lab" in messages[-1] and said in messages[-1] and "views.discrete.model" in messages[-1]
        )
    lab.restore_view_state({"model": 5})
    assert "views.discrete.model" in messages[-1] and lab.state.model is before


# -- the fresh process ---------------------------------------------------------------------------------------------
def _restore_and_print(session: str) -> int:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import torch
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    from app.main_window import MainWindow

    window = MainWindow()
    window.resize(1360, 860)
    window.show()

    def wait(cond, timeout=120.0):
        """Run the event loop until ``cond()`` (polled every 20 ms; not QTest.qWait, which starves the workers)."""
        deadline = time.monotonic() + timeout
        loop, timer = QEventLoop(), QTimer()
        timer.timeout.connect(lambda: loop.quit() if cond() or time.monotonic() > deadline else None)
        timer.start(20)
        if not cond():
            loop.exec()
        timer.stop()
        if not cond():
            raise SystemExit(f"timed out waiting; errors: {window.errors}")

    window.open_session(session)
    wait(lambda: window.workspace.dataset is not None and not window.is_loading())
    window.set_view("discrete")
    lab = window.lab("discrete")
    wait(lambda: lab.state.analysis is not None and not lab.is_busy())
    if window.errors:
        print("\n".join(window.errors), file=sys.stderr)
        return 1
    print(json.dumps(probe(window)))
    window.runner.shutdown(5000)
    del app
    return 0


if __name__ == "__main__":
    code = _restore_and_print(sys.argv[1])
    sys.stdout.flush()
    os._exit(code)
