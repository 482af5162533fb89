"""Contour lines, one ``PlotCurveItem`` per level (segments from ``lvm.contours``), updated in place."""

from __future__ import annotations

import numpy as np

from app.widgets.steady_plots import OverlayCurve
from lvm.contours import contour_segments


class ContourLines:
    """One curve item per level in ``view`` (a ViewBox or PlotItem); ``set`` replaces all of them in place."""

    def __init__(self, view, pens, z: float = 5.0):
        self.curves = []
        for pen in pens:
            curve = OverlayCurve(pen=pen, connect="pairs", antialias=True)  # (hidden while its level is empty)
            curve.setZValue(z)
            view.addItem(curve, ignoreBounds=True)
            self.curves.append(curve)

    def set_segments(self, segments: list[np.ndarray]) -> None:
        """``segments[k]``: the (2S, 2) endpoints of level k (from ``contour_segments``); missing levels clear."""
        for k, curve in enumerate(self.curves):
            seg = segments[k] if k < len(segments) else None
            if seg is None or len(seg) == 0:
                curve.setData([], [])
            else:
                curve.setData(seg[:, 0], seg[:, 1], connect="pairs")

    def set(self, values: np.ndarray, levels, extent) -> None:
        self.set_segments([contour_segments(values, float(lv), extent) for lv in levels])

    def clear(self) -> None:
        self.set_segments([])
