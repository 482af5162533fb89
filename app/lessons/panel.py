"""The lesson panel: one step at a time beside the labs (caption, formula, what to watch, a question), back/next.

``LessonPanel`` drives a host window through a small interface (``set_view``, ``lab``, ``workspace``, ``runner``,
``is_loading``, ``loading_finished``, ``set_help_visible``, ``help_visible``): it never imports the main window.
A step is applied by setting the shared selection, q and seed, then the lab's settings merged over a fresh lab's
(``lab_defaults``: so a step looks the same whatever the user did in between); "Back to this step" applies it again
after the user left the path.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.core.workspace import GaussianQ
from app.lessons.format import Lesson, Step, lab_defaults
from app.lessons.probes import ProbeUnavailable, make_probe
from app.widgets.formula_text import FormulaBrowser

PANEL_WIDTH = 300


def step_html(step: Step) -> str:
    """The step's text as the panel shows it: caption, the formula on its own line, what to watch."""
    parts = [f"<p>{html.escape(step.caption)}</p>"]
    if step.formula:
        parts.append(f"<p align='center'>$${step.formula}$$</p>")
    if step.watch:
        parts.append(f"<p><b>Watch:</b> {html.escape(step.watch)}</p>")
    return "".join(parts)


class LessonPanel(QWidget):
    """A lesson's steps, one at a time; ``step_applied`` (index) once a step's state is set up."""

    step_applied = Signal(int)
    closed = Signal()

    def __init__(self, host: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lesson-panel")
        self.host = host
        self.lesson: Lesson | None = None
        self.index = 0
        self.applied: int | None = None  # the step whose setup is on screen (None while one is being applied)
        self.answer_text: str | None = None
        self._baselines: dict[str, dict] = {}
        self._pending: int | None = None
        self.setMinimumWidth(PANEL_WIDTH)
        self.setMaximumWidth(int(PANEL_WIDTH * 1.6))

        self.lesson_title = QLabel()
        self.lesson_title.setWordWrap(True)
        self.lesson_title.setObjectName("lesson-title")
        self.progress = QProgressBar()
        self.progress.setObjectName("lesson-progress")
        self.progress.setFormat("step %v of %m")
        self.progress.setTextVisible(True)
        self.step_title = QLabel()
        self.step_title.setWordWrap(True)
        self.step_title.setObjectName("lesson-step-title")
        self.step_title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.step_title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.step_title.setFont(font)
        self.text = FormulaBrowser("")
        self.text.setObjectName("lesson-text")
        self.text.setMinimumHeight(120)
        self.text.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

        self.question_box = QWidget()
        qlayout = QVBoxLayout(self.question_box)
        qlayout.setContentsMargins(0, 0, 0, 0)
        self.ask = QLabel()
        self.ask.setWordWrap(True)
        self.ask.setObjectName("lesson-ask")
        self.choice_box = QWidget()
        self.choice_layout = QVBoxLayout(self.choice_box)
        self.choice_layout.setContentsMargins(8, 0, 0, 0)
        self.choices = QButtonGroup(self)
        self.reveal_button = QPushButton("Reveal the answer")
        self.reveal_button.setObjectName("lesson-reveal")
        self.reveal_button.clicked.connect(self.reveal)
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.answer.setObjectName("lesson-answer")
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for w in (self.ask, self.choice_box, self.reveal_button, self.answer):
            qlayout.addWidget(w)

        self.back_button = QPushButton("◀ Back")
        self.back_button.setObjectName("lesson-back")
        self.back_button.clicked.connect(self.back)
        self.next_button = QPushButton("Next ▶")
        self.next_button.setObjectName("lesson-next")
        self.next_button.clicked.connect(self.next)
        self.restore_button = QPushButton("Back to this step")
        self.restore_button.setObjectName("lesson-restore")
        self.restore_button.setToolTip("Set the lab up as this step had it (after you explored on your own)")
        self.restore_button.clicked.connect(lambda: self.go(self.index))
        self.leave_button = QPushButton("Leave lesson")
        self.leave_button.setObjectName("lesson-leave")
        self.leave_button.clicked.connect(self.leave)
        nav = QHBoxLayout()
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        extra = QHBoxLayout()
        extra.addWidget(self.restore_button)
        extra.addWidget(self.leave_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.lesson_title)
        layout.addWidget(self.progress)
        layout.addWidget(self.step_title)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.question_box)
        layout.addLayout(nav)
        layout.addLayout(extra)
        host.loading_finished.connect(self._apply_pending)

    # -- the path -------------------------------------------------------------------------------------------------
    def start(self, lesson: Lesson, step: int = 0) -> None:
        """Open ``lesson`` at ``step`` (0-based; clamped to the lesson)."""
        self.lesson = lesson
        self._baselines.clear()
        self.lesson_title.setText(f"<b>Lesson:</b> {html.escape(lesson.title)}")
        self.progress.setRange(0, len(lesson.steps))
        self.go(step)

    @property
    def step(self) -> Step | None:
        return None if self.lesson is None else self.lesson.steps[self.index]

    def go(self, index: int) -> None:
        if self.lesson is None:
            return
        self.index = max(0, min(int(index), len(self.lesson.steps) - 1))
        step = self.lesson.steps[self.index]
        self.progress.setValue(self.index + 1)
        self.step_title.setText(step.title)
        self.text.set_source(step_html(step))
        self._show_question(step)
        self.back_button.setEnabled(self.index > 0)
        self.next_button.setEnabled(self.index < len(self.lesson.steps) - 1)
        self.applied = None
        if self.host.is_loading():  # the dataset or model is still loading: set up when it is there
            self._pending = self.index
        else:
            self._apply(self.index)

    def next(self) -> None:
        self.go(self.index + 1)

    def back(self) -> None:
        self.go(self.index - 1)

    def leave(self) -> None:
        self.lesson = None
        self.closed.emit()

    def _apply_pending(self) -> None:
        if self._pending is not None and self.lesson is not None:
            index, self._pending = self._pending, None
            if index == self.index:
                self._apply(index)

    def _apply(self, index: int) -> None:
        """Set up the step's lab: seed, selection and q first (a lab following the selection keeps its settings),
        then the lab's settings over its baseline, then the step's action."""
        assert self.lesson is not None
        step = self.lesson.steps[index]
        host, ws = self.host, self.host.workspace
        host.set_view(step.lab)
        lab = host.lab(step.lab)
        baseline = self._baselines.setdefault(step.lab, lab_defaults(step.lab))
        if step.seed is not None:
            ws.set_seed("global", step.seed)
        if step.select is not None and ws.data is not None:
            ws.select(min(step.select, len(ws.data.x) - 1))
        if step.q is not None:
            (m1, m2), (s1, s2) = step.q
            ws.set_q(GaussianQ.from_arrays([m1, m2], [[s1, 0.0], [0.0, s2]]))
        lab.restore_view_state({**baseline, **step.setup})
        if step.q is not None and ws.q is None:
            ws.set_q(GaussianQ.from_arrays([step.q[0][0], step.q[0][1]], [[step.q[1][0], 0.0], [0.0, step.q[1][1]]]))
        if step.action == "run":
            QTimer.singleShot(0, self, lab.start_run)  # (a lab still loading queues the run: its toggle_run)
        self.applied = index
        self.step_applied.emit(index)

    def is_busy(self) -> bool:
        """A step still being set up, its formulas still being typeset or its answer being computed."""
        return (
            (self.lesson is not None and self.applied is None)
            or self.text.is_typesetting()
            or self.host.runner.is_busy("lesson/")
        )

    # -- questions ------------------------------------------------------------------------------------------------
    def _show_question(self, step: Step) -> None:
        q = step.question
        self.question_box.setVisible(q is not None)
        self.answer.clear()
        self.answer_text = None
        for b in self.choices.buttons():
            self.choices.removeButton(b)
            b.hide()
            b.deleteLater()
        if q is None:
            return
        self.ask.setText(f"<b>Predict:</b> {html.escape(q.ask)}")
        for i, c in enumerate(q.choices):
            b = QRadioButton(c)
            b.setObjectName(f"lesson-choice-{i}")
            self.choices.addButton(b, i)
            self.choice_layout.addWidget(b)
        self.choice_box.setVisible(bool(q.choices))
        self.reveal_button.setEnabled(True)

    def reveal(self) -> None:
        """Compute the step's answer exactly (in a worker when it needs torch) and show it under the question."""
        step = self.step
        if step is None or step.question is None:
            return
        try:
            probe = make_probe(step.question.reveal, self.host.workspace, self.host.lab(step.lab))
        except ProbeUnavailable as exc:
            self.answer.setText(f"<i>Not yet: {html.escape(str(exc))}.</i>")
            return
        picked = self.choices.checkedButton()
        index = self.index
        self.reveal_button.setEnabled(False)
        self.answer.setText("<i>computing…</i>")

        def show(result: Any) -> None:
            if index != self.index:
                return
            text = probe.text(result)
            if picked is not None:
                text = f"You predicted: {picked.text()}. " + text
            self.answer_text = text
            self.answer.setText(html.escape(text))
            self.reveal_button.setEnabled(True)

        def failed(message: str) -> None:
            self.answer.setText(f"<i>Could not compute the answer: {html.escape(message)}</i>")
            self.reveal_button.setEnabled(True)

        self.host.runner.submit(f"lesson/{probe.channel}", probe.work, on_result=show, on_error=failed)


__all__ = ["LessonPanel", "step_html"]
