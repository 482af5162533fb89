"""A scatter plot for many coloured points, rasterised with numpy into one ``ImageItem``.

Per-point pyqtgraph items cost ~60 us each to recolour. Measured for one recolour + one render of a 900 x 700 plot
(offscreen, pyqtgraph 0.14, PySide6 6.11): a ScatterPlotItem with a brush per point took ~100 ms for 2,000 points,
~600 ms for 10,000 and 4-6 s for 100,000; with colours quantised to shared brushes ~11-19 ms, ~45 ms and ~350 ms;
rasterised with numpy into an ImageItem 15-45 ms for 100,000. So per-point items are for a few thousand points at
most. Here a recolour is an N x 3 colour array, a pixel index per point for the current view, and ``np.bincount``
averages of the colours falling into each pixel (``ImageItem.setImage`` ~0.3 ms). The image covers
exactly the view box, so it is re-rasterised on ``sigRangeChanged`` and resize (about 5-20 ms for 100,000 points).
Points are drawn as small discs whose radius shrinks as N grows. Picking happens in data space (``nearest``).

Marker shapes (``set_colours(rgb, shapes)``, codes into ``app.widgets.palette.MARKERS``: disc, square, triangle,
diamond, plus, cross) cost what discs cost (one offset table per shape, the same pixel writes). Below a radius of
``SHAPE_MIN_RADIUS`` pixels (more than 12,000 points) every shape is a blob of a few pixels, so discs are drawn.
"""

from __future__ import annotations

import sys

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QTimer

from app.widgets.image_item import ImageItem
from app.widgets.palette import MARKERS

AVERAGE_LIMIT = 60_000  # above this many pixel writes, skip the per-pixel colour average


def _disc_offsets(radius: int) -> np.ndarray:
    r = int(radius)
    dx, dy = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    keep = dx * dx + dy * dy <= r * r + r * 0.8
    return np.stack([dx[keep], dy[keep]], 1)


SHAPE_MIN_RADIUS = 2  # smaller markers all look alike: discs


def _shape_offsets(shape: str, radius: int) -> np.ndarray:
    """(M, 2) pixel offsets of one marker of ``shape`` (a ``MARKERS`` name) and ``radius`` (y grows upwards)."""
    r = int(radius)
    if shape == "o" or r < SHAPE_MIN_RADIUS:
        return _disc_offsets(r)
    dx, dy = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    ax, ay = np.abs(dx), np.abs(dy)
    thick = 1 if r >= 3 else 0
    if shape == "s":
        keep = np.maximum(ax, ay) <= max(round(0.8 * r), 1)
    elif shape == "t":  # pointing up: the apex at dy = r, the base at dy = -r
        keep = 2 * ax <= r - dy
    elif shape == "d":
        keep = ax + ay <= r
    elif shape == "+":
        keep = (ax <= thick) | (ay <= thick)
    elif shape == "x":
        keep = np.abs(ax - ay) <= thick
    else:
        return _disc_offsets(r)
    return np.stack([dx[keep], dy[keep]], 1)


def default_radius(n: int) -> int:
    """Disc radius in pixels for n points: large for a few clicked points, 1 px for 100k."""
    return 4 if n <= 300 else 3 if n <= 2500 else 2 if n <= 12000 else 1 if n <= 60000 else 0


def rasterise(
    xy: np.ndarray,
    rgb: np.ndarray,
    x_range,
    y_range,
    width: int,
    height: int,
    radius: int = 1,
    alpha: float = 1.0,
    shapes: np.ndarray | None = None,
) -> np.ndarray:
    """RGBA uint8 image (width, height, 4), pixel [i, j] at x = x0 + (i + 0.5) dx, y = y0 + (j + 0.5) dy: a view of a
    row-major buffer (``.transpose(1, 0, 2)`` is that buffer, contiguous: what ``RasterScatter`` shows without a copy).

    Each pixel's colour is the mean of the colours of the points whose marker covers it (for many points: the colour
    of the last one); empty pixels are transparent. ``shapes``: each point's marker, an index into ``MARKERS``
    (None: discs).
    """
    width, height = max(int(width), 1), max(int(height), 1)
    rows = np.zeros((height, width, 4), dtype=np.uint8)  # (pixel [j, i] of the rows is [i, j] of the image returned)
    img = rows.transpose(1, 0, 2)
    if xy.shape[0] == 0:
        return img
    (x0, x1), (y0, y1) = x_range, y_range
    sx = width / max(x1 - x0, 1e-12)
    sy = height / max(y1 - y0, 1e-12)
    ix = np.floor((xy[:, 0] - x0) * sx).astype(np.int64)
    iy = np.floor((xy[:, 1] - y0) * sy).astype(np.int64)
    r = int(radius)
    inside = (ix >= -r) & (ix < width + r) & (iy >= -r) & (iy < height + r)
    if shapes is not None and (r < SHAPE_MIN_RADIUS or len(shapes) != len(inside)):
        shapes = None
    groups = _marker_groups(r, shapes)
    a = np.uint8(round(255 * alpha))
    many = int(inside.sum()) * max(len(off) for _, off in groups) > AVERAGE_LIMIT
    packed = _packed_rgba(rgb, a) if many else None  # (packed before the points outside are dropped: 4 bytes a point)
    if not inside.all():
        ix, iy = ix[inside], iy[inside]
        if packed is not None:
            packed = packed[inside]
        else:
            rgb = rgb[inside]
        if shapes is not None:
            shapes = shapes[inside]
            groups = _marker_groups(r, shapes)
    if ix.size == 0:
        return img
    size = width * height
    if packed is not None:
        # many points: the last point drawn into a pixel wins, one 32-bit write per pixel of each marker (packed
        # colours: 10,000 points of radius 2 took 17 ms with RGBA rows spread and masked, 3 ms packed)
        out32 = rows.reshape(-1).view(np.uint32)
        for sel, off in groups:
            px = ix[sel][None, :] + off[:, 0:1]
            py = iy[sel][None, :] + off[:, 1:2]
            ok = (px >= 0) & (px < width) & (py >= 0) & (py < height)
            colours = np.broadcast_to(packed[sel][None, :], px.shape)
            out32[(py * width + px)[ok]] = colours[ok]
        return img
    if shapes is not None or r > 0:
        ix, iy, rgb = (
            np.concatenate(parts)
            for parts in zip(*(_spread(ix[sel], iy[sel], rgb[sel], off) for sel, off in groups), strict=True)
        )
    if r > 0:
        ok = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
        ix, iy, rgb = ix[ok], iy[ok], rgb[ok]
    flat = iy * width + ix
    out = rows.reshape(size, 4)
    count = np.bincount(flat, minlength=size)
    hit = np.nonzero(count)[0]
    inv = 1.0 / count[hit]
    for c in range(3):
        s = np.bincount(flat, weights=rgb[:, c], minlength=size)[hit]
        out[hit, c] = np.clip(s * inv * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[hit, 3] = a
    return img


def _marker_groups(radius: int, shapes: np.ndarray | None) -> list[tuple[np.ndarray | slice, np.ndarray]]:
    """(which points, their marker's pixel offsets) for each marker shape drawn: all points as discs without
    ``shapes``."""
    if shapes is None:
        return [(slice(None), _disc_offsets(radius))]
    codes = np.asarray(shapes, np.int64) % len(MARKERS)
    return [(codes == c, _shape_offsets(MARKERS[c], radius)) for c in np.unique(codes)]


def _packed_rgba(rgb: np.ndarray, alpha: np.uint8) -> np.ndarray:
    """Colours (N, 3) in [0, 1] as one uint32 each, the bytes R, G, B, alpha in memory order (little-endian:
    R + 2^8 G + 2^16 B + 2^24 alpha; shifting whole columns is 0.26 ms for 100,000 colours, filling RGBA rows 0.45)."""
    c = (np.asarray(rgb, np.float32) * np.float32(255.0)).astype(np.uint32)
    packed = c[:, 0] | (c[:, 1] << 8) | (c[:, 2] << 16) | (np.uint32(alpha) << 24)
    return packed if sys.byteorder == "little" else packed.byteswap()


def _spread(ix: np.ndarray, iy: np.ndarray, rgb: np.ndarray, off: np.ndarray):
    """Every point's pixel plus each offset of its marker: (pixel x, pixel y, colour) of every pixel written."""
    return (
        (ix[None, :] + off[:, 0:1]).ravel(),
        (iy[None, :] + off[:, 1:2]).ravel(),
        np.broadcast_to(rgb[None], (off.shape[0], *rgb.shape)).reshape(-1, 3),
    )


class RasterScatter:
    """Points (N, 2) with RGB colours (N, 3) in [0, 1], drawn into ``view`` (a ``pg.ViewBox``) as one ImageItem."""

    def __init__(self, view: pg.ViewBox, z: float = 0.0):
        self.view = view
        self.image = ImageItem(axisOrder="row-major")
        self.image.setZValue(z)
        view.addItem(self.image, ignoreBounds=True)
        self.xy = np.zeros((0, 2), np.float32)
        self.rgb = np.zeros((0, 3), np.float32)
        self.shapes: np.ndarray | None = None  # each point's marker (an index into MARKERS); None: discs
        self.radius: int | None = None  # None: default_radius(N)
        self.last_ms = 0.0
        view.sigRangeChanged.connect(self._schedule)
        view.sigResized.connect(self._schedule)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.redraw)

    def set_data(self, xy: np.ndarray, rgb: np.ndarray | None = None) -> None:
        """Show points ``xy`` (N, 2) in colours ``rgb`` (N, 3; None: grey) as discs. The same points in the same
        colours again are not drawn again (a Latent lab training snapshot re-shows its plane: 32 % of the GUI thread
        went to rasterising 10,000 unchanged points)."""
        xy = np.ascontiguousarray(xy, dtype=np.float32).reshape(-1, 2)
        if rgb is None or len(rgb) != len(xy):
            rgb = np.full((len(xy), 3), 0.45, np.float32)
        rgb = np.asarray(rgb, dtype=np.float32)
        if self.shapes is None and np.array_equal(xy, self.xy) and np.array_equal(rgb, self.rgb):
            return
        self.xy, self.rgb, self.shapes = xy, rgb, None
        self.redraw()

    def set_colours(self, rgb: np.ndarray, shapes: np.ndarray | None = None) -> None:
        """New colours (N, 3) and markers (N codes into ``MARKERS``; None: discs) for the points shown."""
        self.rgb = np.asarray(rgb, dtype=np.float32)
        self.shapes = None if shapes is None or len(shapes) != len(self.xy) else np.asarray(shapes, np.int64)
        self.redraw()

    def _schedule(self, *args) -> None:
        self._timer.start()

    def redraw(self) -> None:
        import time

        t0 = time.perf_counter()
        (x0, x1), (y0, y1) = self.view.viewRange()
        w = max(int(self.view.width()), 1)
        h = max(int(self.view.height()), 1)
        radius = default_radius(len(self.xy)) if self.radius is None else self.radius
        img = rasterise(self.xy, self.rgb, (x0, x1), (y0, y1), w, h, radius, shapes=self.shapes)
        # (its rows as they lie in memory, without levels: pyqtgraph wraps them in a QImage as they are, where levels
        # (0, 255) sent every new picture through makeARGB: 0.54 ms for a 700 x 550 one, timed alone)
        self.image.setImage(img.transpose(1, 0, 2), autoLevels=False)
        self.image.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.last_ms = (time.perf_counter() - t0) * 1000

    def nearest(self, x: float, y: float, max_pixels: float | None = 12.0) -> int | None:
        """Index of the point nearest (x, y) in screen distance, or None when none lies within ``max_pixels``."""
        if len(self.xy) == 0:
            return None
        px, py = self.view.viewPixelSize()
        d2 = ((self.xy[:, 0] - x) / px) ** 2 + ((self.xy[:, 1] - y) / py) ** 2
        i = int(np.argmin(d2))
        if max_pixels is not None and d2[i] > max_pixels**2:
            return None
        return i
