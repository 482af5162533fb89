"""Applying an ``Appearance`` (``app.core.appearance``) to the running app, and the View > Appearance menu.

``apply_appearance(app, appearance)`` sets, in this order:

1. the Qt style and palette: the platform's for ``light``; a dark palette for ``dark``; black on white with a dark
   blue highlight and a 3-pixel focus frame (``_FocusFrameStyle``) for ``high-contrast``;
2. the application font (``font_size`` points, None: the platform's) and every font a widget set for itself (a title
   at 1.25 times the font stays 1.25 times it);
3. pyqtgraph's defaults for new plots, and every plot already shown (``restyle``): a white background becomes the
   theme's, axis pens, tick and label fonts, titles, legends and text items follow the theme and font, and lines are
   drawn ``line_scale`` times wider with colours readable on the background (``app.widgets.palette.styled_pen``);
   thin guides (grid lines) keep their width;
4. ``APPEARANCE.set(appearance)``: views coloured by component recolour (``APPEARANCE.events.colours``).

Every object restyled remembers what it looked like before (its *base*), so applying one appearance after another in
any order (presenter mode's and then the user's again) gives what the second alone gives. A view that later sets a pen
itself with ``palette.pen`` gets the current appearance's pen; the next restyle recognises it.

pyqtgraph is not imported here before something else imported it: the window paints first, the labs (built later)
are restyled by ``restyle_new_widget``, which the main window calls for each lab it builds.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QFont, QKeySequence, QPalette, QPen
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QMenu, QProxyStyle, QStyle, QStyleFactory, QWidget

from app.core.appearance import (
    APPEARANCE,
    FONT_RANGE,
    PALETTE_TITLES,
    PALETTES,
    THEME_TITLES,
    THEMES,
    Appearance,
    load_appearance,
    save_appearance,
)
from app.widgets.palette import (
    GUIDE_LINE,
    PLOT_BACKGROUND,
    PLOT_FOREGROUND,
    base_of,
    connect_while_alive,
    readable_colour,
    styled_pen,
)

HIGH_CONTRAST_FOCUS = "#0000c0"
FOCUS_WIDTH = 3
_RECORD = "_lvm_theme"  # attribute of a restyled pyqtgraph item: {what: (base, applied)}


class _Platform:
    """What the platform gave before the first appearance was applied (restored by ``light`` and font None)."""

    def __init__(self, app: QApplication) -> None:
        self.font = QFont(app.font())
        self.palette = QPalette(app.palette())
        self.style_name = app.style().name()
        self.pg_options: dict[str, Any] | None = None

    @property
    def points(self) -> float:
        size = self.font.pointSizeF()
        return size if size > 0 else 9.0


_platform: _Platform | None = None
_style: QStyle | None = None  # the focus style we installed (kept referenced: QApplication owns it)
_applied: Appearance | None = None  # None: nothing applied yet (the platform's look)


def _platform_of(app: QApplication) -> _Platform:
    global _platform
    if _platform is None:
        _platform = _Platform(app)
    return _platform


def platform_font_size() -> float:
    """The platform's font size in points (what ``font_size=None`` means)."""
    app = QApplication.instance()
    return _platform_of(app).points if isinstance(app, QApplication) else 9.0


def font_points(appearance: Appearance) -> float:
    return float(appearance.font_size) if appearance.font_size is not None else platform_font_size()


# -- Qt palette and style ---------------------------------------------------------------------------------------------
def _qpalette(theme: str, platform: _Platform) -> QPalette:
    if theme == "light":
        return QPalette(platform.palette)
    R = QPalette.ColorRole
    G = QPalette.ColorGroup
    if theme == "dark":
        roles = {
            R.Window: "#2b2d30",
            R.WindowText: "#e6e6e6",
            R.Base: "#1e1f22",
            R.AlternateBase: "#2b2d30",
            R.ToolTipBase: "#3c3f41",
            R.ToolTipText: "#e6e6e6",
            R.PlaceholderText: "#9a9a9a",
            R.Text: "#e6e6e6",
            R.Button: "#3c3f41",
            R.ButtonText: "#e6e6e6",
            R.BrightText: "#ff6b6b",
            R.Light: "#55585c",
            R.Midlight: "#46494c",
            R.Mid: "#313336",
            R.Dark: "#1b1c1e",
            R.Shadow: "#0a0a0a",
            R.Highlight: "#3574f0",
            R.HighlightedText: "#ffffff",
            R.Link: "#6cb6ff",
            R.LinkVisited: "#c39bff",
        }
        disabled = "#808080"
    else:  # high contrast: black on white
        roles = {
            R.Window: "#ffffff",
            R.WindowText: "#000000",
            R.Base: "#ffffff",
            R.AlternateBase: "#f0f0f0",
            R.ToolTipBase: "#ffffff",
            R.ToolTipText: "#000000",
            R.PlaceholderText: "#4d4d4d",
            R.Text: "#000000",
            R.Button: "#ffffff",
            R.ButtonText: "#000000",
            R.BrightText: "#c00000",
            R.Light: "#ffffff",
            R.Midlight: "#ffffff",
            R.Mid: "#000000",
            R.Dark: "#000000",
            R.Shadow: "#000000",
            R.Highlight: HIGH_CONTRAST_FOCUS,
            R.HighlightedText: "#ffffff",
            R.Link: "#0000ee",
            R.LinkVisited: "#551a8b",
        }
        disabled = "#595959"  # 7:1 on white
    pal = QPalette()
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (R.WindowText, R.Text, R.ButtonText):
        pal.setColor(G.Disabled, role, QColor(disabled))
    return pal


class _FocusFrameStyle(QProxyStyle):
    """The platform style, plus a ``FOCUS_WIDTH``-pixel frame around the widget that has the keyboard focus."""

    _FRAMED_CONTROLS = (QStyle.ControlElement.CE_PushButton,)
    _FRAMED_COMPLEX = (
        QStyle.ComplexControl.CC_ComboBox,
        QStyle.ComplexControl.CC_SpinBox,
        QStyle.ComplexControl.CC_Slider,
    )

    def _frame(self, painter, rect) -> None:
        painter.save()
        painter.setPen(QPen(QColor(HIGH_CONTRAST_FOCUS), FOCUS_WIDTH))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        half = FOCUS_WIDTH // 2
        painter.drawRect(rect.adjusted(half, half, -half - 1, -half - 1))
        painter.restore()

    def drawPrimitive(self, element, option, painter, widget=None) -> None:
        super().drawPrimitive(element, option, painter, widget)
        if element == QStyle.PrimitiveElement.PE_FrameFocusRect or (
            element == QStyle.PrimitiveElement.PE_FrameLineEdit and option.state & QStyle.StateFlag.State_HasFocus
        ):
            self._frame(painter, option.rect)

    def drawControl(self, element, option, painter, widget=None) -> None:
        super().drawControl(element, option, painter, widget)
        if element in self._FRAMED_CONTROLS and option.state & QStyle.StateFlag.State_HasFocus:
            self._frame(painter, option.rect)

    def drawComplexControl(self, control, option, painter, widget=None) -> None:
        super().drawComplexControl(control, option, painter, widget)
        if control in self._FRAMED_COMPLEX and option.state & QStyle.StateFlag.State_HasFocus:
            self._frame(painter, option.rect)


def _apply_style(app: QApplication, theme: str, platform: _Platform) -> None:
    global _style
    want_focus = theme == "high-contrast"
    if want_focus and _style is None:
        base = QStyleFactory.create(platform.style_name) or QStyleFactory.create("fusion")
        style = _FocusFrameStyle(base)  # (owns its base style)
        app.setStyle(style)  # (QApplication owns it and deletes it when another style is set)
        _style = style
    elif not want_focus and _style is not None:
        restored = QStyleFactory.create(platform.style_name)
        if restored is not None:
            app.setStyle(restored)
        _style = None


# -- the whole app -------------------------------------------------------------------------------------------------
def apply_appearance(app: QApplication | None, appearance: Appearance) -> None:
    """Make the app look as ``appearance`` says (see the module docstring); applying it again changes nothing."""
    global _applied, _ever_restyled
    app = app or QApplication.instance()  # type: ignore[assignment]
    if not isinstance(app, QApplication):
        raise RuntimeError("apply_appearance needs a QApplication")
    platform = _platform_of(app)
    previous = APPEARANCE.current
    if _applied is None and appearance == Appearance():
        _applied = appearance  # the platform's look already: nothing to change (start-up stays as fast as it was)
        APPEARANCE.set(appearance)
        return
    if _applied is None or _applied.theme != appearance.theme:
        _apply_style(app, appearance.theme, platform)
        app.setPalette(_qpalette(appearance.theme, platform))
    if _applied is None or font_points(_applied) != font_points(appearance):
        font = QFont(platform.font)
        font.setPointSizeF(font_points(appearance))
        app.setFont(font)
    _applied = appearance
    _ever_restyled = _ever_restyled or appearance != Appearance()
    context = _Context(appearance, previous)
    _configure_pyqtgraph(appearance, platform)
    for top in app.topLevelWidgets():
        _restyle_widgets(top, context)
    APPEARANCE.set(appearance)


def restyle_new_widget(widget: QWidget) -> None:
    """Style a widget built after the last ``apply_appearance`` (a lab built on first use) as the current appearance
    says; nothing is done while no appearance but the platform's was ever applied."""
    if not _ever_restyled:
        return
    app = QApplication.instance()
    if isinstance(app, QApplication):
        _configure_pyqtgraph(APPEARANCE.current, _platform_of(app))
    current = APPEARANCE.current
    _restyle_widgets(widget, _Context(current, current))


_ever_restyled = False  # a non-default appearance was applied: restyled things carry records from now on


def user_appearance() -> Appearance:
    """The user's remembered appearance (the settings)."""
    return load_appearance()


def choose(**changes: Any) -> Appearance:
    """The user chose something (the View menu): change the remembered appearance, remember it, apply it."""
    appearance = user_appearance().replace(**changes)
    save_appearance(appearance)
    apply_appearance(None, appearance)
    return appearance


def restore_user_appearance() -> Appearance:
    """Apply the remembered appearance again (after presenter mode, say)."""
    appearance = user_appearance()
    apply_appearance(None, appearance)
    return appearance


def presenter_appearance(user: Appearance | None = None, font_size: int = 14, line_scale: float = 2.0):
    """What presenter mode shows: the user's palette, in high contrast, a large font and lines twice as wide (see
    ``largest_fitting_font`` for a font that keeps the window on its screen)."""
    user = user or user_appearance()
    return user.replace(theme="high-contrast", font_size=font_size, line_scale=line_scale)


def window_budget(window: QWidget) -> tuple[int, int]:
    """The largest minimum size ``window`` may have: what a 1280x720 laptop leaves (``app.widgets.layout_check``), or
    on a screen larger both ways its available area less a frame and a task bar."""
    from app.widgets.layout_check import MAX_MIN_HEIGHT, MAX_MIN_WIDTH

    screen = window.screen()
    area = screen.availableGeometry() if screen is not None else None
    if area is None or area.width() - 80 <= MAX_MIN_WIDTH or area.height() - 70 <= MAX_MIN_HEIGHT:
        return MAX_MIN_WIDTH, MAX_MIN_HEIGHT
    return area.width() - 80, area.height() - 70


def window_fits(window: QWidget, budget: tuple[int, int] | None = None) -> bool:
    """Whether ``window`` (its labs as built now) keeps the layout invariants of ``app.widgets.layout_check`` within
    ``budget`` (largest minimum width, height; default ``window_budget``): it can be made small enough, no label is cut
    off, no plot squeezed. Qt posts a new font to the widgets, and plot axes size their tick labels as they paint: the
    posted events (and the layouts they ask for) are delivered and the window painted (off screen) first."""
    from app.widgets.layout_check import layout_problems

    settle_layout(window)
    return not layout_problems(window, *(budget or window_budget(window)))


def settle_layout(window: QWidget) -> None:
    """Deliver the posted events (a new font, the layouts they ask for) and paint ``window`` off screen, twice: plot
    axes measure their tick labels as they paint, then ask for a new layout."""
    for _ in range(2):
        QApplication.sendPostedEvents()
        window.grab()
    QApplication.sendPostedEvents()


def largest_fitting_font(window: QWidget, appearance: Appearance, budget: tuple[int, int] | None = None) -> Appearance:
    """``appearance`` with the largest font, at most its own, at which ``window`` still fits ``budget`` (see
    ``window_fits``; tried by applying each size, largest first; what is applied at the end is the answer). The
    platform's size at least."""
    floor = round(platform_font_size())
    size = font_points(appearance)
    while True:
        candidate = appearance.replace(font_size=int(size)) if size > floor else appearance.replace(font_size=None)
        apply_appearance(None, candidate)
        if size <= floor or window_fits(window, budget):
            return candidate
        size -= 1


# -- pyqtgraph --------------------------------------------------------------------------------------------------------
def _configure_pyqtgraph(appearance: Appearance, platform: _Platform) -> None:
    """pyqtgraph's defaults for plots built from now on (only where pyqtgraph is loaded already)."""
    pg = sys.modules.get("pyqtgraph")
    if pg is None:
        return
    if platform.pg_options is None:
        platform.pg_options = {k: pg.getConfigOption(k) for k in ("background", "foreground")}
    if appearance.theme == "light":
        pg.setConfigOptions(**platform.pg_options)
    else:
        pg.setConfigOptions(
            background=PLOT_BACKGROUND[appearance.theme], foreground=_axis_colour(appearance) or PLOT_FOREGROUND["dark"]
        )


def _axis_colour(appearance: Appearance) -> str | None:
    return {"light": None, "dark": "#c8c8c8", "high-contrast": "#000000"}[appearance.theme]


class _Context:
    """One restyle: the appearance to show and the one in which not yet restyled things were built."""

    def __init__(self, appearance: Appearance, previous: Appearance) -> None:
        self.appearance = appearance
        self.ratio = font_points(appearance) / platform_font_size()
        self.previous_ratio = font_points(previous) / platform_font_size()
        self.light = appearance.theme == "light"


def _records(obj) -> dict:
    rec = getattr(obj, _RECORD, None)
    if rec is None:
        rec = {}
        setattr(obj, _RECORD, rec)
    return rec


def _restyle(obj, what: str, current, derive_base: Callable, make: Callable, assign: Callable, read: Callable) -> None:
    """Restyle one property: its base is what we recorded when ``current`` is what we set last time, else
    ``derive_base(current)`` (someone set it since); ``assign(make(base))``; record (base, what it reads back)."""
    rec = _records(obj)
    if what in rec and _same(rec[what][1], current):
        base = rec[what][0]
    else:
        base = derive_base(current)
    value = make(base)
    if not _same(value, current):
        assign(value)
    rec[what] = (base, read())


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except TypeError:
        return a is b


def _restyle_widgets(root: QWidget, ctx: _Context) -> None:
    widgets = [root, *root.findChildren(QWidget)]
    for w in widgets:
        if w.testAttribute(Qt.WidgetAttribute.WA_SetFont):
            _restyle_widget_font(w, ctx)
        if w.styleSheet():
            _restyle_sheet(w, ctx)
        if isinstance(w, QLabel) and 0 < w.minimumWidth() == w.maximumWidth():
            _restyle_label_width(w, ctx)
    pg = sys.modules.get("pyqtgraph")
    if pg is None:
        return
    for view in [w for w in widgets if isinstance(w, pg.GraphicsView)]:
        _restyle_view(pg, view, ctx)


def _restyle_widget_font(w: QWidget, ctx: _Context) -> None:
    """A font a widget set for itself (relative to the app's, as the labs do) scales with the app's font."""
    size = w.font().pointSizeF()
    if size <= 0:
        return
    set_before = w.property("_lvm_font_set")
    base = w.property("_lvm_font_base")
    if base is None or set_before is None or abs(float(set_before) - size) > 1e-6:
        base = size / ctx.previous_ratio
    new = round(float(base) * ctx.ratio, 2)
    if abs(new - size) > 1e-6:
        font = QFont(w.font())
        font.setPointSizeF(new)
        w.setFont(font)
    w.setProperty("_lvm_font_base", float(base))
    w.setProperty("_lvm_font_set", w.font().pointSizeF())


def _restyle_label_width(label: QLabel, ctx: _Context) -> None:
    """A label of fixed width reserves room for a text that changes ("24 steps/s", measured in the font of the time):
    the room grows with the font."""
    width = label.minimumWidth()
    set_before = label.property("_lvm_width_set")
    base = label.property("_lvm_width_base")
    if base is None or set_before != width:
        base = width / ctx.previous_ratio
    new = int(round(float(base) * ctx.ratio))
    if new != width:
        label.setFixedWidth(new)
    label.setProperty("_lvm_width_base", float(base))
    label.setProperty("_lvm_width_set", label.minimumWidth())


_SHEET_COLOUR = re.compile(r"(?<![-\w])(color|background|background-color)\s*:\s*(#[0-9a-fA-F]{3,8})")


def _restyle_sheet(w: QWidget, ctx: _Context) -> None:
    """Hex colours in a widget's style sheet (a grey note, a light card) made readable in the theme."""
    sheet = w.styleSheet()
    set_before = w.property("_lvm_sheet_set")
    base = w.property("_lvm_sheet_base")
    if base is None or set_before != sheet:
        base = sheet
    if not _SHEET_COLOUR.search(base):
        return

    def swap(m: re.Match) -> str:
        prop, colour = m.group(1), QColor(m.group(2))
        if ctx.light:
            return m.group(0)
        if prop == "color":
            return f"{prop}: {readable_colour(colour, ctx.appearance, text=True).name()}"
        if ctx.appearance.theme == "high-contrast":
            return f"{prop}: #ffffff"
        dark = QColor.fromHslF(
            max(colour.hslHueF(), 0.0), colour.hslSaturationF(), min(1.0 - colour.lightnessF(), 0.25)
        )
        return f"{prop}: {dark.name()}"

    new = _SHEET_COLOUR.sub(swap, base)
    if new != sheet:
        w.setStyleSheet(new)
    w.setProperty("_lvm_sheet_base", base)
    w.setProperty("_lvm_sheet_set", w.styleSheet())


def _is_white(value) -> bool:
    if value is None:
        return False
    try:
        import pyqtgraph as pg

        c = pg.mkColor(value)
    except Exception:  # noqa: BLE001 - not a colour pyqtgraph knows: not the plot background we theme
        return False
    return c.alpha() == 255 and min(c.red(), c.green(), c.blue()) >= 248


def _restyle_view(pg, view, ctx: _Context) -> None:
    a = ctx.appearance

    def background(base):
        themeable = base == "default" or _is_white(base)
        return PLOT_BACKGROUND[a.theme] if themeable and not ctx.light else base

    _restyle(
        view,
        "background",
        getattr(view, "_background", "default"),
        lambda cur: cur,
        background,
        view.setBackground,
        lambda: getattr(view, "_background", "default"),
    )
    scene = view.scene()
    if scene is None:
        return
    items = scene.items()
    # a line drawn over a heatmap (a shown ImageItem with a colour map, maybe not computed yet) keeps its colour: it
    # was chosen against the map's colours, which the theme does not change
    over_maps = {
        id(item.getViewBox())
        for item in items
        if isinstance(item, pg.ImageItem)
        and item.isVisible()
        and item.opacity() > 0.5
        and getattr(item, "lut", None) is not None
    }
    kept = _Context(ctx.appearance.replace(theme="light"), ctx.appearance)
    kept.ratio, kept.previous_ratio = ctx.ratio, ctx.previous_ratio

    def line_context(item) -> _Context:
        return kept if over_maps and id(item.getViewBox()) in over_maps else ctx

    for item in items:
        if isinstance(item, pg.AxisItem):
            _restyle_axis(item, ctx)
        elif isinstance(item, pg.PlotDataItem):
            if item.opts.get("pen") is not None:
                _restyle_line(item, lambda i=item: i.opts.get("pen"), item.setPen, line_context(item))
        elif isinstance(item, pg.PlotCurveItem):
            if not isinstance(item.parentItem(), pg.PlotDataItem):
                _restyle_line(item, lambda i=item: i.opts.get("pen"), item.setPen, line_context(item))
        elif isinstance(item, pg.InfiniteLine):
            _restyle_line(item, lambda i=item: i.pen, item.setPen, line_context(item))
        elif isinstance(item, pg.ScatterPlotItem):
            if item.opts.get("pen") is not None:
                _restyle_line(item, lambda i=item: i.opts.get("pen"), item.setPen, line_context(item), scale=False)
        elif isinstance(item, pg.LabelItem):
            _restyle_label(item, ctx)
        elif isinstance(item, pg.TextItem):
            _restyle_text_item(item, ctx)
        elif isinstance(item, pg.LegendItem):
            _restyle_legend(pg, item, ctx)


def _forget_tick_text_space(axis) -> None:
    """A new tick font: the axis measures its tick labels' space anew at its next paint. (pyqtgraph keeps the widest
    it has seen, shrinking it only by more than 10 px: after a larger font was tried and taken back, every axis kept
    up to 10 px of the larger one's, and a lab that fitted at a size no longer did at the same size.)"""
    axis.textWidth, axis.textHeight = 30, 18  # (pyqtgraph's own starting sizes)
    if axis.orientation in ("left", "right"):
        axis._updateWidth()
    else:
        axis._updateHeight()
    axis.picture = None
    axis.update()


def _pen_base(current: QPen) -> QPen:
    made = base_of(current)
    if made is None:
        return QPen(current)
    base = QPen(current)
    base.setColor(made[0])
    base.setWidthF(made[1])
    return base


def _restyle_line(item, read, assign, ctx: _Context, scale: bool = True) -> None:
    """A plotted line: ``line_scale`` times wider (not guides, not markers), its colour readable on the background."""
    guide = getattr(item, GUIDE_LINE, False)
    a = ctx.appearance if scale and not guide else ctx.appearance.replace(line_scale=1.0)

    def make(base: QPen) -> QPen:
        if not guide:
            return styled_pen(base, a)
        out = QPen(base)
        if ctx.appearance.theme == "dark":  # as light on the dark background as it was dark on white
            c, bg = QColor(base.color()), QColor(PLOT_BACKGROUND["dark"])
            darkness = 1.0 - c.lightnessF()
            c.setRgbF(*(min(b + 1.3 * darkness * (1.0 - b), 1.0) for b in (bg.redF(), bg.greenF(), bg.blueF())))
            out.setColor(c)
        return out

    _restyle(item, "pen", read(), _pen_base, make, assign, read)


def _restyle_axis(axis, ctx: _Context) -> None:
    a = ctx.appearance
    colour = _axis_colour(a)

    default = _platform.pg_options.get("foreground") if _platform and _platform.pg_options else None

    def make_pen(base):
        if base is None:
            return None if colour is None else QPen(QColor(colour))
        out = QPen(base)
        if colour is not None and default is not None and base.color() == _mk_colour(default):
            out.setColor(QColor(colour))  # pyqtgraph's default grey: the theme's axis colour
        else:
            out.setColor(readable_colour(base.color(), a, text=True))
        return out

    def assign_pen(pen) -> None:
        if pen is None:
            axis._pen = None
            axis.picture = None
            axis.update()
        else:
            axis.setPen(pen)

    def assign_text(pen) -> None:
        if pen is None:
            axis._textPen = None
            axis.labelStyle.pop("color", None)
            axis._updateLabel()
        else:
            axis.setTextPen(pen)

    _restyle(axis, "pen", axis._pen, lambda c: c, make_pen, assign_pen, lambda: axis._pen)
    _restyle(axis, "text", axis._textPen, lambda c: c, make_pen, assign_text, lambda: axis._textPen)
    if axis._textPen is None and axis._pen is not None:  # (setPen gives the label its colour)
        axis.labelStyle.pop("color", None)
        axis._updateLabel()

    # fonts: the tick labels and the axis title follow the application font
    app_font = QApplication.font()

    def make_tick_font(base):
        if base is None and ctx.ratio == 1.0:
            return None
        font = QFont(base if base is not None else app_font)
        if base is None:
            font.setPointSizeF(font_points(a))
        else:
            font.setPointSizeF(max(base.pointSizeF() * ctx.ratio, 1.0))
        return font

    def derive_font(current):
        if current is None:
            return None
        base = QFont(current)
        base.setPointSizeF(current.pointSizeF() / ctx.previous_ratio)
        return base

    tick_points = QFont(axis.style.get("tickFont") or app_font).pointSizeF()
    _restyle(
        axis,
        "tick_font",
        axis.style.get("tickFont"),
        derive_font,
        make_tick_font,
        lambda f: axis.setStyle(tickFont=f),
        lambda: axis.style.get("tickFont"),
    )
    if axis.style.get("autoExpandTextSpace", True) and QFont(axis.style.get("tickFont") or app_font).pointSizeF() != (
        tick_points
    ):
        _forget_tick_text_space(axis)
    label_font = QFont(axis.label.font())
    if abs(label_font.pointSizeF() - font_points(a)) > 1e-6:
        label_font.setPointSizeF(font_points(a))
        axis.label.setFont(label_font)
        axis._updateLabel()
    if not axis.style.get("autoExpandTextSpace", True):  # a steady tick column (steady_plots): as wide as the font
        width = axis.style.get("tickTextWidth")
        if isinstance(width, (int, float)):
            _restyle(
                axis,
                "tick_width",
                width,
                lambda cur: cur / ctx.previous_ratio,
                lambda base: int(round(base * ctx.ratio)),
                lambda w: axis.setStyle(tickTextWidth=w),
                lambda: axis.style.get("tickTextWidth"),
            )


def _size_pt(size) -> float | None:
    if isinstance(size, str) and size.strip().endswith("pt"):
        try:
            return float(size.strip()[:-2])
        except ValueError:
            return None
    return None


def _mk_colour(value) -> QColor:
    """Any colour pyqtgraph takes ("k", "#222", (r, g, b), a QColor) as a QColor."""
    import pyqtgraph as pg

    return QColor(pg.mkColor(value))


def _restyle_label(label, ctx: _Context) -> None:
    """A LabelItem (a plot's title, a legend entry, a caption): its size scales with the font, its colour readable."""
    a = ctx.appearance
    current = (label.opts.get("size"), label.opts.get("color"))

    def make(base):
        size, colour = base
        pt = _size_pt(size)
        if pt is not None and ctx.ratio != 1.0:
            size = f"{pt * ctx.ratio:.3g}pt"
        elif pt is None and ctx.ratio != 1.0:
            size = f"{font_points(a):.3g}pt"
        if colour is not None and not ctx.light:
            colour = readable_colour(_mk_colour(colour), a, text=True).name()
        elif colour is None and not ctx.light:
            colour = _axis_colour(a)
        return (size, colour)

    def assign(value) -> None:
        size, colour = value
        if size is None:
            label.opts.pop("size", None)
        else:
            label.opts["size"] = size
        label.opts["color"] = colour
        label.setText(label.text)

    _restyle(
        label, "text", current, lambda c: c, make, assign, lambda: (label.opts.get("size"), label.opts.get("color"))
    )


def _restyle_text_item(item, ctx: _Context) -> None:
    a = ctx.appearance

    def make_colour(base):
        return QColor(base) if ctx.light else readable_colour(base, a, text=True)

    _restyle(item, "colour", QColor(item.color), QColor, make_colour, item.setColor, lambda: QColor(item.color))
    font = item.textItem.font()
    if font.pointSizeF() > 0:

        def make_font(base: float) -> float:
            return round(base * ctx.ratio, 2)

        def assign_font(size: float) -> None:
            f = QFont(item.textItem.font())
            f.setPointSizeF(size)
            item.setFont(f)

        _restyle(
            item,
            "font",
            font.pointSizeF(),
            lambda cur: cur / ctx.previous_ratio,
            make_font,
            assign_font,
            lambda: item.textItem.font().pointSizeF(),
        )


def _restyle_legend(pg, legend, ctx: _Context) -> None:
    """A legend's box: in the dark theme a dark box under its (light) text, whatever the plot shows beneath (an opaque
    white heatmap, say)."""
    a = ctx.appearance

    def read():
        brush = legend.opts.get("brush")
        if brush is None:
            return None
        brush = pg.mkBrush(brush)
        return None if brush.style() == Qt.BrushStyle.NoBrush else QColor(brush.color())

    def make(base):
        if a.theme != "dark" or (base is not None and base.alpha() > 0 and base.lightness() < 128):
            return base
        c = QColor(PLOT_BACKGROUND["dark"])
        c.setAlpha(210)
        return c

    def assign(colour) -> None:
        legend.setBrush(pg.mkBrush(colour))  # (None: no brush)

    _restyle(legend, "brush", read(), lambda c: c, make, assign, read)


# -- the View > Appearance menu ---------------------------------------------------------------------------------------
class AppearanceMenu(QMenu):
    """View > Appearance: Theme, Palette, Font size. Every choice is remembered (``choose``) and applied at once."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("&Appearance", parent)
        self.refused_font: int | None = None  # the size the last "Larger" refused (the window would not fit)
        self.theme_actions: dict[str, QAction] = {}
        self.palette_actions: dict[str, QAction] = {}
        themes = self.addMenu("Theme")
        group = QActionGroup(self)
        for name in THEMES:
            act = self._checkable(themes, group, THEME_TITLES[name], partial(choose, theme=name))
            self.theme_actions[name] = act
        palettes = self.addMenu("Palette")
        group = QActionGroup(self)
        for name in PALETTES:
            act = self._checkable(palettes, group, PALETTE_TITLES[name], partial(choose, palette=name))
            act.setToolTip("colours for components and labels")
            self.palette_actions[name] = act
        fonts = self.addMenu("Font size")
        self.larger = self._plain(fonts, "Larger", lambda: self._font_step(+1), ("Ctrl+=", "Ctrl++"))
        self.smaller = self._plain(fonts, "Smaller", lambda: self._font_step(-1), ("Ctrl+-",))
        self.reset_font = self._plain(fonts, "Reset", lambda: choose(font_size=None), ("Ctrl+0",))
        self.aboutToShow.connect(self.sync)
        connect_while_alive(APPEARANCE.events.changed, self._on_changed)
        self.sync()

    def _checkable(self, menu: QMenu, group: QActionGroup, text: str, slot: Callable[[], Any]) -> QAction:
        act = QAction(text, self)
        act.setCheckable(True)
        act.triggered.connect(lambda _checked=False: slot())
        group.addAction(act)
        menu.addAction(act)
        return act

    def _plain(self, menu: QMenu, text: str, slot: Callable[[], Any], keys: tuple[str, ...]) -> QAction:
        act = QAction(text, self)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.triggered.connect(lambda _checked=False: slot())
        menu.addAction(act)
        return act

    def _font_step(self, step: int) -> None:
        """One point larger or smaller; larger only while the window still fits its screen (else a message says so)."""
        user = user_appearance()
        wanted = user.with_font_step(step, platform_font_size())
        window = self.host()
        if step > 0 and wanted != user and window is not None:
            before = APPEARANCE.current
            apply_appearance(None, before.replace(font_size=wanted.font_size))
            if not window_fits(window):
                apply_appearance(None, before)
                self.refused_font = wanted.font_size
                show = getattr(window, "statusBar", None)
                if callable(show):
                    show().showMessage(
                        f"A {wanted.font_size} pt font would make the window larger than this screen allows", 6000
                    )
                return
        self.refused_font = None
        choose(font_size=wanted.font_size)

    def host(self) -> QMainWindow | None:
        """The main window whose menu this is (a menu is a window of its own: its parents lead there)."""
        widget = self.parentWidget()
        while widget is not None and not isinstance(widget, QMainWindow):
            widget = widget.parentWidget()
        return widget

    def _on_changed(self, _appearance: Appearance) -> None:
        self.sync()

    def sync(self) -> None:
        """Checks and enabled states from the remembered appearance."""
        user = user_appearance()
        for name, act in self.theme_actions.items():
            act.setChecked(name == user.theme)
        for name, act in self.palette_actions.items():
            act.setChecked(name == user.palette)
        size = font_points(user)
        self.larger.setEnabled(size < FONT_RANGE[1])
        self.smaller.setEnabled(size > FONT_RANGE[0])
        self.reset_font.setEnabled(user.font_size is not None)


def build_appearance_menu(view_menu: QMenu) -> AppearanceMenu:
    """Add View > Appearance to ``view_menu`` and return it."""
    menu = AppearanceMenu(view_menu)
    view_menu.addMenu(menu)
    return menu


__all__ = [
    "AppearanceMenu",
    "apply_appearance",
    "build_appearance_menu",
    "choose",
    "font_points",
    "platform_font_size",
    "largest_fitting_font",
    "presenter_appearance",
    "restore_user_appearance",
    "restyle_new_widget",
    "user_appearance",
    "window_fits",
]
