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

import weakref
from bisect import bisect_left, insort
from math import ceil, floor, hypot, isfinite, log10
from types import MethodType
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPen
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

    def tickValues(self, minVal: float, maxVal: float, size: float):
        """``AxisItem.tickValues`` (pyqtgraph 0.13.7-0.14), the same values without numpy: each level's ticks are
        multiples of its spacing, less those within 1 % of a spacing of a coarser level's (pyqtgraph compares every
        pair with ``numpy.isclose``: 0.33 ms per call, most of it numpy's per-call overhead on a few dozen values)."""
        lo, hi = sorted((minVal, maxVal))
        lo *= self.scale
        hi *= self.scale
        ticks = []
        seen: list[float] = []  # every kept value so far, sorted
        for spacing, offset in self.tickSpacing(lo, hi, size):
            start = (ceil((lo - offset) / spacing) * spacing) + offset
            tolerance = spacing / self.scale * 0.01
            kept = []
            for k in range(int((hi - start) / spacing) + 1):
                value = (float(k) * spacing + start) / self.scale
                at = bisect_left(seen, value - tolerance)
                if at < len(seen) and abs(seen[at] - value) <= tolerance:  # (the nearest at or above value - tol)
                    continue
                kept.append(value)
            for value in kept:
                insort(seen, value)
            ticks.append((spacing / self.scale, kept))
        if self.logMode:
            return self.logTickValues(lo, hi, size, ticks)
        return ticks

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

    def generateDrawSpecs(self, p):
        """``AxisItem.generateDrawSpecs`` (pyqtgraph 0.13.7-0.14), the same specs built with less work.

        A pan regenerates every axis of the plot and its linked plots: 1.75 ms per axis in pyqtgraph's version, four
        per pan step in the Latent lab (``lvm bench gui --profile``, latent-pan-zoom). Here the tick ends are QPointFs
        (not ``pg.Point``, whose Python ``__init__`` was 0.25 s of the 5 s run), each label is measured once per font
        (``QPainter.boundingRect``, cached), and the axis's bounding rectangle is read once instead of per label.
        ``tests/app/test_axes.py`` checks the specs against pyqtgraph's own for every side, explicit ticks included.
        """
        if self.style["tickFont"] is not None:
            p.setFont(self.style["tickFont"])
        bounds = self.mapRectFromParent(self.geometry())
        linked = self.linkedView()
        tick_bounds = (
            bounds if linked is None or self.grid is False else linked.mapRectToItem(self, linked.boundingRect())
        )
        side = self.orientation
        if side == "left":
            span = (QPointF(bounds.right() - 1, bounds.top() - 1), QPointF(bounds.right() - 1, bounds.bottom() + 1))
            tick_start, tick_stop, tick_dir, axis = tick_bounds.right(), bounds.right(), -1, 0
        elif side == "right":
            span = (QPointF(bounds.left() + 1, bounds.top() - 1), QPointF(bounds.left() + 1, bounds.bottom() + 1))
            tick_start, tick_stop, tick_dir, axis = tick_bounds.left(), bounds.left(), 1, 0
        elif side == "top":
            span = (QPointF(bounds.left() - 1, bounds.bottom() - 1), QPointF(bounds.right() + 1, bounds.bottom() - 1))
            tick_start, tick_stop, tick_dir, axis = tick_bounds.bottom(), bounds.bottom(), -1, 1
        elif side == "bottom":
            span = (QPointF(bounds.left() - 1, bounds.top() + 1), QPointF(bounds.right() + 1, bounds.top() + 1))
            tick_start, tick_stop, tick_dir, axis = tick_bounds.top(), bounds.top(), 1, 1
        else:
            raise ValueError("self.orientation must be in {'left', 'right', 'top', 'bottom'}")
        ends = [self.mapToDevice(point) for point in span]
        if None in ends:
            return None
        length_px = hypot(ends[1].x() - ends[0].x(), ends[1].y() - ends[0].y())
        if length_px == 0:
            return None
        twin_ref = getattr(self, "_lvm_twin", None)
        twin = twin_ref() if twin_ref is not None else None
        key = _specs_key(self, p, bounds, tick_bounds, length_px) if twin is not None else None
        if key is not None:
            shared = getattr(twin, "_lvm_specs", None)
            if shared is not None and shared[0] == key:  # the twin drew these very specs: reuse them
                self._updateMaxTextSize(shared[2])
                return shared[1]

        if self._tickLevels is None:
            tick_levels = self.tickValues(self.range[0], self.range[1], length_px)
            tick_strings = None
        else:
            tick_levels = [(None, [value for value, _ in level]) for level in self._tickLevels]
            tick_strings = [[text for _, text in level] for level in self._tickLevels]

        dif = self.range[1] - self.range[0]
        if dif == 0:
            scale, offset = 1, 0
        elif axis == 0:
            scale = -bounds.height() / dif
            offset = self.range[0] * scale - bounds.height()
        else:
            scale = bounds.width() / dif
            offset = self.range[0] * scale
        x_range = [x * scale - offset for x in self.range]
        x_min, x_max = min(x_range), max(x_range)

        positions: list[list[Any]] = []  # (None: a tick outside the axis; pyqtgraph's min/max below as is)
        tick_specs = []
        for i, (_, ticks) in enumerate(tick_levels):
            level: list[Any] = []
            positions.append(level)
            tick_length = self.style["tickLength"] / ((i * 0.5) + 1.0)
            alpha = self.style["tickAlpha"]
            if alpha is None:
                alpha = 255 / (i + 1)
                if self.grid is not False:
                    alpha *= self.grid / 255.0 * min(max(0.05 * length_px / (len(ticks) + 1), 0.0), 1.0)
            elif isinstance(alpha, float):
                alpha = min(255, max(0, int(round(alpha * 255))))
            elif isinstance(alpha, int):
                if alpha > 255 or alpha < 0:
                    raise ValueError("lineAlpha should be [0..255]")
            else:
                raise TypeError("Line Alpha should be of type None, float or int")
            pen = self.tickPen()
            if pen.brush().style() == Qt.BrushStyle.SolidPattern:
                pen = QPen(pen)
                color = QColor(pen.color())
                color.setAlpha(int(alpha))
                pen.setColor(color)
            end = tick_stop + (tick_length * tick_dir if self.grid is False else 0)
            for v in ticks:
                x = v * scale - offset
                if x < x_min or x > x_max:
                    level.append(None)
                    continue
                level.append(x)
                if axis == 0:
                    tick_specs.append((pen, QPointF(tick_start, x), QPointF(end, x)))
                else:
                    tick_specs.append((pen, QPointF(x, tick_start), QPointF(x, end)))

        if self.style["stopAxisAtTick"][0] is True:
            first = min(map(min, positions))
            if axis == 0:
                span[0].setY(max(span[0].y(), first))
            else:
                span[0].setX(max(span[0].x(), first))
        if self.style["stopAxisAtTick"][1] is True:
            last = max(map(max, positions))
            if axis == 0:
                span[1].setY(min(span[1].y(), last))
            else:
                span[1].setX(min(span[1].x(), last))
        axis_spec = (self.pen(), span[0], span[1])

        text_specs: list[tuple[QRectF, object, str]] = []
        if not self.style["showValues"]:
            return axis_spec, tick_specs, text_specs
        text_offset = self.style["tickTextOffset"][axis]
        sizes = _label_sizes(self, p)
        text_sizes: list[tuple[float, float]] = []
        text_size2 = last_text_size2 = 0.0
        clip = self.boundingRect()
        flags = {
            "left": Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            "right": Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            "top": Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
            "bottom": Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
        }[side] | Qt.TextFlag.TextDontClip
        gap = max(0, self.style["tickLength"]) + text_offset
        for i in range(min(len(tick_levels), self.style["maxTextLevel"] + 1)):
            if tick_strings is None:
                spacing, values = tick_levels[i]
                strings = self.tickStrings(values, self.autoSIPrefixScale * self.scale, spacing)
            else:
                strings = tick_strings[i]
            if len(strings) == 0:
                continue
            level_sizes = [None if positions[i][j] is None else sizes(text) for j, text in enumerate(strings)]
            text_sizes.extend(size for size in level_sizes if size is not None)
            if text_sizes:
                along = [h if axis == 0 else w for w, h in text_sizes]
                across = [w if axis == 0 else h for w, h in text_sizes]
                text_size, text_size2 = float(sum(along)), float(max(across))
            else:
                text_size = text_size2 = 0.0
            if i > 0:
                fill = text_size / length_px
                if any(len(text_specs) >= n and fill >= limit for n, limit in self.style["textFillLimits"]):
                    break
            last_text_size2 = text_size2
            for j, text in enumerate(strings):
                size = level_sizes[j]
                if size is None:
                    continue
                x, (width, height) = positions[i][j], size
                if side == "left":
                    rect = QRectF(tick_stop - gap - width, x - height / 2, width, height)
                elif side == "right":
                    rect = QRectF(tick_stop + gap, x - height / 2, width, height)
                elif side == "top":
                    rect = QRectF(x - width / 2.0, tick_stop - gap - height, width, height)
                else:
                    rect = QRectF(x - width / 2.0, tick_stop + gap, width, height)
                if clip & rect != rect:
                    continue
                text_specs.append((rect, flags, text))
        self._updateMaxTextSize(last_text_size2)
        specs = (axis_spec, tick_specs, text_specs)
        if key is not None:
            self._lvm_specs = (key, specs, last_text_size2)
        return specs


def _pen_key(pen: QPen) -> tuple:
    return (pen.color().rgba(), pen.widthF(), int(pen.style().value), int(pen.brush().style().value), pen.isCosmetic())


def _style_value_key(value: Any) -> Any:
    if isinstance(value, QFont):
        return value.key()
    if isinstance(value, QPen):
        return _pen_key(value)
    return repr(value)


def _specs_key(axis: pg.AxisItem, p, bounds: QRectF, tick_bounds: QRectF, length_px: float) -> tuple | None:
    """Everything ``generateDrawSpecs`` reads, as a value: two axes with equal keys get equal specs (None: an axis
    with explicit ticks, which are its own)."""
    if axis._tickLevels is not None:
        return None
    return (
        axis.orientation,
        tuple(axis.range),
        bounds.getRect(),
        tick_bounds.getRect(),
        length_px,
        axis.logMode,
        axis.scale,
        axis.autoSIPrefixScale,
        getattr(axis, "integer", False),
        axis.grid,
        p.font().key(),
        _pen_key(axis.pen()),
        _pen_key(axis.tickPen()),
        tuple((name, _style_value_key(value)) for name, value in sorted(axis.style.items())),
    )


def twin_axes(plot_a, plot_b) -> None:
    """Let the axes on each side of two plots that show the same ranges (linked in x and y, the same size) share their
    tick specifications: a pan regenerates both plots' axes in one paint, and the second reuses the first's (the
    Latent lab's two planes: two of the four axes a pan step regenerates, 0.5 ms each). Each axis still checks that
    everything its specs depend on (range, size, font, pens, style) equals its twin's before reusing them."""
    a = plot_a if isinstance(plot_a, pg.PlotItem) else plot_a.getPlotItem()
    b = plot_b if isinstance(plot_b, pg.PlotItem) else plot_b.getPlotItem()
    for side in ("left", "bottom", "right", "top"):
        axis_a, axis_b = a.getAxis(side), b.getAxis(side)
        axis_a._lvm_twin, axis_b._lvm_twin = weakref.ref(axis_b), weakref.ref(axis_a)  # (no reference cycle)


def _label_sizes(axis: pg.AxisItem, p):
    """``text -> (width, 0.8 height)`` of a tick label as pyqtgraph measures it (``QPainter.boundingRect`` in a 100 px
    square, centred), cached on the axis per font and device resolution."""
    device = p.device()
    key = (p.font().key(), device.logicalDpiX() if device else 0, device.logicalDpiY() if device else 0)
    cache = getattr(axis, "_lvm_label_sizes", None)
    if cache is None or cache[0] != key or len(cache[1]) > 4096:
        cache = (key, {})
        axis._lvm_label_sizes = cache
    known: dict[str, tuple[float, float]] = cache[1]
    box = QRectF(0, 0, 100, 100)

    def size(text: str) -> tuple[float, float]:
        if text not in known:
            br = p.boundingRect(box, Qt.AlignmentFlag.AlignCenter, text)
            known[text] = (br.width(), br.height() * 0.8)
        return known[text]

    return size


_READABLE_METHODS = (
    "tickSpacing",
    "tickValues",
    "tickStrings",
    "logTickValues",
    "logTickStrings",
    "generateDrawSpecs",
)


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
