"""Presenter mode through real keys: F5 enters (full screen, high contrast, larger text, thicker lines, no help
panel); →/← step through the lesson, R sets the step up again, Space runs the lab, F toggles full screen; Esc leaves
and everything is as before."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.core.appearance import current_appearance


def _key(qtbot, window, key) -> None:
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    qtbot.keyClick(window, key)


def test_presenter_mode_keys_and_leaving_restores_everything(workspace_window, qtbot):
    window = workspace_window
    window.resize(1280, 720)
    window.set_help_visible(True)
    before = current_appearance()
    font_before = QApplication.font().pointSizeF()
    assert window.start_lesson("lecture")
    panel = window.lesson_panel()
    qtbot.waitUntil(lambda: panel.applied == 0, timeout=20000)

    _key(qtbot, window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: window.isFullScreen(), timeout=5000)
    look = current_appearance()
    assert look.theme == "high-contrast" and look.line_scale == 2.0
    assert QApplication.font().pointSizeF() > font_before
    assert not window.help_visible and window.presenter_action.isChecked()

    _key(qtbot, window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: panel.applied == 1, timeout=20000)
    _key(qtbot, window, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: panel.applied == 0, timeout=20000)

    lab = window.lab("mixture")
    lab.restore_view_state({"k": 9})
    _key(qtbot, window, Qt.Key.Key_R)  # the step again
    qtbot.waitUntil(lambda: panel.applied == 0 and lab.view_state()["k"] == 3, timeout=20000)

    # setting the step up again fits its settings afresh: let that fit end, then start again from one initialisation,
    # so that Space is known to find EM idle (pressed while EM runs, it pauses it)
    qtbot.waitUntil(lambda: not lab.is_em_running(), timeout=20000)
    lab.reset()
    qtbot.waitUntil(lambda: not lab.is_em_running() and len(lab.state.history) == 1, timeout=20000)
    _key(qtbot, window, Qt.Key.Key_Space)  # run EM
    qtbot.waitUntil(lambda: len(lab.state.history) > 2, timeout=20000)

    _key(qtbot, window, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=5000)
    _key(qtbot, window, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: window.isFullScreen(), timeout=5000)

    _key(qtbot, window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=5000)
    assert current_appearance() == before and QApplication.font().pointSizeF() == font_before
    assert not window.presenter_action.isChecked()
    window.runner.cancel("mixture")


def test_presenter_mode_is_legible_at_1280x720(workspace_window, qtbot):
    """The projector's look at 1280x720, full screen (no frame or task bar): the layout invariants hold within the
    whole 1280x720 (nothing off-screen, no label cut, plots readable), and the text is larger than the platform's."""
    from app.widgets.layout_check import layout_problems

    window = workspace_window
    window.resize(1280, 720)
    font_before = QApplication.font().pointSizeF()
    window.start_lesson("lecture", 11)
    panel = window.lesson_panel()
    qtbot.waitUntil(lambda: panel.applied == 11, timeout=20000)
    window.toggle_presenter()
    try:
        window.showNormal()  # the offscreen screen is not 1280x720: check the window at that size
        window.resize(1280, 720)
        qtbot.waitUntil(lambda: window.width() == 1280, timeout=5000)
        assert layout_problems(window, 1280, 720) == []
        assert window.presenter.look.font_size is not None and QApplication.font().pointSizeF() > font_before
    finally:
        window.toggle_presenter()
