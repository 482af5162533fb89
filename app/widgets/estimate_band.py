"""An estimator's mean curve with a shaded band (mean ± one standard deviation across repeats) in a pyqtgraph plot:
the Inference and Discrete labs' "estimates of log p(x) against k" plots. Items are made once and updated with
``setData``."""

from __future__ import annotations

import pyqtgraph as pg


def add_estimate_band(
    plot: pg.PlotItem | pg.PlotWidget, colour: tuple[int, int, int], label: str, band_alpha: int = 55
) -> tuple[pg.PlotDataItem, pg.PlotDataItem, pg.FillBetweenItem, pg.PlotDataItem]:
    """(lower edge, upper edge, band, mean curve), added to ``plot``; the legend names the mean curve ``label``."""
    lo = pg.PlotDataItem(pen=pg.mkPen(colour + (0,)))
    hi = pg.PlotDataItem(pen=pg.mkPen(colour + (0,)))
    band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(colour + (band_alpha,)))
    for item in (lo, hi, band):
        plot.addItem(item)
    curve = plot.plot(
        pen=pg.mkPen(colour, width=2.2), symbol="o", symbolSize=5, symbolBrush=colour, symbolPen=None, name=label
    )
    return lo, hi, band, curve
