"""app.widgets.grid_lines: the plots' grid as two curves that follow the axes' ticks."""

from __future__ import annotations

import numpy as np


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
            xs, ys = grid.curves[0].getData()
            vertical = xs[0::2][xs[0::2] == xs[1::2]]
            assert sorted(set(np.round(vertical, 9))) == sorted(set(np.round(major_x, 9)))
            assert np.all((ys >= y0 - 1e-9) & (ys <= y1 + 1e-9))

        qtbot.waitUntil(follows, timeout=10000)  # once the layout settled (the last failure is shown on timeout)
