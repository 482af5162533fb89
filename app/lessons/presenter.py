"""Presenter mode: the app shown to a room from a projector.

Full screen, the high-contrast light theme with larger fonts and thicker lines (``app.widgets.theme``), the help panel
hidden. Keys: Space runs or pauses the lab's main computation, Right/Left go to the next/previous lesson step, R sets
the step (or the lab) up again, F toggles full screen, Escape (or F5) leaves. Leaving restores the window, the
theme and the help panel as they were.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut

PRESENTER_LINE_SCALE = 2.0
PRESENTER_FONT_SIZE = 13  # points: what reads from the back of a room (14 clipped axis titles at 1280x720)


class Presenter:
    def __init__(self, window: Any):
        self.window = window
        self.active = False
        self.look: Any = None  # the appearance presenter mode applied
        self._saved: dict[str, Any] = {}
        keys = {
            "Space": self.run_or_pause,
            "Right": self.next_step,
            "Left": self.previous_step,
            "R": self.reset,
            "F": self.toggle_full_screen,
            "Escape": self.leave,
        }
        self.shortcuts: dict[str, QShortcut] = {}
        for key, slot in keys.items():
            sc = QShortcut(QKeySequence(key), window)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.setEnabled(False)
            sc.activated.connect(slot)
            self.shortcuts[key] = sc

    def toggle(self) -> None:
        self.leave() if self.active else self.enter()

    def enter(self) -> None:
        if self.active:
            return
        w = self.window
        self._saved = {"full_screen": w.isFullScreen(), "help": w.help_visible, "look": _current_look()}
        w.set_help_visible(False)
        w.showFullScreen()
        self.look = _projector_look(w, self._saved["look"])
        for sc in self.shortcuts.values():
            sc.setEnabled(True)
        self.active = True

    def leave(self) -> None:
        if not self.active:
            return
        w = self.window
        for sc in self.shortcuts.values():
            sc.setEnabled(False)
        _apply_look(self._saved["look"])
        if not self._saved["full_screen"]:
            w.showNormal()
        lesson_open = w.lesson_dock is not None and w.lesson_dock.isVisible()
        if not lesson_open:
            w.set_help_visible(self._saved["help"])
        self.active = False
        if getattr(w, "presenter_action", None) is not None:
            w.presenter_action.setChecked(False)

    # -- keys -----------------------------------------------------------------------------------------------------
    def _lesson(self):
        w = self.window
        if w.lesson_dock is None or not w.lesson_dock.isVisible():
            return None
        return w.lesson_panel()

    def run_or_pause(self) -> None:
        w = self.window
        if not w.lab(w.current_view_name()).toggle_run():
            w.statusBar().showMessage("This lab has nothing to run", 3000)

    def next_step(self) -> None:
        panel = self._lesson()
        if panel is not None:
            panel.next()

    def previous_step(self) -> None:
        panel = self._lesson()
        if panel is not None:
            panel.back()

    def reset(self) -> None:
        panel = self._lesson()
        if panel is not None and panel.lesson is not None:
            panel.go(panel.index)

    def toggle_full_screen(self) -> None:
        w = self.window
        w.showNormal() if w.isFullScreen() else w.showFullScreen()


def _current_look() -> Any:
    from app.core.appearance import current_appearance

    return current_appearance()


def _projector_look(window: Any, look: Any) -> Any:
    """The user's palette in the high-contrast theme, lines twice as wide and the largest font (up to
    ``PRESENTER_FONT_SIZE``) at which the window fits a full 1280x720 projector (full screen: no task bar or frame to
    leave room for) or its screen when that is larger; applied."""
    from app.widgets.theme import largest_fitting_font, presenter_appearance

    screen = window.screen().geometry() if window.screen() is not None else None
    budget = (max(1280, screen.width() if screen else 0), max(720, screen.height() if screen else 0))
    wanted = presenter_appearance(look, font_size=PRESENTER_FONT_SIZE, line_scale=PRESENTER_LINE_SCALE)
    return largest_fitting_font(window, wanted, budget)


def _apply_look(look: Any) -> None:
    from app.widgets.theme import apply_appearance

    apply_appearance(None, look)  # (not remembered: the user's own choice stays in the settings)


__all__ = ["Presenter"]
