"""app.widgets.elbo_kl_bar: log p(x) = ELBO + KL as a stacked bar, set only where it changed."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")


def test_the_bar_shows_the_identity_and_sets_nothing_twice(qtbot):
    from app.widgets.elbo_kl_bar import ElboKLBar

    bar = ElboKLBar()
    qtbot.addWidget(bar)
    bar.resize(400, 120)
    bar.show()
    texts = []
    for item in (bar.elbo_text, bar.kl_text):
        real = item.setText
        item.setText = lambda t, real=real: (texts.append(t), real(t))
    bar.set_values(-100.0, -103.0)
    assert bar.kl == pytest.approx(3.0)
    assert bar.elbo_bar.opts["x1"] == [-103.0] and bar.kl_bar.opts["x0"] == [-103.0]
    assert bar.kl_bar.opts["x1"] == [-100.0] and bar.px_line.value() == -100.0
    assert "-100.000" in bar.label.text() and "3.000" in bar.label.text()
    assert bar.px_line.isVisible() and bar.plot.getAxis("bottom").style["showValues"]
    (x0, x1), _ = bar.plot.getViewBox().viewRange()
    assert x0 < -103.0 and -100.0 < x1
    set_once = len(texts)
    bar.set_values(-100.0, -103.0)  # the same values: no text is laid out again
    assert len(texts) == set_once
    bar.set_values(-100.0, None)  # no ELBO: nothing but the note
    assert not bar.elbo_bar.isVisible() and not bar.px_line.isVisible()
    assert not bar.plot.getAxis("bottom").style["showValues"] and "no q yet" in bar.label.text()
    bar.set_values(None, -90.0)  # log p(x) still being computed
    assert bar.elbo_bar.isVisible() and not bar.px_line.isVisible() and "being computed" in bar.label.text()
