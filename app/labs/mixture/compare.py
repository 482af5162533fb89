"""The Mixture lab's "compare with seed" view: the end of a second EM run on the same points, from another seed.

EM climbs to the nearest local maximum of the log-likelihood; where it ends depends on where it starts. The panel
shows the other run's final fit (points coloured by its responsibilities, its 1- and 2-sigma ellipses) in a small plot
fitted to the points, and its log-likelihood per point beside the main run's
(``state.compare_text``). The main log-likelihood plot draws the other run's end as a dashed line.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.labs.mixture.engine import Step, step_full_covs
from app.labs.mixture.panels import small_plot
from app.widgets.ellipses import EllipseSet
from app.widgets.palette import qcolor
from app.widgets.raster_scatter import RasterScatter


class ComparePanel(QWidget):
    """A small second view: the other seed's final fit, and the two runs' log-likelihoods in its caption."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("mixture-compare")
        self.plot = small_plot()
        self.plot.setMinimumSize(120, 70)  # (compact: it shares the column with three plots)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.getPlotItem().hideAxis("bottom")
        self.plot.getPlotItem().hideAxis("left")
        self.vb = self.plot.getViewBox()
        self.vb.disableAutoRange()  # (explicit ranges: the points' own)
        self.view_range: tuple[tuple[float, float], tuple[float, float]] = ((-5.0, 5.0), (-5.0, 5.0))
        self.points = RasterScatter(self.vb, z=0)
        self.ellipses = EllipseSet(self.vb, z=5, width=1.5)
        self.caption = QLabel()
        self.caption.setObjectName("mixture-compare-text")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.PlainText)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.plot, 1)

    def set_points(self, xy: np.ndarray, view_range: tuple[tuple[float, float], tuple[float, float]]) -> None:
        """New points (grey until the other run colours them), the view fitted to them."""
        self.view_range = view_range
        self._fit()
        self.points.set_data(xy)
        self.ellipses.clear()

    def _fit(self) -> None:
        (x0, x1), (y0, y1) = self.view_range
        self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)

    def draw(self, step: Step | None, colours: np.ndarray | None, text: str) -> None:
        """Draw the other run's step (None: nothing yet) with its points' colours (None: grey)."""
        self.caption.setText(text)
        self.caption.setToolTip(text)
        self._fit()  # (set while the panel was hidden, the range is applied again at its real size)
        if colours is not None and len(colours) == len(self.points.xy):
            self.points.set_colours(colours)
        if step is None:
            self.ellipses.clear()
            return
        self.ellipses.set(step.means, step_full_covs(step), [qcolor(k) for k in range(step.k)])
