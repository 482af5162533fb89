"""PNG files: a tiny writer (numpy + zlib) for 8-bit greyscale and RGB images, and a reader for every PNG (Pillow).

``write_png(path, a)``: ``a`` uint8 (H, W) grey or (H, W, 3) RGB, written atomically (filter 0 per row).
``read_png(path)``: any PNG (grey, RGB, palette, with alpha, 1-16 bits) as uint8 (H, W) grey or
(H, W, 3) RGB; a corrupt, truncated or oversized file raises DatasetError.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from lvm.errors import DatasetError
from lvm.io import atomic_write_bytes

_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(a: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W) or (H, W, 3) array."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        raise ValueError(f"write_png needs uint8 pixels, got {a.dtype}; scale and cast with .astype(np.uint8)")
    if a.ndim == 2:
        colour = 0
    elif a.ndim == 3 and a.shape[2] == 3:
        colour = 2
    else:
        raise ValueError(f"write_png needs an (H, W) or (H, W, 3) array, got shape {a.shape}")
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("write_png needs a non-empty image")
    rows = np.ascontiguousarray(a).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return _SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def write_png(path: str | os.PathLike[str], a: np.ndarray) -> None:
    """Write a uint8 grey (H, W) or RGB (H, W, 3) image as PNG, atomically."""
    atomic_write_bytes(path, encode_png(a))


MAX_PIXELS = 50_000_000  # larger images are refused before decoding (a PNG of a few KB can claim gigapixels)


def _flatten_on_white(rgba: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """uint8 (H, W, C+1) with straight alpha -> (H, W, C) composited over white, as a viewer shows it."""
    colour = rgba[..., :-1].astype(np.float32)
    alpha = rgba[..., -1:].astype(np.float32) / 255.0
    over_white: npt.NDArray[np.floating[Any]] = np.rint(colour * alpha + 255.0 * (1.0 - alpha))
    return over_white.astype(np.uint8)


def decode_png(data: bytes, name: str = "<bytes>") -> npt.NDArray[np.uint8]:
    """uint8 (H, W) grey or (H, W, 3) RGB from PNG bytes, decoded by Pillow.

    Every PNG kind loads: 1/2/4/8/16-bit grey (16-bit scaled to 8 by v / 257, rounded), RGB (16-bit channels
    reduced to 8 by Pillow), palette images (to RGB), and images with an alpha channel or palette transparency,
    which are composited over white (the background a viewer shows). Corrupt or truncated files and images over
    ``MAX_PIXELS`` pixels raise DatasetError.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if not data.startswith(_SIG):
        raise DatasetError(f"{name} is not a PNG file (bad signature)")
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise DatasetError(f"{name}: truncated or corrupt PNG file (no image header); re-save it with an image editor")
    w, h = struct.unpack(">II", data[16:24])
    if w * h > MAX_PIXELS:  # before Pillow allocates anything
        raise DatasetError(
            f"{name}: the image is {w} x {h} pixels, more than the {MAX_PIXELS:,} this reader "
            "accepts; scale it down first"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked above
            im: Image.Image = Image.open(io.BytesIO(data), formats=["PNG"])
            im.load()
    except UnidentifiedImageError:
        raise DatasetError(
            f"{name}: corrupt PNG file (its header cannot be read); re-save it with an image editor"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{name}: corrupt or truncated PNG file ({exc}); re-save it with an image editor") from None
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(im).astype(np.float64)
        return np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("1", "L") and "transparency" in im.info:
        im = im.convert("LA")
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
    elif mode not in ("1", "L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    if im.mode == "1":
        im = im.convert("L")
    a = np.asarray(im, dtype=np.uint8)
    if im.mode in ("LA", "RGBA"):
        a = _flatten_on_white(a)
        if im.mode == "LA":
            a = a[..., 0]
    return np.ascontiguousarray(a)


def read_png(path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    """Read a PNG file as uint8 (H, W) grey or (H, W, 3) RGB (see ``decode_png``)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from None
    return decode_png(data, str(path))


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (n, H, W) uint8 images into one (rows*(H+pad)+pad, cols*(W+pad)+pad) picture."""
    n, h, w = images.shape[:3]
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad) + images.shape[3:], np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    return grid
