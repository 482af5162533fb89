"""lvm.inpainting.local_posterior: the posterior's mass box and its density on a fine grid, against direct sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lvm.inpainting import InpaintGrid, make_mask
from lvm.inpainting.local_posterior import LocalPosteriorGrid, contains, mass_box, needs_refit


@pytest.fixture(scope="module")
def grid():
    from lvm.models.vae import VAE

    torch.manual_seed(0)
    return InpaintGrid.build(VAE(hidden=(32,)).eval(), size=32)


def _cells_inside(w: np.ndarray, box: np.ndarray, rect) -> float:
    """The mass of the cells of ``w`` whose midpoints lie in ``rect``."""
    n = w.shape[0]
    mid = [box[a, 0] + (np.arange(n) + 0.5) * (box[a, 1] - box[a, 0]) / n for a in (0, 1)]
    x0, y0, rw, rh = rect
    inside = ((mid[0] >= x0) & (mid[0] <= x0 + rw))[:, None] & ((mid[1] >= y0) & (mid[1] <= y0 + rh))[None, :]
    return float(w[inside].sum())


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (12, 12), elements=st.floats(0, 1)),
    st.floats(0.5, 0.999),
)
def test_mass_box_holds_the_mass(w, mass):
    if w.sum() <= 0:
        w = w + 1.0
    box = np.array([[-3.0, 3.0], [-2.0, 4.0]])
    rect = mass_box(w, box, mass=mass, min_width=0.0, pad=0.0)
    assert _cells_inside(w, box, rect) >= mass * w.sum() - 1e-9
    assert rect[2] > 0 and rect[3] > 0


def test_mass_box_of_one_cell_is_padded_and_widened():
    w = np.zeros((10, 10))
    w[3, 7] = 1.0
    box = np.array([[0.0, 10.0], [0.0, 10.0]])  # unit cells
    assert mass_box(w, box, pad=0.0, min_width=0.0) == pytest.approx((3.0, 7.0, 1.0, 1.0))
    assert mass_box(w, box, pad=0.25, min_width=0.0) == pytest.approx((2.75, 6.75, 1.5, 1.5))
    x0, y0, rw, rh = mass_box(w, box, pad=0.0, min_width=4.0)  # widened about the cell's centre (3.5, 7.5)
    assert (rw, rh) == pytest.approx((4.0, 4.0)) and (x0 + rw / 2, y0 + rh / 2) == pytest.approx((3.5, 7.5))
    with pytest.raises(ValueError):
        mass_box(np.ones(5), box)


def test_needs_refit():
    cur = (0.0, 0.0, 2.0, 2.0)
    assert needs_refit(None, cur)
    assert not needs_refit(cur, (0.5, 0.5, 1.0, 1.0))  # inside, not much smaller: keep still
    assert needs_refit(cur, (1.5, 0.5, 1.0, 1.0))  # leaves the window
    assert needs_refit(cur, (0.5, 0.5, 0.5, 0.5))  # much narrower
    assert contains(cur, cur) and not contains((0.1, 0.0, 2.0, 2.0), cur)


def test_fine_grid_log_joint_is_log_p_of_x_obs_and_z(grid):
    """a_g against log p(z_g) + sum_{j in O} x_j log sigma(l_j) + (1 - x_j) log sigma(-l_j), summed directly."""
    from lvm.data import load_dataset

    x = load_dataset("digits").split().x[12]
    mask = make_mask("top")
    local = LocalPosteriorGrid(8)
    rect = (-1.0, -0.5, 2.0, 1.5)
    local.set_rect(grid, rect)
    assert local.rect == rect
    z = torch.as_tensor(local.points(rect), dtype=torch.float32)
    assert z.shape == (64, 2) and z[1, 1] > z[0, 1] and z[8, 0] > z[0, 0]  # [i * n + j] at (z1_i, z2_j)
    with torch.no_grad():
        logits = grid.model.bernoulli_logits(z)
        xt, m = torch.as_tensor(x), torch.as_tensor(mask, dtype=torch.float32)
        direct = grid.model.log_prior(z) + (m * (xt * F.logsigmoid(logits) + (1 - xt) * F.logsigmoid(-logits))).sum(-1)
    a = local.log_joint(grid, x, mask)
    assert torch.allclose(a, direct, rtol=1e-5, atol=1e-3)
    dens = local.density(grid, x, mask)
    assert dens.shape == (8, 8) and dens.max() == pytest.approx(1.0)
    flat = dens.reshape(-1)
    g, h = int(np.argmax(flat)), int(np.argmin(flat))
    assert np.log(flat[h] / flat[g]) == pytest.approx(float(direct[h] - direct[g]), abs=1e-3)


def test_fine_grid_refuses_bad_input(grid):
    local = LocalPosteriorGrid(4)
    with pytest.raises(ValueError, match="set_rect"):
        local.log_joint(grid, np.zeros(784, np.float32), make_mask("top"))
    with pytest.raises(ValueError, match="width"):
        local.set_rect(grid, (0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError):
        LocalPosteriorGrid(1)
