"""``PictureClock``: a change's wait for its picture, from the earliest change drawn to the next paint."""

import time

from app.widgets.picture_clock import PaintReportingLayout, PictureClock


def test_a_paint_without_a_drawn_change_records_nothing():
    clock = PictureClock()
    clock.painted()
    assert clock.ms == []


def test_the_earliest_change_drawn_before_a_paint_counts_once():
    clock = PictureClock()
    first = time.perf_counter() - 0.050  # a change 50 ms ago, then a newer one, both drawn before one paint
    clock.drawn(first)
    clock.drawn(time.perf_counter())
    clock.painted()
    clock.painted()  # (a second paint with nothing new drawn)
    assert len(clock.ms) == 1 and clock.ms[0] >= 50


def test_only_the_last_waits_are_kept_and_clear_forgets_a_pending_change():
    clock = PictureClock(keep=3)
    for _ in range(5):
        clock.drawn(time.perf_counter())
        clock.painted()
    assert len(clock.ms) == 3
    clock.drawn(time.perf_counter())
    clock.clear()
    clock.painted()
    assert clock.ms == []


def test_a_reporting_widget_reports_after_its_paint(qtbot):
    widget = PaintReportingLayout()
    qtbot.addWidget(widget)
    clock = PictureClock()
    widget.after_paint = clock.painted
    clock.drawn(time.perf_counter())
    widget.resize(200, 150)
    widget.show()
    qtbot.waitUntil(lambda: len(clock.ms) == 1, timeout=5000)
