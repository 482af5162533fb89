"""Paint economy: a pan or zoom paints a plot once, a tab switch paints each plot of the new page once, moving ticks and
a new selection in the Inference lab do not re-lay out a plot. Counted as the Paint events plot viewports receive and
as the plots' sizes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("pytestqt")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QFontMetrics, QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.labs import LABS  # noqa: E402
from app.widgets.steady_plots import (
    growing_range,
    no_hover_search_mid_drag,
    settle_view_transforms,
    steady_tick_column,  # noqa: E402
    transform_follows_range,
)


class PaintCounter(QObject):
    """Counts Paint events per watched widget."""

    def __init__(self, widgets):
        super().__init__()
        self.counts = {w: 0 for w in widgets}
        for w in widgets:
            w.installEventFilter(self)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Paint and obj in self.counts:
            self.counts[obj] += 1
        return False


class EventLog(QObject):
    """The application's events that lead to paints (paints, update and layout requests, resizes, queued calls and
    timers), in order, with their receivers: printed when a paint count is not the one expected, so that a failure
    seen only on a loaded machine says what painted."""

    KINDS = (QEvent.Paint, QEvent.UpdateRequest, QEvent.LayoutRequest, QEvent.Resize, QEvent.MetaCall, QEvent.Timer)

    def __init__(self, limit: int = 600):
        super().__init__()
        self.t0 = time.perf_counter()
        self.limit = limit
        self.entries: list[str] = []

    def eventFilter(self, obj, event):
        if event.type() in self.KINDS and len(self.entries) < self.limit:
            parent = obj.parent() if isinstance(obj, QObject) else None
            who = f"{type(obj).__name__}({obj.objectName()})<{type(parent).__name__ if parent is not None else ''}"
            ms = 1000 * (time.perf_counter() - self.t0)
            self.entries.append(f"{ms:8.1f} {event.type().name:14s} {who}")
        return False

    def __enter__(self) -> EventLog:
        QApplication.instance().installEventFilter(self)
        return self

    def __exit__(self, *exc) -> None:
        QApplication.instance().removeEventFilter(self)

    def text(self) -> str:
        return "\n".join(self.entries)


class _AnyPaint(QObject):
    """Counts every Paint event of the application (an application-wide event filter)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Paint:
            self.n += 1
        return False


def settle(quiet_turns: int = 3, quiet_s: float = 0.05, timeout_s: float = 30.0) -> None:
    """Turn the event loop until painting has settled: ``quiet_turns`` turns in a row, spanning at least ``quiet_s``,
    without a Paint event anywhere. Each turn delivers every posted event (update and layout requests) and every due
    timer, so a pending paint is always flushed however slow the machine; on a loaded machine this only takes longer.
    Fails after ``timeout_s`` of continuous painting."""
    app = QApplication.instance()
    probe = _AnyPaint()
    app.installEventFilter(probe)
    try:
        deadline = time.monotonic() + timeout_s
        last, quiet, quiet_since = -1, 0, time.monotonic()
        while quiet < quiet_turns or time.monotonic() - quiet_since < quiet_s:
            QApplication.sendPostedEvents()
            QApplication.processEvents()
            if probe.n != last:
                last, quiet, quiet_since = probe.n, 0, time.monotonic()
            else:
                quiet += 1
            assert time.monotonic() < deadline, f"painting did not settle within {timeout_s} s"
            time.sleep(0.002)
    finally:
        app.removeEventFilter(probe)


def scatter_plot(qtbot) -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    qtbot.addWidget(w)
    xy = np.random.default_rng(0).normal(size=(2000, 2))
    w.plot(xy[:, 0], xy[:, 1], pen=None, symbol="o", symbolSize=4, symbolBrush=(30, 90, 200))
    w.resize(420, 320)
    w.show()
    qtbot.waitExposed(w)
    return w


def pan_and_zoom(qtbot, w: pg.PlotWidget, steps: int) -> None:
    """``steps`` real mouse actions on the plot's viewport: a left-button drag, one move a step, then wheel turns."""
    vp = w.viewport()
    centre = vp.rect().center()
    drags = steps - steps // 3
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, centre)
    for i in range(1, drags + 1):
        p = centre + QPoint(int(40 * np.sin(i / 2.0)), 3 * i)
        QApplication.sendEvent(
            vp,
            QMouseEvent(
                QEvent.MouseMove, QPointF(p), QPointF(vp.mapToGlobal(p)), Qt.NoButton, Qt.LeftButton, Qt.NoModifier
            ),
        )
        settle()  # each step's paints done before the next step (not coalesced with it)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, p)
    settle()
    for i in range(steps - drags):
        QApplication.sendEvent(
            vp,
            QWheelEvent(
                QPointF(centre),
                QPointF(vp.mapToGlobal(centre)),
                QPoint(0, 0),
                QPoint(0, 120 if i % 2 else -120),
                Qt.NoButton,
                Qt.NoModifier,
                Qt.NoScrollPhase,
                False,
            ),
        )
        settle()


def test_a_pan_or_zoom_paints_the_plot_once_and_draws_the_same_pixels(qtbot):
    followed, plain = scatter_plot(qtbot), scatter_plot(qtbot)
    transform_follows_range(followed.getViewBox())
    transform_follows_range(followed.getViewBox())  # idempotent: one connection
    settle()
    counter = PaintCounter([followed.viewport(), plain.viewport()])
    steps = 12
    pan_and_zoom(qtbot, followed, steps)
    pan_and_zoom(qtbot, plain, steps)
    settle()
    print(
        f"\npaints for {steps} steps: followed {counter.counts[followed.viewport()]}, "
        f"plain {counter.counts[plain.viewport()]}"
    )
    assert counter.counts[followed.viewport()] == steps
    assert counter.counts[plain.viewport()] >= steps  # pyqtgraph's own deferral paints twice per step (measured)
    np.testing.assert_allclose(followed.getViewBox().viewRange(), plain.getViewBox().viewRange())
    # the early transform is the same one the paint would have set: identical pictures
    a = followed.grab().toImage()
    b = plain.grab().toImage()
    assert a == b


def test_a_view_box_not_laid_out_yet_keeps_its_transform_until_its_first_resize(qtbot):
    vb = pg.ViewBox()
    transform_follows_range(vb)
    vb.setRange(xRange=(0, 10), yRange=(0, 5), padding=0)  # rect 0 x 0: no singular transform
    assert vb.childGroup.transform().isIdentity()
    w = pg.GraphicsView()
    qtbot.addWidget(w)
    w.setCentralItem(vb)
    w.resize(300, 200)
    w.show()
    qtbot.waitExposed(w)
    settle()  # laid out and painted
    centre = vb.mapViewToScene(pg.Point(5, 2.5))
    assert (centre.x(), centre.y()) == pytest.approx(
        (vb.sceneBoundingRect().center().x(), vb.sceneBoundingRect().center().y()), abs=1.0
    )


def test_a_steady_tick_column_keeps_the_plot_geometry_while_the_tick_labels_change(qtbot):
    steady, plain = scatter_plot(qtbot), scatter_plot(qtbot)
    steady_tick_column(steady)
    sizes = {steady: set(), plain: set()}
    for lo, hi in [(0, 1), (-55.5, -40.25), (0.001, 0.0013), (3, 4), (-2.5, 2.5)]:
        for w in (steady, plain):
            w.setYRange(lo, hi, padding=0)
        settle()  # the axes' relayout (posted layout requests) done
        for w in (steady, plain):
            sizes[w].add(tuple(w.getViewBox().size().toTuple()))
    assert len(sizes[steady]) == 1
    assert len(sizes[plain]) > 1  # pyqtgraph's own axis follows its widest label
    # the widest label of those ranges fits the fixed column
    axis = steady.getAxis("left")
    text = QFontMetrics(axis.style["tickFont"] or axis.font()).horizontalAdvance("\u221255.0")
    assert axis.width() >= text + axis.style["tickTextOffset"][0]


def test_labs_built_by_the_window_have_their_view_boxes_settled(workspace_window):
    lab = workspace_window.lab("latent")
    boxes = [it for v in lab.findChildren(pg.GraphicsView) for it in v.scene().items() if isinstance(it, pg.ViewBox)]
    assert len(boxes) >= 2 and all(getattr(b, "_lvm_transform_follows_range", False) for b in boxes)
    assert settle_view_transforms(lab) == len(boxes)


def click_tab(qtbot, window, name: str) -> None:
    bar = window.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(list(LABS).index(name)).center())


@pytest.mark.parametrize("target", ["infinite", "mixture", "inference"])
def test_a_tab_switch_paints_each_plot_of_the_new_page_once(qtbot, workspace_window, target):
    window = workspace_window
    for name in LABS:  # every lab built and shown once
        click_tab(qtbot, window, name)
        qtbot.wait(150)  # a user's pace through the tabs: nothing of the lab needs to have finished
    click_tab(qtbot, window, target)  # its first-visit work (a fit, a posterior) done while it is shown
    qtbot.waitUntil(lambda: not window.lab(target).is_busy(), timeout=120000)
    away = "latent" if target != "latent" else "mixture"
    click_tab(qtbot, window, away)
    qtbot.waitUntil(lambda: not window.lab(away).is_busy(), timeout=120000)
    settle()  # the page shown and every paint of the switch done
    page = window.tabs.widget(list(LABS).index(target))
    assert not page.updatesEnabled()  # hidden pages do not repaint
    views = [v for v in page.findChildren(pg.GraphicsView) if v.isVisibleTo(page)]
    assert views
    counter = PaintCounter([v.viewport() for v in views])
    with EventLog() as log:
        click_tab(qtbot, window, target)
        assert window.current_view_name() == target
        settle()  # the switch's paints happen in the next turns of the event loop
    assert page.updatesEnabled()
    for other in range(window.tabs.count()):
        if window.tabs.widget(other) is not page:
            assert not window.tabs.widget(other).updatesEnabled()
    painted = list(counter.counts.values())
    # each plot drawn (nothing left blank) and drawn once, not once per plot of the page
    assert painted == [1] * len(views), f"{painted}; the switch's events:\n{log.text()}"


def test_a_new_selection_keeps_the_kl_plot_size(qtbot, workspace_window):
    window = workspace_window
    window.set_view("inference")
    lab = window.lab("inference")
    qtbot.waitUntil(lambda: lab.picture is not None, timeout=60000)
    size = lab.kl.plot.size()
    counter = PaintCounter([lab.kl.plot.viewport()])
    for index in (3, 1234, 42):
        window.workspace.select(index)
        settle()  # "computing the exact posterior…" laid out
        assert lab.kl.plot.size() == size
        qtbot.waitUntil(lambda i=index: lab.picture is not None and lab.picture.index == i, timeout=30000)
        settle()  # the new picture laid out and drawn
        assert lab.kl.plot.size() == size
    assert counter.counts[lab.kl.plot.viewport()] >= 3


def test_a_label_changing_its_text_inside_tabs_repaints_neither_the_tab_bar_nor_the_pages(qtbot):
    """``QLabel.setText`` posts a layout request up the tree; a plain ``QTabWidget`` answers it by repainting itself
    whole. ``SteadyTabWidget`` lets it through only when what it lays out changed."""
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    from app.widgets.steady_tabs import SteadyTabWidget

    tabs = SteadyTabWidget()
    page, other = QWidget(), QLabel("another page")
    label, still = QLabel("ELBO = −101.25"), QLabel("a neighbour that never changes")
    layout = QVBoxLayout(page)
    layout.addWidget(label)
    layout.addWidget(still)
    tabs.addTab(page, "first")
    tabs.addTab(other, "second")
    qtbot.addWidget(tabs)
    tabs.resize(500, 300)
    tabs.show()
    qtbot.waitExposed(tabs)
    settle()
    counter = PaintCounter([tabs.tabBar(), still, label])
    for value in (-99.5, -98.75, -97.0):
        label.setText(f"ELBO = {value:.2f}".replace("-", "−"))
        settle()
    assert counter.counts[label] >= 3  # the readout itself is drawn each time
    assert counter.counts[tabs.tabBar()] == 0 and counter.counts[still] == 0  # (the tab frame behind the label is)
    width = tabs.sizeHint().width()
    label.setText("a readout much wider than before, " * 4)  # a real change of size still reaches the layout
    settle()
    assert tabs.sizeHint().width() > width
    tabs.addTab(QLabel("third"), "third")
    settle()
    assert tabs.count() == 3 and tabs.tabBar().tabRect(2).width() > 0


def test_the_same_points_in_the_same_colours_are_not_rasterised_again(qtbot):
    from app.widgets.raster_scatter import RasterScatter

    w = scatter_plot(qtbot)
    scatter = RasterScatter(w.getViewBox())
    drawn = []
    original = scatter.redraw
    scatter.redraw = lambda: (drawn.append(1), original())  # type: ignore[method-assign]
    xy = np.random.default_rng(0).normal(size=(500, 2))
    rgb = np.full((500, 3), 0.2)
    scatter.set_data(xy, rgb)
    scatter.set_data(xy.copy(), rgb.copy())  # equal arrays: nothing new to draw
    assert len(drawn) == 1
    scatter.set_data(xy, rgb * 2)  # new colours
    xy2 = xy.copy()
    xy2[7] += 0.5
    scatter.set_data(xy2, rgb * 2)  # one point moved
    assert len(drawn) == 3


def test_no_hover_search_while_an_roi_is_dragged_and_again_after(qtbot):
    """pyqtgraph searches the items under the mouse on every move; mid-drag none may take the hover: skipped."""
    w = scatter_plot(qtbot)
    roi = pg.CircleROI((-0.5, -0.5), (1.0, 1.0))
    w.addItem(roi)
    w.getViewBox().setRange(xRange=(-2, 2), yRange=(-2, 2), padding=0)
    no_hover_search_mid_drag(w.scene())
    scene, vp = w.scene(), w.viewport()
    searched: list[bool] = []  # per hover search (pyqtgraph emits sigMouseHover with what it found): mid-drag?
    scene.sigMouseHover.connect(lambda items: searched.append(bool(scene.dragButtons)))
    pg.setConfigOption("mouseRateLimit", -1)  # (every move delivered, however fast the test sends them)

    def at(x, y):
        return w.mapFromScene(w.getViewBox().mapViewToScene(QPointF(x, y)))

    def send(kind, pos, button, buttons):
        ev = QMouseEvent(kind, QPointF(pos), QPointF(vp.mapToGlobal(pos)), button, buttons, Qt.NoModifier)
        QApplication.sendEvent(vp, ev)

    try:
        start = roi.pos()
        send(QEvent.MouseButtonPress, at(0, 0), Qt.LeftButton, Qt.LeftButton)
        for i in range(1, 12):
            send(QEvent.MouseMove, at(0.08 * i, 0.05 * i), Qt.NoButton, Qt.LeftButton)
        assert roi.pos() != start  # the drag moved the ROI
        assert not any(searched)  # and no move of it looked for hoverable items
        send(QEvent.MouseButtonRelease, at(0.88, 0.55), Qt.LeftButton, Qt.NoButton)
        searched.clear()
        send(QEvent.MouseMove, at(1.0, 0.6), Qt.NoButton, Qt.NoButton)
        assert searched == [False]  # a plain move searches again
    finally:
        pg.setConfigOption("mouseRateLimit", 100)


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(-1e3, 1e3),
    steps=st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=300),
    headroom=st.sampled_from([0.1, 0.25, 0.5]),
)
def test_a_growing_range_holds_the_data_and_moves_rarely(start, steps, headroom):
    """Data growing upwards: every shown range holds the data and is at most (1 + 2 headroom) times its width; it
    moves at most about once per (1 + headroom) growth of the width."""
    import math

    shown, moves, hi = None, 0, start + 1.0
    for step in steps:
        hi += step
        needed = (start, hi)
        new = growing_range(shown, needed, headroom)
        moves += new != shown
        shown = new
        assert shown[0] <= needed[0] and needed[1] <= shown[1]
        assert shown[1] - shown[0] <= (1 + 2 * headroom) * (hi - start) * (1 + 1e-12)
    assert moves <= 2 + math.log(hi - start) / math.log(1 + headroom)
