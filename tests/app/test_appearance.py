"""Accessibility: themes, the colour-blind-safe palette with marker shapes, the font size; every setting remembered.

Driven through the real View > Appearance menu and real labs (offscreen). Every test leaves the default appearance
and no stored appearance behind (the ``_default_appearance_after`` fixture).
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QProxyStyle

from app.core.appearance import (
    APPEARANCE,
    FONT_RANGE,
    Appearance,
    appearance_from_mapping,
    load_appearance,
    save_appearance,
)
from app.core.settings import app_settings
from app.labs.mixture.view import SPEED_MAX
from app.widgets import palette
from app.widgets.theme import apply_appearance, platform_font_size, presenter_appearance, restore_user_appearance


@pytest.fixture(autouse=True)
def _default_appearance_after(qapp):
    yield
    app_settings().remove("appearance")
    app_settings().sync()
    apply_appearance(qapp, Appearance())


@pytest.fixture
def window(qtbot):
    """A main window on the Mixture lab (toy points: no dataset to load), EM converged."""
    from app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    lab = w.lab("mixture")
    lab.state.first_fit = False  # (no BIC grid: fewer jobs)
    lab.speed.setValue(SPEED_MAX)
    w.set_view("mixture")
    qtbot.waitUntil(lambda: len(lab.state.history.steps) > 3 and not lab.is_busy(), timeout=30000)
    yield w
    w.runner.shutdown(5000)


def _responsibilities(lab) -> np.ndarray:
    h = lab.state.history
    return h.responsibilities(h.shown, lab.X)[0]


# -- the value and its storage (no widgets) ----------------------------------------------------------------------------
def test_appearance_values_are_validated():
    with pytest.raises(ValueError, match="theme"):
        Appearance(theme="purple")
    with pytest.raises(ValueError, match="font size"):
        Appearance(font_size=FONT_RANGE[1] + 1)
    with pytest.raises(ValueError, match="line scale"):
        Appearance(line_scale=float("nan"))
    a = Appearance().with_font_step(+100, 9.0)
    assert a.font_size == FONT_RANGE[1]
    assert Appearance(font_size=10).with_font_step(-1, 9.0).font_size == 9


def test_a_corrupt_stored_appearance_falls_back_field_by_field():
    settings = app_settings()
    for key, value in {"theme": "purple", "palette": "okabe-ito", "font_size": "huge", "line_scale": "nan"}.items():
        settings.setValue(f"appearance/{key}", value)
    assert load_appearance() == Appearance(palette="okabe-ito")  # the valid field is kept, the others default
    a, problems = appearance_from_mapping({"theme": 3, "font_size": "12.5", "line_scale": [1]})
    assert a == Appearance() and len(problems) == 3
    # a stored font size the settings file gives back as text (INI) is read as a number
    settings.setValue("appearance/font_size", "12")
    assert load_appearance().font_size == 12


def test_the_command_line_overrides_the_stored_appearance_for_one_run():
    from app.main import build_parser, startup_appearance

    save_appearance(Appearance(theme="dark", font_size=11))
    assert startup_appearance(build_parser().parse_args([])) == Appearance(theme="dark", font_size=11)
    args = build_parser().parse_args(["--palette", "okabe-ito"])
    assert startup_appearance(args) == Appearance(theme="dark", palette="okabe-ito", font_size=11)
    assert load_appearance() == Appearance(theme="dark", font_size=11), "the run's choice is not remembered"
    # screenshots are reproducible: the defaults, plus what the command line says
    args = build_parser().parse_args(["--theme", "high-contrast", "--screenshot", "x.png"])
    assert startup_appearance(args) == Appearance(theme="high-contrast")
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--font-size", str(FONT_RANGE[1] + 1)])
    assert exit_info.value.code == 2


def test_okabe_ito_palette_is_used_for_components_and_labels():
    assert palette.component_hex(0) == "#1f77b4"  # the default palette (Tableau 10)
    APPEARANCE.set(Appearance(palette="okabe-ito"))
    try:
        assert [palette.component_hex(k) for k in range(8)] == list(palette.OKABE_ITO)
        rgb = palette.component_colours(3)
        assert rgb.shape == (3, 3) and rgb.dtype == np.float32
        assert QColor(palette.component_hex(8)).lightness() < QColor(palette.component_hex(0)).lightness()
        APPEARANCE.set(Appearance(palette="okabe-ito", theme="dark"))
        assert palette.component_hex(7) != "#000000", "no black component on a dark background"
    finally:
        APPEARANCE.set(Appearance())


def test_raster_markers_take_the_shape_of_their_code():
    from app.widgets.raster_scatter import _shape_offsets, rasterise

    xy = np.array([[0.5, 0.5]], np.float32)
    rgb = np.array([[0.2, 0.4, 0.6]], np.float32)
    masks = []
    for code, name in enumerate(palette.MARKERS):
        img = rasterise(xy, rgb, (0, 1), (0, 1), 21, 21, radius=4, shapes=np.array([code]))
        mask = img[..., 3] > 0
        assert mask.sum() == len(_shape_offsets(name, 4)), name
        masks.append(mask.tobytes())
    assert len(set(masks)) == len(palette.MARKERS), "every marker shape differs"
    tiny = rasterise(xy, rgb, (0, 1), (0, 1), 21, 21, radius=1, shapes=np.array([1]))
    disc = rasterise(xy, rgb, (0, 1), (0, 1), 21, 21, radius=1)
    assert np.array_equal(tiny, disc), "markers of 1-2 px are discs: their shapes could not be told apart"


# -- through the window's menu -----------------------------------------------------------------------------------------
def test_dark_theme_from_the_menu_darkens_the_window_and_the_plots(qtbot, window):
    lab = window.lab("mixture")
    menu = window.appearance_menu
    light_window = window.palette().color(QPalette.ColorRole.Window)
    assert lab.ll_plot.backgroundBrush().color() == QColor("white")
    menu.theme_actions["dark"].trigger()
    # (Qt hands a new application palette to the widgets by posted events)
    qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window).lightness() < 80, timeout=5000)
    assert light_window.lightness() > 200
    assert window.palette().color(QPalette.ColorRole.WindowText).lightness() > 200
    dark = QColor(palette.PLOT_BACKGROUND["dark"])
    for plot in (lab.scatter_widget, lab.ll_plot, lab.posterior.plot, lab.bic.plot):
        assert plot.backgroundBrush().color() == dark
    axis = lab.ll_plot.getAxis("bottom")
    assert axis.textPen().color().lightness() > 150 and axis.pen().color().lightness() > 150
    curve = lab.ll_plot.curve.opts["pen"].color()  # a dark grey curve is drawn light on the dark plot
    assert palette.contrast_ratio(curve, dark) >= palette.MIN_LINE_CONTRAST
    assert menu.theme_actions["dark"].isChecked() and load_appearance().theme == "dark"

    menu.theme_actions["light"].trigger()  # and back: as it was
    qtbot.waitUntil(lambda: window.palette().color(QPalette.ColorRole.Window) == light_window, timeout=5000)
    assert lab.ll_plot.backgroundBrush().color() == QColor("white")
    assert lab.ll_plot.curve.opts["pen"].color() == QColor(60, 60, 60)


def test_the_colour_blind_palette_recolours_the_mixture_lab_and_gives_markers_their_shapes(qtbot, window):
    from app.labs.mixture.engine import blend_colours

    lab = window.lab("mixture")
    lab.select_point(0)
    K = lab.state.history.current.k
    resp = _responsibilities(lab)
    assert lab.points.shapes is None, "discs with the default palette"
    bars = [b.color().name() for b in lab.posterior.bars.opts["brushes"]]
    assert bars == [palette.component_hex(k) for k in range(K)] and bars[0] == "#1f77b4"

    window.appearance_menu.palette_actions["okabe-ito"].trigger()
    okabe = [h.lower() for h in palette.OKABE_ITO[:K]]
    assert [b.color().name() for b in lab.posterior.bars.opts["brushes"]] == okabe
    expected = blend_colours(resp, np.array([[int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)] for h in okabe]))
    np.testing.assert_allclose(lab.points.rgb, expected, atol=1e-5)
    ellipse_colour = lab.ellipses.curves[0].opts["pen"].color()
    assert ellipse_colour == QColor(okabe[0]).darker(160)
    # the non-colour cue: each point's marker is the shape of its most probable component
    np.testing.assert_array_equal(lab.points.shapes, np.argmax(resp, axis=1))
    assert len(np.unique(lab.points.shapes)) > 1

    window.appearance_menu.palette_actions["default"].trigger()
    assert lab.points.shapes is None
    assert lab.posterior.bars.opts["brushes"][0].color().name() == "#1f77b4"


def test_the_colour_blind_palette_recolours_the_latent_labels(qtbot):
    from app.core.workers import TaskRunner
    from app.core.workspace import Workspace
    from app.labs.latent import display
    from app.labs.latent.view import LatentLab

    runner = TaskRunner()
    lab = LatentLab(Workspace(device="cpu"), runner)
    qtbot.addWidget(lab)
    try:
        labels = np.arange(10)
        before = display.label_colours(labels, 10)
        apply_appearance(None, Appearance(palette="okabe-ito"))
        after = display.label_colours(labels, 10)
        assert not np.allclose(before, after)
        assert palette.OKABE_ITO[1] in lab.legend.text()
    finally:
        runner.shutdown(5000)


def test_font_size_menu_changes_the_application_font(qtbot, window):
    app = QApplication.instance()
    menu = window.appearance_menu
    base = platform_font_size()
    label = QLabel("a title at 1.25 times the font", window)  # a font a widget sets relative to the app's
    font = label.font()
    font.setPointSizeF(base * 1.25)
    label.setFont(font)
    menu.larger.trigger()
    menu.larger.trigger()
    assert app.font().pointSizeF() == pytest.approx(round(base) + 2)
    assert load_appearance().font_size == round(base) + 2
    assert label.font().pointSizeF() == pytest.approx(1.25 * (round(base) + 2), abs=0.02)
    tick_font = window.lab("mixture").ll_plot.getAxis("left").style["tickFont"]
    assert tick_font is not None and tick_font.pointSizeF() == pytest.approx(round(base) + 2)
    menu.smaller.trigger()
    assert app.font().pointSizeF() == pytest.approx(round(base) + 1)
    menu.reset_font.trigger()
    assert app.font().pointSizeF() == pytest.approx(base)
    assert label.font().pointSizeF() == pytest.approx(1.25 * base, abs=0.02)
    assert load_appearance().font_size is None


def test_every_choice_survives_a_restart(qtbot, window):
    from app.main import build_parser, startup_appearance
    from app.main_window import MainWindow

    menu = window.appearance_menu
    menu.theme_actions["high-contrast"].trigger()
    menu.palette_actions["okabe-ito"].trigger()
    menu.smaller.trigger()
    chosen = Appearance(theme="high-contrast", palette="okabe-ito", font_size=round(platform_font_size()) - 1)
    assert APPEARANCE.current == chosen
    window.close()
    apply_appearance(None, Appearance())  # (a new process starts with the platform's look)

    restarted = startup_appearance(build_parser().parse_args([]))  # what app.main applies before the window shows
    assert restarted == chosen
    apply_appearance(None, restarted)
    second = MainWindow()
    qtbot.addWidget(second)
    try:
        assert second.appearance_menu.theme_actions["high-contrast"].isChecked()
        assert second.appearance_menu.palette_actions["okabe-ito"].isChecked()
        second.show()
        qtbot.waitUntil(lambda: second.palette().color(QPalette.ColorRole.Window) == QColor("white"), timeout=5000)
        assert second.palette().color(QPalette.ColorRole.Highlight).name() == "#0000c0"
        assert isinstance(QApplication.instance().style(), QProxyStyle), "the thick focus frame"
    finally:
        second.runner.shutdown(5000)


def test_presenter_appearance_and_back_restores_every_plot(qtbot, window):
    """Presenter mode applies high contrast, a large font and wide lines, then the user's appearance again."""
    app = QApplication.instance()
    lab = window.lab("mixture")
    save_appearance(Appearance(theme="dark"))
    restore_user_appearance()
    width = lab.ll_plot.curve.opts["pen"].widthF()
    ellipse = lab.ellipses.curves[0].opts["pen"].widthF()
    grid = lab.grid_lines.curves[0].opts["pen"].widthF()
    column = lab.plot.getAxis("left").style["tickTextWidth"]

    apply_appearance(app, presenter_appearance())
    assert lab.scatter_widget.backgroundBrush().color() == QColor("white")
    assert lab.ll_plot.curve.opts["pen"].widthF() == pytest.approx(2 * width)
    assert lab.ellipses.curves[0].opts["pen"].widthF() == pytest.approx(2 * ellipse)
    assert lab.grid_lines.curves[0].opts["pen"].widthF() == pytest.approx(grid), "guides keep their width"
    assert lab.plot.getAxis("left").style["tickTextWidth"] > column, "the steady tick column grows with the font"
    assert app.font().pointSizeF() == 14
    lab.show_step(lab.state.history.shown)  # a redraw while presenting keeps the wide pens
    assert lab.ellipses.curves[0].opts["pen"].widthF() == pytest.approx(2 * ellipse)

    restore_user_appearance()
    assert APPEARANCE.current == Appearance(theme="dark")
    assert lab.ll_plot.curve.opts["pen"].widthF() == pytest.approx(width)
    assert lab.ellipses.curves[0].opts["pen"].widthF() == pytest.approx(ellipse)
    assert lab.plot.getAxis("left").style["tickTextWidth"] == column
    assert lab.scatter_widget.backgroundBrush().color() == QColor(palette.PLOT_BACKGROUND["dark"])
    assert app.font().pointSizeF() == pytest.approx(platform_font_size())
    apply_appearance(app, Appearance())
    assert lab.ll_plot.curve.opts["pen"].color() == QColor(60, 60, 60)
    assert lab.scatter_widget.backgroundBrush().color() == QColor("white")


@pytest.mark.parametrize("name", ["mixture", "latent", "inference", "inpainting", "infinite", "discrete"])
def test_larger_fonts_stop_where_the_lab_would_no_longer_fit_a_laptop_screen(workspace_window, qtbot, name):
    """View > Appearance > Larger refuses a size at which the window would outgrow a 1280x720 laptop; at the largest
    size it allows, every layout invariant holds (app.widgets.layout_check)."""
    from app.widgets.layout_check import layout_problems
    from app.widgets.theme import settle_layout

    window = workspace_window
    window.resize(1200, 700)
    qtbot.waitUntil(lambda: window.width() <= 1200, timeout=5000)
    lab = window.lab(name)
    if name == "mixture":
        lab.speed.setValue(SPEED_MAX)
    # x #0 selected first: a lab shown with nothing selected selects it from a zero-timer, and its analysis (jobs,
    # readouts) starts only then, after the wait below would already have passed and the fonts been tried
    window.workspace.select(0)
    window.set_view(name)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    menu = window.appearance_menu
    sizes = []
    for _ in range(FONT_RANGE[1] - FONT_RANGE[0]):
        menu.larger.trigger()
        if menu.refused_font is not None:
            break
        sizes.append(QApplication.instance().font().pointSizeF())
    size = QApplication.instance().font().pointSizeF()
    assert size == (sizes[-1] if sizes else platform_font_size())
    assert menu.refused_font is not None or size == FONT_RANGE[1]
    if name == "mixture":  # its rows of controls outgrow a laptop's 650 px after a point or two
        assert menu.refused_font is not None and size < 12
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)  # (results drawn at the new size)
    settle_layout(window)  # (as the font check does)
    assert layout_problems(window) == []


def test_a_larger_font_taken_back_leaves_every_axis_as_wide_as_before(qtbot):
    """pyqtgraph keeps the widest tick labels an axis has seen (it shrinks only by more than 10 px): a font tried and
    taken back (a refused "Larger") left each axis up to 10 px wider, and a lab that fitted no longer did."""
    import pyqtgraph as pg

    from app.widgets.axes import ReadableAxis

    plot = pg.PlotWidget(axisItems={"left": ReadableAxis("left"), "bottom": ReadableAxis("bottom")})
    qtbot.addWidget(plot)
    plot.resize(500, 400)
    plot.show()
    plot.setRange(xRange=(0, 123456), yRange=(-0.001, 0.001), padding=0)
    left, bottom = plot.getAxis("left"), plot.getAxis("bottom")

    def sizes_at(points: int | None) -> tuple[float, float]:
        apply_appearance(None, Appearance(font_size=points))
        for _ in range(3):  # (an axis sizes its tick labels as it paints, then lays out again)
            plot.grab()
            QApplication.sendPostedEvents()
        return left.width(), bottom.height()

    first = sizes_at(None)
    larger = sizes_at(round(platform_font_size()) + 8)
    assert larger[0] > first[0] + 10 and larger[1] > first[1]
    assert sizes_at(None) == first
