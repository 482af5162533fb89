"""Grid lines at the axes' ticks, drawn as two cheap curves instead of by the axes themselves.

``PlotItem.showGrid`` makes each AxisItem paint its grid lines across the whole plot inside its cached QPicture; in
the raster engine (offscreen, or any software-rendered desktop) replaying that picture cost 12-20 ms per repaint of
one 800 x 600 plot here, against 0.5 ms without the grid: most of a frame, in every lab. Here the major and minor
ticks' positions (``AxisItem.tickValues``, so the lines match the labels, log axes included) become two
``PlotCurveItem``s of segment pairs (light, opaque pens), recomputed when the view's range or size changes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from app.widgets.palette import GUIDE_LINE


class GridLines:
    """Major and minor grid lines of ``plot`` (a PlotItem or PlotWidget) along ``x`` and/or ``y``.

    ``alpha`` is the darkness of the major lines on a white background, as ``showGrid``'s; minor lines are half as
    dark. ``z``: the lines' stacking order in the view (above a background heatmap, below the data)."""

    def __init__(self, plot, x: bool = True, y: bool = True, alpha: float = 0.15, z: float = -5.0):
        self.plot = plot.getPlotItem() if hasattr(plot, "getPlotItem") else plot
        self.vb = self.plot.getViewBox()
        self.x, self.y = x, y
        self.curves = []
        for darkness in (alpha, alpha / 2):
            grey = int(round(255 * (1 - darkness)))
            curve = pg.PlotCurveItem(pen=pg.mkPen((grey, grey, grey), width=1), connect="pairs")
            curve.setZValue(z)
            setattr(curve, GUIDE_LINE, True)  # (app.widgets.theme: a guide keeps its width in presenter mode)
            self.vb.addItem(curve, ignoreBounds=True)
            self.curves.append(curve)
        self.vb.sigRangeChanged.connect(self.update)
        self.vb.sigResized.connect(self.update)
        self.update()

    def _ticks(self, name: str, lo: float, hi: float, size: float) -> list[np.ndarray]:
        """[major positions, minor positions] of axis ``name`` over [lo, hi] drawn ``size`` pixels long."""
        levels = self.plot.getAxis(name).tickValues(lo, hi, max(size, 1.0))
        out = [np.asarray(v, dtype=float) for _, v in levels[:2]]
        out += [np.zeros(0)] * (2 - len(out))
        if out[0].size and out[1].size:  # minor ticks that coincide with major ones are drawn once
            out[1] = out[1][np.min(np.abs(out[1][:, None] - out[0][None, :]), axis=1) > 1e-9 * max(hi - lo, 1e-300)]
        return out

    def update(self, *args) -> None:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        xs = self._ticks("bottom", x0, x1, self.vb.width()) if self.x else [np.zeros(0)] * 2
        ys = self._ticks("left", y0, y1, self.vb.height()) if self.y else [np.zeros(0)] * 2
        for curve, xv, yv in zip(self.curves, xs, ys, strict=False):
            seg = np.concatenate(
                [
                    np.stack([np.repeat(xv, 2), np.tile([y0, y1], len(xv))], 1),
                    np.stack([np.tile([x0, x1], len(yv)), np.repeat(yv, 2)], 1),
                ]
            )
            if len(seg):
                curve.setData(seg[:, 0], seg[:, 1], connect="pairs")
            else:
                curve.setData([], [])
