"""Seeded random input (a "monkey") on every lab with its workers running; no exception anywhere, then a clean quit.

Each view gets ``--monkey-events`` (default 300) random events — clicks, double clicks, drags, wheel turns, hovers,
key presses — on a random visible widget of the lab at a random point inside it, while the lab's own work runs:
EM playing (mixture), the VAE training (latent), q being dragged (inference), a digit being drawn (inpainting), a
fit running and sliders moving (infinite). An exception raised in a slot (recorded by an ``sys.excepthook``) or in a
worker thread (``app.core.workers.unexpected_errors``) fails the test, naming the seed and the event that preceded it.

    pytest tests/app/test_monkey.py                                   # quick: 300 events per view
    pytest tests/app/test_monkey.py --monkey-events 5000 --monkey-seed 7   # a long run
"""

from __future__ import annotations

import random
import sys
import time
import traceback

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QFileDialog, QMessageBox, QWidget

VIEWS = ("mixture", "latent", "inference", "inpainting", "infinite", "discrete")
KEYS = [
    Qt.Key_Left,
    Qt.Key_Right,
    Qt.Key_Up,
    Qt.Key_Down,
    Qt.Key_PageUp,
    Qt.Key_PageDown,
    Qt.Key_Home,
    Qt.Key_End,
    Qt.Key_Space,
    Qt.Key_Return,
    Qt.Key_Escape,
    Qt.Key_Tab,
    Qt.Key_Backspace,
    Qt.Key_Delete,
    Qt.Key_Plus,
    Qt.Key_Minus,
    Qt.Key_0,
    Qt.Key_1,
    Qt.Key_5,
    Qt.Key_9,
    Qt.Key_A,
    Qt.Key_R,
    Qt.Key_X,
    Qt.Key_Period,
]
BUTTONS = [Qt.LeftButton] * 6 + [Qt.RightButton, Qt.MiddleButton]
MODIFIERS = [Qt.NoModifier] * 8 + [Qt.ShiftModifier, Qt.AltModifier]  # no Ctrl: it would reach the menu shortcuts


def _mouse(widget, kind, pos: QPoint, button, buttons, modifiers=Qt.NoModifier) -> None:
    ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(widget, ev)


class Monkey:
    """Random events on the visible descendants of ``root``; ``log`` keeps the last actions for the report."""

    def __init__(self, root: QWidget, rng: random.Random):
        self.root, self.rng = root, rng
        self.log: list[str] = []

    def targets(self) -> list[QWidget]:
        out = []
        for w in self.root.findChildren(QWidget):
            if not w.isVisible() or w.width() < 2 or w.height() < 2 or not w.isEnabled():
                continue
            if isinstance(w, QAbstractScrollArea):
                w = w.viewport()
            out.append(w)
        return out

    def point(self, w: QWidget) -> QPoint:
        return QPoint(self.rng.randrange(w.width()), self.rng.randrange(w.height()))

    def act(self) -> None:
        targets = self.targets()
        if not targets:
            return
        w = self.rng.choice(targets)
        kind = self.rng.choices(["click", "double", "drag", "wheel", "key", "hover"], [30, 8, 22, 12, 13, 15])[0]
        p = self.point(w)
        button, mod = self.rng.choice(BUTTONS), self.rng.choice(MODIFIERS)
        self.log.append(f"{kind} {type(w).__name__}({w.objectName()}) at {p.x()},{p.y()} {button} {mod}")
        del self.log[:-20]
        if kind == "click":
            QTest.mouseClick(w, button, mod, p)
        elif kind == "double":
            QTest.mouseDClick(w, button, mod, p)
        elif kind == "drag":
            _mouse(w, QEvent.MouseButtonPress, p, button, button, mod)
            end = self.point(w)
            for i in range(1, self.rng.randint(2, 8) + 1):
                if not shiboken6.isValid(w):
                    return
                q = p + (end - p) * (i / 8)
                _mouse(w, QEvent.MouseMove, q, Qt.NoButton, button, mod)
                if self.rng.random() < 0.3:
                    QApplication.processEvents()
            if shiboken6.isValid(w):
                _mouse(w, QEvent.MouseButtonRelease, end, button, Qt.NoButton, mod)
        elif kind == "wheel":
            delta = self.rng.choice([-240, -120, -15, 15, 120, 240])
            ev = QWheelEvent(
                QPointF(p),
                QPointF(w.mapToGlobal(p)),
                QPoint(0, 0),
                QPoint(0, delta),
                Qt.NoButton,
                mod,
                Qt.NoScrollPhase,
                False,
            )
            QApplication.sendEvent(w, ev)
        elif kind == "key":
            QTest.keyClick(w, self.rng.choice(KEYS), self.rng.choice([Qt.NoModifier, Qt.NoModifier, Qt.ShiftModifier]))
        else:
            for _ in range(self.rng.randint(1, 5)):
                if not shiboken6.isValid(w):
                    return
                _mouse(w, QEvent.MouseMove, self.point(w), Qt.NoButton, Qt.NoButton)


def close_popups_and_boxes(window) -> None:
    """Close combo/context-menu popups and the (non-modal) message boxes the monkey caused."""
    for _ in range(5):
        popup = QApplication.activePopupWidget()
        if popup is None:
            break
        popup.close()
    for box in window.findChildren(QMessageBox):
        if shiboken6.isValid(box) and box.isVisible():
            box.done(0)


class Drivers:
    """The labs' own work while the monkey plays: restarted whenever it finished (a QTimer on the GUI thread)."""

    def __init__(self, window, rng: random.Random):
        self.window, self.rng = window, rng
        self.t = 0
        self.started: dict[str, int] = {}
        self.stroke: list[QPoint] = []
        self.timer = QTimer()
        self.timer.setInterval(40)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def tick(self) -> None:
        self.t += 1
        name = self.window.current_view_name()
        lab = self.window.labs.get(name)
        if lab is None:
            return
        getattr(self, name)(lab)

    def mixture(self, lab) -> None:
        if not lab.is_em_running() and not lab.runner.is_busy(lab.channel("em")) and self.t % 25 == 0:
            lab.toggle_run()
            self.started["em"] = self.started.get("em", 0) + 1

    def latent(self, lab) -> None:
        if not lab.is_training() and self.t % 25 == 0:
            lab.train_panel.epochs.setValue(2)
            lab.start_training()
            self.started["training"] = self.started.get("training", 0) + 1

    def inference(self, lab) -> None:
        kl = lab.kl
        if getattr(kl, "mean", None) is None or self.window.workspace.selected_index is None:
            return
        a = 0.05 * self.t
        self.started["q moves"] = self.started.get("q moves", 0) + 1
        kl.set_q(np.array([1.5 * np.cos(a), 1.5 * np.sin(a)]), np.diag([0.3 + 0.2 * abs(np.sin(a)), 0.4]))

    def inpainting(self, lab) -> None:
        canvas = lab.canvas
        if not canvas.isVisible():
            return
        if not self.stroke:
            w, h = canvas.width(), canvas.height()
            start = QPoint(self.rng.randrange(w), self.rng.randrange(h))
            end = QPoint(self.rng.randrange(w), self.rng.randrange(h))
            self.stroke = [start + (end - start) * (i / 10) for i in range(11)]
            _mouse(canvas, QEvent.MouseButtonPress, self.stroke[0], Qt.LeftButton, Qt.LeftButton)
            self.started["strokes"] = self.started.get("strokes", 0) + 1
        p = self.stroke.pop(0)
        if self.stroke:
            _mouse(canvas, QEvent.MouseMove, p, Qt.NoButton, Qt.LeftButton)
        else:
            _mouse(canvas, QEvent.MouseButtonRelease, p, Qt.LeftButton, Qt.NoButton)

    def infinite(self, lab) -> None:
        if not lab.fits.is_fitting() and self.t % 50 == 0:
            lab.fits.start(["exact"])
            self.started["fit"] = self.started.get("fit", 0) + 1
        if self.t % 3 == 0 and lab.sliders:
            key, slider = self.rng.choice(list(lab.sliders.items()))
            if slider.isVisible():
                slider.set_value(slider.value() + self.rng.uniform(-0.1, 0.1), emit=True)

    def discrete(self, lab) -> None:
        data = self.window.workspace.data
        if self.t % 30 == 0 and data is not None:
            self.window.workspace.select(self.rng.randrange(len(data)))
            self.started["digits"] = self.started.get("digits", 0) + 1
        if not lab.is_training() and self.t % 60 == 0:
            lab.train.k.setValue(self.rng.choice([2, 3, 14]))  # exact-gradient and VIMCO training alike
            lab.train.epochs.setValue(1)
            lab.start_training()
            self.started["discrete training"] = self.started.get("discrete training", 0) + 1


@pytest.fixture
def excepthook_recorder(monkeypatch):
    """Every exception reaching ``sys.excepthook`` (a Python slot or virtual method that raised) is recorded."""
    seen: list[str] = []
    chained = sys.excepthook

    def hook(etype, value, tb):
        seen.append("".join(traceback.format_exception(etype, value, tb)))
        chained(etype, value, tb)

    monkeypatch.setattr(sys, "excepthook", hook)
    return seen


def test_monkey_all_views(qtbot, request, monkeypatch, excepthook_recorder):
    from app.core import workers
    from app.main_window import MainWindow

    events = request.config.getoption("--monkey-events") or 300
    seed = request.config.getoption("--monkey-seed")
    seed = 20240611 if seed is None else seed
    rng = random.Random(seed)
    # a safety net: nothing may block on a modal file dialog
    for name in ("getOpenFileName", "getSaveFileName"):
        monkeypatch.setattr(QFileDialog, name, staticmethod(lambda *a, **k: ("", "")))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))

    window = MainWindow()
    window.resize(1360, 860)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(window.loading_finished, timeout=120000):
        window.load_defaults()
    if window.workspace.model is None:  # no bundled model in this checkout: a small random one
        import torch

        from lvm.models.vae import VAE

        torch.manual_seed(seed)
        window.workspace.set_model(VAE(hidden=(64,)).eval(), None, {})
    worker_errors_before = len(workers.unexpected_errors)
    drivers = Drivers(window, rng)
    drivers.start()
    survived = 0
    t0 = time.perf_counter()
    try:
        for view in VIEWS:
            window.set_view(view)
            lab = window.lab(view)
            qtbot.wait(200)  # pacing: the monkey needs nothing of the lab finished (it plays over running work)
            monkey = Monkey(lab, rng)
            for i in range(events):
                monkey.act()
                if i % 4 == 0:
                    QApplication.processEvents()
                if i % 25 == 0:
                    close_popups_and_boxes(window)
                    qtbot.wait(5)  # pacing of the scripted user, nothing waited for
                if excepthook_recorder or workers.unexpected_errors[worker_errors_before:]:
                    break
                survived += 1
            qtbot.wait(100)  # pacing: late worker errors are still caught by the final check after waitForDone
            close_popups_and_boxes(window)
            problems = excepthook_recorder + workers.unexpected_errors[worker_errors_before:]
            assert not problems, (
                f"seed {seed}, view {view}, event {i}; last actions:\n  "
                + "\n  ".join(monkey.log)
                + "\n"
                + "\n".join(problems)
            )
    finally:
        drivers.stop()
    elapsed = time.perf_counter() - t0
    print(
        f"\nmonkey: seed {seed}, {survived} events survived on {len(VIEWS)} views in {elapsed:.1f} s; "
        f"{len(window.errors)} user messages shown; lab work started: {drivers.started}"
    )
    for text in window.errors[:10]:
        print("  message:", text.splitlines()[0][:160])
    # a clean quit: every worker stops, no window left open
    window.close()
    assert window.runner.pool.waitForDone(30000)
    assert window.runner.pool.activeThreadCount() == 0
    window.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(window), timeout=10000)
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible() and not isinstance(w, QMessageBox)]
    assert not excepthook_recorder, "\n".join(excepthook_recorder)
    new = workers.unexpected_errors[worker_errors_before:]
    assert not new, "\n".join(new)
