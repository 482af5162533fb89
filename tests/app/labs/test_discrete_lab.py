"""The Discrete latents lab driven through its real widgets (pytest-qt, offscreen)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from lvm.estimators.discrete import exact_log_marginal


def click_tab(qtbot, tabs, title: str) -> None:
    bar = tabs.tabBar()
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == title)
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(index).center())
    assert tabs.currentIndex() == index


@pytest.fixture
def lab(qtbot, workspace_window):
    window = workspace_window
    window.set_view("discrete")
    lab = window.lab("discrete")
    qtbot.waitUntil(lambda: lab.state.analysis is not None, timeout=60000)
    return lab


def test_exact_log_p_of_the_selected_digit(qtbot, lab, workspace_window):
    ws = workspace_window.workspace
    a = lab.state.analysis
    assert a.index == ws.selected_index == 0
    x = torch.as_tensor((ws.selected_x > 0.5).astype(np.float32)).reshape(1, -1)
    assert a.log_px == pytest.approx(float(exact_log_marginal(lab.state.model, x)), abs=1e-3)
    assert a.hist_counts.sum() == 2**a.latent_dim and a.hist_mass.sum() == pytest.approx(1.0, abs=1e-4)
    assert a.elbo_q <= a.log_px + 1e-4 and a.kl_q == pytest.approx(a.log_px - a.elbo_q, abs=1e-3)
    assert "exact log p(x)" in lab.exact_label.text() and f"{a.log_px:.3f}" in lab.exact_label.text()
    assert np.isfinite(a.log_px_one_hot) and f"{a.log_px_one_hot:.1f}" in lab.exact_label.text()
    assert lab.exact.mass_curve.getData()[1] is not None
    qtbot.waitUntil(lambda: not lab.stop_button.isEnabled(), timeout=5000)
    ws.select(7)  # a new selection recomputes (the table is kept: no rebuild)
    qtbot.waitUntil(lambda: lab.state.analysis is not None and lab.state.analysis.index == 7, timeout=30000)
    assert lab.state.analysis.table_seconds is None
    x7 = torch.as_tensor((ws.selected_x > 0.5).astype(np.float32)).reshape(1, -1)
    assert lab.state.analysis.log_px == pytest.approx(float(exact_log_marginal(lab.state.model, x7)), abs=1e-3)


def test_estimators_converge_towards_the_exact_value(qtbot, lab):
    panel = lab.estimators
    panel.repeats.setValue(3)
    panel.kmax.setValue(1000)
    click_tab(qtbot, lab.tabs, panel.title)
    qtbot.waitUntil(
        lambda: lab.state.convergence is not None and lab.state.convergence.repeats_done == 3, timeout=60000
    )
    snap, a = lab.state.convergence, lab.state.analysis
    assert snap.ks[-1] == 1000
    is_m = snap.values["is_marginals"][-1]
    assert np.all(is_m <= a.log_px + 1.0) and np.all(is_m > a.log_px - 10)  # the good proposal is close
    assert np.all(snap.values["uniform"][-1] < a.log_px)  # naive MC: far below
    assert np.nanmean(snap.values["elbo"][-1]) == pytest.approx(a.elbo_q, abs=3.0)
    assert len(panel.curves["is_encoder"].getData()[0]) == len(snap.ks)
    assert "Exact log p(x)" in panel.status.text()


def test_cost_plot_measures_time_against_k(qtbot, lab):
    click_tab(qtbot, lab.tabs, lab.cost.title)
    qtbot.waitUntil(lambda: lab.state.cost is not None and lab.state.cost.done, timeout=90000)
    pts = lab.state.cost.points
    assert [p.k for p in pts] == [4, 8, 10, 12, 14, 16, 18, 20][: len(pts)] and len(pts) >= 6
    assert pts[-1].seconds > pts[0].seconds and lab.state.cost.budget_s > 0
    assert "budget" in lab.cost.status.text() and len(lab.cost.line.getData()[0]) == 30


def test_train_in_app_small_k_exact_and_stop(qtbot, lab):
    panel = lab.train
    click_tab(qtbot, lab.tabs, panel.title)
    panel.k.setValue(14)
    assert "vimco" in panel.objective.text() and "Mnih" in panel.objective.text()
    panel.k.setValue(3)
    assert "exact" in panel.objective.text()
    panel.epochs.setValue(1)
    qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    qtbot.waitUntil(
        lambda: (
            lab.state.model.latent_dim == 3 and lab.state.analysis is not None and lab.state.analysis.latent_dim == 3
        ),
        timeout=60000,
    )
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=10000)
    assert panel.train_button.isEnabled() and "exact" in panel.status.text()
    assert "K = 3" in lab.model_label.text()
    # a long run, stopped: the K = 3 model stays
    panel.k.setValue(16)
    panel.epochs.setValue(200)
    qtbot.mouseClick(panel.train_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(lab.state.train_history.steps) >= 1, timeout=30000)
    qtbot.mouseClick(panel.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=10000)
    assert lab.state.model.latent_dim == 3 and panel.train_button.isEnabled()
    qtbot.mouseClick(panel.bundled_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: lab.state.analysis is not None, timeout=60000)


def test_stop_the_enumeration_of_a_large_k(qtbot, lab, workspace_window):
    """K = 26 (2^26 configurations, no table): the Stop button ends the enumeration; the lab says so."""
    from app.labs.discrete.state import fresh_model

    lab.set_model(fresh_model(26), {}, "test K = 26")
    qtbot.waitUntil(lambda: lab.stop_button.isEnabled() and lab.progress.value() > 0, timeout=30000)
    qtbot.mouseClick(lab.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_busy() and not lab.stop_button.isEnabled(), timeout=10000)
    assert "stopped" in lab.exact_label.text() and lab.state.analysis is None


def test_export_csv_and_view_state(qtbot, lab, tmp_path):
    path = tmp_path / "d.csv"
    lab.export_csv(str(path))
    text = path.read_text()
    assert "log_px" in text and "p(z_k=1|x)" in text
    lab.estimators.repeats.setValue(4)
    st = lab.view_state()
    lab.estimators.repeats.setValue(9)
    lab.restore_view_state(st)
    assert lab.estimators.repeats.value() == 4
    lab.restore_view_state({"repeats": "x", "panel": 3, "kmax": float("nan")})  # ignored


def test_random_input_on_the_lab(qtbot, lab, workspace_window, monkeypatch):
    """Seeded random clicks, drags, wheel turns and keys on the lab's widgets: no exception anywhere."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("test_monkey", Path(__file__).parents[1] / "test_monkey.py")
    test_monkey = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_monkey)
    Monkey, close_popups_and_boxes = test_monkey.Monkey, test_monkey.close_popups_and_boxes

    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: seen.append(exc))
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", "")))
    lab.train.epochs.setValue(1)
    monkey = Monkey(lab, random.Random(3))
    for i in range(250):
        monkey.act()
        if i % 4 == 0:
            QApplication.processEvents()
        if i % 25 == 0:
            close_popups_and_boxes(workspace_window)
            qtbot.wait(5)
        assert not seen, monkey.log
    close_popups_and_boxes(workspace_window)
    lab.runner.cancel(lab.channel(""))
    qtbot.waitUntil(lambda: not lab.is_busy() and not lab.is_training(), timeout=30000)


# -- issue 19: no text changes the window's size; the plots stay readable ---------------------------------------------
def _resize(qtbot, window, w: int, h: int):
    window.resize(w, h)
    qtbot.waitUntil(lambda: window.size().width() == w and window.size().height() == h, timeout=5000)
    return window.size()


def test_the_window_keeps_its_size_whatever_the_lab_says(qtbot, lab, workspace_window):
    """Every panel run through its real widgets in a 1280 x 720 window: the exact sum, the estimators, the cost, a
    training run; the status lines (several long sentences) wrap or are cut, the window never grows."""
    window = workspace_window
    size = _resize(qtbot, window, 1280, 720)
    min_width = lab.minimumSizeHint().width()
    assert min_width <= 900, f"the lab needs {min_width} px: with the help panel it must fit a 1200 px window"

    def unchanged(what):
        qtbot.wait(50)  # (a negative check: lets a pending relayout happen; it waits for nothing to finish)
        assert window.size() == size and lab.minimumSizeHint().width() <= min_width, what

    unchanged("exact")
    lab.estimators.repeats.setValue(2)
    lab.estimators.kmax.setValue(100)
    click_tab(qtbot, lab.tabs, lab.estimators.title)
    qtbot.waitUntil(
        lambda: lab.state.convergence is not None and lab.state.convergence.repeats_done == 2, timeout=60000
    )
    assert len(lab.estimators.status.text()) > 300
    unchanged("estimators")
    click_tab(qtbot, lab.tabs, lab.cost.title)
    qtbot.waitUntil(lambda: lab.state.cost is not None and len(lab.state.cost.points) >= 3, timeout=90000)
    lab.runner.cancel(lab.channel("cost"))
    unchanged("cost")
    click_tab(qtbot, lab.tabs, lab.train.title)
    lab.train.k.setValue(3)
    lab.train.epochs.setValue(1)
    qtbot.mouseClick(lab.train.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_training() and lab.state.trained_here, timeout=60000)
    qtbot.waitUntil(lambda: lab.state.analysis is not None, timeout=60000)
    unchanged("train")
    click_tab(qtbot, lab.tabs, lab.exact.title)
    unchanged("exact, trained model")


def test_plots_stay_readable_in_a_1280_by_720_window(qtbot, lab, workspace_window):
    _resize(qtbot, workspace_window, 1280, 720)
    for panel, plots in (
        (lab.exact, (lab.exact.hist_plot, lab.exact.mass_plot, lab.exact.marg_plot, lab.exact.top)),
        (lab.estimators, (lab.estimators.plot,)),
        (lab.cost, (lab.cost.plot,)),
        (lab.train, (lab.train.plot,)),
    ):
        lab.tabs.setCurrentWidget(panel)
        qtbot.waitUntil(lambda p=plots: all(w.isVisible() for w in p), timeout=5000)
        for w in plots:
            assert w.width() >= 250 and w.height() >= 110, (panel.title, w.objectName(), w.size())
    lab.runner.cancel(lab.channel(""))


def test_the_samples_seed_is_shown_and_typing_one_draws_new_samples(qtbot, lab, workspace_window):
    """Issue 19: every random computation shows its seed. The histograms' uniform samples follow the typed seed, and
    the old seed gives the old samples back."""
    ws = workspace_window.workspace
    box = lab.header.sample_seed
    assert box.value() == ws.seed("discrete")
    qtbot.waitUntil(lambda: not lab.stop_button.isEnabled(), timeout=30000)
    first = lab.state.analysis.uniform_lj.copy()
    old = box.value()
    box.setFocus()
    qtbot.keyClick(box, Qt.Key.Key_Up)
    assert ws.seed("discrete") == old + 1
    qtbot.waitUntil(
        lambda: lab.state.analysis is not None and not np.array_equal(lab.state.analysis.uniform_lj, first),
        timeout=30000,
    )
    ws.set_seed("discrete", old)  # (a session restoring it): the box follows, the samples come back
    assert box.value() == old
    qtbot.waitUntil(
        lambda: lab.state.analysis is not None and np.array_equal(lab.state.analysis.uniform_lj, first), timeout=30000
    )
