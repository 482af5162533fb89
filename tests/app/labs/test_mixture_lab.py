"""The Mixture lab, driven through its real widgets (pytest-qt, offscreen)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from app.core.workers import TaskRunner
from app.core.workspace import Workspace
from app.labs.mixture.engine import EMConfig, em_halfsteps, init_step, posterior
from app.labs.mixture.view import DIGITS, SPEED_MAX, USER_POINTS, MixtureLab


@pytest.fixture
def lab(qtbot):
    runner = TaskRunner()
    lab = MixtureLab(Workspace(device="cpu"), runner)
    qtbot.addWidget(lab)
    lab.resize(1300, 850)
    lab.show()
    qtbot.waitExposed(lab)
    lab.speed.setValue(SPEED_MAX)
    lab.state.first_fit = False  # no automatic BIC grid after the first fit (tests ask for it)
    lab.init_combo.setCurrentText("kmeans")  # quick convergence
    wait_idle(qtbot, lab)
    yield lab
    runner.shutdown(5000)


def wait_idle(qtbot, lab, timeout=90000):
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=timeout)


def viewport_pos(lab, x: float, y: float) -> QPoint:
    """Where the data point (x, y) of the scatter lies on the GraphicsLayoutWidget's viewport."""
    scene = lab.vb.mapViewToScene(QPointF(x, y))
    return lab.scatter_widget.mapFromScene(scene)


def click_scatter(qtbot, lab, x, y, button=Qt.LeftButton, modifier=Qt.NoModifier):
    QTest.mouseClick(lab.scatter_widget.viewport(), button, modifier, viewport_pos(lab, x, y))
    qtbot.wait(20)  # a user's pace between clicks (the click is handled synchronously): nothing is waited for


def fitted(qtbot, lab):
    lab.activate()
    wait_idle(qtbot, lab)
    assert len(lab.history) > 3
    return lab


def test_step_buttons_advance_snapshot_and_curve(qtbot, lab):
    lab.reset_button.click()
    wait_idle(qtbot, lab)
    assert [s.half for s in lab.history] == ["init"]
    qtbot.mouseClick(lab.e_button, Qt.LeftButton)
    wait_idle(qtbot, lab)
    assert [s.half for s in lab.history] == ["init", "E"] and lab.shown == 1
    assert len(lab.ll_plot.curve.getData()[0]) == 2
    qtbot.mouseClick(lab.m_button, Qt.LeftButton)
    wait_idle(qtbot, lab)
    assert [s.half for s in lab.history] == ["init", "E", "M"] and lab.shown == 2
    assert len(lab.ll_plot.curve.getData()[0]) == 3
    assert lab.history[2].iteration == 1
    # M right after an M: an E-step first, then the M-step
    qtbot.mouseClick(lab.m_button, Qt.LeftButton)
    wait_idle(qtbot, lab)
    assert [s.half for s in lab.history][-2:] == ["E", "M"] and lab.history[-1].iteration == 2
    assert "iteration 2" in lab.step_label.text()


def test_em_steps_keep_the_history_row_still_and_show_every_point_of_the_curve(qtbot, lab):
    """The step readout changes length every half step; the history slider beside it must not change width."""
    lab.reset_button.click()
    wait_idle(qtbot, lab)
    width = lab.history_slider.width()
    lengths = set()
    for button in (lab.e_button, lab.m_button) * 3:
        qtbot.mouseClick(button, Qt.LeftButton)
        wait_idle(qtbot, lab)
        qtbot.wait(30)  # a negative check (the row must not relayout); posted layout requests run in any wait
        lengths.add(len(lab.step_label.text()))
        assert lab.history_slider.width() == width
    assert len(lengths) >= 2
    # the log-likelihood plot's explicit range holds every point of the curve
    (x0, x1), (y0, y1) = lab.ll_plot.getViewBox().viewRange()
    xs, ys = lab.ll_plot.curve.getData()
    assert x0 < xs.min() and xs.max() < x1 and y0 < ys.min() and ys.max() < y1


def test_a_backlog_of_em_steps_is_drawn_once(qtbot, lab, monkeypatch):
    """Half steps that reached the GUI thread together (it fell behind the worker: a busy machine) are all stored,
    and drawn once: the newest, not each in turn."""
    from app.labs.mixture.engine import em_halfsteps

    fitted(qtbot, lab)
    h = lab.state.history
    steps = list(em_halfsteps(lab.X, lab.state.config, h[h.newest], n_halves=4))
    drawn: list[int] = []
    real = lab.show_step
    monkeypatch.setattr(lab, "show_step", lambda i, **kw: (drawn.append(i), real(i, **kw)))
    n0 = len(h)
    for s in steps:  # (as queued snapshot signals are delivered: back to back, in one pass of the event loop)
        lab._on_step((s, None))
    qtbot.waitUntil(lambda: not lab.is_drawing_steps(), timeout=5000)
    assert len(h) == n0 + 4 and drawn == [h.newest]


def test_a_received_step_draws_the_scatter_first_and_the_side_panels_in_a_later_pass(qtbot, lab):
    """EM's half steps are drawn in two event-loop passes (two frames): the points and ellipses, then the
    log-likelihood curve and the selection's Bayes' rule; the lab counts as busy until both are drawn."""
    from app.labs.mixture.engine import em_halfsteps

    fitted(qtbot, lab)
    lab.select_point(0)
    h = lab.state.history
    step = next(iter(em_halfsteps(lab.X, lab.state.config, h[h.newest], n_halves=1)))
    n_curve = len(lab.ll_plot.curve.getData()[0])
    lab._on_step((step, None))
    lab._draw_received()  # (the first pass, as the event loop would run it)
    assert lab.shown == h.newest and lab.is_drawing_steps() and lab.is_busy()
    assert len(lab.ll_plot.curve.getData()[0]) == n_curve  # not yet
    qtbot.waitUntil(lambda: not lab.is_drawing_steps(), timeout=5000)
    assert len(lab.ll_plot.curve.getData()[0]) == n_curve + 1 and lab.ll_plot.now.value() == h.newest
    joint, post = lab.state.selected_posterior()
    assert np.allclose(lab.posterior.bars.opts["height"], post)


def test_em_moves_the_curves_range_and_the_bars_ticks_only_now_and_then(qtbot, lab, monkeypatch):
    """While EM runs, the log-likelihood plot's range grows ahead of the curve: re-ranged less often than the curve
    is drawn (each re-range redraws both axes' tick pictures); once EM stops, the range fits the curve again; the
    posterior bars of a selected point keep their axis ticks while K stays the same. (The half steps are delivered
    and drawn one by one here, as a running EM delivers them: every one drawn.)"""
    from app.labs.mixture.engine import em_halfsteps

    lab.k_spin.setValue(6)
    wait_idle(qtbot, lab)
    lab.select_point(0)
    lab.reset_button.click()
    wait_idle(qtbot, lab)
    h = lab.state.history
    steps = list(em_halfsteps(lab.X, lab.state.config, h[h.newest], n_halves=40))
    ranges, ticks = [], []
    lab.ll_plot.getViewBox().sigRangeChanged.connect(lambda *_: ranges.append(1))
    bottom = lab.posterior.plot.getAxis("bottom")
    real_set_ticks = bottom.setTicks
    bottom.setTicks = lambda t: (ticks.append(t), real_set_ticks(t))
    monkeypatch.setattr(lab, "is_em_running", lambda: True)
    for s in steps:
        lab._on_step((s, None))
        lab._draw_received()
        lab._draw_panels()
    # drawn in its own range each time, all 40 draws re-ranged the plot; growing ahead, 12
    assert len(ranges) <= 20, len(ranges)
    assert len(ticks) <= 1
    monkeypatch.setattr(lab, "is_em_running", lambda: False)
    lab._set_running(False)
    qtbot.waitUntil(lambda: not lab.is_drawing_steps(), timeout=5000)
    (x0, x1), (y0, y1) = lab.ll_plot.getViewBox().viewRange()
    xs, ys = lab.ll_plot.curve.getData()
    assert x0 < xs.min() and xs.max() < x1 and y0 < ys.min() and ys.max() < y1
    assert x1 == pytest.approx(len(h) - 0.5)  # fitted: no room left for more steps


def test_log_likelihood_never_decreases(qtbot, lab):
    lab.k_spin.setValue(5)  # resets and runs
    wait_idle(qtbot, lab)
    ll = np.array([s.log_likelihood for s in lab.history])
    assert len(ll) > 4
    assert np.all(np.diff(ll) >= -1e-7), np.diff(ll).min()
    # the engine agrees with a direct evaluation of the mean log-likelihood
    last = lab.history[-1]
    assert posterior(lab.X, last)[1].mean() == pytest.approx(last.log_likelihood, abs=1e-4)


def test_engine_continues_from_a_stored_half_step():
    from lvm.data.toy import blobs

    X, _ = blobs(n=400, k=3, seed=1)
    cfg = EMConfig(k=3, seed=0)
    s0 = init_step(X, cfg)
    steps = list(em_halfsteps(X, cfg, s0, n_halves=3))
    assert [s.half for s in steps] == ["E", "M", "E"]
    more = list(em_halfsteps(X, cfg, steps[-1], n_halves=1))
    assert more[0].half == "M" and more[0].iteration == steps[-1].iteration
    assert more[0].log_likelihood >= steps[-1].log_likelihood - 1e-9


def test_clicking_adds_and_removes_points(qtbot, lab):
    fitted(qtbot, lab)
    n = len(lab.X)
    qtbot.mouseClick(lab.mode_add, Qt.LeftButton)
    (x0, x1), (y0, y1) = lab.vb.viewRange()
    tx, ty = x0 + 0.13 * (x1 - x0), y0 + 0.9 * (y1 - y0)
    click_scatter(qtbot, lab, tx, ty)
    assert len(lab.X) == n + 1
    assert lab.source_combo.currentText() == USER_POINTS
    px, py = lab.vb.viewPixelSize()
    assert abs(lab.X[-1, 0] - tx) < 3 * px and abs(lab.X[-1, 1] - ty) < 3 * py
    wait_idle(qtbot, lab)
    click_scatter(qtbot, lab, tx, ty, button=Qt.RightButton)
    assert len(lab.X) == n
    click_scatter(qtbot, lab, tx, ty)
    click_scatter(qtbot, lab, tx, ty, modifier=Qt.ShiftModifier)
    assert len(lab.X) == n
    wait_idle(qtbot, lab)


def test_selecting_a_point_shows_posterior_bars(qtbot, lab):
    fitted(qtbot, lab)
    # a point between two components, so the posterior is not one-hot
    target = lab.X[int(np.argmin(posterior(lab.X, lab.history[-1])[0].max(1)))]
    click_scatter(qtbot, lab, float(target[0]), float(target[1]))
    assert lab.selected_point is not None
    heights = np.asarray(lab.posterior.bars.opts["height"], float)
    assert len(heights) == lab.history[lab.shown].k
    assert heights.sum() == pytest.approx(1.0, abs=1e-6)
    joint, post = lab.state.selected_posterior()
    assert np.allclose(post, joint / joint.sum())
    assert "p(z=k|x)" in lab.posterior.text.text()


def test_history_slider_scrubs(qtbot, lab):
    fitted(qtbot, lab)
    last = len(lab.history) - 1
    assert lab.shown == last
    lab.history_slider.setFocus()
    qtbot.keyClick(lab.history_slider, Qt.Key_Home)
    assert lab.shown == 0 and lab.step_label.text().startswith("step 0")
    qtbot.keyClick(lab.history_slider, Qt.Key_Right)
    assert lab.shown == 1 and "iteration 1" in lab.step_label.text()
    assert lab.ll_plot.now.value() == 1
    # colours change at E-steps only: step 2 (M) shows the responsibilities of step 1 (E)
    qtbot.keyClick(lab.history_slider, Qt.Key_Right)
    assert lab.history[2].half == "M"
    h = lab.state.history
    assert h.responsibilities(2, lab.X) is h.responsibilities(1, lab.X)
    # stepping from the past branches the history
    qtbot.mouseClick(lab.e_button, Qt.LeftButton)
    wait_idle(qtbot, lab)
    assert len(lab.history) == 4 and lab.shown == 3


def test_run_then_pause_stops(qtbot, lab):
    lab.reset_button.click()
    wait_idle(qtbot, lab)
    lab.speed.setValue(20)
    qtbot.mouseClick(lab.run_button, Qt.LeftButton)
    assert lab.run_button.text() == "Pause"
    qtbot.waitUntil(lambda: len(lab.history) >= 3, timeout=30000)
    qtbot.mouseClick(lab.run_button, Qt.LeftButton)
    assert lab.run_button.text() == "Run"
    wait_idle(qtbot, lab)
    n = len(lab.history)
    qtbot.wait(300)  # a negative check (no step after the pause): it waits for nothing to finish
    assert len(lab.history) == n and not lab.is_busy()


def test_drag_mean_reruns_from_there(qtbot, lab):
    fitted(qtbot, lab)
    target = lab.targets[0]
    (x0, x1), (y0, y1) = lab.vb.viewRange()
    target.setPos(QPointF(x0 + 0.05 * (x1 - x0), y0 + 0.05 * (y1 - y0)))
    target.sigPositionChangeFinished.emit(target)  # what TargetItem emits when a drag ends
    wait_idle(qtbot, lab)
    moved = [i for i, s in enumerate(lab.history) if s.half == "init" and i > 0]
    assert moved and lab.history[-1].half == "M" and len(lab.history) > moved[0] + 2


def test_sample_density_bic_export_and_state(qtbot, lab, tmp_path):
    lab.n_spin.setValue(300)
    wait_idle(qtbot, lab)
    assert not lab.samples.isVisible()  # (empty items are hidden: Qt skips them on each repaint)
    assert not any(c.isVisible() for c in lab.contours.curves)
    qtbot.mouseClick(lab.sample_button, Qt.LeftButton)
    assert len(lab.samples.data) >= 200 and lab.samples.isVisible()
    lab.density_combo.setCurrentIndex(2)
    assert lab.heat.isVisible() and lab.heat.image is not None
    assert any(c.isVisible() for c in lab.contours.curves)
    assert all(c.isVisible() == (c.xData is not None and len(c.xData) > 0) for c in lab.contours.curves)
    lab.density_combo.setCurrentIndex(1)
    qtbot.mouseClick(lab.bic.button, Qt.LeftButton)
    wait_idle(qtbot, lab, timeout=60000)
    assert len(lab.state.bic.points) == 24
    k = lab.state.bic.best_k()
    qtbot.mouseClick(lab.bic.adopt_button, Qt.LeftButton)
    assert lab.k_spin.value() == k
    wait_idle(qtbot, lab)
    path = tmp_path / "points.csv"
    lab.export_csv(str(path))
    rows = list(csv.reader(path.open()))
    assert rows[0][:2] == ["x1", "x2"] and rows[0][-1] == "true_label" and len(rows) == 301
    probs = np.array([[float(v) for v in r[2 : 2 + k]] for r in rows[1:]])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    state = lab.view_state()
    assert state["k"] == k and state["dataset"] == "blobs"
    other = MixtureLab(Workspace(device="cpu"), lab.runner)
    qtbot.addWidget(other)
    other.restore_view_state({**state, "seed": 3, "cov_type": "diag", "view_range": [[-1, 1], [-2, 2]]})
    other.restore_view_state({"k": "bad", "view_range": 5})  # tolerated
    assert other.k_spin.value() == k and other.cov_combo.currentText() == "diag" and other.seed_spin.value() == 3
    wait_idle(qtbot, lab)


def test_point_colours_blend_the_posterior(qtbot, lab):
    """The colours the EM worker sends with each E-step are sum_k p(z=k|x_n) colour_k under that step's parameters;
    an M-step shows its E-step's colours; scrubbing back past the cache recomputes the same. (Recolour speed is
    measured by ``lvm bench gui``, not here.)"""
    from app.labs.mixture.engine import posterior
    from app.widgets.palette import component_colours

    lab.n_spin.setValue(20_000)
    wait_idle(qtbot, lab, timeout=120000)
    e = max(i for i, s in enumerate(lab.history) if s.half == "E")
    h = lab.state.history
    assert e in h.colour_cache, "the worker's colours of the latest E-step are kept"
    step = lab.history[e]
    resp = posterior(lab.X, step)[0]
    expected = resp @ component_colours(step.k)
    np.testing.assert_allclose(h.colour_cache[e], expected, atol=1e-5)
    if e + 1 < len(lab.history):
        assert h.colours(e + 1, lab.X) is h.colours(e, lab.X)
    h.forget_tables()
    np.testing.assert_allclose(h.colours(e, lab.X), expected, atol=1e-5)
    lab.show_step(e)
    np.testing.assert_allclose(lab.points.rgb, expected, atol=1e-5)


def test_digits_clustering_on_a_subset(qtbot, lab):
    from lvm.data import load_dataset

    ws = lab.workspace
    ws.set_dataset(load_dataset("digits"), "digits")
    lab.digits.n.setValue(400)
    lab.digits.k.setValue(6)
    lab.digits.space.setCurrentIndex(1)  # PCA: 50
    lab.source_combo.setCurrentText(DIGITS)  # starts a fit
    assert lab.stack.currentIndex() == 1
    wait_idle(qtbot, lab, timeout=60000)
    res = lab.digits.result
    assert res is not None and res.mean_images.shape == (6, 784)
    assert ws.gmm is res.gmm
    assert 0 < res.purity <= 1 and 0 <= res.nmi <= 1
    img = lab.digits.gallery.image.image
    assert img is not None and img.shape[1] >= 6 * 28
    # click the first member: the workspace selection follows, and the posterior bars show it
    mv = lab.digits.member_view
    scene = mv.vb.mapViewToScene(QPointF(14, 14))
    QTest.mouseClick(mv.viewport(), Qt.LeftButton, Qt.NoModifier, mv.mapFromScene(scene))
    assert ws.selected_index == int(lab.digits.members[0])
    heights = np.asarray(lab.digits.post_bars.opts["height"], float)
    assert heights.sum() == pytest.approx(1.0, abs=1e-5)
    # clicking another component's mean shows its members
    g = lab.digits.gallery
    other = (lab.digits.component + 1) % 6
    r, c = divmod(other, g.cols)
    scene = g.vb.mapViewToScene(QPointF(c * 30 + 14, r * 30 + 14))
    QTest.mouseClick(g.viewport(), Qt.LeftButton, Qt.NoModifier, g.mapFromScene(scene))
    assert lab.digits.component == other


def test_editing_after_scrubbing_back_follows_the_new_run(qtbot, lab):
    """Issue 19: History slider scrubbed back, then a point added: EM restarts from the shown step, and the slider
    and the plot follow the new run (they stayed at "step 0" with grey points until the slider was dragged)."""
    from app.labs.mixture.state import GREY

    fitted(qtbot, lab)
    lab.history_slider.setFocus()
    qtbot.keyClick(lab.history_slider, Qt.Key_Home)
    qtbot.keyClick(lab.history_slider, Qt.Key_Right)
    assert lab.shown == 1 and lab.step_label.text().startswith("step 1:")
    lab.speed.setValue(20)  # animated: the run's steps arrive one by one
    qtbot.mouseClick(lab.mode_add, Qt.LeftButton)
    (x0, x1), (y0, y1) = lab.vb.viewRange()
    click_scatter(qtbot, lab, x0 + 0.5 * (x1 - x0), y0 + 0.5 * (y1 - y0))
    slider = lab.history_slider

    def at_newest() -> bool:
        newest = len(lab.history) - 1
        return slider.maximum() == slider.value() == lab.shown == newest and lab.step_label.text().startswith(
            f"step {newest}:"
        )

    # while the run goes on, each new step is shown as it arrives: a step is stored when it arrives and drawn in the
    # next pass of the event loop (``is_drawing_steps``), so the check waits for the steps received to be drawn
    for n in (3, 5):
        qtbot.waitUntil(lambda n=n: len(lab.history) >= n and not lab.is_drawing_steps(), timeout=30000)
        assert at_newest(), (slider.value(), slider.maximum(), lab.shown, lab.step_label.text())
    assert not np.allclose(lab.points.rgb, GREY), "the points show the posterior, not the grey of step 0"
    assert lab.run_button.text() == "Pause"
    qtbot.mouseClick(lab.run_button, Qt.LeftButton)
    wait_idle(qtbot, lab)
    assert at_newest()


def visible_stale_notes(lab) -> list[str]:
    from PySide6.QtWidgets import QLabel

    return [w.text() for w in lab.findChildren(QLabel) if w.isVisible() and "stale" in w.text().lower()]


def test_bic_grid_is_marked_stale_when_the_data_change(qtbot, lab):
    """Issue 19: after a data change the BIC/AIC panel kept the previous data's curves as if they were current."""
    from app.labs.mixture.panels import BIC_PEN, STALE

    def pen_rgb(curve):
        return curve.opts["pen"].color().getRgb()[:3]

    lab.n_spin.setValue(300)
    wait_idle(qtbot, lab)
    qtbot.mouseClick(lab.bic.button, Qt.LeftButton)
    wait_idle(qtbot, lab, timeout=60000)
    assert not visible_stale_notes(lab) and lab.bic.adopt_button.isEnabled()
    assert pen_rgb(lab.bic.bic_line) == BIC_PEN
    lab.data_seed.setFocus()
    qtbot.keyClick(lab.data_seed, Qt.Key_Up)  # other points
    wait_idle(qtbot, lab)
    notes = visible_stale_notes(lab)
    assert notes and "data changed" in notes[0] and "Compute" in notes[0]
    assert pen_rgb(lab.bic.bic_line) == pen_rgb(lab.bic.aic_line) == STALE and not lab.bic.adopt_button.isEnabled()
    qtbot.mouseClick(lab.bic.button, Qt.LeftButton)  # computed again: current
    wait_idle(qtbot, lab, timeout=60000)
    assert not visible_stale_notes(lab) and lab.bic.adopt_button.isEnabled() and pen_rgb(lab.bic.bic_line) == BIC_PEN
    # points added by clicks change the data too; another covariance type makes the grid another model's
    qtbot.mouseClick(lab.mode_add, Qt.LeftButton)
    (x0, x1), (y0, y1) = lab.vb.viewRange()
    click_scatter(qtbot, lab, 0.5 * (x0 + x1), 0.5 * (y0 + y1))
    assert visible_stale_notes(lab)
    wait_idle(qtbot, lab)
    qtbot.mouseClick(lab.bic.button, Qt.LeftButton)
    wait_idle(qtbot, lab, timeout=60000)
    assert not visible_stale_notes(lab)
    lab.cov_combo.setCurrentText("diag")
    assert "full" in visible_stale_notes(lab)[0]
    wait_idle(qtbot, lab)


def test_a_data_change_stops_a_bic_grid_being_computed(qtbot, lab):
    lab.n_spin.setValue(300)
    wait_idle(qtbot, lab)
    qtbot.mouseClick(lab.bic.button, Qt.LeftButton)
    assert lab.runner.is_busy(lab.channel("bic"))
    lab.data_seed.setFocus()
    qtbot.keyClick(lab.data_seed, Qt.Key_Up)
    wait_idle(qtbot, lab)
    assert len(lab.state.bic.points) < 24  # stopped part way: what it has is greyed, the button is back
    assert lab.bic.button.text() == "Compute BIC/AIC"
    if lab.state.bic.points:
        assert visible_stale_notes(lab)


def test_bar_ticks_thin_out_on_a_narrow_plot():
    from app.labs.mixture.panels import bar_tick_step

    assert bar_tick_step(8, 400) == 1
    assert bar_tick_step(8, 180) == 2  # 180 / 8 = 22.5 px a bar: every other one labelled
    assert bar_tick_step(20, 180) == 5
    assert bar_tick_step(20, 1000) == 1


def test_laptop_window_keeps_every_plot_readable_at_k8(qtbot, workspace_window):
    """Issue 19: at K = 8 in a 1280x720 window the p(z=k|x) bars shrank to ~30 px with overlapping ticks. Every
    plot keeps at least 160x120 px, no label is cut without a tooltip, and the lab can be at most 900 px wide."""
    from PySide6.QtWidgets import QApplication, QLabel

    window = workspace_window
    window.set_view("mixture")
    lab = window.lab("mixture")
    lab.state.first_fit = False  # (no BIC grid: not needed here)
    lab.speed.setValue(SPEED_MAX)
    window.resize(1280, 720)
    lab.n_spin.setValue(300)  # fewer points: EM at K = 8 converges sooner
    wait_idle(qtbot, lab)
    lab.k_spin.setFocus()
    lab.k_spin.selectAll()
    qtbot.keyClicks(lab.k_spin, "8")
    qtbot.keyClick(lab.k_spin, Qt.Key_Return)
    wait_idle(qtbot, lab)
    assert lab.history[-1].k == 8
    target = lab.X[int(np.argmin(posterior(lab.X, lab.history[-1])[0].max(1)))]
    click_scatter(qtbot, lab, float(target[0]), float(target[1]))
    assert len(lab.posterior.bars.opts["height"]) == 8
    QApplication.processEvents()  # (posted layout requests)
    assert window.width() == 1280 and window.height() == 720
    assert lab.minimumSizeHint().width() <= 900, lab.minimumSizeHint()
    for plot in (lab.scatter_widget, lab.ll_plot, lab.post_plot, lab.bic_plot):
        assert plot.isVisible() and plot.width() >= 160 and plot.height() >= 120, (plot, plot.size())
    cut = [
        w.text()[:40]
        for w in lab.findChildren(QLabel)
        if w.isVisible() and w.text() and not w.wordWrap() and not w.toolTip()
        if w.width() + 1 < w.minimumSizeHint().width()
    ]
    assert not cut, cut
    # the bars' labels: at least 20 px apart
    ticks = lab.post_plot.getAxis("bottom")._tickLevels[0]
    spacing = (ticks[1][0] - ticks[0][0]) * lab.post_plot.getViewBox().width() / 8
    assert spacing >= 20, spacing


def test_the_status_bar_says_what_em_does(qtbot, workspace_window):
    """The status bar's progress box was empty beside an unlabelled Cancel while EM ran: the EM job reports."""
    window = workspace_window
    window.set_view("mixture")
    lab = window.lab("mixture")
    lab.state.first_fit = False  # (no BIC grid: not needed here)
    lab.reset_button.click()  # (instead of the animated first fit)
    wait_idle(qtbot, lab)
    lab.speed.setValue(20)
    qtbot.mouseClick(lab.run_button, Qt.LeftButton)
    n = len(lab.X)
    text = f"Mixture lab: EM: {n:,} points, iteration"
    qtbot.waitUntil(lambda: window.job_label.text().startswith(text), timeout=30000)
    assert window.progress.isVisible() and "(at most 300)" in window.job_label.text()
    assert window.job_label.toolTip() == window.job_label.text()  # (elided when the window is narrow: all of it here)
    assert window.cancel_button.text() == "Stop EM"
    qtbot.mouseClick(lab.run_button, Qt.LeftButton)
    wait_idle(qtbot, lab)
