"""Pieces of the Inpainting lab: image composition helpers and the mean-field (phi) panel's chart."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from app.widgets.grid_lines import GridLines

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
        self.grid_lines = GridLines(plot, x=False, alpha=0.3)
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
        xs = np.arange(len(names), dtype=float)
        h = np.array([np.nan if v is None else v for v in elbos], dtype=float)
        ok = np.isfinite(h)
        self.bars.setOpts(x=xs[ok], height=h[ok], width=0.6)
        self.plot.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(names)]])
        finite = list(h[ok]) + ([log_p_obs] if log_p_obs is not None else [])
        low = min(finite) if finite else -1.0
        while len(self.texts) < len(names):  # the value labels are reused, never recreated
            t = pg.TextItem("", color=(20, 20, 20), anchor=(0.5, 1.1))
            self.plot.addItem(t)
            self.texts.append(t)
        for k, t in enumerate(self.texts):
            if k < len(names) and np.isfinite(h[k]):
                t.setText(f"{h[k]:.1f}")
                t.setPos(xs[k], h[k])
                t.show()
            else:
                t.hide()
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
        self.plot.setYRange(1.12 * low, -0.1 * low, padding=0)  # room above 0 for the log p(x_O) label


# -- the posterior heatmap's region ------------------------------------------------------------------------------
def posterior_mass_rect(w: np.ndarray, box: np.ndarray, mass: float = 0.999, min_width: float = 0.5,
                        pad: float = 0.25) -> QRectF:
    """The bounding box of the smallest set of grid cells holding ``mass`` of the cell masses ``w`` (n, n), [i, j]
    at (z1_i, z2_j) on the midpoint grid over ``box`` (2, 2); padded by ``pad`` of its size on each side and widened
    (about its centre) to at least ``min_width`` per axis."""
    n = w.shape[0]
    flat = w.reshape(-1).astype(np.float64)
    order = np.argsort(flat)[::-1]
    k = int(np.searchsorted(np.cumsum(flat[order]), mass * flat.sum())) + 1
    i, j = np.unravel_index(order[:k], w.shape)
    cw = (box[:, 1] - box[:, 0]) / n
    lo = box[:, 0] + np.array([i.min(), j.min()]) * cw
    hi = box[:, 0] + (np.array([i.max(), j.max()]) + 1) * cw
    size = hi - lo
    lo, hi = lo - pad * size, hi + pad * size
    c, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, min_width / 2)
    return QRectF(c[0] - half[0], c[1] - half[1], 2 * half[0], 2 * half[1])


def needs_refit(current: QRectF | None, new: QRectF, shrink: float = 0.35) -> bool:
    """Refit the posterior view when the new mass box leaves the current one or is much smaller (a narrower
    posterior); small jitter inside the current view keeps it still."""
    if current is None:
        return True
    if not current.contains(new):
        return True
    return new.width() < shrink * current.width() and new.height() < shrink * current.height()


class LocalPosterior:
    """p(z | x_O) on a fine n x n midpoint grid over a rectangle: the decoder is evaluated once per rectangle
    (tables L, log sigma(-L), log p(z)); each update is then a_g = L_g.(m x) + S_g.m + log p(z_g), and the
    density shown is exp(a - max a) (relative, so the colormap spans the visible region)."""

    def __init__(self, n: int = 48):
        self.n = n
        self.rect: QRectF | None = None
        self._key = None
        self._tables = None

    def set_rect(self, grid, rect: QRectF) -> None:
        import torch
        import torch.nn.functional as F

        key = (id(grid), rect.x(), rect.y(), rect.width(), rect.height())
        if key == self._key:
            return
        n = self.n
        z1 = rect.x() + (np.arange(n) + 0.5) * rect.width() / n
        z2 = rect.y() + (np.arange(n) + 0.5) * rect.height() / n
        pts = np.stack(np.meshgrid(z1, z2, indexing="ij"), -1).reshape(-1, 2)
        z = torch.as_tensor(pts, dtype=grid.points.dtype, device=grid.points.device)
        with torch.no_grad():
            L = grid.model.bernoulli_logits(z).to(grid.logits.dtype)
            self._tables = (L, F.logsigmoid(-L), grid.model.log_prior(z).to(L.dtype))
        self._key, self.rect = key, QRectF(rect)

    def density(self, grid, x, mask) -> np.ndarray:
        import torch

        L, S, lp = self._tables
        xt, m = grid.prepare(x, mask)
        with torch.no_grad():
            a = L @ (m * xt) + S @ m + lp
            d = torch.exp(a - a.max())
        return d.cpu().numpy().reshape(self.n, self.n)
