"""Lessons in the window, through real widgets: the whole lecture tour renders step by step; back/next and
"back to this step"; a predict-then-reveal question answered exactly; the Lessons menu; --lesson --screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from app.lessons.format import load_lesson
from app.lessons.panel import LessonPanel

REPO = Path(__file__).resolve().parents[2]


def _click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _wait_applied(qtbot, panel: LessonPanel, index: int) -> None:
    qtbot.waitUntil(lambda: panel.applied == index, timeout=20000)


def _walk(window, qtbot, name_or_path) -> None:
    """Open the lesson and click Next through it: each step shows its lab with the step's settings and renders."""
    window.resize(1280, 720)
    lesson = load_lesson(name_or_path)
    assert window.start_lesson(name_or_path)
    panel = window.lesson_panel()
    assert window.lesson_dock.isVisible() and not window.help_visible  # the lesson takes the help panel's place
    for i, step in enumerate(lesson.steps):
        if i:
            _click(qtbot, panel.next_button)
        _wait_applied(qtbot, panel, i)
        assert window.current_view_name() == step.lab
        assert panel.progress.value() == i + 1 and panel.progress.maximum() == len(lesson.steps)
        assert panel.step_title.text() == step.title
        state = window.lab(step.lab).view_state()
        for key, value in step.setup.items():  # the lab shows the step's settings
            if isinstance(value, dict):
                assert {k: state[key][k] for k in value} == pytest.approx(value), (i, key)
            elif key == "range":  # the latent plane keeps square cells: the requested range is inside what it shows
                (a0, a1), (b0, b1) = state[key]
                (c0, c1), (d0, d1) = value
                assert a0 <= c0 + 1e-6 and c1 <= a1 + 1e-6 and b0 <= d0 + 1e-6 and d1 <= b1 + 1e-6, (i, state[key])
            elif key not in ("train",):
                assert state[key] == value, (i, key, state[key], value)
        if step.select is not None:
            assert window.workspace.selected_index == step.select
        qtbot.waitUntil(lambda: not panel.text.is_typesetting(), timeout=20000)
        assert panel.text.render_error is None, (i, panel.text.render_error)
        assert window.width() == 1280  # the lesson panel never pushes the window off a 1280 px screen
        assert not window.grab().isNull()
        window.runner.cancel(step.lab)  # (a step's "run" action need not finish)
    assert not panel.next_button.isEnabled() and (len(lesson.steps) == 1 or panel.back_button.isEnabled())


def test_the_whole_lecture_tour_renders_step_by_step(workspace_window, qtbot):
    _walk(workspace_window, qtbot, "lecture")


def test_a_lesson_a_teacher_wrote_from_the_documentation_alone_loads_and_runs(workspace_window, qtbot):
    """tests/data/teacher_lesson.toml was written by someone who read only resources/lessons/README.md."""
    _walk(workspace_window, qtbot, str(REPO / "tests" / "data" / "teacher_lesson.toml"))


def test_back_next_and_back_to_this_step(workspace_window, qtbot):
    window = workspace_window
    window.start_lesson("lecture", 2)  # "The posterior as clustering": moons, K = 4
    panel = window.lesson_panel()
    _wait_applied(qtbot, panel, 2)
    lab = window.lab("mixture")
    assert lab.view_state()["k"] == 4
    lab.restore_view_state({"k": 7, "dataset": "rings"})  # the user explores on their own
    assert lab.view_state()["k"] == 7
    _click(qtbot, panel.restore_button)
    _wait_applied(qtbot, panel, 2)
    assert lab.view_state()["k"] == 4 and lab.view_state()["dataset"] == "moons"
    _click(qtbot, panel.back_button)
    _wait_applied(qtbot, panel, 1)
    assert lab.view_state()["k"] == 3 and lab.view_state()["dataset"] == "blobs"
    _click(qtbot, panel.leave_button)
    qtbot.waitUntil(lambda: not window.lesson_dock.isVisible(), timeout=5000)


def test_a_question_is_answered_exactly_after_the_prediction(workspace_window, qtbot):
    window = workspace_window
    lesson = load_lesson("lecture")
    onedim = next(i for i, s in enumerate(lesson.steps) if s.question and s.question.reveal == "onedim-optimum")
    window.start_lesson("lecture", onedim)
    panel = window.lesson_panel()
    _wait_applied(qtbot, panel, onedim)
    assert panel.question_box.isVisible() and panel.answer.text() == ""
    lab = window.lab("inference")
    qtbot.waitUntil(lambda: lab.onedim.post is not None, timeout=20000)
    _click(qtbot, panel.reveal_button)
    qtbot.waitUntil(lambda: panel.answer_text is not None, timeout=20000)
    post = lab.onedim.post
    mu, sigma = lab.state.onedim.mu, lab.state.onedim.sigma
    assert f"KL(q || p(z|x)) = {post.kl(mu, sigma):.3f}" in panel.answer_text
    assert f"log p(x) = {post.log_px:.3f}" in panel.answer_text


def test_a_question_with_choices_quotes_the_prediction(workspace_window, qtbot):
    window = workspace_window
    lesson = load_lesson("lecture")
    i = next(i for i, s in enumerate(lesson.steps) if s.question and s.question.choices)
    window.start_lesson("lecture", i)
    panel = window.lesson_panel()
    _wait_applied(qtbot, panel, i)
    choice = panel.choices.button(2)
    qtbot.waitUntil(choice.isVisible, timeout=5000)
    qtbot.mouseClick(choice, Qt.MouseButton.LeftButton, pos=QPoint(8, choice.height() // 2))  # on its circle
    assert choice.isChecked()
    _click(qtbot, panel.reveal_button)
    qtbot.waitUntil(lambda: panel.answer_text is not None, timeout=30000)
    assert panel.answer_text.startswith(f"You predicted: {lesson.steps[i].question.choices[2]}.")
    assert (
        "Naive Monte Carlo with 5,000 prior samples" in panel.answer_text
        and "nats below the exact" in panel.answer_text
    )


def test_the_probability_answer_matches_bayes_rule(workspace_window, qtbot):
    window = workspace_window
    window.start_lesson("lecture", 2)
    panel = window.lesson_panel()
    _wait_applied(qtbot, panel, 2)
    lab = window.lab("mixture")
    _click(qtbot, panel.reveal_button)
    assert "select a point" in panel.answer.text()  # nothing selected yet: it says what to do
    qtbot.waitUntil(lambda: lab.state.history.current is not None, timeout=20000)  # the step's action runs EM
    if lab.is_running():
        lab.toggle_run()  # pause EM: the answer is for the fit on screen
    qtbot.waitUntil(lambda: not lab.is_running(), timeout=10000)
    lab.state.selected_point = 0
    _click(qtbot, panel.reveal_button)
    qtbot.waitUntil(lambda: panel.answer_text is not None, timeout=10000)
    _joint, post = lab.state.selected_posterior()
    k = int(post.argmax())
    assert f"k = {k + 1}, p(z = {k + 1} | x) = {post[k]:.3f}" in panel.answer_text


def test_the_lessons_menu_opens_the_lecture_and_a_bad_file_is_reported(workspace_window, qtbot, tmp_path):
    window = workspace_window
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Lessons")
    action = next(a for a in menu.actions() if a.text().startswith("Latent variable models"))
    action.trigger()
    panel = window.lesson_panel()
    _wait_applied(qtbot, panel, 0)
    assert panel.lesson is not None and panel.lesson.title == action.text()
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\n[[step]]\ntitle = "a"\nlab = "nope"\ncaption = "c"\n')
    assert not window.start_lesson(str(bad))
    assert "bad.toml, line 4 (step 1)" in window.last_error
    assert panel.lesson.title == action.text()  # the open lesson stays


def test_screenshot_of_a_lesson_step(tmp_path):
    out = tmp_path / "step.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LVM_EXPLORER_SETTINGS": str(tmp_path / "s.ini")}
    run = subprocess.run(
        [sys.executable, "-m", "app", "--lesson", "lecture", "--step", "5", "--size", "1280x720"]
        + ["--screenshot", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    from PySide6.QtGui import QImage

    assert QApplication.instance() is not None
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 720)
    bad = subprocess.run(
        [sys.executable, "-m", "app", "--lesson", "lecture", "--step", "99", "--screenshot", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "the lesson has steps 1 to 15" in bad.stderr


def test_each_failure_mode_is_one_click_from_the_lessons_menu(workspace_window, qtbot):
    window = workspace_window
    lesson = load_lesson("failure-modes")
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Lessons")
    sub = next(a.menu() for a in menu.actions() if a.menu() is not None and a.text() == lesson.title)
    actions = [a for a in sub.actions() if not a.isSeparator()]
    assert [a.text() for a in actions] == [s.title for s in lesson.steps]
    panel = window.lesson_panel()
    for i, (action, step) in enumerate(zip(actions, lesson.steps, strict=True)):
        action.trigger()
        _wait_applied(qtbot, panel, i)
        assert window.current_view_name() == step.lab and step.watch in panel.text.source_html.replace("&#x27;", "'")
        state = window.lab(step.lab).view_state()
        for key, value in step.setup.items():
            if not isinstance(value, dict):
                assert state[key] == value, (step.title, key)
        window.runner.cancel(step.lab)  # (the presets' own tests watch each failure happen: tests/app/labs)
