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
    assert lab.state.index == 12
    assert not lab.state.mask.reshape(28, 28)[:14].any() and lab.state.mask.reshape(28, 28)[14:].all()
    assert np.isfinite(lab.result.log_p_obs)
    assert "log p" in lab.logp_label.text()
    assert set(lab.state.elbos) >= {"half", "ones", "template"}
    for v, se in lab.state.elbos.values():
        assert v <= lab.state.log_p_obs + 4 * se + 1e-3


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
    assert canvas.image.reshape(28, 28)[14:].sum() > 5  # ink was drawn in the observed half
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
    lab.compute_ms.clear()
    lab.picture_clock.clear()
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
    print(
        f"{n} updates in {elapsed:.2f} s ({n / elapsed:.0f}/s) for {k} pen moves; median latency change -> drawn "
        f"{med:.1f} ms"
    )
    assert during >= 3, f"only {during} completions drawn during a stroke of {k} moves"
    # each update records its worker's compute time beside its latency (``lvm bench gui`` reports both): a part of it
    assert len(lab.compute_ms) == len(lab.update_ms) and all(
        0 < c <= u for c, u in zip(lab.compute_ms, lab.update_ms, strict=True)
    )
    # ... and pen-to-picture, from the pen's change to the completions painted, once the plots painted them
    qtbot.waitUntil(lambda: len(lab.picture_clock.ms) > 0, timeout=10000)
    assert min(lab.picture_clock.ms) >= min(lab.compute_ms)
    # the completion shown is the one for the final canvas (no stale result drawn last)
    final = lab.grid.infer(lab.state.image.copy(), lab.state.mask.copy(), n_samples=0)
    assert lab.result is not None and lab.result.n_observed == int(lab.state.mask.sum())
    assert lab.result.log_p_obs == pytest.approx(final.log_p_obs, rel=1e-5, abs=1e-4)


def test_the_heatmap_shown_is_the_posterior_of_the_completions_drawing(lab, qtbot):
    """The fine heatmap's density comes from the worker with the completions (or, right after the heatmap moved to a
    new rectangle, from the GUI thread), for the same drawing: after a stroke it equals p(z | x_O) computed here on
    the fine grid for the drawing of the result shown."""
    canvas = lab.canvas
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 18, 5))
    for k in range(1, 10):
        QTest.mouseMove(canvas, _pos(canvas, 18 + k * 0.5, 5 + k))
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 23, 15))
    qtbot.waitUntil(lambda: not lab.is_updating(), timeout=30000)
    r = lab.result
    want = lab.local_post.density(lab.grid, r.x.cpu().numpy(), r.mask.cpu().numpy())
    np.testing.assert_allclose(lab.plots.post_img.image, want, atol=1e-4)


def test_the_worker_computes_the_heatmap_with_the_completions(lab):
    """``compute.infer`` with the fine grid returns its density for the drawing it inferred from."""
    from app.labs.inpainting import compute

    x, mask = lab.state.image.copy(), lab.state.mask.copy()
    out = compute.infer(lab.grid, x, mask, seed=0, local=lab.local_post)
    assert out.local is lab.local_post
    np.testing.assert_allclose(out.density, lab.local_post.density(lab.grid, x, mask), atol=1e-5)
    assert compute.infer(lab.grid, x, mask, seed=0).density is None


def test_a_stroke_pauses_the_elbo_estimates_until_the_pen_rests(lab, qtbot):
    """ELBO(phi) and the entropy are estimated for the drawing as it was; a new stroke stops them (they are about to
    be out of date) so the live completions have the CPU, and they run again once the pen has rested."""
    canvas = lab.canvas
    lab.evaluate_elbos()
    job = lab.runner._running.get(lab.channel("elbo"))
    assert job is not None and not job.cancelled
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 20, 8))
    assert job.cancelled and not lab._elbo_timer.isActive()
    QTest.mouseMove(canvas, _pos(canvas, 21, 12))
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, _pos(canvas, 21, 12))
    assert lab._elbo_timer.isActive()  # (they run again 300 ms after the pen rests)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    drawn = lab.grid.infer(lab.state.image.copy(), lab.state.mask.copy(), n_samples=0).log_p_obs
    assert lab.state.log_p_obs == pytest.approx(drawn, abs=1e-4)
    assert set(lab.state.elbos) >= {"half", "ones", "template"}


def test_mask_presets_and_mask_painting(lab, qtbot):
    lab.set_mask_preset("left")
    assert not lab.state.mask.reshape(28, 28)[:, :14].any()
    qtbot.waitUntil(lambda: not lab.is_updating(), timeout=30000)
    lp_left = lab.result.log_p_obs
    n_obs = lab.result.n_observed
    lab.tool_group.button(2).click()  # paint observed
    assert lab.canvas.tool == "observe"
    QTest.mousePress(lab.canvas, Qt.LeftButton, Qt.NoModifier, _pos(lab.canvas, 10, 5))
    QTest.mouseRelease(lab.canvas, Qt.LeftButton, Qt.NoModifier, _pos(lab.canvas, 10, 5))
    qtbot.waitUntil(lambda: not lab.is_updating(), timeout=30000)
    assert lab.result.n_observed > n_obs
    assert lab.result.log_p_obs != pytest.approx(lp_left)
    lab.set_mask_preset("random:0.5")
    assert 250 < (~lab.state.mask).sum() < 530


def test_load_digit_and_follow_selection(lab, qtbot):
    ws = lab.workspace
    lab.drawing.index_spin.setValue(3)
    assert np.allclose(lab.state.image, ws.data.x[3])
    ws.select(7)
    assert lab.state.index == 7 and np.allclose(lab.state.image, ws.data.x[7])
    lab.drawing.follow_check.setChecked(False)
    ws.select(8)
    assert lab.state.index == 7


def test_a_hidden_lab_loads_the_selection_when_shown(lab, workspace_window, qtbot):
    """Selecting in another lab costs the hidden Inpainting lab no inference; opening it shows that digit."""
    ws, window = lab.workspace, workspace_window
    window.set_view("latent")
    n0 = lab.n_updates
    ws.select(21)
    qtbot.wait(100)  # a negative check (the hidden lab must start nothing): it waits for nothing to finish
    assert lab.state.index != 21 and lab.n_updates == n0 and not lab.is_updating()
    window.set_view("inpainting")
    assert lab.state.index == 21 and np.allclose(lab.state.image, ws.data.x[21])
    qtbot.waitUntil(lambda: lab.n_updates > n0 and not lab.is_updating(), timeout=10000)


def test_meanfield_presets_and_optimise(lab, qtbot, tmp_path):
    lab.set_phi_preset("half")
    assert np.allclose(lab.state.phi[~lab.state.mask], 0.5)
    lab.set_phi_preset("template")
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
    lab.optimise()
    assert not lab.optimise_button.isEnabled()
    qtbot.waitUntil(lambda: lab.optimise_button.isEnabled(), timeout=60000)
    assert lab.state.phi_name == "optimised" and "optimised" in lab.state.elbos
    assert "φ&nbsp;optimised" in lab.meanfield.summary.text() and "φ&nbsp;optimised" in lab.meanfield.summary.toolTip()
    # cancel a long run
    lab.optimise_steps = 100000
    drawn = lab.state.elbos.get("optimised")
    lab.optimise()
    # the run is under way: its first snapshot drawn (each snapshot puts a new ELBO tuple in ``lab.state.elbos``)
    qtbot.waitUntil(lambda: lab.state.elbos.get("optimised") is not drawn, timeout=60000)
    lab.cancel_optimise()
    assert lab.optimise_button.isEnabled()
    qtbot.waitUntil(lambda: not lab.runner.is_busy(lab.channel("optimise")), timeout=30000)

    path = tmp_path / "pixels.csv"
    lab.export_csv(str(path))
    lines = path.read_text().splitlines()
    assert lines[0].startswith("pixel,row,col,observed_value,observed,predictive_p1,phi") and len(lines) == 785


def test_view_state_round_trip(lab):
    lab.set_mask_preset("bottom")
    lab.drawing.brush_spin.setValue(2.5)
    state = lab.view_state()
    lab.restore_view_state({"mask": "top", "brush": 1.0})
    assert lab.state.mask_name == "top" and lab.canvas.brush_radius == 1.0 and lab.drawing.brush_spin.value() == 1.0
    messages = []
    lab.workspace.events.message.connect(messages.append)
    lab.restore_view_state({"mask": 5, "brush": "x", "tool": None})  # refused whole, and said
    assert len(messages) == 1 and "views.inpainting" in messages[0] and lab.state.mask_name == "top"
    lab.restore_view_state(state)
    assert lab.view_state() == state
    assert lab.drawing.mask_combo.currentText() == "bottom" and lab.canvas.brush_radius == 2.5


# -- issue 19: the window keeps its size; the plots stay readable; the seed is shown and can be set ------------------
def test_the_window_keeps_its_size_whatever_the_summary_says(lab, workspace_window, qtbot):
    """phi = 0.5, phi = 1, phi = a 9, phi = predictive, then Optimise phi, clicked: the one-line summary under the
    buttons grew with each phi and widened the main window from 1360 to 1612 px (off a 1600 px screen)."""
    window = workspace_window
    window.resize(1360, 860)
    qtbot.waitUntil(lambda: window.size().width() == 1360 and window.size().height() == 860, timeout=5000)
    size, min_width = window.size(), lab.minimumSizeHint().width()
    assert min_width <= 900, f"the lab needs {min_width} px: with the help panel it must fit a 1200 px window"
    for key in ("half", "ones", "template", "predictive"):
        before = lab.state.elbos.get(key)
        qtbot.mouseClick(lab.phi_buttons[key], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(
            lambda k=key, b=before: lab.state.phi_name == k and lab.state.elbos.get(k) is not b, timeout=30000
        )
        qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
        assert window.size() == size and lab.minimumSizeHint().width() <= min_width, key
    qtbot.mouseClick(lab.optimise_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: lab.optimise_button.isEnabled() and "optimised" in lab.state.elbos, timeout=60000)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
    assert len(lab.state.elbos) == 5 and "predictive" in lab.meanfield.summary.text()
    assert window.size() == size and lab.minimumSizeHint().width() <= min_width


def test_plots_stay_readable_in_a_1280_by_720_window(lab, workspace_window, qtbot):
    window = workspace_window
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: window.size().width() == 1280 and window.size().height() == 720, timeout=5000)
    qtbot.waitUntil(lambda: lab.plots.glw.height() < 600, timeout=5000)  # (laid out at the new size)
    for name, item in (
        ("completion", lab.plots.completion_vb),
        ("samples", lab.plots.samples_vb),
        ("phi", lab.plots.phi_vb),
        ("posterior", lab.plots.post_plot.getViewBox()),
    ):
        r = item.sceneBoundingRect()
        assert min(r.width(), r.height()) >= 130, (name, r)
    r = lab.plots.elbo_plot.getViewBox().sceneBoundingRect()
    assert r.width() >= 300 and r.height() >= 130, r
    assert lab.canvas.width() >= 196 and lab.canvas.height() >= 196


def test_the_seed_is_shown_and_can_be_set(lab, workspace_window, qtbot):
    """The sampled completions, the ELBO estimates and the optimiser draw their random numbers from the seed shown;
    typing another seed redraws them, and typing the first one back gives the same numbers again."""
    ws = lab.workspace
    spin = lab.drawing.seed_spin
    assert spin.isVisible() and spin.value() == ws.seed("inpainting") == 0
    samples0 = lab.result.samples.clone()
    elbo0 = lab.state.elbos["half"]

    _type_seed(lab, qtbot, "7")
    assert ws.seed("inpainting") == 7
    assert not torch.equal(lab.result.samples, samples0)
    assert lab.state.elbos["half"] != elbo0
    _type_seed(lab, qtbot, "0")
    assert torch.equal(lab.result.samples, samples0) and lab.state.elbos["half"] == elbo0

    ws.set_seed("inpainting", 12)  # set elsewhere (a session): the box shows it
    assert spin.value() == 12
    assert "seed" in spin.toolTip() and "optimiser" in spin.toolTip()


def _type_seed(lab, qtbot, text: str) -> None:
    """Type a seed into the lab's seed box and wait for the completions drawn with it."""
    n0 = lab.n_updates
    spin = lab.drawing.seed_spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: lab.n_updates > n0 and not lab.is_busy(), timeout=30000)


def test_the_optimiser_draws_from_the_seed_shown(lab, qtbot):
    def optimised() -> np.ndarray:
        qtbot.mouseClick(lab.phi_buttons["template"], Qt.MouseButton.LeftButton)  # (the same start each time)
        qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
        qtbot.mouseClick(lab.optimise_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: lab.optimise_button.isEnabled() and lab.state.phi_name == "optimised", timeout=60000)
        return lab.state.phi.copy()

    lab.optimise_steps = 5
    phi0 = optimised()
    _type_seed(lab, qtbot, "7")
    assert not np.array_equal(optimised(), phi0)  # its samples come from the seed shown
    _type_seed(lab, qtbot, "0")
    assert np.array_equal(optimised(), phi0)
