"""Every lab fits a 1280x720 laptop screen, also at 150 % scaling, and the window never changes its own size.

Invariants, not pixels (``app.widgets.layout_check``): the window can be made 1200 px narrow; every visible widget
lies inside it; no label is cut off without a tooltip; no plot is squeezed below a readable size. Each lab is checked
in its busy states: after its first results, with K = 8 in the Mixture lab, while it trains.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.labs import LABS
from app.widgets.layout_check import layout_problems

REPO = Path(__file__).resolve().parents[2]


def _settle(window, qtbot, name: str) -> None:
    window.set_view(name)
    lab = window.lab(name)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    qtbot.wait(50)  # (layouts are applied by posted events: let them run)


def _busiest_states(window, qtbot, name: str) -> None:
    """Drive ``name`` into its widest states through its public API."""
    lab = window.lab(name)
    if name == "mixture":  # K = 8: eight bars in p(z=k|x), eight legend entries
        from PySide6.QtWidgets import QSpinBox

        k_box = lab.findChild(QSpinBox, "k")
        assert k_box is not None, "the Mixture lab's K box is named 'k'"
        k_box.setValue(8)
    elif name == "inpainting":  # every phi preset, then Optimise phi: the longest readouts
        for button in lab.phi_buttons.values():
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
        qtbot.mouseClick(lab.optimise_button, Qt.MouseButton.LeftButton)
    elif name == "latent":  # training: the curves, the status line and Stop
        lab.train_panel.epochs.setValue(1)
        qtbot.mouseClick(lab.train_panel.train_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: lab.is_training() and len(lab.run.train_points) >= 2, timeout=60000)
        assert layout_problems(window) == [], "while training"
        lab.cancel_training()
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    qtbot.wait(50)


@pytest.mark.parametrize("name", list(LABS))
def test_lab_fits_a_laptop_screen_and_the_window_keeps_its_size(workspace_window, qtbot, name):
    window = workspace_window
    window.resize(1200, 700)
    qtbot.waitUntil(lambda: window.width() <= 1200, timeout=5000)
    _settle(window, qtbot, name)
    size = window.size()
    assert layout_problems(window) == []
    _busiest_states(window, qtbot, name)
    assert window.size() == size, f"the window changed its own size in the {name} lab: {size} -> {window.size()}"
    assert layout_problems(window) == []


SCRIPT = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
from app.main_window import MainWindow
from app.widgets.layout_check import layout_problems
from app.labs import LABS
import time
w = MainWindow(); w.resize(1200, 700); w.show()
done = []
w.loading_finished.connect(lambda: done.append(1))
w.load_defaults()
deadline = time.monotonic() + 120
while not done and time.monotonic() < deadline:
    app.processEvents(); time.sleep(0.01)
bad = []
for name in LABS:
    w.set_view(name)
    lab = w.lab(name)
    while lab.is_busy() and time.monotonic() < deadline:
        app.processEvents(); time.sleep(0.01)
    for _ in range(20):
        app.processEvents(); time.sleep(0.005)
    bad += [f"{name}: {p}" for p in layout_problems(w)]
print("\\n".join(bad) or "ok")
sys.exit(1 if bad else 0)
"""


def test_every_lab_fits_at_150_percent_scaling():
    """A 1920x1080 laptop at 150 %: Qt sees 1280x720 logical pixels (QT_SCALE_FACTOR=1.5, a process of its own)."""
    env = {**os.environ, "QT_SCALE_FACTOR": "1.5", "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_status_bar_labels_elide_instead_of_widening_the_window(qtbot):
    from app.widgets.elided_label import ElidedLabel

    label = ElidedLabel("model: " + "a_very_long_checkpoint_name_" * 6 + ".safetensors (latent 2-D, bernoulli)")
    qtbot.addWidget(label)
    assert label.minimumSizeHint().width() <= label.fontMetrics().horizontalAdvance("x" * 12)
    assert label.toolTip() == label.text()  # the whole text, on hover
    label.setText("short")
    assert label.minimumSizeHint().width() == label.fontMetrics().horizontalAdvance("short")
