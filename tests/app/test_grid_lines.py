"""app.widgets.grid_lines: the plots' grid as two curves that follow the axes' ticks."""

from __future__ import annotations

import numpy as np


def in_view(curve, x0: float, x1: float) -> list[float]:
    """The x of the vertical segments of ``curve`` inside (x0, x1) (a line on the view's edge is not drawn)."""
    xs, _ = curve.getData()
    vertical = xs[0::2][xs[0::2] == xs[1::2]]
    return inside(vertical, x0, x1)


def inside(values, x0: float, x1: float) -> list[float]:
    values = np.asarray(values, dtype=float)
    edge = 1e-6 * (x1 - x0)
    return sorted(set(np.round(values[(values > x0 + edge) & (values < x1 - edge)], 9)))


def test_grid_lines_follow_the_axis_ticks(qtbot):
    """GridLines draws one vertical segment per major x tick and one horizontal per major y tick, in view, and
    follows a range change."""
    import pyqtgraph as pg

    from app.widgets.grid_lines import GridLines

    w = pg.PlotWidget()
    qtbot.addWidget(w)
    w.resize(500, 400)
    w.show()
    grid = GridLines(w, alpha=0.2)
    for x_range in ((0.0, 10.0), (-3.0, 0.5)):
        w.setRange(xRange=x_range, yRange=(0.0, 1.0), padding=0)

        def follows():
            (x0, x1), (y0, y1) = w.getViewBox().viewRange()
            major_x = w.getPlotItem().getAxis("bottom").tickValues(x0, x1, w.getViewBox().width())[0][1]
            assert in_view(grid.curves[0], x0, x1) == inside(major_x, x0, x1)

        qtbot.waitUntil(follows, timeout=10000)  # once the layout settled (the last failure is shown on timeout)


def test_panning_within_the_laid_out_lines_sets_no_data_and_every_view_shows_the_ticks(qtbot, shown_plot):
    """The lines are laid out over three times the view: a pan inside that cover at the same spacing leaves the
    curves alone; a zoom to another spacing or a pan beyond the cover lays them out again. Whatever the path, the
    lines in view are exactly the axis's major and minor ticks there, and span the whole view."""

    from app.widgets.grid_lines import GridLines

    w = shown_plot(500, 400)
    grid = GridLines(w, alpha=0.2)
    sets = []
    real = grid.curves[0].setData
    grid.curves[0].setData = lambda *a, **k: (sets.append(1), real(*a, **k))
    vb, axis = w.getViewBox(), w.getPlotItem().getAxis("bottom")
    w.setRange(xRange=(0.0, 10.0), yRange=(0.0, 1.0), padding=0)
    n0 = len(sets)
    rng = np.random.default_rng(0)
    for shift in rng.uniform(-0.5, 0.5, 20):  # pans of up to half a view, staying near the start
        (x0, x1), (y0, y1) = vb.viewRange()
        w.setRange(xRange=(0.0 + shift, 10.0 + shift), yRange=(y0, y1), padding=0)
    assert len(sets) == n0, "a pan inside the cover laid the lines out again"
    for x_range in ((20.0, 30.0), (0.0, 1.0), (-1e3, 5e3), (3.3, 3.31)):  # beyond the cover; zooms
        w.setRange(xRange=x_range, yRange=(0.0, 1.0), padding=0)
        (x0, x1), (y0, y1) = vb.viewRange()
        levels = axis.tickValues(x0, x1, vb.width())
        assert in_view(grid.curves[0], x0, x1) == inside(levels[0][1], x0, x1)
        minor = set(inside(levels[1][1], x0, x1)) - set(inside(levels[0][1], x0, x1)) if len(levels) > 1 else set()
        assert set(in_view(grid.curves[1], x0, x1)) == minor
        _, ys = grid.curves[0].getData()
        assert ys.min() <= y0 and ys.max() >= y1
    assert len(sets) > n0 + 3
