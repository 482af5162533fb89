"""The Inpainting lab (pytest-qt, offscreen): real mouse strokes on the canvas change the completions live."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest


@pytest.fixture
def lab(workspace_window, qtbot):
    from lvm.models.vae import VAE

    window = workspace_window
    window.set_view("inpainting")
    lab = window.lab("inpainting")
    lab.optimise_steps = 20
    torch.manual_seed(1)
    window.workspace.set_model(VAE(hidden=(64,)).eval(), None, {})
    qtbot.waitUntil(lambda: lab.grid is not None and lab.result is not None, timeout=60000)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    yield lab
    lab.runner.cancel()
    lab.runner.pool.waitForDone(10000)


def _pos(canvas, row: float, col: float) -> QPoint:
    r = canvas._square()
    return QPoint(int(r.left() + col / 28 * r.width()), int(r.top() + row / 28 * r.height()))


def test_starts_with_a_nine_top_hidden(lab):
    assert lab._index == 12
    assert not lab.mask.reshape(28, 28)[:14].any() and lab.mask.reshape(28, 28)[14:].all()
    assert np.isfinite(lab.result.log_p_obs)
    assert "log p" in lab.logp_label.text()
    assert set(lab.elbos) >= {"half", "ones", "template"}
    for v, se in lab.elbos.values():
        assert v <= lab.log_p_obs + 4 * se + 1e-3


def test_mouse_strokes_change_the_completions(lab, qtbot):
    canvas = lab.canvas
    canvas.clear()
    qtbot.waitUntil(lambda: not lab.is_updating(), timeout=30000)
    before_pred = lab.result.predictive.clone()
    before_lp = lab.result.log_p_obs
    n0 = lab.n_updates
    vp = canvas  # the canvas widget is its own viewport
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 16, 6))
    for k in range(1, 15):
        QTest.mouseMove(vp, _pos(canvas, 16 + k * 0.7, 6 + k))
        QTest.qWait(5)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 26, 20))
    qtbot.waitUntil(lambda: lab.n_updates > n0 and not lab.is_updating(), timeout=30000)
    assert canvas.image.reshape(28, 28)[14:].sum() > 5           # ink was drawn in the observed half
    assert lab.result.log_p_obs != pytest.approx(before_lp)
    assert not torch.allclose(lab.result.predictive, before_pred)
    # eraser with the right button removes ink
    ink = canvas.image.sum()
    QTest.mousePress(vp, Qt.RightButton, Qt.NoModifier, _pos(canvas, 20, 10))
    QTest.mouseRelease(vp, Qt.RightButton, Qt.NoModifier, _pos(canvas, 20, 10))
    assert canvas.image.sum() < ink


def test_live_update_rate(lab, qtbot):
    """A 60 Hz pen that keeps moving: the completions follow it while it moves (inference runs in the worker and the
    running update finishes and is drawn, so results do not wait for the pen to stop), and the last one drawn is for
    what is on the canvas at the end. Updates per second and the median latency from change to drawn result are
    printed for the record (speed is measured by ``lvm bench gui``, not asserted here: a loaded machine is slower)."""
    canvas, vp = lab.canvas, lab.canvas
    lab.update_ms.clear()
    n0 = lab.n_updates
    t0 = time.perf_counter()
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 15, 4))
    k = 0
    # the pen moves on (a 60 Hz pen's pacing) until three completions were drawn during the stroke, however long
    # a loaded machine takes for them; 2000 moves (> 30 s) without them fails
    while lab.n_updates - n0 < 3 and k < 2000:
        QTest.mouseMove(vp, _pos(canvas, 15 + (k % 10), 4 + (k % 40) * 0.5))
        QTest.qWait(16)
        k += 1
    during = lab.n_updates - n0
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 24, 24))
    qtbot.waitUntil(lambda: not lab.is_updating(), timeout=30000)
    elapsed = time.perf_counter() - t0
    n = lab.n_updates - n0
    med = float(np.median(lab.update_ms))
    print(f"{n} updates in {elapsed:.2f} s ({n / elapsed:.0f}/s) for {k} pen moves; median latency change -> drawn "
          f"{med:.1f} ms")
    assert during >= 3, f"only {during} completions drawn during a stroke of {k} moves"
    # the completion shown is the one for the final canvas (no stale result drawn last)
    final = lab.grid.infer(lab.x.copy(), lab.mask.copy(), n_samples=0)
    assert lab.result is not None and lab.result.n_observed == int(lab.mask.sum())
    assert lab.result.log_p_obs == pytest.approx(final.log_p_obs, rel=1e-5, abs=1e-4)


def test_mask_presets_and_mask_painting(lab, qtbot):
    lab.set_mask_preset("left")
    assert not lab.mask.reshape(28, 28)[:, :14].any()
    qtbot.waitUntil(lambda: not lab.is_updating(), timeout=30000)
    lp_left = lab.result.log_p_obs
    n_obs = lab.result.n_observed
    lab.tool_group.button(2).click()   # paint observed
    assert lab.canvas.tool == "observe"
    QTest.mousePress(lab.canvas, Qt.LeftButton, Qt.NoModifier, _pos(lab.canvas, 10, 5))
    QTest.mouseRelease(lab.canvas, Qt.LeftButton, Qt.NoModifier, _pos(lab.canvas, 10, 5))
    qtbot.waitUntil(lambda: not lab.is_updating(), timeout=30000)
    assert lab.result.n_observed > n_obs
    assert lab.result.log_p_obs != pytest.approx(lp_left)
    lab.set_mask_preset("random:0.5")
    assert 250 < (~lab.mask).sum() < 530


def test_load_digit_and_follow_selection(lab, qtbot):
    ws = lab.workspace
    lab.index_spin.setValue(3)
    assert np.allclose(lab.x, ws.data.x[3])
    ws.select(7)
    assert lab._index == 7 and np.allclose(lab.x, ws.data.x[7])
    lab.follow_check.setChecked(False)
    ws.select(8)
    assert lab._index == 7


def test_a_hidden_lab_loads_the_selection_when_shown(lab, workspace_window, qtbot):
    """Selecting in another lab costs the hidden Inpainting lab no inference; opening it shows that digit."""
    ws, window = lab.workspace, workspace_window
    window.set_view("latent")
    n0 = lab.n_updates
    ws.select(21)
    qtbot.wait(100)  # a negative check (the hidden lab must start nothing): it waits for nothing to finish
    assert lab._index != 21 and lab.n_updates == n0 and not lab.is_updating()
    window.set_view("inpainting")
    assert lab._index == 21 and np.allclose(lab.x, ws.data.x[21])
    qtbot.waitUntil(lambda: lab.n_updates > n0 and not lab.is_updating(), timeout=10000)


def test_meanfield_presets_and_optimise(lab, qtbot, tmp_path):
    lab.set_phi_preset("half")
    assert np.allclose(lab.phi[~lab.mask], 0.5)
    lab.set_phi_preset("template")
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
    lab.optimise()
    assert not lab.optimise_button.isEnabled()
    qtbot.waitUntil(lambda: lab.optimise_button.isEnabled(), timeout=60000)
    assert lab.phi_name == "optimised" and "optimised" in lab.elbos
    assert "φ optimised" in lab.elbo_label.text()
    # cancel a long run
    lab.optimise_steps = 100000
    drawn = lab.elbos.get("optimised")
    lab.optimise()
    # the run is under way: its first snapshot drawn (each snapshot puts a new ELBO tuple in ``lab.elbos``)
    qtbot.waitUntil(lambda: lab.elbos.get("optimised") is not drawn, timeout=60000)
    lab.cancel_optimise()
    assert lab.optimise_button.isEnabled()
    qtbot.waitUntil(lambda: not lab.runner.is_busy(lab.channel("optimise")), timeout=30000)

    path = tmp_path / "pixels.csv"
    lab.export_csv(str(path))
    lines = path.read_text().splitlines()
    assert lines[0].startswith("pixel,row,col,observed_value,observed,predictive_p1,phi") and len(lines) == 785


def test_view_state_round_trip(lab):
    lab.set_mask_preset("bottom")
    lab.brush_spin.setValue(2.5)
    state = lab.view_state()
    lab.restore_view_state({"mask": "top", "brush": 1.0})
    lab.restore_view_state({"mask": 5, "brush": "x", "tool": None})   # tolerated
    lab.restore_view_state(state)
    assert lab.view_state() == state
