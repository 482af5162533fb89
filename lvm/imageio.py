"""A tiny PNG writer and reader (pure numpy + zlib) for 8-bit greyscale and RGB images.

``write_png(path, a)``: ``a`` uint8 (H, W) grey or (H, W, 3) RGB, written atomically (filter 0 per row).
``read_png(path)``: 8-bit grey / RGB, non-interlaced PNGs (any filter); anything else raises DatasetError.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

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


def write_png(path: str | os.PathLike, a: np.ndarray) -> None:
    """Write a uint8 grey (H, W) or RGB (H, W, 3) image as PNG, atomically."""
    atomic_write_bytes(path, encode_png(a))


def decode_png(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) from PNG bytes (8-bit grey/RGB, non-interlaced)."""
    if not data.startswith(_SIG):
        raise DatasetError(f"{name} is not a PNG file (bad signature)")
    pos, header, idat = 8, None, []
    try:
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            tag = data[pos + 4 : pos + 8]
            body = data[pos + 8 : pos + 8 + length]
            if len(body) != length:
                raise DatasetError(f"{name}: truncated PNG chunk {tag!r}")
            (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
            if crc != zlib.crc32(tag + body) & 0xFFFFFFFF:
                raise DatasetError(f"{name}: PNG chunk {tag!r} fails its CRC check (corrupt file)")
            pos += 12 + length
            if tag == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif tag == b"IDAT":
                idat.append(body)
            elif tag == b"IEND":
                break
    except struct.error:
        raise DatasetError(f"{name}: truncated PNG file") from None
    if header is None or not idat:
        raise DatasetError(f"{name}: PNG without IHDR or image data")
    w, h, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (0, 2) or interlace != 0:
        raise DatasetError(f"{name}: only 8-bit greyscale or RGB non-interlaced PNGs are supported (bit depth "
                           f"{depth}, colour type {colour}, interlace {interlace}); re-save it as such")
    ch = 1 if colour == 0 else 3
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise DatasetError(f"{name}: corrupt PNG image data ({exc})") from None
    stride = w * ch
    if len(raw) != h * (stride + 1):
        raise DatasetError(f"{name}: PNG image data has the wrong size")
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(h):
        f, line = rows[y, 0], rows[y, 1:].copy()
        if f == 0:
            cur = line
        elif f == 2:
            cur = line + prev
        elif f in (1, 3, 4):
            cur = np.zeros(stride, np.uint8)
            for x in range(stride):  # left-dependent filters: per byte
                left = int(cur[x - ch]) if x >= ch else 0
                up = int(prev[x])
                ul = int(prev[x - ch]) if x >= ch else 0
                if f == 1:
                    pred = left
                elif f == 3:
                    pred = (left + up) // 2
                else:
                    pa, pb, pc = abs(up - ul), abs(left - ul), abs(left + up - 2 * ul)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                cur[x] = (int(line[x]) + pred) & 0xFF
        else:
            raise DatasetError(f"{name}: unknown PNG filter type {f} in row {y}")
        out[y] = cur
        prev = cur
    return out if ch == 1 else out.reshape(h, w, 3)


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit grey or RGB non-interlaced PNG as uint8 (H, W) or (H, W, 3)."""
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
