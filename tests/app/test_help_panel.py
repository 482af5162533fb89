"""The help panel can be hidden in every lab (its own Hide button, View -> Help panel, F1) and stays so next time."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton

from app.core.settings import app_settings


def test_hide_button_hides_every_labs_help_and_f1_brings_it_back(workspace_window, qtbot):
    window = workspace_window
    window.set_help_visible(True)  # (whatever an earlier test's window left in this run's settings)
    window.resize(1280, 720)
    window.set_view("mixture")
    mixture = window.lab("mixture")
    qtbot.waitUntil(lambda: mixture.help_panel.isVisible(), timeout=10000)
    plots_width = mixture.help_panel.parentWidget().widget(0).width()
    hide = mixture.help_panel.findChild(QToolButton, "explanation-hide")
    qtbot.mouseClick(hide, Qt.MouseButton.LeftButton)
    assert not mixture.help_panel.isVisible()
    assert not window.help_action.isChecked()
    qtbot.waitUntil(lambda: mixture.help_panel.parentWidget().widget(0).width() > plots_width, timeout=5000)

    window.set_view("inference")  # a lab built after the click starts hidden too
    assert not window.lab("inference").help_panel.isVisible()

    window.help_action.trigger()  # View -> Help panel (F1)
    qtbot.waitUntil(lambda: window.lab("inference").help_panel.isVisible(), timeout=5000)
    assert not window.lab("mixture").help_panel.isHidden()


def test_the_choice_is_remembered(workspace_window, qtbot):
    window = workspace_window
    window.set_help_visible(False)
    window.close()
    assert app_settings().value("help_visible") in (False, "false")
    from app.main_window import MainWindow

    second = MainWindow(window.workspace)
    qtbot.addWidget(second)
    assert second.help_visible is False and not second.help_action.isChecked()
    second.set_help_visible(True)
    second.close()
    assert app_settings().value("help_visible") in (True, "true")
