"""Work done ahead while the user is idle (``app.core.idle_steps``), and the window's labs built that way."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from app.core import idle_steps
from app.core.idle_steps import IdleSteps


@pytest.fixture
def widget(qtbot):
    w = QWidget()
    w.resize(200, 150)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def _recording(ran: list, n: int) -> list:
    return [lambda i=i: ran.append((i, time.monotonic())) for i in range(n)]


def test_steps_run_in_order_one_per_tick_once_the_user_is_idle(qtbot):
    ran: list = []
    steps = IdleSteps(_recording(ran, 4), quiet_s=0.2, interval_ms=30)
    with qtbot.waitSignal(steps.finished, timeout=20000):
        pass
    assert [i for i, _ in ran] == [0, 1, 2, 3] and steps.done == 4 and steps.pending == 0
    # none before the quiet time (starting counts as input), and never two in one tick
    assert ran[0][1] - steps.last_input >= 0.2
    assert all(b - a >= 0.02 for (_, a), (_, b) in zip(ran, ran[1:], strict=False))


def test_input_postpones_the_steps_until_it_stops(qtbot, widget):
    ran: list = []
    steps = IdleSteps(_recording(ran, 2), quiet_s=1.0, interval_ms=20)
    moving_until = time.monotonic() + 1.6
    k = 0
    while time.monotonic() < moving_until:  # a mouse that keeps moving over the window: never a second's pause
        QTest.mouseMove(widget, QPoint(20 + k % 100, 30 + k % 50))
        k += 1
        QTest.qWait(50)
    assert ran == [] and steps.pending == 2, "a step ran while the mouse was moving"
    stopped = time.monotonic()
    qtbot.waitUntil(lambda: len(ran) == 2, timeout=20000)
    assert ran[0][1] - stopped >= 0.9  # (the last move was at most one 50 ms wait before ``stopped``)


def test_a_held_mouse_button_and_a_busy_owner_postpone_the_steps(qtbot, widget):
    ran: list = []
    busy = {"v": True}
    steps = IdleSteps(_recording(ran, 1), can_run=lambda: not busy["v"], quiet_s=0.05, interval_ms=20)
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(50, 50))
    try:
        assert QApplication.mouseButtons() != Qt.MouseButton.NoButton
        busy["v"] = False
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # held for half a second, no other input
            QTest.qWait(20)
        assert ran == []
    finally:
        QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(50, 50))
    busy["v"] = True  # released, but the owner is busy (a job runs)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        QTest.qWait(20)
    assert ran == []
    busy["v"] = False
    with qtbot.waitSignal(steps.finished, timeout=20000):
        pass
    assert len(ran) == 1


def test_a_failing_step_is_reported_and_the_rest_still_run(qtbot):
    ran: list = []

    def broken() -> None:
        raise RuntimeError("no such lab")

    steps = IdleSteps([broken, *_recording(ran, 1)], quiet_s=0.0, interval_ms=10)
    failures: list[str] = []
    steps.failed.connect(failures.append)
    with qtbot.waitSignal(steps.finished, timeout=20000):
        pass
    assert failures == ["RuntimeError: no such lab"] and len(ran) == 1


def test_the_input_filter_is_removed_once_done(qtbot, widget):
    steps = IdleSteps(_recording([], 1), quiet_s=0.0, interval_ms=10)
    with qtbot.waitSignal(steps.finished, timeout=20000):
        pass
    seen = steps.last_input
    QTest.mouseMove(widget, QPoint(60, 60))
    QTest.mouseMove(widget, QPoint(70, 65))
    assert steps.last_input == seen


def test_the_window_builds_the_labs_not_shown_while_the_user_is_idle(qtbot, monkeypatch):
    """After the warm-up, every lab not shown is built hidden (its module imported in one step, built in the next);
    showing one afterwards uses the lab built ahead."""
    from app.labs import LABS
    from app.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "build_labs_ahead", True)
    monkeypatch.setattr(idle_steps, "QUIET_S", 0.1)
    monkeypatch.setattr(idle_steps, "INTERVAL_MS", 20)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.warmed_up, timeout=60000):
        window.load_defaults()
        window.set_view("mixture")
    ahead = window.labs_ahead
    assert ahead is not None
    qtbot.waitUntil(lambda: ahead.pending == 0, timeout=60000)
    assert set(window.labs) == set(LABS)
    assert ahead.done == 1 + 2 * (len(LABS) - 1)  # pyqtgraph, then an import and a build per lab not shown
    assert window.current_view_name() == "mixture"
    assert all(not window.labs[name].isVisible() for name in LABS if name != "mixture")
    built = window.labs["inference"]
    window.set_view("inference")
    assert window.lab("inference") is built and built.isVisible()
    window.runner.shutdown(5000)
