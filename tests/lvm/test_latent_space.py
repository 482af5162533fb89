"""lvm.latent_space: the latent plane's encodings, decoded grids, aggregate posterior and prior, against closed forms
and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm.errors import ModelInputError
from lvm.latent_space import (
    aggregate_density,
    axes_plane,
    cell_centres,
    decode_mosaic,
    decode_point,
    encode_dataset,
    full_latent,
    image_shape_of,
    inverse_normal_cdf,
    nearest_encoding,
    normal_cdf,
    pca_plane,
    prior_density,
    quantile_centres,
    square_cells,
)
from lvm.models.vae import VAE


def vae(latent_dim: int = 2, decoder: str = "bernoulli", shape=(4, 3)) -> VAE:
    torch.manual_seed(0)
    return VAE(data_dim=12, latent_dim=latent_dim, hidden=(16,), decoder=decoder, image_shape=shape).eval()


def test_aggregate_density_is_the_mean_of_the_encoders_gaussians():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(7, 3)).astype(np.float32)
    sigma = rng.uniform(0.2, 1.5, size=(7, 3)).astype(np.float32)
    zx, zy = np.linspace(-3, 3, 5), np.linspace(-2, 2, 4)
    q = aggregate_density(mu, sigma, zx, zy)
    brute = np.zeros((4, 5))
    for j, b in enumerate(zy):
        for i, a in enumerate(zx):
            dist = torch.distributions.Normal(torch.as_tensor(mu[:, :2]), torch.as_tensor(sigma[:, :2]))
            brute[j, i] = dist.log_prob(torch.tensor([a, b])).sum(-1).exp().mean()
    np.testing.assert_allclose(q, brute, rtol=1e-5, atol=1e-7)
    # a density: it integrates to 1 over a wide grid (midpoint rule)
    g = cell_centres(-9, 9, 400)
    assert float(aggregate_density(mu, sigma, g, g).sum() * (18 / 400) ** 2) == pytest.approx(1.0, abs=1e-4)
    assert aggregate_density(mu[:0], sigma[:0], zx, zy).shape == (4, 5)


def test_prior_density_is_the_standard_normal():
    zx, zy = np.array([-1.0, 0.0, 2.0]), np.array([0.5, -3.0])
    expected = torch.distributions.Normal(0.0, 1.0)
    gx, gy = np.meshgrid(zx, zy)
    log_p = expected.log_prob(torch.as_tensor(gx)) + expected.log_prob(torch.as_tensor(gy))
    np.testing.assert_allclose(prior_density(zx, zy), log_p.exp().numpy(), rtol=1e-6)


@given(st.floats(-4.5, 4.5))
def test_normal_cdf_and_its_inverse(z):
    assert inverse_normal_cdf(normal_cdf(z)) == pytest.approx(z, abs=1e-6)


def test_quantile_centres_are_prior_quantiles():
    u, z = quantile_centres(8)
    np.testing.assert_allclose(u, (np.arange(8) + 0.5) / 8)
    np.testing.assert_allclose([normal_cdf(v) for v in z], u, atol=1e-12)
    assert inverse_normal_cdf(0.0) == pytest.approx(-4.753, abs=1e-3) and math.isfinite(inverse_normal_cdf(1.0))


@settings(deadline=None)
@given(
    st.floats(-50, 50),
    st.floats(1e-3, 100),
    st.floats(-50, 50),
    st.floats(1e-3, 100),
    st.integers(1, 60),
)
def test_square_cells_are_square_and_cover_the_view(x0, w, y0, h, n):
    zx, zy, (left, bottom, width, height) = square_cells((x0, x0 + w), (y0, y0 + h), n)
    s = max(w, h) / n
    assert max(len(zx), len(zy)) == n and 1 <= min(len(zx), len(zy)) <= n
    assert width / len(zx) == pytest.approx(s, rel=1e-9) and height / len(zy) == pytest.approx(s, rel=1e-9)
    assert left <= x0 + 1e-9 * s and left + width >= x0 + w - 1e-9 * s  # covers the view
    assert bottom <= y0 + 1e-9 * s and bottom + height >= y0 + h - 1e-9 * s
    assert width - w < s * (1 + 1e-9) and height - h < s * (1 + 1e-9)  # by less than one cell
    if len(zx) > 1:
        np.testing.assert_allclose(np.diff(zx), s, rtol=1e-6)
    assert zx[0] == pytest.approx(left + s / 2) and zy[0] == pytest.approx(bottom + s / 2)


def test_square_cells_rejects_an_empty_view():
    with pytest.raises(ModelInputError):
        square_cells((0, 0), (0, 1), 5)
    with pytest.raises(ModelInputError):
        square_cells((0, 1), (0, 1), 0)


def test_decode_mosaic_places_each_tile_at_its_z():
    model = vae()
    zx, zy = np.array([-1.0, 0.0, 1.5]), np.array([-0.5, 2.0])
    mosaic = decode_mosaic(model, zx, zy)
    assert mosaic.shape == (2 * 4, 3 * 3) and mosaic.dtype == np.float32
    for j, b in enumerate(zy):
        for i, a in enumerate(zx):
            with torch.no_grad():
                tile = model.decode_mean(torch.tensor([[a, b]], dtype=torch.float32)).numpy().reshape(4, 3)
            np.testing.assert_allclose(mosaic[j * 4 : (j + 1) * 4, i * 3 : (i + 1) * 3], tile[::-1], atol=1e-6)
    with pytest.raises(ModelInputError, match="as an image"):
        decode_mosaic(vae(shape=None), zx, zy)


def test_decode_point_mean_sample_and_variance():
    model = vae()
    mean, sample, var = decode_point(model, (0.3, -0.7), torch.Generator().manual_seed(1))
    with torch.no_grad():
        p = model.decode_mean(torch.tensor([[0.3, -0.7]])).numpy().reshape(4, 3)
    np.testing.assert_allclose(mean, p, atol=1e-6)
    np.testing.assert_allclose(var, p * (1 - p), atol=1e-6)
    assert set(np.unique(sample)) <= {0.0, 1.0}
    again = decode_point(model, (0.3, -0.7), torch.Generator().manual_seed(1))[1]
    assert np.array_equal(sample, again)  # seeded
    g_mean, g_sample, g_var = decode_point(vae(decoder="gaussian", shape=None), (0.0, 0.0), torch.Generator())
    assert g_mean.shape == g_sample.shape == g_var.shape == (12,) and (g_var > 0).all()


def test_higher_latent_dimensions_are_zero_padded():
    model = vae(latent_dim=4)
    z = full_latent(torch.tensor([[1.0, 2.0]]), 4)
    assert z.tolist() == [[1.0, 2.0, 0.0, 0.0]]
    with torch.no_grad():
        expected = model.decode_mean(z).numpy().reshape(4, 3)
    np.testing.assert_allclose(decode_point(model, (1.0, 2.0))[0], expected, atol=1e-6)
    with pytest.raises(ModelInputError, match="at least 2"):
        full_latent(torch.zeros(1, 2), 1)


def test_encode_dataset_in_batches_matches_the_encoder():
    class Stop(Exception):
        pass

    class Token:
        calls = 0

        def check(self):
            self.calls += 1

    model = vae(latent_dim=3)
    x = np.random.default_rng(0).uniform(size=(10, 12)).astype(np.float32)
    token = Token()
    mu, sigma = encode_dataset(model, x, batch=4, token=token)
    with torch.no_grad():
        m, log_s = model.encoder_params(torch.as_tensor(x))
    np.testing.assert_allclose(mu, m.numpy(), atol=1e-6)
    np.testing.assert_allclose(sigma, log_s.exp().numpy(), rtol=1e-6)
    assert token.calls == 3 and encode_dataset(model, x[:0])[0].shape == (0, 3)
    assert image_shape_of(model) == (4, 3) and image_shape_of(vae(shape=(2, 2))) is None

    class Cancel:
        def check(self):
            raise Stop

    with pytest.raises(Stop):
        encode_dataset(model, x, token=Cancel())


def test_nearest_encoding():
    mu = np.array([[0.0, 0.0, 9.0], [1.0, 1.0, -9.0], [3.0, 0.0, 0.0]], np.float32)
    assert nearest_encoding(mu, (0.9, 0.8)) == 1 and nearest_encoding(mu, (2.5, -1.0)) == 2
    assert nearest_encoding(mu[:0], (0.0, 0.0)) is None


def test_pca_plane_is_orthonormal_through_the_mean_and_projects_its_own_points_back():
    rng = np.random.default_rng(1)
    mu = (rng.normal(size=(300, 6)) * np.array([3.0, 0.2, 2.0, 0.1, 0.1, 0.1])).astype(np.float32)
    plane = pca_plane(mu)
    np.testing.assert_allclose(plane.basis @ plane.basis.T, np.eye(2), atol=1e-9)
    np.testing.assert_allclose(plane.origin, mu.mean(0), atol=1e-5)
    assert abs(plane.basis[0, 0]) > 0.99 and abs(plane.basis[1, 2]) > 0.99  # the two directions of most variance
    a = torch.tensor([[0.5, -1.25], [2.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(plane.project(plane.to_latent(a).numpy()), a.numpy(), atol=1e-5)
    assert plane.prior_centre == pytest.approx(tuple(-plane.basis @ plane.origin))
    with pytest.raises(ModelInputError):
        axes_plane(4, 1, 1)


def test_aggregate_density_on_a_pca_plane_is_the_mean_of_the_projected_gaussians():
    """On any plane, q(a) = (1/N) sum_n N(a; (mu_n - o) B^T, B diag(sigma_n^2) B^T): brute force with
    MultivariateNormal, and on an axes plane the separable fast path agrees with it."""
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(9, 4)).astype(np.float32)
    sigma = rng.uniform(0.3, 1.2, size=(9, 4)).astype(np.float32)
    zx, zy = np.linspace(-2, 2, 5), np.linspace(-1.5, 1.5, 4)
    for plane in (pca_plane(mu), axes_plane(4, 3, 1)):
        q = aggregate_density(mu, sigma, zx, zy, plane)
        mean = torch.as_tensor(plane.project(mu), dtype=torch.float64)
        cov = torch.as_tensor(plane.project_cov(sigma))
        dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
        gx, gy = np.meshgrid(zx, zy)
        pts = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1))[:, None, :]
        brute = dist.log_prob(pts).exp().mean(-1).reshape(4, 5).numpy()
        np.testing.assert_allclose(q, brute, rtol=1e-4, atol=1e-8)
    c = (0.5, -1.0)
    np.testing.assert_allclose(prior_density(zx, zy, c), prior_density(zx - c[0], zy - c[1]), atol=1e-7)


def test_decoding_on_a_plane_decodes_its_points_for_any_latent_model():
    from lvm.models.linear_gaussian import LinearGaussianModel

    model = LinearGaussianModel.random(16, 5, dtype=torch.float32)
    plane = pca_plane(np.random.default_rng(3).normal(size=(50, 5)))
    zx, zy = np.array([-1.0, 0.5]), np.array([0.25])
    mosaic = decode_mosaic(model, zx, zy, plane)  # (a 16-pixel model is drawn as 4 x 4 images)
    for i, a in enumerate(zx):
        z = plane.to_latent(torch.tensor([[a, 0.25]], dtype=torch.float32))
        tile = model.gaussian_params(z)[0].clamp(0, 1).numpy().reshape(4, 4)[::-1]
        np.testing.assert_allclose(mosaic[:, 4 * i : 4 * (i + 1)], tile, atol=1e-5)
    mean, sample, var = decode_point(model, (0.3, -0.2), torch.Generator().manual_seed(0), plane)
    z = plane.to_latent(torch.tensor([[0.3, -0.2]], dtype=torch.float32))
    np.testing.assert_allclose(mean, model.gaussian_params(z)[0].numpy().reshape(4, 4), atol=1e-5)
    assert var is not None and np.allclose(var, 0.25) and sample is not None and sample.shape == (4, 4)
