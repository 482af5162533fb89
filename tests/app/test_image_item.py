"""``app.widgets.image_item.ImageItem``: the same pixels as pyqtgraph's ImageItem, from a picture Qt draws as is."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtGui import QImage, QPainter, QTransform

from app.widgets.image_item import ImageItem, fast_to_draw

APP = Path(__file__).resolve().parents[2] / "app"
FAST = (QImage.Format.Format_RGB32, QImage.Format.Format_ARGB32_Premultiplied)


def drawn(item: pg.ImageItem, scale: float, flip: bool, opacity: float = 1.0) -> np.ndarray:
    """The item painted (its ``paint``, as a plot paints it) under a scaling, optionally y-flipping transform onto a
    grey canvas: the canvas's RGBA pixels."""
    h, w = (item.height(), item.width())
    canvas = QImage(int(w * scale) + 4, int(h * scale) + 4, QImage.Format.Format_ARGB32_Premultiplied)
    canvas.fill(0xFF808080)
    p = QPainter(canvas)
    t = QTransform().translate(2, 2 + (h * scale if flip else 0)).scale(scale, -scale if flip else scale)
    p.setTransform(t)
    p.setOpacity(opacity)
    item.paint(p, None, None)
    p.end()
    out = canvas.convertToFormat(QImage.Format.Format_RGBA8888)
    return np.frombuffer(out.constBits(), np.uint8).reshape(out.height(), out.bytesPerLine() // 4, 4).copy()


def both(data: np.ndarray, **kwargs) -> tuple[pg.ImageItem, ImageItem]:
    theirs, ours = pg.ImageItem(axisOrder="row-major"), ImageItem(axisOrder="row-major")
    for item in (theirs, ours):
        item.setImage(data, **kwargs)
    return theirs, ours


GREYS = np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(3, 1)
CASES = {
    "uint8 with a lookup table (indexed)": lambda rng: (
        rng.integers(0, 256, (28, 28), dtype=np.uint8),
        dict(levels=(0, 255), lut=GREYS),
    ),
    "float heatmap with a colour map": lambda rng: (
        rng.normal(size=(40, 33)).astype(np.float32),
        dict(levels=(-2, 2), lut=pg.colormap.get("viridis").getLookupTable(nPts=256)),
    ),
    "float with NaNs (transparent)": lambda rng: (
        np.where(rng.random((20, 24)) < 0.2, np.nan, rng.random((20, 24))).astype(np.float32),
        dict(levels=(0, 1), lut=GREYS),
    ),
    "RGBA with partial alpha": lambda rng: (rng.integers(0, 256, (30, 17, 4), dtype=np.uint8), dict(levels=(0, 255))),
    "RGB": lambda rng: (rng.integers(0, 256, (12, 31, 3), dtype=np.uint8), dict(levels=(0, 255))),
    "float without a lookup table": lambda rng: (rng.random((16, 16)).astype(np.float64), dict(levels=(0, 1))),
}


GREY = np.array([128, 128, 128, 255])


def nearest_samples(item: pg.ImageItem, out: np.ndarray, scale: float, flip: bool) -> bool:
    """Whether every pixel of ``out`` (``drawn(item, scale, flip)``) shows a source pixel within one source pixel of
    where its centre maps to (each source pixel's colour over the grey as drawn at scale 1), or the grey near and
    beyond the image's edge: a nearest-neighbour resampling, whichever way its sample positions are rounded."""
    h, w = int(item.height()), int(item.width())
    ref = drawn(item, 1.0, False)[2 : 2 + h, 2 : 2 + w].astype(int)
    rows, cols = np.mgrid[0 : out.shape[0], 0 : out.shape[1]]
    u = (cols + 0.5 - 2) / scale
    v = ((2 + h * scale) - (rows + 0.5)) / scale if flip else (rows + 0.5 - 2) / scale
    iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
    ok = np.zeros(out.shape[:2], bool)
    near_edge = (iu <= 0) | (iu >= w - 1) | (iv <= 0) | (iv >= h - 1)
    ok |= near_edge & (np.abs(out.astype(int) - GREY).max(-1) == 0)
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            j, i = iu + du, iv + dv
            inside = (j >= 0) & (j < w) & (i >= 0) & (i < h)
            colour = ref[np.clip(i, 0, h - 1), np.clip(j, 0, w - 1)]
            ok |= inside & (np.abs(out.astype(int) - colour).max(-1) == 0)
    return bool(ok.all())


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    ("scale", "flip"), [(1.0, False), (1.0, True), (2.0, False), (2.0, True), (4.6, True), (0.33, True)]
)
def test_the_same_picture_as_pyqtgraphs_image_item_from_one_drawn_as_is(qapp, case, scale, flip):
    """At integer scales the very same pixels; at others both are nearest-neighbour samplings of the same source
    pixels (Qt's paths for the two formats round a sample's position differently at a source pixel's edge)."""
    data, kwargs = CASES[case](np.random.default_rng(len(case)))
    theirs, ours = both(data, **kwargs)
    assert ours.qimage is None or ours._renderRequired  # (rendered when first painted)
    drawn_ours, drawn_theirs = drawn(ours, scale, flip), drawn(theirs, scale, flip)
    assert ours.qimage.format() in FAST, ours.qimage.format()
    if scale == int(scale):
        assert np.array_equal(drawn_ours, drawn_theirs)
    else:
        assert nearest_samples(theirs, drawn_theirs, scale, flip)  # (the check itself holds for pyqtgraph's)
        assert nearest_samples(ours, drawn_ours, scale, flip)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    channels=st.sampled_from([1, 3, 4]),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([0.5, 1.0, 2.5, 3.0]),
)
def test_any_uint8_image_draws_the_same_picture(qapp, h, w, channels, seed, scale):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (h, w) if channels == 1 else (h, w, channels), dtype=np.uint8)
    theirs, ours = both(data, levels=(0, 255), lut=GREYS if channels == 1 else None)
    drawn_ours = drawn(ours, scale, True)
    if scale == int(scale):
        assert np.array_equal(drawn_ours, drawn(theirs, scale, True))
    else:
        assert nearest_samples(ours, drawn_ours, scale, True)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("opacity", [0.55, 0.2])
def test_a_translucent_image_draws_the_same_picture(qapp, case, opacity):
    """An item at an opacity below 1 (the Inference lab's coarse heatmap) is drawn from a copy with the opacity in its
    alpha: the very pixels of pyqtgraph's drawing at that opacity."""
    data, kwargs = CASES[case](np.random.default_rng(len(case)))
    theirs, ours = both(data, **kwargs)
    for scale, flip in [(1.0, False), (2.0, True)]:
        assert np.array_equal(drawn(ours, scale, flip, opacity), drawn(theirs, scale, flip, opacity)), (scale, flip)
    assert ours._faded is not None and ours._faded[1] == opacity
    picture = ours._faded[2]
    drawn(ours, 2.0, True, opacity)
    assert ours._faded[2] is picture  # (made once per picture and opacity)
    ours.setImage(data[::-1].copy(), **kwargs)  # a new picture: faded anew
    drawn(ours, 2.0, True, opacity)
    assert ours._faded[2] is not picture


def test_a_picture_already_fast_to_draw_is_not_copied(qapp):
    image = QImage(4, 4, QImage.Format.Format_RGB32)
    assert fast_to_draw(image) is image
    indexed = QImage(4, 4, QImage.Format.Format_Indexed8)
    assert fast_to_draw(indexed).format() == QImage.Format.Format_RGB32


def test_an_image_set_again_is_converted_again(qapp):
    """A new image (a hover decode, a q drag's heatmap) is rendered again, and its picture converted again."""
    item = ImageItem(axisOrder="row-major")
    item.setImage(np.zeros((5, 5), np.uint8), levels=(0, 255), lut=GREYS)
    first = drawn(item, 1.0, False)
    item.setImage(np.full((5, 5), 255, np.uint8), levels=(0, 255), lut=GREYS)
    assert item.qimage is None or item._renderRequired
    assert not np.array_equal(drawn(item, 1.0, False), first)
    assert item.qimage.format() in FAST


def test_the_app_builds_every_image_item_from_the_fast_one():
    """No module of the app builds pyqtgraph's ImageItem (or subclasses it) directly."""
    pattern = re.compile(r"\b(pg|pyqtgraph)\.ImageItem\(|^class .*\b(pg|pyqtgraph)\.ImageItem\b")  # built, subclassed
    offenders = [
        f"{path.relative_to(APP.parent)}:{n}"
        for path in APP.rglob("*.py")
        if path.name != "image_item.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert not offenders, offenders


def test_the_image_benchmark_draws_each_kind_both_ways():
    """``lvm bench images``: every case timed for pyqtgraph's item and ours, in one run (a real subprocess)."""
    from app.bench_images import _cases
    from lvm.bench import images

    cases = images.run(quick=True, device="cpu")["cases"]
    assert [c["name"] for c in cases] == [f"images {name}" for name, *_ in _cases()]
    for c in cases:
        assert c["ours_s"] > 0 and c["reference_s"] > 0 and c["render_ms"] > 0 and c["reference_render_ms"] > 0
