"""Help-panel HTML with LaTeX formulas: each ``$...$`` becomes an image typeset by matplotlib's mathtext.

Why mathtext: with ``math_fontfamily="cm"`` it typesets in Computer Modern, the lecture's LaTeX typography (\\hat p,
\\mathbb{E}, \\frac, \\sum with limits, \\mathrm{KL}), and rasterises straight to an alpha mask, so no SVG step is
needed. ziamath (STIX Two Math, pure Python) was measured too: import 0.30-0.34 s and first formula 0.06 s against
mathtext's 0.25-0.54 s import and 0.30-0.33 s first formula (fonts load once), but its SVG uses ``<symbol>``/``<use>``,
which Qt's SVG Tiny renderer drew as blank, and its glyphs are STIX rather than the lecture's Computer Modern.

Narrow panels: formulas are separate images, so text wraps between them; one wider than the panel is shrunk to fit.

Lazy: a ``FormulaBrowser`` shows the HTML with each formula's TeX source in italics until it is first shown; one
event-loop turn later (after that paint) it imports matplotlib, typesets the formulas at the widget's device pixel
ratio and font size (alpha masks cached per formula, size and dpi) and swaps in the images. Measured on this 2-core
machine: 1.04 s for the first panel (matplotlib's imports and fonts), 0.17 s for the next. It runs on the GUI thread:
typesetting in a background thread deadlocked the Inference lab's tests (all threads in futex waits) while a worker
imported torch._dynamo. ``hold_typesetting`` / ``release_typesetting`` keep it out of start-up: the main window can
hold it while it loads its defaults (smoke test, median of 5: ready 2.89 s held, 3.51 s typeset at once, 3.07 s with
no typesetting at all; first paint 250-265 ms in all three).

Ahead: once the app has warmed up, the main window typesets every lab's help formulas in the background of the event
loop (``TypesetAhead``: one formula per timer tick of 40 ms, 5 ms median, 16 ms at most after the first, which
loads mathtext's fonts; the six labs' 161 formulas in about 8 s), so that a lab shown for the first time finds them
cached: its panel took 6-11 ms instead of 75-305 ms of the GUI thread. Typesetting collects its own garbage
(``collect_typesetting_garbage``: 20,000-110,000 objects in reference cycles per panel, which the GUI thread's
collector freed later in one 12-65 ms pause).
"""

from __future__ import annotations

import html as html_lib
import re
import threading
from collections import deque
from functools import lru_cache

from PySide6.QtCore import QEvent, QObject, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetricsF,
    QImage,
    QPainter,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

# $$display$$ (big operators take their limits below, as in LaTeX display maths) or $inline$ (limits beside);
# no "$" appears otherwise in the help texts
FORMULA = re.compile(r"\$\$(.+?)\$\$|\$([^$]+)\$", re.DOTALL)
_IMG = re.compile(r'<img src="(formula:\d+)" width="[0-9.]+" height="[0-9.]+"')
MATH_FONT = "cm"  # Computer Modern, as in the lecture's LaTeX
MATH_SCALE = 1.1  # Computer Modern looks smaller than the panel's sans-serif at one point size


def _tex(match: re.Match) -> str:
    """The TeX that is typeset for a match: one line (a formula written across lines in the HTML source typesets as
    if on one: mathtext refuses newlines); inline formulas get text-style sums and products ({\\sum}_k)."""
    if match.group(1) is not None:
        return " ".join(html_lib.unescape(match.group(1)).split())
    tex = " ".join(html_lib.unescape(match.group(2)).split())
    return re.sub(r"\\(sum|prod)(?=\s*[_^])", r"{\\\1}", tex)


def formulas(html: str) -> list[str]:
    """The TeX of the ``$...$`` and ``$$...$$`` formulas of ``html`` as typeset, in order (HTML entities decoded)."""
    return [_tex(m) for m in FORMULA.finditer(html)]


def placeholder_html(html: str) -> str:
    """``html`` with each formula shown as its TeX source (before the renderer has loaded)."""
    return FORMULA.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", html)


MIN_FORMULA_SCALE = 0.85  # below this a formula's subscripts are unreadable: the panel scrolls sideways instead


def fit_images(html: str, sizes: dict[str, tuple[float, float]], max_width: float) -> str:
    """``html`` (from ``formula_html``) with every formula image wider than ``max_width`` shrunk to fit it, but never
    below ``MIN_FORMULA_SCALE`` of its size (a wider one makes the panel scroll sideways)."""

    def fit(match: re.Match) -> str:
        w, h = sizes[match.group(1)]
        k = min(1.0, max(max_width / w, MIN_FORMULA_SCALE)) if w > 0 else 1.0
        return f'<img src="{match.group(1)}" width="{w * k:.1f}" height="{h * k:.1f}"'

    return _IMG.sub(fit, html)


_parser = None
_parser_lock = threading.Lock()


@lru_cache(maxsize=1024)
def typeset(tex: str, point_size: float, dpi: float):
    """Typeset ``$tex$`` at ``point_size`` pt and ``dpi`` (device pixels): (alpha mask uint8 HxW, depth below the
    baseline in px). Pure numpy, no Qt: runs in the typesetting thread. Raises ``ValueError`` on bad TeX."""
    import numpy as np
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    global _parser
    with _parser_lock:  # one parser, used by one thread at a time
        if _parser is None:
            _parser = mathtext.MathTextParser("agg")
        parsed = _parser.parse(
            f"${tex}$", dpi=dpi, prop=FontProperties(size=point_size * MATH_SCALE, math_fontfamily=MATH_FONT)
        )
    alpha = np.ascontiguousarray(np.asarray(parsed.image, dtype=np.uint8))
    alpha.flags.writeable = False
    return alpha, float(parsed.depth)


def alpha_to_image(alpha, rgb: tuple[int, int, int]) -> QImage:
    """An ARGB32 (premultiplied) QImage of colour ``rgb`` with the mask ``alpha`` as its opacity."""
    import numpy as np

    h, w = alpha.shape
    argb = np.empty((h, w, 4), np.uint8)  # B, G, R, A in memory (little-endian ARGB32)
    for channel, value in zip((2, 1, 0), rgb, strict=False):
        argb[..., channel] = (alpha.astype(np.uint16) * value // 255).astype(np.uint8)
    argb[..., 3] = alpha
    return QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied).copy()


def render_formula(tex: str, point_size: float, dpi: float, rgb: tuple[int, int, int] = (0, 0, 0)):
    """``typeset`` as (QImage, depth px)."""
    alpha, depth = typeset(tex, point_size, dpi)
    return alpha_to_image(alpha, rgb), depth


def typeset_all(texs: list[str], point_size: float, dpi: float) -> dict:
    """``typeset`` every formula: {tex: (alpha, depth)}; ValueError on bad TeX. On the GUI thread (see the module
    docstring); the garbage that typesetting leaves is collected before it returns."""
    misses = typeset.cache_info().misses
    try:
        return {tex: typeset(tex, point_size, dpi) for tex in texs}
    finally:
        if typeset.cache_info().misses > misses:
            collect_typesetting_garbage()


def collect_typesetting_garbage() -> None:
    """Collect the youngest generation now: mathtext's parser (pyparsing, packrat) leaves its failed alternatives'
    exceptions, tracebacks and frames in reference cycles, 20,000-110,000 objects per help panel, which the GUI
    thread's collector (``app.core.gui_gc``) otherwise freed up to 100 ms later in one 12-65 ms pause, in the middle of
    whatever the user did next (timed with ``gc.callbacks`` on each lab's first showing). Here it is paid at once, as
    part of the typesetting (on the GUI thread, as ``app.core.gui_gc`` requires)."""
    import gc

    gc.collect(0)


AHEAD_INTERVAL_MS = 40  # between two formulas typeset ahead (5 ms each, median): about a tenth of the GUI thread


class TypesetAhead(QObject):
    """The formulas of ``htmls`` typeset ahead of the panels that will show them, one formula per timer tick, each
    followed by the collection of its garbage (a few ms each, where typesetting a lab's panel when it is first shown
    took 75-305 ms of the GUI thread and left a 12-65 ms collection behind). A panel shown later at the same font
    size and resolution finds them in ``typeset``'s cache. ``finished`` when all are done (or failed: a bad formula is
    reported by its panel when shown)."""

    finished = Signal()

    def __init__(
        self,
        htmls: list[str],
        point_size: float,
        dpi: float,
        interval_ms: int = AHEAD_INTERVAL_MS,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._jobs = deque(dict.fromkeys(tex for html in htmls for tex in formulas(html)))  # (each once, in order)
        self._point_size, self._dpi = point_size, dpi
        self.typeset_count = 0  # formulas this object typeset (the others were cached already)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.step)
        self._timer.start()

    @property
    def pending(self) -> int:
        """Formulas not yet looked at."""
        return len(self._jobs)

    def step(self) -> None:
        """Typeset the next formula not yet cached (those already cached are passed over at once)."""
        while self._jobs:
            tex = self._jobs.popleft()
            misses = typeset.cache_info().misses
            try:
                typeset(tex, self._point_size, self._dpi)
            except ValueError:
                pass
            if typeset.cache_info().misses > misses:
                self.typeset_count += 1
                collect_typesetting_garbage()
                break
        if not self._jobs and self._timer.isActive():
            self._timer.stop()
            self.finished.emit()


_held: list | None = None  # browsers waiting while typesetting is held (None: not held)


def hold_typesetting() -> None:
    """Defer all typesetting (e.g. while the app loads its defaults: importing matplotlib in a thread then competes
    with the loading job for the GIL). Browsers shown meanwhile keep their TeX placeholders."""
    global _held
    if _held is None:
        _held = []


def typesetting_held() -> bool:
    """True between ``hold_typesetting`` and ``release_typesetting``."""
    return _held is not None


def release_typesetting() -> None:
    """Typeset what was deferred by ``hold_typesetting`` (call on the GUI thread, e.g. when loading has finished)."""
    global _held
    import shiboken6

    waiting, _held = _held or [], None
    for browser in waiting:
        if shiboken6.isValid(browser):
            browser.render_formulas()


def formula_html(
    html: str,
    images: dict[str, QImage],
    point_size: float,
    logical_dpi: float,
    ratio: float,
    rgb: tuple[int, int, int],
    x_height: float,
    typeset_masks: dict | None = None,
) -> str:
    """``html`` with every formula replaced by an ``<img src="formula:N">``; the images go into ``images`` by URL.

    Images are rendered at ``logical_dpi * ratio`` and carry ``ratio`` as their device pixel ratio (sharp on HiDPI).
    Vertical placement: with ``vertical-align: middle`` Qt gives an inline image of height H the ascent
    (H + x/2) / 2 above the text baseline (x: the font's x-height); blank rows above or below the formula make that
    the formula's own baseline: top - bottom padding = x/2 + depth - ascent (all in device pixels).
    """

    def replace(match: re.Match) -> str:
        tex = _tex(match)
        if typeset_masks is not None:
            alpha, depth = typeset_masks[tex]
            image = alpha_to_image(alpha, rgb)
        else:
            image, depth = render_formula(tex, point_size, logical_dpi * ratio, rgb)
        excess = x_height / 2 * ratio + depth - (image.height() - depth)
        pad_top, pad_bottom = max(0.0, excess), max(0.0, -excess)
        if pad_bottom or pad_top:
            padded = QImage(
                image.width(), image.height() + round(pad_top + pad_bottom), QImage.Format.Format_ARGB32_Premultiplied
            )
            padded.fill(0)
            painter = QPainter(padded)
            painter.drawImage(0, round(pad_top), image)
            painter.end()
            image = padded
        image.setDevicePixelRatio(ratio)
        url = f"formula:{len(images)}"
        images[url] = image
        return (
            f'<img src="{url}" width="{image.width() / ratio:.1f}" '
            f'height="{image.height() / ratio:.1f}" style="vertical-align: middle" alt="{html_lib.escape(tex)}">'
        )

    return FORMULA.sub(replace, html)


class FormulaBrowser(QTextBrowser):
    """A QTextBrowser for help HTML with ``$...$`` formulas, typeset lazily (see the module docstring)."""

    def __init__(self, html: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.pending_key: tuple | None = None
        self.source_html = html
        self.rendered_key: tuple | None = None
        self.render_error: str | None = None
        self.images: dict[str, QImage] = {}
        self.sizes: dict[str, tuple[float, float]] = {}
        self.rendered_html: str | None = None
        self.shown_html: str | None = None
        self.setHtml(placeholder_html(html))

    def set_source(self, html: str) -> None:
        """Show other HTML (its formulas typeset as for the first)."""
        self.source_html = html
        self.rendered_key = self.pending_key = self.rendered_html = self.shown_html = None
        self.render_error = None
        self.setHtml(placeholder_html(html))
        if self.isVisible():
            QTimer.singleShot(0, self, self.render_formulas)

    def is_typesetting(self) -> bool:
        """Whether formulas shown (or about to be) still wait for the typesetting thread."""
        waiting = self.isVisible() and self.rendered_key is None and self.render_error is None and _held is None
        return self.pending_key is not None or (waiting and FORMULA.search(self.source_html) is not None)

    def _key(self):
        font = self.font()
        ratio = self.devicePixelRatioF()
        colour = self.palette().color(QPalette.ColorRole.Text)
        return (font.pointSizeF(), self.logicalDpiY(), ratio, colour.rgb())

    def render_formulas(self) -> None:
        """Typeset the formulas for this widget's font, colour and device pixel ratio and swap them in (on the GUI
        thread: see the module docstring)."""
        key = self._key()
        if key in (self.rendered_key, self.pending_key) or not FORMULA.search(self.source_html):
            return
        if _held is not None:
            if self not in _held:
                _held.append(self)
            return
        self.pending_key = key
        point_size, dpi, ratio, _ = key
        texs = formulas(self.source_html)
        size = point_size if point_size > 0 else 10.0

        result: dict | ValueError
        try:
            result = typeset_all(texs, size, dpi * ratio)
        except ValueError as err:
            result = err
        self._on_typeset(key, result)

    def _on_typeset(self, key, result) -> None:
        if key != self.pending_key:
            return
        self.pending_key = None
        if isinstance(result, Exception):  # bad TeX: keep the placeholder, say why (tests check every lab renders)
            self.render_error = str(result)
            return
        if key != self._key():  # font, colour or screen changed meanwhile: again
            self.render_formulas()
            return
        point_size, dpi, ratio, _ = key
        colour = QColor(self.palette().color(QPalette.ColorRole.Text))
        x_height = QFontMetricsF(self.font()).xHeight()
        scroll = self.verticalScrollBar().value()
        images: dict[str, QImage] = {}
        html = formula_html(
            self.source_html,
            images,
            point_size if point_size > 0 else 10.0,
            dpi,
            ratio,
            (colour.red(), colour.green(), colour.blue()),
            x_height,
            typeset_masks=result,
        )
        self.images = images
        self.sizes = {
            url: (im.width() / im.devicePixelRatio(), im.height() / im.devicePixelRatio()) for url, im in images.items()
        }
        self.rendered_html, self.shown_html = html, None
        self.rendered_key = key
        self._fit()
        self.verticalScrollBar().setValue(scroll)

    def _fit(self) -> None:
        """Show the rendered HTML with formulas wider than the viewport shrunk to fit (no sideways scrolling)."""
        if self.rendered_key is None or self.rendered_html is None:
            return
        margin = 2 * self.document().documentMargin() + 30  # list indents
        html = fit_images(self.rendered_html, self.sizes, self.viewport().width() - margin)
        if html != self.shown_html:
            scroll = self.verticalScrollBar().value()
            self.shown_html = html
            self.setHtml(html)
            self.verticalScrollBar().setValue(scroll)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def loadResource(self, kind: int, url: QUrl | str):
        image = self.images.get(url.toString() if isinstance(url, QUrl) else url)
        if image is not None and kind == QTextDocument.ResourceType.ImageResource:
            return image
        return super().loadResource(kind, url)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.rendered_key is None:
            QTimer.singleShot(0, self, self.render_formulas)  # after the first paint, not inside it

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if self.rendered_key is not None and event.type() in (
            QEvent.Type.FontChange,
            QEvent.Type.PaletteChange,
            QEvent.Type.StyleChange,
        ):
            QTimer.singleShot(0, self, self.render_formulas)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.DevicePixelRatioChange and self.rendered_key is not None:
            QTimer.singleShot(0, self, self.render_formulas)
        return super().event(event)
