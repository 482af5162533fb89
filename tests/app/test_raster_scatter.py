"""``rasterise``: every pixel a point's marker covers is painted with the colour of a point covering it (the mean of
them for few points, one of them for many), and nothing else is painted; markers clip at the image's edges."""

from __future__ import annotations

import numpy as np
import pytest

from app.widgets.palette import MARKERS
from app.widgets.raster_scatter import AVERAGE_LIMIT, _shape_offsets, rasterise

W, H = 300, 200


def covering(xy, radius, shapes):
    """For each pixel, the indices of the points whose marker covers it (the reference, one point at a time)."""
    cover: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(xy):
        px, py = int(np.floor(x)), int(np.floor(y))  # (the range is 0..W x 0..H: one unit a pixel)
        shape = "o" if shapes is None else MARKERS[shapes[i] % len(MARKERS)]
        for dx, dy in _shape_offsets(shape, radius):
            if 0 <= px + dx < W and 0 <= py + dy < H:
                cover.setdefault((px + dx, py + dy), []).append(i)
    return cover


def colour_bytes(rgb):
    return (np.asarray(rgb, np.float32) * np.float32(255.0)).astype(np.uint8)


@pytest.mark.parametrize("n", [40, 3000])  # the mean of the points a pixel holds; one of them (many points)
@pytest.mark.parametrize("with_shapes", [False, True])
def test_each_painted_pixel_is_a_covering_points_colour(n, with_shapes):
    rng = np.random.default_rng(n)
    xy = rng.uniform([-5, -5], [W + 5, H + 5], size=(n, 2)).astype(np.float32)  # (some markers cross the edges)
    rgb = rng.random((n, 3)).astype(np.float32)
    shapes = rng.integers(0, len(MARKERS), n) if with_shapes else None
    radius = 3
    img = rasterise(xy, rgb, (0, W), (0, H), W, H, radius, shapes=shapes)
    cover = covering(xy, radius, shapes)
    many = n * 25 > AVERAGE_LIMIT
    painted = np.argwhere(img[:, :, 3] > 0)
    assert {tuple(p) for p in painted} == set(cover)  # covered pixels, and only they
    bytes_ = colour_bytes(rgb)
    for (px, py), points in cover.items():
        got = img[px, py, :3].astype(int)
        if many:
            assert any((got == bytes_[i]).all() for i in points)
        else:
            want = np.clip(rgb[points].mean(0) * 255.0 + 0.5, 0, 255).astype(int)
            assert (np.abs(got - want) <= 1).all()


@pytest.mark.parametrize("size", [(300, 200), (1000, 800)])  # few pixel writes (the mean) and many (one wins)
def test_points_alone_in_their_pixels_keep_their_exact_colours(size):
    """Points on a lattice wider than a marker: no overlaps, so the image is the reference exactly."""
    w, h = size
    gx, gy = np.meshgrid(np.arange(4, w - 3, 7), np.arange(4, h - 3, 7), indexing="ij")
    xy = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32) + 0.5
    rgb = np.random.default_rng(0).random((len(xy), 3)).astype(np.float32)
    img = rasterise(xy, rgb, (0, w), (0, h), w, h, 2, alpha=0.5)
    want = np.zeros_like(img)
    for i, (px, py) in enumerate(xy.astype(int)):
        for dx, dy in _shape_offsets("o", 2):
            want[px + dx, py + dy, :3] = colour_bytes(rgb[i])
            want[px + dx, py + dy, 3] = 128
    assert np.abs(img.astype(int) - want.astype(int)).max() <= 1


def test_each_point_is_drawn_on_screen_where_it_lies_in_its_colour(qtbot, shown_plot):
    """The whole path: rasterised, handed to the image item, its picture converted and drawn by the plot (y grows
    upwards)."""
    from PySide6.QtCore import QPointF

    from app.widgets.raster_scatter import RasterScatter

    w = shown_plot(400, 300)
    vb = w.getViewBox()
    vb.setRange(xRange=(0, 10), yRange=(0, 10), padding=0)
    scatter = RasterScatter(vb)
    xy = np.array([[2.0, 2.0], [8.0, 3.0], [5.0, 8.5]])
    rgb = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 1.0]])
    scatter.radius = 3
    scatter.set_data(xy, rgb)
    qtbot.waitUntil(lambda: not scatter._timer.isActive(), timeout=5000)
    shot = w.grab().toImage()
    for (x, y), colour in zip(xy, rgb, strict=True):
        at = w.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
        got = shot.pixelColor(at.x(), at.y())
        assert [got.red(), got.green(), got.blue()] == [round(255 * c) for c in colour], (x, y)
