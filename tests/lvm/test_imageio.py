"""lvm.imageio.read_png (Pillow): every kind of PNG a paint program writes loads as uint8 grey or RGB; corrupt,
truncated and oversized files raise DatasetError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from lvm.errors import DatasetError
from lvm.imageio import MAX_PIXELS, decode_png, encode_png, read_png, write_png

RNG = np.random.RandomState(0)
GREY = RNG.randint(0, 256, size=(6, 7)).astype(np.uint8)
RGB = RNG.randint(0, 256, size=(6, 7, 3)).astype(np.uint8)


def png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_grey_and_rgb_8_bit_roundtrip_through_our_writer(tmp_path):
    for a in (GREY, RGB):
        write_png(tmp_path / "a.png", a)
        back = read_png(tmp_path / "a.png")
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, a)


def test_sixteen_bit_grey_scales_to_eight_bits():
    a16 = RNG.randint(0, 65536, size=(5, 4)).astype(np.uint16)
    out = decode_png(png_bytes(Image.fromarray(a16)))
    assert out.dtype == np.uint8 and out.shape == (5, 4)
    np.testing.assert_array_equal(out, np.rint(a16 / 257.0).astype(np.uint8))
    ends = np.array([[0, 65535]], np.uint16)
    np.testing.assert_array_equal(decode_png(png_bytes(Image.fromarray(ends))), [[0, 255]])


def test_sixteen_bit_rgb_loads_as_eight_bit_rgb():
    """A 16-bit RGB PNG (as GIMP or Krita write it), encoded by hand: each channel v8 * 257."""
    a16 = RGB.astype(np.uint16) * 257
    h, w = a16.shape[:2]
    raw = b"".join(b"\x00" + a16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    out = decode_png(data)
    assert out.dtype == np.uint8 and out.shape == (h, w, 3)
    np.testing.assert_array_equal(out, RGB)


def test_rgba_is_composited_over_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 255)  # opaque black stroke
    rgba[0, 1] = (200, 100, 0, 0)  # fully transparent: white
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black: grey
    rgba[1] = (10, 20, 30, 255)
    out = decode_png(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 0], (0, 0, 0))
    np.testing.assert_array_equal(out[0, 1], (255, 255, 255))
    np.testing.assert_array_equal(out[0, 2], (127, 127, 127))
    np.testing.assert_array_equal(out[1], [(10, 20, 30)] * 3)


def test_grey_with_alpha_stays_grey():
    la = np.stack([GREY, np.full_like(GREY, 255)], -1)
    la[0, 0] = (0, 0)
    out = decode_png(png_bytes(Image.fromarray(la, "LA")))
    assert out.shape == GREY.shape
    assert out[0, 0] == 255 and np.array_equal(out.ravel()[1:], GREY.ravel()[1:])


def test_palette_images_load_as_rgb_and_honour_transparency():
    idx = RNG.randint(0, 3, size=(4, 5)).astype(np.uint8)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(colours.ravel().tolist() + [0] * (768 - 9))
    np.testing.assert_array_equal(decode_png(png_bytes(im)), colours[idx])
    out = decode_png(png_bytes(im, transparency=2))  # index 2 transparent: white
    expected = colours[idx].copy()
    expected[idx == 2] = 255
    np.testing.assert_array_equal(out, expected)


def test_one_bit_images():
    bits = GREY > 127
    out = decode_png(png_bytes(Image.fromarray(bits)))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.where(bits, 255, 0))


def test_corrupt_truncated_and_non_png_files_raise_dataset_error(tmp_path):
    good = encode_png(RNG.randint(0, 256, size=(40, 40)).astype(np.uint8))
    flipped = bytearray(good)
    flipped[60] ^= 0xFF  # inside the image data: its CRC no longer matches
    header = bytearray(good)
    header[17] ^= 0x01  # the width, under the header's CRC
    cases = {
        "not a png": b"not a png at all",
        "signature only": good[:8],
        "cut header": good[:20],
        "cut data": good[: len(good) // 2],
        "bad data": bytes(flipped),
        "bad header": bytes(header),
    }
    for what, data in cases.items():
        with pytest.raises(DatasetError, match="PNG|png"):
            decode_png(data, what)
    (tmp_path / "bad.png").write_bytes(bytes(flipped))
    with pytest.raises(DatasetError, match="bad.png"):
        read_png(tmp_path / "bad.png")
    with pytest.raises(DatasetError, match="cannot read"):
        read_png(tmp_path / "missing.png")


def test_size_guard_refuses_huge_images_before_decoding():
    side = int(MAX_PIXELS**0.5) + 10
    data = bytearray(encode_png(np.zeros((2, 2), np.uint8)))
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    with pytest.raises(DatasetError, match="scale it down"):
        decode_png(bytes(data))
