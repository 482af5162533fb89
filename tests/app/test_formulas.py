"""Help-panel formulas (issue 19): typeset by matplotlib's mathtext from ``$...$`` TeX, never combining accents.

A combining circumflex (U+0302) after "p" landed on the wrong letters ("rêweights", "q(ẑᵢ)") and made
"E[p̂(x)] = p(x)" read as "E[p(x)] = p(x)"; every lab's explanation now writes its formulas in TeX and each must typeset.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("pytestqt")

from app.labs import LABS
from app.widgets.formula_text import (
    FORMULA,
    FormulaBrowser,
    formula_html,
    formulas,
    render_formula,
)


def explanation(name: str) -> str:
    module, _, cls = LABS[name][1].partition(":")
    return getattr(importlib.import_module(module), cls).explanation


@pytest.mark.parametrize("name", list(LABS))
def test_every_lab_explanation_is_free_of_combining_accents_and_every_formula_typesets(qtbot, name):
    html = explanation(name)
    assert "\u0302" not in html, f"{name}: a combining circumflex (write $\\hat{{p}}$)"
    found = formulas(html)
    assert found, f"{name}: no $...$ formula in its explanation"
    for tex in found:
        image, depth = render_formula(tex, 9.0, 96.0)  # raises ValueError on TeX mathtext cannot parse
        assert image.width() > 0 and image.height() > 0 and depth >= 0, tex


def test_the_unbiasedness_line_keeps_its_hat():
    assert r"\mathbb{E}_q[\hat{p}(x)] = p(x)" in formulas(explanation("inference"))


def test_browser_typesets_after_it_is_shown_at_the_device_pixel_ratio(qtbot):
    html = r"<p>Unbiased: $\mathbb{E}[\hat{p}(x)] = p(x)$, and $\frac{1}{k}\sum_i w_i$.</p>"
    browser = FormulaBrowser(html)
    qtbot.addWidget(browser)
    assert browser.rendered_key is None and "$" not in browser.toHtml()  # placeholder until shown
    browser.show()
    qtbot.waitUntil(lambda: browser.rendered_key is not None, timeout=20000)
    assert browser.render_error is None
    assert sorted(browser.images) == ["formula:0", "formula:1"]
    assert 'src="formula:0"' in browser.toHtml()
    # at ratio 2 the same formula has twice the device pixels and says so (sharp on HiDPI, same logical size)
    one, two = {}, {}
    formula_html(html, one, 9.0, 96.0, 1.0, (0, 0, 0), 5.0)
    formula_html(html, two, 9.0, 96.0, 2.0, (0, 0, 0), 5.0)
    a, b = one["formula:0"], two["formula:0"]
    assert b.devicePixelRatio() == 2.0 and abs(b.width() - 2 * a.width()) <= 2


def test_bad_tex_is_reported_not_raised(qtbot):
    browser = FormulaBrowser(r"<p>$\frac{1}{$</p>")
    qtbot.addWidget(browser)
    browser.show()
    qtbot.waitUntil(lambda: browser.render_error is not None, timeout=20000)
    assert browser.rendered_key is None


def test_building_a_help_panel_does_not_import_matplotlib():
    """Start-up does not pay for the renderer: it loads when a panel is first shown, after the first paint."""
    code = (
        "import os, sys; os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')\n"
        "from PySide6.QtWidgets import QApplication; app = QApplication([])\n"
        "from app.widgets.lab_view import explanation_panel\n"
        "panel = explanation_panel('t', '<p>$\\\\hat{p}(x)$</p>')\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_inline_and_display_formulas():
    html = r"costs 5 nats: $\sum_k \pi_k$ inline, $$\sum_k \pi_k$$ displayed"
    assert len(FORMULA.findall(html)) == 2
    assert formulas(html) == [r"{\sum}_k \pi_k", r"\sum_k \pi_k"]  # inline: limits beside, as in LaTeX


def test_held_typesetting_waits_for_release(qtbot):
    """While the app loads, typesetting is held (matplotlib's import would compete with loading for the GIL)."""
    from app.widgets import formula_text

    formula_text.hold_typesetting()
    try:
        browser = FormulaBrowser(r"<p>$\hat{p}(x)$</p>")
        qtbot.addWidget(browser)
        browser.show()
        qtbot.wait(100)
        assert browser.rendered_key is None and browser.pending_key is None and not browser.is_typesetting()
    finally:
        formula_text.release_typesetting()
    qtbot.waitUntil(lambda: browser.rendered_key is not None, timeout=20000)
    assert not browser.is_typesetting()


def test_wide_formulas_shrink_to_fit_but_never_below_a_readable_scale():
    from app.widgets.formula_text import MIN_FORMULA_SCALE, fit_images

    html = '<img src="formula:0" width="300" height="20"><img src="formula:1" width="90" height="20">'
    sizes = {"formula:0": (300.0, 20.0), "formula:1": (90.0, 20.0)}

    def widths(max_width):
        return [float(w) for w in re.findall(r'width="([\d.]+)"', fit_images(html, sizes, max_width))]

    assert widths(1000) == [300.0, 90.0]  # room: natural size
    assert widths(270) == [270.0, 90.0]  # a little tight: shrunk to fit (the narrow one stays)
    assert widths(60) == [300 * MIN_FORMULA_SCALE, 90 * MIN_FORMULA_SCALE]  # a narrow panel: readable, scrolls


def test_a_formula_written_across_lines_typesets():
    from app.widgets.formula_text import formulas, typeset

    html = "<p>Display: $$\\log p(x) =\n    \\mathrm{ELBO} + \\mathrm{KL}$$ and inline $q(z)\n$.</p>"
    texs = formulas(html)
    assert texs == ["\\log p(x) = \\mathrm{ELBO} + \\mathrm{KL}", "q(z)"]
    for tex in texs:
        alpha, _ = typeset(tex, 10.0, 96.0)
        assert alpha.size > 0


@pytest.mark.parametrize("name", list(LABS))
def test_a_labs_explanation_is_read_without_importing_the_lab(name):
    """``app.labs.explanation(name)`` is the lab's own help text, and reading it does not import the lab (so the
    formulas can be typeset ahead of its first showing)."""
    from app.labs import explanation as read

    assert read(name) == explanation(name)
    module = LABS[name][1].partition(":")[0]
    code = f"import sys; from app.labs import explanation; explanation({name!r}); print({module!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.fixture
def collector_off():
    """Automatic garbage collection off (as the app runs it: ``app.core.gui_gc``), so that garbage left in reference
    cycles stays until someone collects it."""
    import gc

    was = gc.isenabled()
    gc.disable()
    gc.collect()
    yield
    if was:
        gc.enable()


def test_typesetting_leaves_no_garbage_in_cycles(collector_off):
    """mathtext's parser leaves thousands of objects in reference cycles per formula; typesetting collects them
    itself, so the GUI thread's collector never meets a pile of them later (12-65 ms per help panel)."""
    import gc

    from app.widgets.formula_text import typeset_all

    texs = formulas(explanation("inpainting"))[:6]
    typeset_all(texs, 9.37, 96.0)  # (a size used nowhere else: not cached)
    assert gc.collect(0) < 300


def test_typesetting_ahead_does_one_formula_per_step_and_fills_the_cache(qtbot, collector_off):
    """``TypesetAhead`` typesets one uncached formula per timer tick (each a few ms of the GUI thread), passes over
    cached ones, collects each one's garbage, and leaves every formula cached for the panels shown later."""
    import gc

    from app.widgets.formula_text import TypesetAhead, typeset, typeset_all

    htmls = [explanation("discrete"), explanation("mixture")]
    wanted = list(dict.fromkeys(tex for html in htmls for tex in formulas(html)))
    typeset_all(wanted[:3], 9.61, 96.0)  # three of them cached already
    ahead = TypesetAhead(htmls, 9.61, 96.0, interval_ms=10_000)  # (stepped by hand here)
    steps = 0
    while ahead.pending:
        misses = typeset.cache_info().misses
        ahead.step()
        steps += 1
        assert typeset.cache_info().misses - misses <= 1
        assert gc.collect(0) < 300
    assert steps == ahead.typeset_count == len(wanted) - 3
    misses = typeset.cache_info().misses
    typeset_all(wanted, 9.61, 96.0)
    assert typeset.cache_info().misses == misses  # (all cached)
    nothing = TypesetAhead([], 9.61, 96.0, interval_ms=1)
    with qtbot.waitSignal(nothing.finished, timeout=5000):
        pass


def test_the_window_typesets_every_labs_help_ahead(qtbot, workspace_window):
    """Once warmed up, the window typesets all six labs' help formulas in the background; a lab shown for the first
    time afterwards typesets nothing new (its panel is ready at once, with no collection pending)."""
    from app.widgets.formula_text import typeset

    window = workspace_window
    ahead = window.help_typesetting
    assert ahead is not None
    qtbot.waitUntil(lambda: ahead.pending == 0, timeout=60000)
    misses = typeset.cache_info().misses
    window.set_help_visible(True)  # (an earlier test of the run may have hidden the help panels)
    other = next(name for name in LABS if name not in window.labs)
    window.set_view(other)
    browser = window.lab(other).findChild(FormulaBrowser, "explanation-text")
    qtbot.waitUntil(lambda: browser.isVisible(), timeout=10000)
    browser.render_formulas()  # (what its first showing queues; synchronous: nothing is held after the warm-up)
    assert browser.rendered_key is not None and browser.render_error is None
    assert typeset.cache_info().misses == misses
