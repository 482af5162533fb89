"""Axes whose tick labels read like a textbook figure: plain units, as many digits as the ticks need, decades on logs.

pyqtgraph's ``AxisItem`` rescales an axis by an SI prefix whenever its range is small or large ("z1 (x0.001)" with
ticks 300 ... 800 beside a z2 axis in plain units), prints ``repr``-like labels when the range is tiny (two equal
log-likelihoods padded by 1e-16 gave "-5.0372187504963435") and labels every minor tick of a log axis
("3·10²4·10²5·10²..." run together). ``ReadableAxis`` fixes all three:

- no SI-prefix rescaling, ever (z, x, nats and steps keep their units);
- linear ticks get ``d = max(0, ceil(-log10(spacing)))`` decimals, the fewest that tell neighbouring ticks apart,
  capped at ``MAX_SIGNIFICANT`` significant digits (a finer spacing than that is float noise, not information);
  ``integer=True`` (steps, epochs, K, component k) never ticks between integers;
- log axes label the decades (1, 10, 100, 1000, 10⁴ ...) and leave the minor ticks (2·10ⁿ ... 9·10ⁿ) unlabelled
  unless fewer than two decades are in view; then only 2·10ⁿ and 5·10ⁿ get a label.

Use ``readable_axes(root)`` on a lab (a widget: every plot under it) or a plot (PlotWidget/PlotItem); it is
idempotent, so a lab may call it again for plots it builds later. A new plot may also be built with
``axisItems=readable_axis_items()``.
"""

from __future__ import annotations

from math import ceil, floor, isfinite, log10
from types import MethodType

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QWidget

MAX_SIGNIFICANT = 7
MINUS = "\u2212"  # a typographic minus, as in the lecture's LaTeX
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def decimals_for(values, spacing: float) -> int:
    """Decimals that tell ticks ``spacing`` apart, at most ``MAX_SIGNIFICANT`` significant digits of the largest."""
    if not spacing or not isfinite(spacing) or spacing <= 0:
        return 0
    places = max(0, ceil(-log10(spacing) - 1e-9))
    largest = max((abs(v) for v in values if isfinite(v)), default=0.0)
    if largest > 0:
        places = min(places, max(0, MAX_SIGNIFICANT - 1 - floor(log10(largest))))
    return places


def format_tick(value: float, places: int) -> str:
    """``value`` with ``places`` decimals, a typographic minus and no "-0"."""
    if not isfinite(value):
        return ""
    text = f"{value:.{places}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def decade_label(exponent: int) -> str:
    """10**exponent as a tick label: 1, 10, 100, 1000, then 10⁴, 10⁵ ... (and 10⁻¹ ... below 1)."""
    if 0 <= exponent <= 3:
        return str(10**exponent)
    return "10" + str(exponent).translate(_SUPERSCRIPT)


def tick_text_height(axis: pg.AxisItem) -> float:
    """The height of one tick label of ``axis`` (px)."""
    return QFontMetricsF(axis.style.get("tickFont") or axis.font()).height()


def _spaced_for_text(levels, span: float, size_px: float, min_px: float):
    """Levels whose major spacing leaves ``min_px`` between labels (1-2-5 steps up); finer levels keep their ticks.

    A vertical axis squeezed to 40 px stacked "1.0 0.8 0.6 0.4 0.2 0.0" on top of each other."""
    major, offset = levels[0]
    if span <= 0 or major <= 0:
        return levels
    step = major
    while step * size_px / span < min_px and step < span:
        mantissa = step / 10 ** floor(log10(step) + 1e-9)
        step *= 2.5 if round(mantissa) == 2 else 2
    if step == major:
        return levels
    return [(step, offset)] + [(major, offset)] + [lv for lv in levels[1:] if lv[0] < major]


class ReadableAxis(pg.AxisItem):
    """An ``AxisItem`` without SI-prefix rescaling, with rounded linear ticks and decade-labelled log ticks."""

    integer = False

    def __init__(self, orientation: str, *args, integer: bool = False, **kwargs):
        super().__init__(orientation, *args, **kwargs)
        self.integer = integer
        self.enableAutoSIPrefix(False)

    def tickSpacing(self, minVal: float, maxVal: float, size: float):
        levels = pg.AxisItem.tickSpacing(self, minVal, maxVal, size)  # (also bound to plain AxisItems)
        if levels and self.orientation in ("left", "right") and size > 0:
            levels = _spaced_for_text(levels, abs(maxVal - minVal), size, 1.4 * tick_text_height(self))
        if not self.integer or self.logMode:
            return levels
        kept = [(spacing, offset) for spacing, offset in levels if spacing >= 1]
        return kept or [(1.0, 0.0)]

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return self.logTickStrings(values, scale, spacing)
        scaled = [v * scale for v in values]
        places = 0 if self.integer else decimals_for(scaled, spacing * scale if spacing else 0.0)
        return [format_tick(v, places) for v in scaled]

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        levels = pg.AxisItem.logTickValues(self, minVal, maxVal, size, stdTicks)
        seen: list[float] = []
        out = []
        for spacing, values in levels:  # pyqtgraph repeats the decades among the minor ticks: one label each
            kept = [v for v in values if not any(abs(v - s) < 1e-9 for s in seen)]
            seen.extend(kept)
            out.append((spacing, kept))
        return out

    def logTickStrings(self, values, scale, spacing):
        lo, hi = sorted(self.range)
        decades_in_view = floor(hi + 1e-9) - ceil(lo - 1e-9) + 1
        strings = []
        for v in values:
            exponent = round(v)
            if abs(v - exponent) < 1e-6:
                strings.append(decade_label(exponent))
                continue
            mantissa = round(10 ** (v - floor(v)), 6)
            if decades_in_view < 2 and mantissa in (2.0, 5.0):
                value = mantissa * 10 ** floor(v)
                strings.append(f"{value:g}" if 1e-3 <= value < 1e4 else f"{mantissa:g}·{decade_label(floor(v))}")
            else:
                strings.append("")
        return strings


_READABLE_METHODS = ("tickSpacing", "tickStrings", "logTickValues", "logTickStrings")


def is_readable(axis: pg.AxisItem) -> bool:
    """Whether ``axis`` labels its ticks the ``ReadableAxis`` way."""
    return isinstance(axis, ReadableAxis) or getattr(axis, "_lvm_readable", False)


def make_readable(axis: pg.AxisItem, integer: bool | None = None) -> pg.AxisItem:
    """Give an ``AxisItem`` a PlotItem already built the ``ReadableAxis`` behaviour, in place (keeps its label, links,
    style and place in the layout).

    The three tick methods are bound on the instance: swapping its ``__class__`` instead crashes shiboken when the next
    plot is built, and replacing the axis (``PlotItem.setAxisItems``) would lose its label, log mode and style.
    """
    if not is_readable(axis):
        for name in _READABLE_METHODS:
            setattr(axis, name, MethodType(getattr(ReadableAxis, name), axis))
        axis.integer = False
        axis._lvm_readable = True
    if integer is not None:
        axis.integer = integer
    axis.enableAutoSIPrefix(False)
    axis.picture = None  # redraw the labels with the new strings
    axis.update()
    return axis


def readable_axis_items(integer: tuple[str, ...] = ()) -> dict[str, ReadableAxis]:
    """``axisItems`` for a new PlotWidget / addPlot: four readable axes (``integer`` names the integer ones)."""
    return {side: ReadableAxis(side, integer=side in integer) for side in ("left", "bottom", "right", "top")}


def _axes(root, integer: tuple[str, ...]) -> list[tuple[pg.AxisItem, bool | None]]:
    if isinstance(root, pg.PlotItem) or hasattr(root, "getPlotItem"):
        plot = root if isinstance(root, pg.PlotItem) else root.getPlotItem()
        return [(plot.getAxis(side), True if side in integer else None) for side in ("left", "bottom", "right", "top")]
    if isinstance(root, QWidget):  # every axis shown under it: plots' and colour bars'
        return [
            (item, None)
            for view in root.findChildren(pg.GraphicsView)
            for item in view.scene().items()
            if isinstance(item, pg.AxisItem)
        ]
    raise TypeError(f"readable_axes takes a widget, PlotWidget or PlotItem, not {type(root).__name__}")


def readable_axes(root, integer: tuple[str, ...] = ()) -> int:
    """Make every axis under ``root`` (a widget: all its plots; a PlotWidget or PlotItem) readable; returns how many.

    ``integer`` names sides ("bottom", "left") of a single plot whose ticks stay on integers (steps, epochs, K).
    """
    axes = _axes(root, integer)
    for axis, integral in axes:
        make_readable(axis, integer=integral)
    return len(axes)
