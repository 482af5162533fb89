"""The Inpainting lab's ELBO(phi) chart: its log p(x_O) label lies inside the plot at any plot height."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QApplication

from app.labs.inpainting.panels import ElboChart


def _label_inside(chart: ElboChart) -> bool:
    """Whether the log p(x_O) label, as drawn, lies inside the plot's view (a hidden one: trivially)."""
    if not chart.line_label.isVisible():
        return True
    box = chart.plot.getViewBox()
    inside = box.mapRectToScene(box.boundingRect())
    return inside.contains(chart.line_label.mapRectToScene(chart.line_label.boundingRect()))


@pytest.mark.parametrize("height", [130, 160, 220, 400])
@pytest.mark.parametrize(
    ("elbos", "log_p"), [((-1154.6, -2003.3, -137.9), -47.2), ((-90.0, -85.0, None), -80.0), ((-3.0,), -0.5)]
)
def test_the_log_p_label_fits_above_its_line(qtbot, shown_plot, height, elbos, log_p):
    """At 1280 x 720 the chart is about 160 px high: 10 % of the range above 0 left the label half outside (it was
    drawn over the plot's top edge and its dashed line)."""
    w = shown_plot(420, height)
    chart = ElboChart(w.getPlotItem())
    chart.set_values([f"phi {i}" for i in range(len(elbos))], list(elbos), log_p)
    QApplication.processEvents()
    assert chart.line_label.isVisible()
    assert _label_inside(chart), (height, elbos, log_p)
    top = w.getPlotItem().getViewBox().viewRange()[1][1]
    assert top >= log_p and top >= 0  # (0 and the line stay in view)
    w.resize(420, height + 150)  # a taller plot: the range follows (no more headroom than the label needs)
    QApplication.processEvents()
    assert _label_inside(chart)


def test_without_log_p_the_range_is_the_bars(qtbot, shown_plot):
    w = shown_plot(420, 160)
    chart = ElboChart(w.getPlotItem())
    chart.set_values(["a", "b"], [-100.0, -50.0], None)
    QApplication.processEvents()
    assert not chart.line_label.isVisible() and _label_inside(chart)
    lo, hi = w.getPlotItem().getViewBox().viewRange()[1]
    assert lo == pytest.approx(-112.0) and hi == pytest.approx(10.0)
