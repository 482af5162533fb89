"""Colours for components and labels, following the user's palette and theme (``app.core.appearance``).

Everything coloured by component or label takes its colours from here (``component_colours``, ``component_hex``,
``qcolor``) and recolours on ``APPEARANCE.events.colours``. Two palettes:

- ``default``: Tableau 10 followed by its lighter companions (tab20 order);
- ``okabe-ito``: the eight colours of Okabe & Ito (2008), told apart with every common colour-vision deficiency; their
  black is a light grey in the dark theme. Components 8-15 get the same hues darker, 16-23 lighter (the Mixture lab
  also gives each point the marker shape of its most probable component, ``marker_symbol``).

``pen(colour, width)`` is the pen for a plotted line: its width times the appearance's line scale, its colour made
readable on the theme's plot background. ``app.widgets.theme`` restyles existing plots with the same rules.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from app.core.appearance import APPEARANCE, Appearance

_TAB20 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
)
# Okabe & Ito, "Color Universal Design" (2008), ordered so that the first components are the most distinct
OKABE_ITO = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
OKABE_ITO_BLACK_ON_DARK = "#dddddd"
# Marker shapes (pyqtgraph symbol names) for the most probable component: k -> MARKERS[k % len(MARKERS)]
MARKERS = ("o", "s", "t", "d", "+", "x")
PLOT_BACKGROUND = {"light": "#ffffff", "dark": "#1e1f22", "high-contrast": "#ffffff"}
PLOT_FOREGROUND = {"light": "#000000", "dark": "#e6e6e6", "high-contrast": "#000000"}
GUIDE_LINE = "_lvm_guide_line"  # an item with this attribute True is a guide (grid lines): restyles keep its width
MIN_LINE_CONTRAST = 3.0  # a line colour with less contrast than this against a dark plot background is lightened


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(round(min(max(c, 0.0), 1.0) * 255)):02x}" for c in rgb)


def _okabe_ito(dark: bool) -> tuple[str, ...]:
    base = [OKABE_ITO_BLACK_ON_DARK if dark and h == "#000000" else h for h in OKABE_ITO]
    black_dark = "#555555"  # (the darker "black" must still differ from black: a mid grey)
    darker = [black_dark if h == "#000000" else _hex(np.array(_rgb(h)) * 0.6) for h in OKABE_ITO]
    lighter = [_hex(np.array(_rgb(h)) + (1.0 - np.array(_rgb(h))) * 0.55) for h in OKABE_ITO]
    return (*base, *darker, *lighter)


_TABLES: dict[tuple[str, bool], tuple[tuple[str, ...], np.ndarray]] = {}


def palette_hex(appearance: Appearance | None = None) -> tuple[str, ...]:
    """The colours of the palette in use (or of ``appearance``), component k -> [k % len]."""
    return _table(appearance)[0]


def _table(appearance: Appearance | None) -> tuple[tuple[str, ...], np.ndarray]:
    a = appearance or APPEARANCE.current
    key = (a.palette, a.dark)
    if key not in _TABLES:
        hexes = _okabe_ito(a.dark) if a.palette == "okabe-ito" else _TAB20
        rgb = np.array([_rgb(h) for h in hexes], dtype=np.float32)
        rgb.setflags(write=False)
        _TABLES[key] = (tuple(hexes), rgb)
    return _TABLES[key]


# The default palette as an (20, 3) array (what COLOURS always was); component_colours follows the user's choice.
COLOURS = _table(Appearance())[1]


def component_colours(k: int) -> np.ndarray:
    """(k, 3) float32 RGB in [0, 1] of components 0..k-1 in the palette in use."""
    table = _table(None)[1]
    return table[np.arange(k) % len(table)]


def label_colours_rgb(labels: np.ndarray) -> np.ndarray:
    """(N, 3) float32 RGB of integer labels (label k: the colour of component k)."""
    table = _table(None)[1]
    return table[np.asarray(labels, np.int64) % len(table)]


def component_hex(k: int) -> str:
    hexes = _table(None)[0]
    return hexes[k % len(hexes)]


def qcolor(k: int, alpha: int = 255):
    from PySide6.QtGui import QColor

    c = QColor(component_hex(k))
    c.setAlpha(alpha)
    return c


def marker_symbol(k: int) -> str:
    """The marker shape of component k (a pyqtgraph symbol name)."""
    return MARKERS[k % len(MARKERS)]


def connect_while_alive(event, method) -> None:
    """Connect ``method``, a bound method of a Qt object, to an appearance event (``APPEARANCE.events.colours``, ...)
    for as long as the object lives: it is held weakly, and once Qt deleted it (a closed window's lab) the connection
    drops itself instead of calling into a deleted object. (The appearance outlives every window.)"""
    import shiboken6

    target, func = weakref.ref(method.__self__), method.__func__

    def relay(value) -> None:
        obj = target()
        if obj is None or not shiboken6.isValid(obj):
            event.disconnect(relay)
            return
        func(obj, value)

    event.connect(relay)


def follow_colours(method) -> None:
    """Call ``method`` (a bound method of a Qt object: a view) whenever the component colours change."""
    connect_while_alive(APPEARANCE.events.colours, method)


def colour_blind_safe() -> bool:
    return APPEARANCE.current.palette == "okabe-ito"


# -- readable lines -------------------------------------------------------------------------------------------------
def _luminance(r: float, g: float, b: float) -> float:
    """WCAG relative luminance of an sRGB colour (components in [0, 1])."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def contrast_ratio(a, b) -> float:
    """WCAG contrast ratio of two QColors (1: none, 21: black on white)."""
    la = _luminance(a.redF(), a.greenF(), a.blueF())
    lb = _luminance(b.redF(), b.greenF(), b.blueF())
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def readable_colour(colour: Any, appearance: Appearance | None = None, text: bool = False):
    """``colour`` (anything QColor takes) as drawn on the theme's plot background: unchanged in the light theme; in the
    dark theme a colour too dark to see is mirrored in lightness (black -> white, dark grey -> light grey, a dark red
    -> a light red); in high contrast a grey (or any text) becomes black."""
    from PySide6.QtGui import QColor

    a = appearance or APPEARANCE.current
    c = QColor(colour)
    if a.theme == "light" or not c.isValid():
        return c
    if a.theme == "high-contrast":
        if text or c.hslSaturationF() < 0.15:
            return QColor(0, 0, 0, c.alpha())
        return c
    background = QColor(PLOT_BACKGROUND["dark"])
    if contrast_ratio(c, background) >= (4.5 if text else MIN_LINE_CONTRAST):
        return c
    lightness = max(1.0 - c.lightnessF(), 0.6 if text else 0.45)
    return QColor.fromHslF(max(c.hslHueF(), 0.0), c.hslSaturationF(), lightness, c.alphaF())


def _pen_key(p) -> tuple:
    return (p.color().rgba(), round(p.widthF(), 4), int(p.style().value), p.isCosmetic())


# pens made by ``pen`` -> (base colour, base width): ``app.widgets.theme`` restyles a line a view drew with ``pen``
# from its base, not from the already scaled pen (else every theme switch would scale it again)
_MADE: OrderedDict[tuple, tuple[Any, float]] = OrderedDict()
_MADE_LIMIT = 2048


def styled_pen(base, appearance: Appearance | None = None):
    """``base`` (a QPen) as drawn in ``appearance`` (default: the current one): wider by the line scale, readable on
    the plot background. Cosmetic width 0 counts as 1 pixel."""
    from PySide6.QtGui import QPen

    a = appearance or APPEARANCE.current
    out = QPen(base)
    out.setColor(readable_colour(base.color(), a))
    width = base.widthF() or 1.0
    out.setWidthF(width * a.line_scale if a.line_scale != 1.0 else base.widthF())
    return out


def pen(colour: Any, width: float = 1.0, style: Any = None):
    """The pen for a plotted line in the current appearance: ``width`` times the line scale, ``colour`` readable on
    the plot background (``pyqtgraph.mkPen`` arguments otherwise)."""
    import pyqtgraph as pg

    base = pg.mkPen(colour, width=width) if style is None else pg.mkPen(colour, width=width, style=style)
    made = styled_pen(base)
    key = _pen_key(made)
    _MADE[key] = (base.color(), base.widthF())
    _MADE.move_to_end(key)
    if len(_MADE) > _MADE_LIMIT:
        _MADE.popitem(last=False)
    return made


def base_of(p) -> tuple[Any, float] | None:
    """(colour, width) a pen made by ``pen`` was made from; None for any other pen."""
    return _MADE.get(_pen_key(p))
