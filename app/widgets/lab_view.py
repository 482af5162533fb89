"""The base of every lab: a widget over the shared workspace and the worker facility.

A lab subscribes to ``workspace.events`` in ``__init__`` and redraws; it changes the workspace to talk to other labs.
Heavy work goes through ``self.runner.submit(self.channel("name"), fn, ...)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.next_pass import NextPass
from app.core.workers import TaskRunner
from app.core.workspace import Workspace


class LabView(QWidget):
    """Base class of the labs. Subclasses set ``name``, ``title`` and ``explanation`` (HTML with the formulas)."""

    name = "lab"
    title = "Lab"
    explanation = ""
    help_visibility_requested = Signal(bool)  # the help panel's own Hide button (the window shows/hides every lab's)

    def __init__(self, workspace: Workspace, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.runner = runner
        self._passes: list[NextPass] = []
        self.setObjectName(f"lab-{self.name}")

    # -- helpers for subclasses ------------------------------------------------------------------------------------
    def channel(self, what: str) -> str:
        """A worker channel private to this lab (``runner.cancel(self.name)`` cancels them all)."""
        return f"{self.name}/{what}"

    def next_pass(self, fn, delay_ms: int = 1) -> NextPass:
        """``fn`` to be run in a later pass of the event loop when queued (``app.core.next_pass``); the lab is busy
        while it waits."""
        p = NextPass(self, fn, delay_ms)
        self._passes.append(p)
        return p

    def with_explanation(self, content: QWidget) -> QSplitter:
        """``content`` with the "what am I looking at" panel on its right; its plots get readable axes.

        ``app.widgets.axes.readable_axes``: no SI-prefix rescaling, rounded ticks, decade-labelled log axes. A plot
        built later calls ``readable_axes(plot)`` itself.
        """
        from app.widgets.axes import readable_axes  # (pyqtgraph: loaded with the first lab)

        readable_axes(content)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(content)
        panel = explanation_panel(self.title, self.explanation)
        self.explanation_text = panel.findChild(QWidget, "explanation-text")
        hide = panel.findChild(QToolButton, "explanation-hide")
        if hide is not None:
            hide.clicked.connect(lambda: self.help_visibility_requested.emit(False))
        self.help_panel = panel
        splitter.addWidget(panel)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([1000, 240])
        return splitter

    def set_help_visible(self, visible: bool) -> None:
        """Show or hide the "What am I looking at?" panel (View -> Help panel, F1); the plots take its room."""
        panel = getattr(self, "help_panel", None)
        if panel is not None:
            panel.setVisible(visible)

    def _select_first_if_none(self) -> bool:
        """With nothing selected, select x #0, deferred to the event loop (for labs with an ``active`` flag). Not an
        events workaround: inside the ``selection(None)`` emission a nested ``select(0)`` would reach the subscribers
        after this one before the outer ``None`` does (they would end on None while the workspace holds 0), and inside
        ``set_dataset``'s ``dataset`` emission the ``selection(None)`` that follows it would undo the selection."""
        ws = self.workspace
        if getattr(self, "active", False) and ws.selected_index is None and ws.data is not None and len(ws.data):

            def select_first() -> None:
                if getattr(self, "active", False) and ws.selected_index is None and ws.data is not None:
                    ws.select(0)

            QTimer.singleShot(0, select_first)
            return True
        return False

    # -- the main window calls these -------------------------------------------------------------------------------
    def activate(self) -> None:
        """The lab became visible: start lazy computations here."""

    def deactivate(self) -> None:
        """The lab was hidden: cancel interactive work."""
        self.runner.cancel(self.name + "/")

    def is_busy(self) -> bool:
        """True while this lab's computations run, its drawing waits for a pass, or its shown help's formulas are being
        typeset (``--screenshot`` waits for them)."""
        text = getattr(self, "explanation_text", None)
        return (
            self.runner.is_busy(self.name + "/")
            or any(p.pending for p in self._passes)
            or (text is not None and text.is_typesetting())
        )

    def session_losses(self) -> list[str]:
        """What a session saved now would not keep of this lab (said before saving); labs override."""
        return []

    def is_training(self) -> bool:
        """True while this lab trains a model (closing the window stops it and keeps the model)."""
        return False

    def cancel_training(self) -> None:
        """Stop training; the weights so far become the lab's model."""

    def toggle_run(self) -> bool:
        """Start or stop this lab's main computation (presenter mode's Space key: EM, training, optimising q...).
        Returns False where the lab has nothing to run."""
        return False

    def is_running(self) -> bool:
        """Whether the main computation ``toggle_run`` controls is running (labs that can tell say so)."""
        return False

    def start_run(self) -> bool:
        """Start the main computation unless it runs already (a lesson step's ``action = "run"``)."""
        return True if self.is_running() else self.toggle_run()

    def export_widget(self) -> QWidget:
        """The widget rendered by "Export view as PNG/SVG"."""
        return self

    def export_csv(self, path: str) -> None:
        """Write the data behind the view as CSV; labs override."""
        raise NotImplementedError(f"the {self.title} has no data to export")

    # -- animations (File -> Export animation…, app.widgets.animation_export) -------------------------------------
    def animation_problem(self) -> str | None:
        """Why this lab's history cannot be exported as an animation now (None: it can); said to the user."""
        return f"the {self.title} keeps no history to animate"

    def animation_frame_count(self) -> int:
        """How many frames ``animation_frames`` yields now: one per history entry."""
        return 0

    def animation_frames(self) -> Iterator[str]:
        """Put the display at each history entry in turn, synchronously, and yield a caption for it (the exporter
        renders ``export_widget`` after each yield). When the iterator ends or is closed (a generator's ``finally``)
        the display returns to where the user had it. Default: no frames."""
        return iter(())

    def view_state(self) -> dict:
        """JSON-able view state (ranges, toggles) saved in sessions."""
        return {}

    def restore_view_state(self, state: dict) -> None:
        """Restore what ``view_state`` returned; must tolerate missing or wrong keys."""


class PlaceholderLab(LabView):
    """A lab that is not built yet (keeps its place in the window)."""

    def __init__(self, workspace, runner, parent=None):
        super().__init__(workspace, runner, parent)
        layout = QVBoxLayout(self)
        label = QLabel(f"<h2>{self.title}</h2><p>This lab is not built yet.</p>")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(label)


def restore_spin(spin: QSpinBox | QDoubleSpinBox, value, block_signals: bool = False) -> bool:
    """Set ``spin`` from a value read from a session file, clamped to the box's range.

    A QSpinBox takes an int (not a bool), a QDoubleSpinBox a finite int or float; anything else (missing, wrong type,
    NaN, inf, a number too big for Qt) leaves the box as it is. Returns whether the value was taken.
    """
    if isinstance(value, bool):
        return False
    if isinstance(spin, QDoubleSpinBox):
        if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            return False
        value = min(max(float(value), spin.minimum()), spin.maximum())
    elif not isinstance(value, int):
        return False
    else:
        value = min(max(value, spin.minimum()), spin.maximum())
    was = spin.blockSignals(True) if block_signals else False
    spin.setValue(value)
    if block_signals:
        spin.blockSignals(was)
    return True


def restore_choice(combo: QComboBox, data) -> bool:
    """Select the item of ``combo`` whose data equals a session value (a str or a small int); else leave it."""
    if isinstance(data, bool) or not isinstance(data, (str, int)) or (isinstance(data, int) and abs(data) >= 2**31):
        return False
    i = combo.findData(data)
    if i >= 0:
        combo.setCurrentIndex(i)
    return i >= 0


def explanation_panel(title: str, html: str) -> QFrame:
    frame = QFrame()
    frame.setObjectName("explanation")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(4, 4, 4, 4)
    head = QLabel("<b>What am I looking at?</b>")
    head.setWordWrap(True)  # (a narrow panel wraps it rather than cutting it)
    hide = QToolButton()
    hide.setObjectName("explanation-hide")
    hide.setText("Hide")
    hide.setAutoRaise(True)
    hide.setToolTip("Hide the help panel in every lab (View → Help panel, F1, shows it again)")
    header = QHBoxLayout()
    header.setContentsMargins(0, 0, 0, 0)
    header.addWidget(head, 1)
    header.addWidget(hide)
    from app.widgets.formula_text import FormulaBrowser

    text = FormulaBrowser(html or f"<p>{title}</p>")
    text.setObjectName("explanation-text")
    text.setOpenExternalLinks(True)
    layout.addLayout(header)
    layout.addWidget(text)
    frame.setMinimumWidth(200)
    return frame


def labelled_row(*pairs: tuple[str, QWidget]) -> QHBoxLayout:
    """One row of controls, each after its label: ``labelled_row(("seed", seed_box), ("k max", kmax_box))``."""
    row = QHBoxLayout()
    for label, widget in pairs:
        row.addWidget(QLabel(label))
        row.addWidget(widget)
    return row


def spin_box(lo: int, hi: int, value: int, name: str, step: int = 1) -> QSpinBox:
    """An integer spin box named ``name`` that reports a typed value when editing ends (no keyboard tracking)."""
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setSingleStep(step)
    box.setObjectName(name)
    box.setKeyboardTracking(False)
    return box
