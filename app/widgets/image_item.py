"""``ImageItem``: pyqtgraph's ``ImageItem`` whose rendered picture is kept in a format Qt draws fast.

pyqtgraph renders a uint8 image with a lookup table (a heatmap, a digit) as an 8-bit indexed ``QImage`` and an RGBA
image as straight (not premultiplied) ARGB32. Qt's raster engine draws neither directly: each paint converts every
source pixel it samples, and a plot draws its images scaled (and flipped: data y grows upwards), on every repaint of
the plot (a pan step, a q drag, a hover decode). So the picture is converted once, when it is rendered: to RGB32 when
every pixel is opaque, else to premultiplied ARGB32. ``lvm bench images`` draws each kind of image the app shows both
ways in one run (figures in the README): 1.3-16x faster per draw, for up to 0.13 ms more per new picture. The pixels
drawn are the same at integer scales; at others both are nearest-neighbour samplings that may round a sample's
position differently at a source pixel's edge (``tests/app/test_image_item.py``).

Every image of the app is one of these (``tests/app/test_image_item.py`` checks that no module builds pyqtgraph's).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter

_Format = QImage.Format
_DRAWN_AS_IS = (_Format.Format_RGB32, _Format.Format_ARGB32_Premultiplied)


def fast_to_draw(image: QImage) -> QImage:
    """``image`` in the format Qt's raster engine draws without converting: RGB32 if opaque, else premultiplied
    ARGB32 (the same pixels; an image already in one of those is returned as is)."""
    if image.isNull() or image.format() in _DRAWN_AS_IS:
        return image
    return image.convertToFormat(
        _Format.Format_ARGB32_Premultiplied if image.hasAlphaChannel() else _Format.Format_RGB32
    )


def with_opacity(image: QImage, opacity: float) -> QImage:
    """``image`` faded to ``opacity``: premultiplied ARGB32, every pixel's alpha (and colour) times ``opacity``."""
    faded = QImage(image.size(), _Format.Format_ARGB32_Premultiplied)
    faded.fill(0)
    painter = QPainter(faded)
    painter.setOpacity(opacity)
    painter.drawImage(0, 0, image)
    painter.end()
    return faded


class ImageItem(pg.ImageItem):
    """``pg.ImageItem`` with its rendered ``qimage`` converted once to a format drawn without per-paint conversion;
    drawn translucent (an item's opacity below 1), from a copy with the opacity in its alpha, made once per picture
    and opacity: Qt blends an image at a constant opacity slower than one drawn with its own alpha (``lvm bench
    images``, a 128 x 128 heatmap at 3.9x and opacity 0.55: pyqtgraph's item 0.95-0.97 ms, the faded copy 0.26-0.32)."""

    qimage: QImage | None  # (pyqtgraph's rendered picture; None until rendered)
    _faded: tuple[int, float, QImage] | None = None  # (the picture's cacheKey, opacity, the faded copy)

    def render(self, *args, **kwargs) -> None:
        super().render(*args, **kwargs)
        if self.qimage is not None:
            self.qimage = fast_to_draw(self.qimage)

    def paint(self, painter: QPainter, *args) -> None:
        opacity = painter.opacity()
        if opacity >= 1.0 or self.image is None or self.paintMode is not None or self.border is not None:
            super().paint(painter, *args)
            return
        if self._renderRequired:
            self.render()
            if self._unrenderable or self.qimage is None:
                return
        assert self.qimage is not None
        key = (self.qimage.cacheKey(), opacity)
        if self._faded is None or self._faded[:2] != key:
            self._faded = (*key, with_opacity(self.qimage, opacity))
        rows, cols = self.image.shape[:2]
        width, height = (rows, cols) if self.axisOrder == "col-major" else (cols, rows)
        painter.setOpacity(1.0)
        try:
            painter.drawImage(QRectF(0, 0, width, height), self._faded[2])
        finally:
            painter.setOpacity(opacity)
