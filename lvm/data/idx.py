"""IDX files (the MNIST format), raw or gzip: a reader that validates everything and a writer.

Header: two zero bytes, a dtype code, the number of dimensions n, then n big-endian uint32 sizes, then the data.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from lvm.errors import DatasetError
from lvm.io import atomic_write_bytes

# IDX dtype code -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_ELEMENTS = 2_000_000_000  # refuse headers claiming more before allocating anything
GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == GZIP_MAGIC:
            with gzip.open(path, "rb") as fh:
                return fh.read() if limit is None else fh.read(limit)
        with open(path, "rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:  # zlib.error: gzip magic, bad deflate data
        raise DatasetError(
            f"{path}: cannot be read ({exc}); the file is corrupt or truncated — download it again"
        ) from None


def _padded_count(shape: tuple[int, ...]) -> int:
    """∏ max(d, 1): the element count with empty dimensions counted as 1, so that (0, 2**21, 2**21, 2**21), which
    numpy cannot even shape, is caught by the same limit as a huge count."""
    out = 1
    for d in shape:
        out *= max(d, 1)
    return out


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a native-endian array, validating magic, dtype code, dimensions and byte count."""
    if len(data) < 4:
        raise DatasetError(f"{name}: too short to be an IDX file ({len(data)} bytes); it is truncated")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise DatasetError(
            f"{name}: wrong magic number {data[:4].hex()} (an IDX file starts with 00 00); "
            "is this an IDX file (MNIST format)?"
        )
    if code not in IDX_DTYPES:
        raise DatasetError(
            f"{name}: unknown IDX dtype code 0x{code:02x}; expected one of "
            + ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        )
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(f"{name}: truncated IDX header (needs {header_len} bytes, has {len(data)})")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    count = 1
    for s in shape:
        count *= s
    if _padded_count(shape) > MAX_ELEMENTS:
        raise DatasetError(f"{name}: IDX header claims {count:,} elements (shape {shape}); refusing to allocate that")
    dtype = IDX_DTYPES[code]
    expected = count * dtype.itemsize
    payload = len(data) - header_len
    if payload < expected:
        raise DatasetError(
            f"{name}: truncated: header shape {shape} needs {expected:,} data bytes, file has {payload:,}"
        )
    if payload > expected:
        raise DatasetError(
            f"{name}: {payload - expected:,} unexpected bytes after the data of shape {shape}; "
            "the header does not match the file"
        )
    return (
        np.frombuffer(data, dtype=dtype, count=count, offset=header_len).reshape(shape).astype(dtype.newbyteorder("="))
    )


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip)."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes of ``array`` (dtype one of uint8, int8, int16, int32, float32, float64)."""
    array = np.asarray(array)
    for code, dt in IDX_DTYPES.items():  # noqa: B007 - code and dt are used after the loop (for/else)
        if dt.kind == array.dtype.kind and dt.itemsize == array.dtype.itemsize:
            break
    else:
        raise ValueError(f"dtype {array.dtype} has no IDX code")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError("IDX arrays need 1 to 255 dimensions")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dt, copy=False).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX, gzip-compressed when ``compress`` (default: when the name ends in .gz); atomic."""
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
