"""The one coarse-to-fine scheme of lvm.estimators.quadrature (support on a coarse grid, fine grid only there),
against closed forms of a linear-Gaussian model and against the dense grid."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from lvm.estimators import (
    LatentGrid,
    coarse_support,
    local_posterior,
    log_marginal,
    log_marginal_adaptive,
    log_marginal_on_support,
)
from lvm.models.linear_gaussian import LinearGaussianModel


@pytest.fixture(scope="module")
def lg():
    m = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.6, seed=3)
    return m, m.sample(8, torch.Generator().manual_seed(4))


def test_coarse_support_thresholds_each_row_and_dilates():
    lj = torch.full((2, 25), -100.0)
    lj[0, 12] = 0.0  # row 0: one cell at the centre of a 5 x 5 grid
    lj[0, 13] = -3.0  # within 5 nats
    lj[0, 0] = -6.0  # not within 5 nats
    lj[1, 24] = 7.0  # row 1: its own best, in the corner
    s = coarse_support(lj, (5, 5), threshold=5.0)
    assert s.shape == (2, 5, 5) and s.dtype == torch.bool
    assert s[0].nonzero().tolist() == [[2, 2], [2, 3]] and s[1].nonzero().tolist() == [[4, 4]]
    d = coarse_support(lj, (5, 5), threshold=5.0, dilate=1)
    assert int(d[0].sum()) == 12 and d[0, 1:4, 1:5].all()  # 3 x 4 block around the two cells
    assert int(d[1].sum()) == 4 and d[1, 3:, 3:].all()  # clipped at the grid's corner


def test_local_posterior_matches_the_closed_form(lg):
    m, x = lg
    coarse = LatentGrid.build(m, 64)
    post = m.posterior(x)
    for b in range(4):
        lp = local_posterior(coarse, x[b : b + 1], size=48, threshold=16.0)
        assert lp.log_px == pytest.approx(float(m.log_marginal(x[b : b + 1])[0]), abs=1e-4)
        # the fine box holds the posterior's bulk, so the outside share is tiny, and the density integrates to 1
        assert 0.0 <= lp.outside_mass < 1e-5
        mass = float(torch.exp(lp.log_density).sum()) * math.exp(lp.grid.log_cell)
        assert mass == pytest.approx(1.0 - lp.outside_mass, abs=1e-5)
        # the density at the fine grid's points is the closed-form posterior density
        exact = MultivariateNormal(post.mean[b], post.covariance_matrix[b]).log_prob(lp.grid.points)
        top = exact > exact.max() - 5.0
        assert torch.allclose(lp.log_density[top], exact[top], atol=1e-4)
        # the box is whole coarse cells
        h = (coarse.box[:, 1] - coarse.box[:, 0]) / coarse.size
        cells = (lp.box - coarse.box[:, :1]) / h[:, None]
        assert torch.allclose(cells, cells.round(), atol=1e-9)


def test_masked_adaptive_equals_the_dense_grid_and_the_closed_form(lg):
    m, x = lg
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    obs = mask.bool()
    grid = LatentGrid.build(m, 256)
    ad = log_marginal_adaptive(m, x, size=256, block=8, box=grid.box, mask=mask)
    dense = log_marginal(grid, x, mask=mask)
    assert torch.allclose(ad.log_px, dense, atol=1e-6)
    marg = m.marginal()
    exact = MultivariateNormal(marg.loc[obs], marg.covariance_matrix[obs][:, obs]).log_prob(x[:, obs])
    assert torch.allclose(ad.log_px, exact, atol=1e-4)
    # one mask per x: each row its own observed pixels
    masks = torch.stack([mask, 1.0 - mask] * 4)
    per_x = log_marginal_adaptive(m, x, size=256, block=8, box=grid.box, mask=masks).log_px
    assert torch.allclose(per_x[0::2], ad.log_px[0::2], atol=1e-9)
    assert torch.allclose(per_x[1::2], log_marginal(grid, x[1::2], mask=1.0 - mask), atol=1e-6)


def test_one_x_and_many_sum_the_same_support(lg):
    """One x takes the grouped path (one product per decoded batch), many x the tile-by-tile one: same sums."""
    m, x = lg
    coarse = LatentGrid.build(m, 32)
    box = coarse.box
    support = coarse_support(coarse.log_joint(x), coarse.shape, threshold=30.0, dilate=1)
    many, work_many, _ = log_marginal_on_support(m, x, support, box, 256, tile=2)
    for b in range(3):
        one, work_one, _ = log_marginal_on_support(m, x[b : b + 1], support[b : b + 1], box, 256, tile=2)
        assert float(one[0]) == pytest.approx(float(many[b]), abs=1e-9)
        assert work_one <= 1.1 * int(support[b].sum()) * 8 * 8 * 4  # at most the tiles touching its support
    assert work_many < 8 * 256 * 256  # less than the dense table
