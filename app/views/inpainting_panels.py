"""Pieces of the Inpainting lab: image composition helpers and the mean-field (phi) panel's chart."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

MISSING_TINT = np.array([255.0, 170.0, 60.0])


def composite_rgb(x: np.ndarray, mask: np.ndarray, fill: np.ndarray, shape=(28, 28)) -> np.ndarray:
    """(h, w, 3) uint8: observed pixels in grey, missing pixels showing ``fill`` in orange on dark blue."""
    x = np.asarray(x, dtype=np.float32).reshape(shape)
    m = np.asarray(mask, dtype=bool).reshape(shape)
    f = np.clip(np.asarray(fill, dtype=np.float32).reshape(shape), 0, 1)
    grey = np.repeat((np.clip(x, 0, 1) * 255)[..., None], 3, -1)
    miss = (1 - f)[..., None] * np.array([25.0, 35.0, 70.0]) + f[..., None] * MISSING_TINT
    return np.where(m[..., None], grey, miss).astype(np.uint8)


def tile_rgb(images: list[np.ndarray], cols: int, gap: int = 1, background=(90, 90, 90)) -> np.ndarray:
    """Tiles of equal-size (h, w, 3) images in a grid with ``gap``-pixel separators."""
    h, w, _ = images[0].shape
    rows = (len(images) + cols - 1) // cols
    out = np.empty((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), dtype=np.uint8)
    out[:] = background
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = im
    return out


def image_view(layout: pg.GraphicsLayoutWidget, row: int, col: int, title: str, **kw) -> tuple[pg.ViewBox, pg.ImageItem]:
    """A locked-aspect, y-down ViewBox holding one ImageItem (row-major images), with a title label above it."""
    layout.addLabel(title, row=row, col=col, **kw)
    vb = layout.addViewBox(row=row + 1, col=col, lockAspect=True, invertY=True, enableMouse=False, **kw)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    vb.setMenuEnabled(False)
    return vb, item


def set_rgb(vb: pg.ViewBox, item: pg.ImageItem, rgb: np.ndarray) -> None:
    first = item.image is None or item.image.shape != rgb.shape
    item.setImage(rgb, autoLevels=False, levels=(0, 255))
    if first:
        vb.setRange(QRectF(0, 0, rgb.shape[1], rgb.shape[0]), padding=0.02)


class ElboChart:
    """ELBO(phi) for each phi as bars, with log p(x_O) as a dashed line and the numbers written on the bars."""

    def __init__(self, plot: pg.PlotItem):
        self.plot = plot
        plot.setLabel("left", "nats")
        plot.showGrid(y=True, alpha=0.3)
        plot.setMouseEnabled(False, False)
        plot.setMenuEnabled(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(90, 140, 210))
        plot.addItem(self.bars)
        self.line = pg.InfiniteLine(angle=0, pen=pg.mkPen((220, 60, 60), width=2, style=pg.QtCore.Qt.DashLine))
        plot.addItem(self.line)
        self.line_label = pg.TextItem("", color=(200, 40, 40), anchor=(0, 1))
        plot.addItem(self.line_label)
        self.texts: list[pg.TextItem] = []

    def set_values(self, names: list[str], elbos: list[float | None], log_p_obs: float | None) -> None:
        for t in self.texts:
            self.plot.removeItem(t)
        self.texts = []
        xs = np.arange(len(names), dtype=float)
        h = np.array([np.nan if v is None else v for v in elbos], dtype=float)
        ok = np.isfinite(h)
        self.bars.setOpts(x=xs[ok], height=h[ok], width=0.6)
        self.plot.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(names)]])
        finite = list(h[ok]) + ([log_p_obs] if log_p_obs is not None else [])
        low = min(finite) if finite else -1.0
        for i, v in zip(xs, h):
            if np.isfinite(v):
                t = pg.TextItem(f"{v:.1f}", color=(20, 20, 20), anchor=(0.5, 1.1))
                t.setPos(i, v)
                self.plot.addItem(t)
                self.texts.append(t)
        if log_p_obs is not None:
            self.line.setValue(log_p_obs)
            self.line.show()
            self.line_label.setText(f"log p(x_O) = {log_p_obs:.1f}")
            self.line_label.setPos(-0.45, log_p_obs)
            self.line_label.show()
        else:
            self.line.hide()
            self.line_label.hide()
        self.plot.setXRange(-0.6, max(len(names), 1) - 0.4, padding=0)
        self.plot.setYRange(1.12 * low, 0, padding=0.02)
