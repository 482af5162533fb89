"""lvm.contours: the segments lie on the level set, close around it, and bad input gives none."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm.contours import contour_segments


def _gaussian_image(n=200, sx=1.0, sy=0.5, extent=(-3.0, 3.0, -2.0, 2.0)):
    x_lo, x_hi, y_lo, y_hi = extent
    xs = x_lo + (np.arange(n) + 0.5) * (x_hi - x_lo) / n  # pixel centres, as contour_segments assumes
    ys = y_lo + (np.arange(n) + 0.5) * (y_hi - y_lo) / n
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    return np.exp(-0.5 * ((X / sx) ** 2 + (Y / sy) ** 2)), extent


@settings(max_examples=25, deadline=None)
@given(level=st.floats(0.05, 0.95), sx=st.floats(0.4, 1.2), sy=st.floats(0.3, 0.9))
def test_segments_lie_on_the_ellipse_of_the_level(level, sx, sy):
    """exp(-r^2/2) = L on the ellipse r^2 = (x/sx)^2 + (y/sy)^2 = -2 log L; its perimeter matches Ramanujan's."""
    # the box holds the widest ellipse (a <= 2.45 * 1.2, b <= 2.45 * 0.9): a clipped one would be shorter
    img, extent = _gaussian_image(n=300, sx=sx, sy=sy, extent=(-4.0, 4.0, -3.0, 3.0))
    seg = contour_segments(img, level, extent)
    assert len(seg) > 0 and len(seg) % 2 == 0
    r2 = (seg[:, 0] / sx) ** 2 + (seg[:, 1] / sy) ** 2
    np.testing.assert_allclose(r2, -2 * np.log(level), rtol=0.02, atol=2e-3)
    a, b = np.sqrt(-2 * np.log(level)) * sx, np.sqrt(-2 * np.log(level)) * sy
    perimeter = np.pi * (3 * (a + b) - np.sqrt((3 * a + b) * (a + 3 * b)))
    length = np.linalg.norm(seg[1::2] - seg[0::2], axis=1).sum()
    assert length == pytest.approx(perimeter, rel=0.02)


def test_no_segments_outside_the_range_or_for_bad_input():
    img, extent = _gaussian_image(n=50)
    assert contour_segments(img, 2.0, extent).shape == (0, 2)
    assert contour_segments(img, -1.0, extent).shape == (0, 2)
    assert contour_segments(img, float("nan"), extent).shape == (0, 2)
    assert contour_segments(np.zeros((1, 5)), 0.5, extent).shape == (0, 2)


def test_saddle_cells_give_two_segments():
    """A checkerboard 2 x 2 cell (case 5 / 10) crosses the level on all four edges: two segments."""
    for v in (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])):
        seg = contour_segments(v, 0.5, (0.0, 2.0, 0.0, 2.0))
        assert seg.shape == (4, 2)
