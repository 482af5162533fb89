"""Axes read cleanly (issue 19): no SI-prefix rescaling, ticks rounded to what the range needs, log axes by decade.

Each lab is driven into the states the issue names (Mixture: after Reset, after the first E-step; Inference: the KL
explorer, the estimator-convergence plot with its log-k axis and the sample plots) and every axis under the lab is
read as pyqtgraph draws it: ``tickValues`` over the axis' range and size, then ``tickStrings``.
"""

from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("pytestqt")

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.widgets.axes import MAX_SIGNIFICANT, is_readable, readable_axes, tick_text_height


def drawn_labels(axis: pg.AxisItem) -> list[tuple[float | None, float, str]]:
    """(spacing, value, label) of every tick ``axis`` draws now (value in log10 units on a log axis)."""
    lo, hi = axis.range
    size = axis.width() if axis.orientation in ("top", "bottom") else axis.height()
    out = []
    for spacing, values in axis.tickValues(lo, hi, max(size, 1.0)):
        strings = axis.tickStrings(values, axis.autoSIPrefixScale * axis.scale, spacing)
        out.extend((spacing, v, s) for v, s in zip(values, strings, strict=False))
    return out


SI_SCALE = re.compile(r"\(x[0-9.e+-]+\)")  # pyqtgraph's "(x0.001)" beside a label


def significant_digits(label: str) -> int:
    digits = label.replace("\u2212", "").replace("-", "").replace(".", "").lstrip("0")
    return len(digits)


def decimals(label: str) -> int:
    return len(label.split(".")[1]) if "." in label else 0


def assert_readable(axis: pg.AxisItem, where: str) -> None:
    assert not SI_SCALE.search(axis.labelString()) and axis.autoSIPrefixScale == 1.0, (
        f"{where}: SI prefix {axis.labelString()}"
    )
    ticks = drawn_labels(axis)
    labels = [s for _, _, s in ticks if s]
    assert all("e" not in s and "·10" not in s or not axis.logMode for s in labels), f"{where}: {labels}"
    if axis.logMode:
        lo, hi = sorted(axis.range)
        decades = math.floor(hi) - math.ceil(lo) + 1
        if decades >= 2:  # only the decades are labelled: no "3·10²4·10²5·10²" run-together minor labels
            labelled = [v for _, v, s in ticks if s]
            assert all(abs(v - round(v)) < 1e-6 for v in labelled), f"{where}: minor ticks labelled {labels}"
        return
    for spacing, _, s in ticks:
        if not s:
            continue
        float(s.replace("\u2212", "-"))  # a plain number
        assert significant_digits(s) <= MAX_SIGNIFICANT, f"{where}: {s!r} has too many digits"
        needed = max(0, math.ceil(-math.log10(spacing) - 1e-9)) if spacing else 0
        assert decimals(s) <= needed, f"{where}: {s!r} has more decimals than ticks {spacing:g} apart need"
    if getattr(axis, "integer", False):
        assert all(abs(v - round(v)) < 1e-9 for _, v, _ in ticks), f"{where}: ticks between integers"


def assert_all_readable(root, where: str) -> int:
    axes = [
        item
        for view in root.findChildren(pg.GraphicsView)
        for item in view.scene().items()
        if isinstance(item, pg.AxisItem) and item.isVisible()
    ]
    for axis in axes:
        assert is_readable(axis), f"{where}: a plain AxisItem ({axis.labelText!r})"
        assert_readable(axis, f"{where}: {axis.orientation} axis {axis.labelText!r}")
    return len(axes)


# -- the helper on its own -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "lo, hi",
    [
        (-0.0005, 0.0008),
        (-5.0372187504963435, -5.0372187504963425),
        (-0.5, 0.5),
        (300.0, 800.0),
        (-1e6, 3e6),
        (0.001, 0.0012),
    ],
)
def test_linear_ticks_have_no_si_prefix_and_only_the_digits_they_need(qtbot, lo, hi):
    w = pg.PlotWidget()
    qtbot.addWidget(w)
    w.setLabel("bottom", "z₁")
    w.setLabel("left", "x")
    readable_axes(w)
    w.resize(400, 300)
    w.show()
    w.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0)
    qtbot.waitUntil(lambda: w.getAxis("bottom").range[1] == pytest.approx(hi))
    for side in ("bottom", "left"):
        assert_readable(w.getAxis(side), f"range ({lo}, {hi})")


def test_integer_axis_ticks_only_integers(qtbot):
    w = pg.PlotWidget()
    qtbot.addWidget(w)
    w.setLabel("bottom", "half step")
    readable_axes(w, integer=("bottom",))
    w.resize(300, 200)
    w.show()
    w.setXRange(-0.5, 0.5, padding=0)
    qtbot.waitUntil(lambda: w.getAxis("bottom").range[1] == pytest.approx(0.5))
    ticks = drawn_labels(w.getAxis("bottom"))
    assert [s for _, _, s in ticks] == ["0"]
    label = w.getAxis("bottom").labelString()
    assert "half step" in label and not SI_SCALE.search(label)


def test_log_axis_labels_decades_only(qtbot):
    w = pg.PlotWidget()
    qtbot.addWidget(w)
    w.setLogMode(x=True, y=False)
    readable_axes(w)
    w.resize(500, 300)
    w.show()
    w.setXRange(0, math.log10(5000), padding=0)
    qtbot.waitUntil(lambda: w.getAxis("bottom").range[1] == pytest.approx(math.log10(5000)))
    labels = [s for _, _, s in drawn_labels(w.getAxis("bottom")) if s]
    assert labels == ["1", "10", "100", "1000"]


# -- the labs, in the states the issue names -----------------------------------------------------------------------
@pytest.fixture
def mixture_lab(qtbot):
    from app.core.workers import TaskRunner
    from app.core.workspace import Workspace
    from app.labs.mixture.view import SPEED_MAX, MixtureLab

    runner = TaskRunner()
    lab = MixtureLab(Workspace(device="cpu"), runner)
    qtbot.addWidget(lab)
    lab.resize(1280, 720)
    lab.show()
    qtbot.waitExposed(lab)
    lab.speed.setValue(SPEED_MAX)
    lab.state.first_fit = False
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    yield lab
    runner.shutdown(5000)


def test_mixture_lab_axes_after_reset_and_first_e_step(qtbot, mixture_lab):
    lab = mixture_lab
    lab.reset_button.click()
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    qtbot.wait(50)
    assert assert_all_readable(lab, "Mixture after Reset") >= 8
    assert not SI_SCALE.search(lab.ll_plot.getAxis("bottom").labelString())
    qtbot.mouseClick(lab.e_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not lab.is_busy() and len(lab.history) == 2, timeout=60000)
    qtbot.wait(50)
    assert_all_readable(lab, "Mixture after the first E-step")
    left = [s for _, _, s in drawn_labels(lab.ll_plot.getAxis("left")) if s]
    assert len(left) >= 2 and all(significant_digits(s) <= 5 for s in left), left


def test_mixture_plot_titles_are_not_clipped(qtbot, mixture_lab):
    lab = mixture_lab
    for plot in (lab.ll_plot, lab.post_plot, lab.bic_plot):
        title = plot.getPlotItem().titleLabel
        text_width = title.item.boundingRect().width()
        assert text_width <= plot.getPlotItem().width() + 0.5, f"title {title.text!r} wider than its plot"


@pytest.fixture
def inference_lab(qtbot, open_lab, tiny_vae):
    from app.labs.inference.view import InferenceLab

    lab = open_lab(InferenceLab, tiny_vae, size=(1280, 720))
    lab.activate()
    qtbot.waitUntil(lambda: lab.picture is not None, timeout=60000)
    return lab


def test_inference_lab_axes_kl_and_convergence(qtbot, inference_lab):
    lab = inference_lab
    qtbot.wait(50)
    assert assert_all_readable(lab.kl, "KL explorer") >= 2
    cp = lab.convergence
    cp.kmax.setValue(1000)
    cp.repeats.setValue(2)
    lab.set_panel("convergence")
    qtbot.waitUntil(lambda: cp.snapshot is not None and cp.snapshot.done == 2, timeout=90000)
    qtbot.wait(50)
    assert assert_all_readable(lab.convergence, "Estimator convergence") >= 4
    log_axis = cp.plot.getAxis("bottom")
    assert log_axis.logMode
    labels = [s for _, _, s in drawn_labels(log_axis) if s]
    assert labels[:3] == ["1", "10", "100"] and all("·" not in s for s in labels), labels
    assert assert_all_readable(lab, "Inference lab, every panel") >= 20  # 1-D picture, Jensen, scatter too


def test_a_squeezed_vertical_axis_spaces_its_labels_a_text_line_apart(qtbot):
    """At K = 8 the p(z=k|x) bars shrank to ~30 px and "1.0 0.8 0.6 0.4 0.2 0.0" were drawn on top of each other."""
    w = pg.PlotWidget()
    qtbot.addWidget(w)
    readable_axes(w)
    w.setYRange(0, 1, padding=0)
    w.resize(300, 90)
    w.show()
    qtbot.waitExposed(w)
    axis = w.getAxis("left")
    qtbot.waitUntil(lambda: 0 < axis.height() < 80)
    spacing, values = axis.tickValues(0, 1, axis.height())[0]
    text_height = tick_text_height(axis)
    assert spacing * axis.height() >= text_height, (spacing, axis.height(), text_height)
    assert len(values) >= 2


def _specs(axis: pg.AxisItem, generate) -> tuple:
    """What ``generate`` (an axis's ``generateDrawSpecs``) returns, painted as ``AxisItem.paint`` does, as plain
    values: the axis line, each tick (colour with alpha, ends) and each label (rectangle, flags, text)."""
    from PySide6.QtGui import QPainter, QPicture

    picture = QPicture()
    painter = QPainter(picture)
    try:
        if axis.style["tickFont"]:
            painter.setFont(axis.style["tickFont"])
        specs = generate(painter)
    finally:
        painter.end()
    if specs is None:
        return None
    (pen, a, b), ticks, texts = specs
    return (
        (pen.color().name(), (a.x(), a.y()), (b.x(), b.y())),
        [(t[0].color().rgba(), (t[1].x(), t[1].y()), (t[2].x(), t[2].y())) for t in ticks],
        [((r.x(), r.y(), r.width(), r.height()), int(f), s) for r, f, s in texts],
    )


@pytest.mark.parametrize("side", ["left", "bottom", "right", "top"])
def test_the_lean_draw_specs_equal_pyqtgraphs(qtbot, shown_plot, side):
    """``ReadableAxis.generateDrawSpecs`` gives exactly the specs of pyqtgraph's own, on every side, across ranges
    from 1e-6 to 1e6 wide, with explicit ticks, a tick alpha, a grid, ticks stopping the axis line and values hidden."""
    import numpy as np

    w = shown_plot(420, 320)
    plot = w.getPlotItem()
    plot.showAxis(side)
    readable_axes(plot)
    axis = plot.getAxis(side)
    horizontal = side in ("top", "bottom")
    compared = 0
    rng = np.random.default_rng(7)
    for case in range(14):
        lo = float(rng.uniform(-50, 50))
        width = float(10 ** rng.uniform(-6, 6))
        axis.setTicks(None)
        axis.setStyle(tickAlpha=None, stopAxisAtTick=(False, False), showValues=True)
        axis.setGrid(False)
        if case == 10:
            axis.setTicks([[(lo, "start"), (lo + width / 2, "half")], [(lo + width / 4, "q")]])
        elif case == 11:
            axis.setStyle(tickAlpha=0.4, stopAxisAtTick=(True, True))
        elif case == 12:
            axis.setGrid(120)
        elif case == 13:
            axis.setStyle(showValues=False)
        if horizontal:
            w.setXRange(lo, lo + width, padding=0)
        else:
            w.setYRange(lo, lo + width, padding=0)
        QApplication.processEvents()
        lean = _specs(axis, axis.generateDrawSpecs)
        theirs = _specs(axis, lambda p: pg.AxisItem.generateDrawSpecs(axis, p))
        assert lean == theirs, (case, lo, width)
        compared += lean is not None and len(lean[2]) > 0
    assert compared >= 10  # (labels were drawn in most cases: the comparison covered them)


def test_the_lean_tick_values_equal_pyqtgraphs(qtbot):
    """``ReadableAxis.tickValues`` returns exactly pyqtgraph's levels and values: linear and log axes, integer axes,
    reversed and tiny-to-huge ranges, short and long axes."""
    import numpy as np

    from app.widgets.axes import make_readable

    rng = np.random.default_rng(3)
    axes = [make_readable(pg.AxisItem(side)) for side in ("bottom", "left", "bottom", "left")]
    axes[2].integer = True
    axes[3].setLogMode(True)
    for _ in range(300):
        axis = axes[int(rng.integers(len(axes)))]
        lo = float(rng.uniform(-1e3, 1e3)) if not axis.logMode else float(rng.uniform(-3, 3))
        hi = lo + float(10 ** rng.uniform(-5, 4 if not axis.logMode else 0.9)) * (1 if rng.random() < 0.8 else -1)
        size = float(rng.uniform(20, 1500))
        assert axis.tickValues(lo, hi, size) == pg.AxisItem.tickValues(axis, lo, hi, size), (lo, hi, size)


def test_twin_axes_share_specs_only_when_everything_they_draw_from_is_equal(qtbot):
    """Two linked plots of one size (the Latent lab's planes): after ``twin_axes`` an axis reuses its twin's specs
    (the same objects, so a pan builds them once), and they equal pyqtgraph's own for it; a difference in range, size,
    font or pen makes each build its own."""
    from PySide6.QtGui import QFont, QPainter, QPicture

    from app.widgets.axes import twin_axes

    w = pg.GraphicsLayoutWidget()
    qtbot.addWidget(w)
    a, b = w.addPlot(row=0, col=0), w.addPlot(row=1, col=0)
    for plot in (a, b):
        readable_axes(plot)
    b.setXLink(a)
    b.setYLink(a)
    twin_axes(a, b)
    w.resize(420, 640)
    w.show()
    qtbot.waitExposed(w)

    def built(axis):
        picture = QPicture()
        painter = QPainter(picture)
        try:
            return axis.generateDrawSpecs(painter)
        finally:
            painter.end()

    for lo, width in ((-3.5, 7.0), (0.123, 0.01), (-2e5, 4e5)):
        a.setRange(xRange=(lo, lo + width), yRange=(lo, lo + 2 * width), padding=0)
        QApplication.processEvents()
        for side in ("left", "bottom"):
            first, second = a.getAxis(side), b.getAxis(side)
            assert first.geometry().size() == second.geometry().size()
            specs = built(first)
            assert specs is not None and built(second) is specs, (side, lo, width)
            own = _specs(second, lambda p, axis=second: pg.AxisItem.generateDrawSpecs(axis, p))
            assert _specs(second, second.generateDrawSpecs) == own

    b.setXLink(None)
    b.setXRange(10, 20, padding=0)
    b.getAxis("left").setTickFont(QFont("DejaVu Sans", 14))
    b.getAxis("bottom").setStyle(tickLength=-9)
    QApplication.processEvents()
    for side in ("left", "bottom"):
        first, second = a.getAxis(side), b.getAxis(side)
        specs = built(first)
        assert built(second) is not specs, side
        own = _specs(second, lambda p, axis=second: pg.AxisItem.generateDrawSpecs(axis, p))
        assert _specs(second, second.generateDrawSpecs) == own
