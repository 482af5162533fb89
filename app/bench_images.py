"""``python -m app.bench_images [--quick] [--json]``: each kind of image the app shows, drawn by pyqtgraph's
``ImageItem`` and by ``app.widgets.image_item.ImageItem``, side by side in one run (``lvm bench images`` runs it).

A case is one image as a lab sets it (size, dtype, levels and lookup table) drawn as a plot draws it: scaled, y
flipped (data y grows upwards), onto a premultiplied ARGB32 surface as Qt's raster engine paints a widget; per case:

- ``draw_ms`` (ours) and ``reference_draw_ms`` (pyqtgraph's): one paint of the item, median of repeats;
- ``render_ms`` and ``reference_render_ms``: ``setImage`` then the render a paint triggers once per new image (ours
  includes the one conversion of the picture).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from lvm.bench import median_time

GREYS = np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(3, 1)


def _cases() -> list[tuple[str, Callable[[np.random.Generator], tuple[np.ndarray, dict]], float, float]]:
    """(name, image maker, scale, opacity): the app's images at the scales ``lvm bench gui`` drew them."""
    from app.labs.inference.plots import POSTERIOR_CMAP

    posterior = POSTERIOR_CMAP.getLookupTable(nPts=256)
    return [
        (
            "Latent lab, decoded mosaic 336x560 (grey table), panned at 0.33x",
            lambda rng: (rng.random((336, 560)).astype(np.float32), dict(levels=(0, 1), lut=GREYS)),
            0.33,
            1.0,
        ),
        (
            "Latent lab, 10,000 points rasterised 450x269 RGBA (rows, no levels: as RasterScatter sets them), 1:1",
            lambda rng: (_points_image(rng, 450, 269).transpose(1, 0, 2), dict(autoLevels=False)),
            1.0,
            1.0,
        ),
        (
            "Latent lab, aggregate posterior 160x160 RGBA, 1.15x",
            lambda rng: (rng.integers(0, 256, (160, 160, 4), dtype=np.uint8), dict(levels=(0, 255))),
            1.15,
            1.0,
        ),
        (
            "hovered digit 28x28 (grey table), 4.6x",
            lambda rng: (rng.random((28, 28)).astype(np.float32), dict(levels=(0, 1), lut=GREYS)),
            4.6,
            1.0,
        ),
        (
            "Inference lab, posterior heatmap 128x128 (colour map), 3.9x",
            lambda rng: (rng.random((128, 128)).astype(np.float32), dict(levels=(0, 1), lut=posterior)),
            3.9,
            1.0,
        ),
        (
            "Inference lab, coarse heatmap 128x128 at opacity 0.55, 3.9x",
            lambda rng: (rng.random((128, 128)).astype(np.float32), dict(levels=(0, 1), lut=posterior)),
            3.9,
            0.55,
        ),
    ]


def _points_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    from app.widgets.raster_scatter import rasterise

    xy = rng.normal(size=(10_000, 2)).astype(np.float32)
    return rasterise(xy, rng.random((10_000, 3)).astype(np.float32), (-3.5, 3.5), (-3.5, 3.5), width, height, 2)


def run(quick: bool) -> dict[str, Any]:
    import pyqtgraph as pg
    from PySide6.QtGui import QImage, QPainter, QTransform
    from PySide6.QtWidgets import QApplication

    from app.widgets.image_item import ImageItem

    QApplication.instance() or QApplication(sys.argv[:1])
    surface = QImage(900, 900, QImage.Format.Format_ARGB32_Premultiplied)
    inner, repeats = (20, 3) if quick else (100, 7)
    rows = []
    for name, make, scale, opacity in _cases():
        data, kwargs = make(np.random.default_rng(0))
        row: dict[str, Any] = {"name": name}
        for label, cls in (("reference_", pg.ImageItem), ("", ImageItem)):
            item = cls(axisOrder="row-major")
            item.setImage(data, **kwargs)
            item.setOpacity(opacity)
            height = item.height()

            transform = QTransform().translate(10, 10 + height * scale).scale(scale, -scale)

            def draw(item=item, transform=transform, opacity=opacity) -> None:
                painter = QPainter(surface)
                painter.setTransform(transform)
                painter.setOpacity(opacity)
                item.paint(painter, None, None)
                painter.end()

            def render(item=item, data=data, kwargs=kwargs) -> None:
                item.setImage(data, **kwargs)
                item.render()

            row[f"{label}draw_ms"] = round(median_time(draw, repeats, inner=inner) * 1000, 4)
            row[f"{label}render_ms"] = round(median_time(render, repeats, inner=max(inner // 4, 5)) * 1000, 4)
        rows.append(row)
        print(
            f"  {name:64s} draw {row['reference_draw_ms']:6.3f} -> {row['draw_ms']:6.3f} ms   "
            f"render {row['reference_render_ms']:6.3f} -> {row['render_ms']:6.3f} ms",
            file=sys.stderr,
            flush=True,
        )
    return {"cases": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench_images", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
