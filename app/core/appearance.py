"""What the app looks like: theme, component palette, font size and line width, remembered in the settings. Qt-free.

``Appearance`` is a frozen value; ``APPEARANCE`` holds the one applied now and emits its events when it changes
(``app.widgets.theme.apply_appearance`` applies a value to the widgets and sets it here):

- ``changed(appearance)``: anything changed;
- ``colours(appearance)``: the colours of components and labels changed (another palette, or a switch between light
  and dark, which swaps the palette's black): views coloured by component recolour what they show.

The user's choice is stored under ``appearance/*`` (``load_appearance`` / ``save_appearance``); presenter mode applies
another value for a while and restores the stored one after. A stored value that is not valid (another version's
settings, a hand-edited file) falls back to the default, field by field, without an error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from app.core.events import EventEmitter, EventGroup

THEMES = ("light", "dark", "high-contrast")
PALETTES = ("default", "okabe-ito")
THEME_TITLES = {"light": "Light", "dark": "Dark", "high-contrast": "High contrast"}
PALETTE_TITLES = {"default": "Default", "okabe-ito": "Colour-blind safe (Okabe-Ito)"}
# Font sizes in points that may be stored. What the View menu offers is capped by the screen as well: a larger font only
# while the window still fits it (app.widgets.theme.window_fits; on a 1280x720 laptop that is about the platform's size
# plus one point, tests/app/test_appearance.py).
FONT_RANGE = (8, 20)
LINE_SCALE_RANGE = (0.5, 4.0)
SETTINGS_GROUP = "appearance"
_FIELDS = ("theme", "palette", "font_size", "line_scale")


@dataclasses.dataclass(frozen=True)
class Appearance:
    """``font_size``: points, None for the platform's default; ``line_scale``: multiplies the width of plotted lines
    (1 normal; presenter mode uses about 2)."""

    theme: str = "light"
    palette: str = "default"
    font_size: int | None = None
    line_scale: float = 1.0

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def dark(self) -> bool:
        return self.theme == "dark"

    def replace(self, **changes: Any) -> Appearance:
        return dataclasses.replace(self, **changes)

    def with_font_step(self, step: int, platform_size: float) -> Appearance:
        """The font ``step`` points larger (negative: smaller) than now (``platform_size``: what None means), within
        ``FONT_RANGE``."""
        now = self.font_size if self.font_size is not None else round(platform_size)
        return self.replace(font_size=min(max(int(now) + int(step), FONT_RANGE[0]), FONT_RANGE[1]))


def _problems(a: Appearance) -> list[str]:
    out = []
    if a.theme not in THEMES:
        out.append(f"theme {a.theme!r} is not one of {', '.join(THEMES)}")
    if a.palette not in PALETTES:
        out.append(f"palette {a.palette!r} is not one of {', '.join(PALETTES)}")
    if a.font_size is not None and (
        not isinstance(a.font_size, int)
        or isinstance(a.font_size, bool)
        or not FONT_RANGE[0] <= a.font_size <= FONT_RANGE[1]
    ):
        out.append(f"font size {a.font_size!r} is not a whole number of points in {FONT_RANGE[0]}..{FONT_RANGE[1]}")
    scale = a.line_scale
    if (
        not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not math.isfinite(scale)
        or not LINE_SCALE_RANGE[0] <= scale <= LINE_SCALE_RANGE[1]
    ):
        out.append(f"line scale {scale!r} is not in {LINE_SCALE_RANGE[0]}..{LINE_SCALE_RANGE[1]}")
    return out


def _parse(name: str, value: Any) -> Any:
    """A settings value (INI files give strings back) as the field's type; raises ValueError when it is not one."""
    if name in ("theme", "palette"):
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    if name == "font_size":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "default")):
            return None
        number = float(value)
        if number != int(number):
            raise ValueError(value)
        return int(number)
    return float(value)


def appearance_from_mapping(values: dict[str, Any]) -> tuple[Appearance, list[str]]:
    """An ``Appearance`` from stored values (missing ones: the defaults) and what was refused: a field whose value is
    not valid keeps its default."""
    kept: dict[str, Any] = {}
    problems: list[str] = []
    for name in _FIELDS:
        if name not in values:
            continue
        try:
            value = _parse(name, values[name])
            Appearance(**{name: value})  # valid on its own?
        except (TypeError, ValueError, OverflowError):
            problems.append(f"{name} = {values[name]!r} is not valid; the default is used")
            continue
        kept[name] = value
    return Appearance(**kept), problems


def load_appearance(settings: Any = None) -> Appearance:
    """The user's remembered appearance (``settings``: a QSettings; default: the app's). Bad values fall back to the
    defaults (logged, not raised)."""
    if settings is None:
        from app.core.settings import app_settings

        settings = app_settings()
    values = {}
    for name in _FIELDS:
        key = f"{SETTINGS_GROUP}/{name}"
        if settings.contains(key):
            values[name] = settings.value(key)
    appearance, problems = appearance_from_mapping(values)
    if problems:
        import logging

        for problem in problems:
            logging.getLogger(__name__).warning("stored appearance: %s", problem)
    return appearance


def save_appearance(appearance: Appearance, settings: Any = None) -> None:
    """Remember ``appearance`` as the user's choice (on a menu choice, not while the user works on something)."""
    if settings is None:
        from app.core.settings import app_settings

        settings = app_settings()
    for name in _FIELDS:
        value = getattr(appearance, name)
        key = f"{SETTINGS_GROUP}/{name}"
        if value is None:
            settings.remove(key)
        else:
            settings.setValue(key, value)
    settings.sync()


class AppearanceEvents(EventGroup):
    changed: EventEmitter
    colours: EventEmitter


class AppearanceHolder:
    """The appearance applied now, evented. Views read ``current``; only ``app.widgets.theme`` should ``set`` it (it
    also restyles the widgets)."""

    def __init__(self) -> None:
        self.events = AppearanceEvents()
        self._current = Appearance()

    @property
    def current(self) -> Appearance:
        return self._current

    def set(self, appearance: Appearance) -> bool:
        """Make ``appearance`` current; True when it differs (then ``colours`` if they changed, and ``changed``)."""
        if not isinstance(appearance, Appearance):
            raise TypeError(f"an Appearance, not {type(appearance).__name__}")
        before = self._current
        if appearance == before:
            return False
        self._current = appearance
        if (appearance.palette, appearance.dark) != (before.palette, before.dark):
            self.events.colours.emit(appearance)
        self.events.changed.emit(appearance)
        return True


APPEARANCE = AppearanceHolder()


def current_appearance() -> Appearance:
    return APPEARANCE.current
