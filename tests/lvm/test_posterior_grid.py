"""lvm.posterior_grid: the exact posterior of one x on grids (built on the coarse-to-fine scheme of
lvm.estimators.quadrature), against the closed forms of linear-Gaussian models and the dense grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from lvm.estimators import LatentGrid, log_marginal
from lvm.gaussian_q import cov_to_tril
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.posterior_grid import (
    CoarseGrid,
    hpd_extent,
    hpd_levels,
    one_d_posterior,
    posterior_picture,
    upsample_bilinear,
)


@pytest.fixture(scope="module")
def lg():
    m = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.6, seed=3)
    x = m.sample(4, torch.Generator().manual_seed(4))
    return m, x, CoarseGrid.build(m, size=64)


def test_picture_matches_the_closed_form_posterior(lg):
    m, x, coarse = lg
    assert np.allclose(coarse.box, [[-4, 4], [-4, 4]]) and coarse.size == 64  # no encoder: the prior's bulk
    for b in range(4):
        pic = posterior_picture(coarse, x[b].numpy(), index=b)
        post = m.posterior(x[b : b + 1])
        exact = MultivariateNormal(post.mean[0], post.covariance_matrix[0])
        assert pic.index == b and pic.log_px == pytest.approx(float(m.log_marginal(x[b : b + 1])[0]), abs=1e-4)
        z1, z2 = pic.points()
        g = torch.tensor(np.stack(np.meshgrid(z1, z2, indexing="ij"), -1).reshape(-1, 2))
        want = exact.log_prob(g).numpy().reshape(pic.density.shape)
        top = want > want.max() - 5
        np.testing.assert_allclose(pic.log_density[top], want[top], atol=1e-4)
        np.testing.assert_allclose(pic.density, np.exp(pic.log_density))
        assert pic.density.sum() * pic.cell_area == pytest.approx(1 - pic.outside_mass, abs=1e-5)
        assert pic.coarse_density.sum() * (8 / 64) ** 2 == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(pic.mode, post.mean[0].numpy(), atol=1.5 * (z1[1] - z1[0]))
        # the HPD regions hold their masses, and the ellipse mass of the posterior itself is 1 - exp(-n^2 / 2)
        for level, mass in zip(pic.levels, pic.level_masses, strict=True):
            assert pic.density[pic.density >= level].sum() * pic.cell_area == pytest.approx(mass, abs=0.02)
        L = cov_to_tril(post.covariance_matrix[0].numpy())
        for n_sigma in (1.0, 2.0, 3.0):
            inside = pic.mass_within_ellipse(post.mean[0].numpy(), L, n_sigma)
            assert inside == pytest.approx(1 - math.exp(-0.5 * n_sigma**2), abs=0.02)


def test_picture_of_a_vae_matches_dense_quadrature(tiny_vae):
    from lvm.data import load_dataset

    data = load_dataset("digits").split()
    coarse = CoarseGrid.build(tiny_vae, data.x[:200], size=64)
    lo, hi = coarse.box[:, 0], coarse.box[:, 1]
    assert (lo <= -4).all() and (hi >= 4).all()  # at least the prior's bulk
    pic = posterior_picture(coarse, data.x[5], 5)
    dense = log_marginal(LatentGrid.build(tiny_vae, size=256, box=torch.as_tensor(coarse.box)), data.x[5:6])
    assert abs(pic.log_px - float(dense[0])) < 1e-3
    assert pic.levels[0] > pic.levels[1] > pic.levels[2] > 0


def test_hpd_levels_and_extent_on_a_known_density():
    d = np.zeros((10, 10))
    d[2, 3], d[4, 4], d[5, 5], d[7, 1] = 4.0, 3.0, 2.0, 1.0  # masses 0.4, 0.3, 0.2, 0.1
    assert hpd_levels(d, (0.4, 0.7, 0.9, 1.0)) == (4.0, 3.0, 2.0, 1.0)
    assert hpd_levels(d, (0.5,)) == (3.0,)  # the smallest region holding at least half
    ext = hpd_extent(d, (0.0, 10.0, -5.0, 5.0), mass=0.7, pad=0.0)
    assert ext == (2.0, 5.0, -2.0, 0.0)  # cells [2, 3] and [4, 4]: z1 in [2, 5], z2 in [-2, 0]
    assert hpd_extent(np.zeros((3, 3)), (0.0, 1.0, 0.0, 1.0)) == (0.0, 1.0, 0.0, 1.0)


@settings(max_examples=25, deadline=None)
@given(st.floats(-3, 3), st.floats(-3, 3), st.integers(2, 5))
def test_upsampling_keeps_linear_functions_inside_and_the_cell_centres(a, b, factor):
    n = 8
    c = (np.arange(n) + 0.5) / n
    d = a * c[:, None] + b * c[None, :]
    up = upsample_bilinear(d, factor)
    assert up.shape == (n * factor, n * factor) and up.dtype == np.float32
    f = (np.arange(n * factor) + 0.5) / (n * factor)
    inner = (f > c[0]) & (f < c[-1])  # between the outermost cell centres the interpolation is exact
    want = a * f[:, None] + b * f[None, :]
    np.testing.assert_allclose(up[np.ix_(inner, inner)], want[np.ix_(inner, inner)], atol=1e-5)
    np.testing.assert_array_equal(upsample_bilinear(d, 1), d.astype(np.float32))


def test_one_d_posterior_against_closed_forms():
    m = LinearGaussianModel(torch.tensor([[1.5]], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64), 0.8)
    x = np.array([1.1])
    post = one_d_posterior(m, x, z_range=(-10.0, 10.0), n=4001)
    xt = torch.tensor(x)[None]
    assert post.log_px == pytest.approx(float(m.log_marginal(xt)[0]), abs=1e-8)
    exact = m.posterior(xt)
    mu, sd = float(exact.mean[0, 0]), float(exact.covariance_matrix[0, 0, 0]) ** 0.5
    h = post.z[1] - post.z[0]
    assert post.density.sum() * h == pytest.approx(1.0, abs=1e-9)
    assert post.z[0] == pytest.approx(-10 + h / 2)  # a midpoint grid
    assert post.elbo(mu, sd) == pytest.approx(post.log_px, abs=1e-6)  # q = p(z|x): no gap
    kl = float(kl_divergence(Normal(0.5, 0.3), Normal(mu, sd)))
    assert post.kl(0.5, 0.3) == pytest.approx(kl, abs=1e-6)
    assert post.elbo(0.5, 0.3) + post.kl(0.5, 0.3) == pytest.approx(post.log_px, abs=1e-12)
