"""Sessions keep everything the user made: a scripted user makes state in a lab through real widgets (pytest-qt
clicks, strokes, keys), saves the session, a FRESH PROCESS opens it in a new main window, and every item of the
lab's state compares equal (``probe``: read from the widgets and the workspace, not from ``view_state``).

Run as a script, this file is that fresh process: ``python tests/app/test_session_roundtrip.py SESSION LAB`` opens
SESSION, shows LAB, waits for its computations and prints ``probe(window, LAB)`` as JSON.
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

REPO = Path(__file__).resolve().parents[2]


# -- what is compared --------------------------------------------------------------------------------------------------
def model_fingerprint(model) -> str | None:
    """SHA-256 over the architecture and every weight (float32 bytes, in name order): equal iff the same model."""
    if model is None:
        return None
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _range(vb) -> list[list[float]]:
    return [[round(float(v), 6) for v in r] for r in vb.viewRange()]


def probe(window, name: str) -> dict:
    """The state a user made in lab ``name`` (and the workspace's), as JSON-able values read from the widgets."""
    ws, lab = window.workspace, window.lab(name)
    out = {
        "dataset": ws.dataset_spec,
        "split": ws.split,
        "selected_index": ws.selected_index,
        "q": None if ws.q is None else [list(ws.q.mean), [list(r) for r in ws.q.scale_tril]],
        "model": model_fingerprint(ws.model),
        "model_saved_in": Path(ws.model_path).name if ws.model_path else None,
        "seed": ws.seed(name),
    }
    if name == "mixture":
        out.update(
            source=lab.source_combo.currentText(),
            points=lab.X.tolist(),
            k=lab.k_spin.value(),
            seed_spin=lab.seed_spin.value(),
            cov=lab.cov_combo.currentText(),
            selected=lab.selected_point,
            view_range=_range(lab.vb),
        )
    elif name == "inpainting":
        out.update(
            image=lab.canvas.image.reshape(-1).tolist(),
            mask=lab.canvas.mask.reshape(-1).astype(int).tolist(),
            phi=None if lab.state.phi is None else [float(v) for v in lab.state.phi],
            phi_name=lab.state.phi_name,
            index=lab.state.index,
            brush=lab.canvas.brush_radius,
            tool=lab.canvas.tool,
        )
    elif name == "latent":
        panel = lab.train_panel
        out.update(
            drawn=lab.pad.image.reshape(-1).tolist(),
            drawn_q=None if lab.drawn_q is None else [v.tolist() for v in lab.drawn_q],
            epochs_completed=ws.model_info.get("epochs_completed"),
            trained_in=ws.model_info.get("trained_in"),
            train=[
                panel.mode.currentText(),
                panel.hidden.text(),
                panel.decoder.currentText(),
                panel.epochs.value(),
                panel.lr.value(),
                panel.seed.value(),
            ],
            grid_n=lab.grid_n.value(),
        )
    elif name == "inference":
        from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox

        out.update(
            panel=lab.tabs.tabText(lab.tabs.currentIndex()),
            q_boxes={
                b.objectName(): round(b.value(), 6)
                for b in lab.findChildren(QDoubleSpinBox)
                if b.objectName().startswith("q-")
            },
            settings={b.objectName(): b.value() for b in lab.findChildren(QSpinBox) if b.objectName()},
        )
    elif name == "discrete":
        a = lab.state.analysis
        out.update(
            model=model_fingerprint(lab.state.model),  # the lab's own model (the workspace's is the VAE)
            model_label=lab.model_label.text(),
            panel=lab.tabs.tabText(lab.tabs.currentIndex()),
            boxes={key: box.value() for key, box in lab.setting_boxes.items()},
            log_px=None if a is None else round(a.log_px, 4),
        )
    elif name == "infinite":
        out.update(
            theta={k: v.tolist() for k, v in lab.model.theta().items()},
            latent_dim=lab.latent_dim,
            n_z=lab.n_z,
            ranges=lab.range_preset,
        )
    return json.loads(json.dumps(out))  # as the other process prints it


def restore_in_fresh_process(session: Path, name: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, str(session), name],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_same(before: dict, after: dict) -> None:
    differing = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not differing, {k: (str(before.get(k))[:120], str(after.get(k))[:120]) for k in differing}


def _save(window, qtbot, path: Path) -> dict:
    box = window.save_session(str(path))
    assert box is None, "nothing should be lost: no question expected"
    return json.loads(path.read_text())


def _idle(qtbot, window, lab) -> None:
    qtbot.waitUntil(lambda: not window.is_busy() and not lab.is_busy(), timeout=60000)


# -- the labs ----------------------------------------------------------------------------------------------------------
def test_mixture_points_clicked_in_come_back(qtbot, workspace_window, tmp_path):
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    window = workspace_window
    window.set_view("mixture")
    lab = window.lab("mixture")
    lab.speed.setValue(lab.speed.maximum())  # EM at full speed, not animated
    _idle(qtbot, window, lab)

    def click(x, y):
        pos = lab.scatter_widget.mapFromScene(lab.vb.mapViewToScene(QPointF(x, y)))
        QTest.mouseClick(lab.scatter_widget.viewport(), Qt.LeftButton, Qt.NoModifier, pos)

    lab.n_spin.setFocus()  # a small toy set: EM converges in a moment
    lab.n_spin.selectAll()
    qtbot.keyClicks(lab.n_spin, "60")
    qtbot.keyClick(lab.n_spin, Qt.Key_Return)
    assert len(lab.X) == 60
    _idle(qtbot, window, lab)
    qtbot.mouseClick(lab.mode_add, Qt.LeftButton)
    n0 = len(lab.X)
    for x, y in ((0.5, 0.25), (1.0, -0.5), (-0.75, 0.6)):
        click(x, y)
    assert len(lab.X) == n0 + 3 and lab.source_combo.currentText().startswith("your points")
    lab.seed_spin.setFocus()
    qtbot.keyClick(lab.seed_spin, Qt.Key_Up)
    lab.k_spin.setFocus()
    qtbot.keyClick(lab.k_spin, Qt.Key_Up)
    _idle(qtbot, window, lab)
    qtbot.mouseClick(lab.mode_select, Qt.LeftButton)
    click(*lab.X[n0 + 1])
    assert lab.selected_point == n0 + 1
    before = probe(window, "mixture")

    saved = _save(window, qtbot, tmp_path / "points.lvmsession")
    assert len(saved["views"]["mixture"]["points"]) == n0 + 3
    assert_same(before, restore_in_fresh_process(tmp_path / "points.lvmsession", "mixture"))


def test_inpainting_ink_mask_and_phi_come_back(qtbot, workspace_window, tmp_path):
    import torch
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from lvm.models.vae import VAE

    window = workspace_window
    window.set_view("inpainting")
    lab = window.lab("inpainting")
    lab.optimise_steps = 20
    torch.manual_seed(1)
    window.workspace.set_model(VAE(hidden=(64,)).eval(), None, {})  # no file: the session carries it
    qtbot.waitUntil(lambda: lab.grid is not None and lab.result is not None, timeout=60000)
    _idle(qtbot, window, lab)
    canvas = lab.canvas

    def pos(row, col):
        r = canvas._square()
        return QPoint(int(r.left() + col / 28 * r.width()), int(r.top() + row / 28 * r.height()))

    def stroke(points):
        QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, pos(*points[0]))
        for p in points[1:]:
            QTest.mouseMove(canvas, pos(*p))
        QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, pos(*points[-1]))

    stroke([(16, 6 + k) for k in range(12)])  # ink in the observed half
    hide = next(b for b in lab.tool_group.buttons() if b.property("tool") == "hide")
    qtbot.mouseClick(hide, Qt.LeftButton)
    stroke([(20 + k * 0.5, 20) for k in range(10)])  # a missing patch in the lower half
    assert lab.canvas.tool == "hide" and not lab.state.mask.reshape(28, 28)[22, 20]
    qtbot.mouseClick(lab.phi_buttons["half"], Qt.LeftButton)
    qtbot.mouseClick(lab.optimise_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: lab.state.phi_name == "optimised" and lab.optimise_button.isEnabled(), timeout=60000)
    _idle(qtbot, window, lab)
    before = probe(window, "inpainting")
    assert before["phi_name"] == "optimised"

    saved = _save(window, qtbot, tmp_path / "ink.lvmsession")
    assert saved["model"] is None and saved["model_data"]
    assert_same(before, restore_in_fresh_process(tmp_path / "ink.lvmsession", "inpainting"))


def test_latent_trained_model_and_drawing_come_back(qtbot, workspace_window, tmp_path):
    import torch
    from PySide6.QtCore import QPointF, Qt

    window = workspace_window
    window.set_view("latent")
    lab = window.lab("latent")
    _idle(qtbot, window, lab)
    panel = lab.train_panel
    panel.mode.setCurrentText("new model from scratch")
    panel.hidden.setText("16")
    panel.epochs.setValue(1)
    panel.seed.setFocus()
    qtbot.keyClicks(panel.seed, "7")
    torch.set_num_threads(1)
    qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_training() and window.workspace.model_path is None, timeout=120000)
    assert window.workspace.model_info.get("epochs_completed") == 1
    lab.pad.stroke(14, 20, start=QPointF(10, 8))  # a pen stroke (the pad's mouse handling: test_latent_lab)
    _idle(qtbot, window, lab)
    before = probe(window, "latent")
    assert before["drawn_q"] is not None and before["model_saved_in"] is None

    saved = _save(window, qtbot, tmp_path / "trained.lvmsession")
    assert saved["model"] is None and saved["model_data"]
    assert_same(before, restore_in_fresh_process(tmp_path / "trained.lvmsession", "latent"))


def test_infinite_mixture_sliders_come_back(qtbot, workspace_window, tmp_path):
    from PySide6.QtCore import Qt

    window = workspace_window
    window.set_view("infinite")
    lab = window.lab("infinite")
    lab.fits.cancel()  # (the exact fit it starts takes long; fits are not what this test is about)
    _idle(qtbot, window, lab)
    slider = lab.sliders[("A", 0, 0)].slider
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key_PageUp)
    qtbot.keyClick(lab.sliders[("c", 0)].slider, Qt.Key_Left)
    lab.nz_spin.setFocus()
    qtbot.keyClick(lab.nz_spin, Qt.Key_Up)
    _idle(qtbot, window, lab)
    before = probe(window, "infinite")
    _save(window, qtbot, tmp_path / "theta.lvmsession")
    assert_same(before, restore_in_fresh_process(tmp_path / "theta.lvmsession", "infinite"))


def test_inference_x_q_and_panel_settings_come_back(qtbot, workspace_window, tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox

    window = workspace_window
    window.set_view("inference")
    lab = window.lab("inference")
    _idle(qtbot, window, lab)
    window.workspace.select(17)
    _idle(qtbot, window, lab)
    mu1 = lab.findChild(QDoubleSpinBox, "q-mu1") or next(
        b for b in lab.findChildren(QDoubleSpinBox) if b.objectName().startswith("q-")
    )
    mu1.setFocus()
    for _ in range(3):
        qtbot.keyClick(mu1, Qt.Key.Key_Up)  # q moves: the user's q, not the encoder's
    mu1.editingFinished.emit()
    _idle(qtbot, window, lab)
    tabs = lab.tabs
    jensen_tab = next(i for i in range(tabs.count()) if "Jensen" in tabs.tabText(i))
    qtbot.mouseClick(tabs.tabBar(), Qt.MouseButton.LeftButton, pos=tabs.tabBar().tabRect(jensen_tab).center())
    k_box = lab.findChild(QSpinBox, "jensen-k")
    k_box.setFocus()
    qtbot.keyClick(k_box, Qt.Key.Key_Up)
    k_box.editingFinished.emit()
    _idle(qtbot, window, lab)
    before = probe(window, "inference")
    assert before["selected_index"] == 17 and before["panel"] == tabs.tabText(jensen_tab)
    assert before["settings"]["jensen-k"] == 6
    _save(window, qtbot, tmp_path / "inference.lvmsession")
    assert_same(before, restore_in_fresh_process(tmp_path / "inference.lvmsession", "inference"))


# -- the Discrete latents lab: its own model travels in the session (views.discrete.model) -----------------------------
def restore_in_fresh_process_discrete(session: Path) -> dict:
    return restore_in_fresh_process(session, "discrete")


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

    window = workspace_window
    lab = _lab(qtbot, window)
    bar = lab.tabs.tabBar()
    index = next(i for i in range(lab.tabs.count()) if lab.tabs.tabText(i) == lab.train.title)
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
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
    before = probe(window, "discrete")
    assert "K = 4" in before["model_label"] and "trained in this lab: 1 epoch on" in before["model_label"]
    assert before["boxes"]["train_seed"] == 5 and before["boxes"]["repeats"] == 7 and before["panel"] == "Train"

    path = tmp_path / "discrete.lvmsession"
    assert window.save_session(str(path)) is None, "nothing is lost: no question expected"
    saved = json.loads(path.read_text())["views"]["discrete"]
    data = base64.b64decode(saved["model"]["data"])
    assert data[8 : 8 + int.from_bytes(data[:8], "little")].find(b'"binary-latent"') > 0  # safetensors, its kind
    after = restore_in_fresh_process_discrete(path)
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


# -- saving tells the user first; --view wins; version 1 and malformed arrays ------------------------------------------
def test_a_model_that_cannot_be_saved_is_said_before_saving(qtbot, workspace_window, tmp_path):
    import torch
    from PySide6.QtCore import Qt

    from lvm.models.vae import VAE

    window = workspace_window
    model = VAE(hidden=(8,)).eval()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    window.workspace.set_model(model, None, {"trained_in": "test"})
    path = tmp_path / "nan.lvmsession"
    box = window.save_session(str(path))
    assert box is not None and "cannot be saved" in box.text() and "NaN" in box.text()
    assert not path.exists()  # nothing written until the user chose
    save = next(b for b in box.buttons() if b.text() == "Save without them")
    qtbot.mouseClick(save, Qt.LeftButton)
    assert path.exists() and json.loads(path.read_text())["model_data"] is None


VIEW_PROBE = """
import json, os, sys
import app.main_window
from app.main import main

shown = []

class Recorder(app.main_window.MainWindow):
    def closeEvent(self, event):
        shown.append([self.current_view_name(), self.workspace.dataset_spec])
        super().closeEvent(event)

app.main_window.MainWindow = Recorder
code = main(sys.argv[1:])
print(json.dumps([code, shown]))
sys.stdout.flush()
os._exit(0)
"""


def test_view_on_the_command_line_wins_over_the_session(tmp_path):
    """``lvm-explorer --session FILE --view NAME`` shows NAME, though the session remembers another view. (In a
    process of its own: ``main`` ends the QApplication's event loop, after which no test could wait on one.)"""
    from app.core.workspace import Workspace

    d = Workspace(device="cpu").session_dict()
    d.update(dataset="digits", current_view="mixture", model=None)
    session = tmp_path / "view.lvmsession"
    session.write_text(json.dumps(d))
    out = subprocess.run(
        [sys.executable, "-c", VIEW_PROBE, "--session", str(session), "--view", "infinite", "--smoke"],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    code, shown = json.loads(out.stdout.strip().splitlines()[-1])
    assert code == 0 and shown == [["infinite", "digits"]]  # (the session was applied: its dataset is loaded)


def test_version_1_files_still_open_and_malformed_arrays_are_refused(tmp_path):
    import pytest

    from app.core.workspace import read_session
    from lvm.errors import SessionError

    d = {
        "format": "lvm-explorer-session",
        "version": 1,
        "dataset": "digits",
        "split": "test",
        "model": None,
        "selected_index": 3,
        "q": None,
        "device": "cpu",
        "seeds": {"global": 0},
        "current_view": "latent",
        "views": {"latent": {"grid_n": 10}},
    }
    path = tmp_path / "old.lvmsession"
    path.write_text(json.dumps(d))
    assert read_session(path)["selected_index"] == 3
    for lab, key, value in (
        ("mixture", "points", [[0.0, 1.0], [2.0]]),
        ("mixture", "points", [[0.0, float("nan")]]),
        ("mixture", "points", [[0.0, 1.0]] * 200_001),
        ("inpainting", "image", [0.5] * 783),
        ("inpainting", "mask_pixels", [2] * 784),
        ("inpainting", "phi", [1.5] * 784),
        ("latent", "drawn", ["x"] * 784),
    ):
        bad = {**d, "version": 2, "views": {lab: {key: value}}}
        path.write_text(json.dumps(bad))
        with pytest.raises(SessionError, match=f"views.{lab}.{key}") as err:
            read_session(path)
        assert "old.lvmsession" in str(err.value)
    path.write_text(json.dumps({**d, "version": 2, "model_data": "not base64!"}))
    with pytest.raises(SessionError, match="model_data"):
        read_session(path)


def test_a_damaged_embedded_model_leaves_the_workspace_untouched(qtbot, workspace_window, tmp_path):
    import base64

    window = workspace_window
    ws = window.workspace
    before = (ws.dataset, ws.model, ws.model_path)
    d = ws.session_dict(base64.b64encode(b"\x80\x04 a pickle, never loaded").decode())
    path = tmp_path / "damaged.lvmsession"
    path.write_text(json.dumps(d))
    window.open_session(str(path))
    qtbot.waitUntil(lambda: not window.is_loading() and window.last_error is not None, timeout=60000)
    assert (ws.dataset, ws.model, ws.model_path) == before
    assert "damaged.lvmsession" in window.last_error and "model_data" in window.last_error
    assert "pickle" in window.last_error and "unchanged" in window.last_error


# -- the fresh process -------------------------------------------------------------------------------------------------
def _restore_and_print(session: str, name: str) -> int:
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
        """Run the event loop until ``cond()`` (polled every 20 ms). (Not QTest.qWait: it keeps the GIL while it
        sleeps, which starves the workers loading the session: measured 25 s instead of 3 s for the first load.)"""
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
    window.set_view(name)
    lab = window.lab(name)
    if name == "inpainting" and window.workspace.model is not None:  # (the other labs' probed state is there
        wait(lambda: lab.grid is not None and lab.result is not None and not lab.is_busy())  # once applied)
    if name == "discrete":
        wait(lambda: lab.state.analysis is not None and not lab.is_busy())
    if window.errors:
        print("\n".join(window.errors), file=sys.stderr)
        return 1
    print(json.dumps(probe(window, name)))
    window.runner.shutdown(5000)
    del app
    return 0


if __name__ == "__main__":
    code = _restore_and_print(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    os._exit(code)
