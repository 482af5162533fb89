"""Grid lines at the axes' ticks, drawn as two cheap curves instead of by the axes themselves.

``PlotItem.showGrid`` makes each AxisItem paint its grid lines across the whole plot inside its cached QPicture; in
the raster engine (offscreen, or any software-rendered desktop) replaying that picture cost 12-20 ms per repaint of
one 800 x 600 plot here, against 0.5 ms without the grid: most of a frame, in every lab. Here the major and minor
ticks' positions (``AxisItem.tickValues``, so the lines match the labels, log axes included) become two
``PlotCurveItem``s of segment pairs (light, opaque pens).

The lines are laid out over a cover three times the view's size in each direction, at the view's tick spacing: a pan
or a zoom that keeps the view inside the cover and the spacing unchanged leaves the curves as they are (the view's
transform moves them). Recomputing them cost 0.85 ms per range change, three range changes per pan step in the Latent
lab's two linked plots (``lvm bench gui --profile``, latent-pan-zoom); log axes are recomputed on every change.
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
        self._cover: tuple | None = None  # (the layout key, the cover's x and y ranges) of the lines laid out
        self.vb.sigRangeChanged.connect(self.update)
        self.vb.sigResized.connect(self.update)
        self.update()

    def _levels(self, name: str, lo: float, hi: float, size: float) -> list[tuple[float, float]]:
        """The (spacing, offset) of the major and minor ticks of axis ``name`` over [lo, hi] drawn ``size`` px long."""
        return [tuple(level) for level in self.plot.getAxis(name).tickSpacing(lo, hi, max(size, 1.0))[:2]]

    def _ticks(self, name: str, lo: float, hi: float, size: float, cover: tuple[float, float]) -> list[np.ndarray]:
        """[major positions, minor positions] over ``cover`` at the ticks of axis ``name`` over [lo, hi] drawn ``size``
        pixels long (``AxisItem.tickValues``' rule: multiples of each level's spacing, minor ticks that coincide with
        major ones drawn once); a log axis's own ``tickValues`` over [lo, hi]."""
        axis = self.plot.getAxis(name)
        if self._special(axis):
            out = [np.asarray(v, dtype=float) for _, v in axis.tickValues(lo, hi, max(size, 1.0))[:2]]
        else:
            out = []
            for spacing, offset in self._levels(name, lo, hi, size):
                if not spacing > 0 or not np.isfinite(spacing):
                    continue
                first = np.ceil((cover[0] - offset) / spacing)
                count = max(int(np.floor((cover[1] - offset) / spacing) - first) + 1, 0)
                out.append((first + np.arange(count)) * spacing + offset)
        out += [np.zeros(0)] * (2 - len(out))
        if out[0].size and out[1].size:
            out[1] = out[1][np.min(np.abs(out[1][:, None] - out[0][None, :]), axis=1) > 1e-9 * max(hi - lo, 1e-300)]
        return out

    @staticmethod
    def _special(axis) -> bool:
        """A log or rescaled axis: its ticks are not multiples of one spacing in view units."""
        return bool(axis.logMode) or axis.scale != 1.0

    def _layout_key(self, x_range, y_range, size) -> tuple | None:
        """What lines laid out for this view depend on besides the cover: its tick levels per axis and its size in
        pixels (None with a log or rescaled axis: those are laid out again on every change)."""
        (x0, x1), (y0, y1) = x_range, y_range
        if self._special(self.plot.getAxis("bottom")) or self._special(self.plot.getAxis("left")):
            return None
        levels = (
            self._levels("bottom", x0, x1, size[0]) if self.x else None,
            self._levels("left", y0, y1, size[1]) if self.y else None,
        )
        return levels, size

    def update(self, *args) -> None:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        size = (self.vb.width(), self.vb.height())
        key = self._layout_key((x0, x1), (y0, y1), size)
        cover = self._cover
        if key is not None and cover is not None and key == cover[0]:
            (cx0, cx1), (cy0, cy1) = cover[1]
            if cx0 <= x0 and x1 <= cx1 and cy0 <= y0 and y1 <= cy1:
                return  # the lines laid out already cover the view, at its spacing
        wx, wy = x1 - x0, y1 - y0
        cx, cy = (x0 - wx, x1 + wx), (y0 - wy, y1 + wy)
        self._cover = (key, (cx, cy)) if key is not None else None
        xs = self._ticks("bottom", x0, x1, size[0], cx) if self.x else [np.zeros(0)] * 2
        ys = self._ticks("left", y0, y1, size[1], cy) if self.y else [np.zeros(0)] * 2
        for curve, xv, yv in zip(self.curves, xs, ys, strict=False):
            seg = np.concatenate(
                [
                    np.stack([np.repeat(xv, 2), np.tile(cy, len(xv))], 1),
                    np.stack([np.tile(cx, len(yv)), np.repeat(yv, 2)], 1),
                ]
            )
            if len(seg):
                curve.setData(seg[:, 0], seg[:, 1], connect="pairs")
            else:
                curve.setData([], [])
