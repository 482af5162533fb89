"""lvm.gaussian_q: the plane's (mu1, mu2, sigma1, sigma2, rho) parametrisation against its Cholesky factor, the
encoder's q, and ELBO(q) by Gauss-Hermite against the closed forms of a linear-Gaussian model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from lvm.gaussian_q import (
    cov_to_tril,
    encoder_q,
    gaussian,
    gaussian_elbo,
    model_device_dtype,
    model_x,
    params_to_tril,
    tril_to_params,
)
from lvm.models.linear_gaussian import LinearGaussianModel

finite = st.floats(-20, 20)
scale = st.floats(1e-3, 20)


@given(finite, finite, scale, scale, st.floats(-0.99, 0.99))
def test_params_and_tril_are_inverse(mu1, mu2, s1, s2, rho):
    m, L = params_to_tril(mu1, mu2, s1, s2, rho)
    assert L[0, 1] == 0 and L[0, 0] > 0 and L[1, 1] > 0
    cov = L @ L.T  # the covariance the parameters name
    assert cov[0, 0] == pytest.approx(s1 * s1) and cov[1, 1] == pytest.approx(s2 * s2)
    assert cov[0, 1] == pytest.approx(rho * s1 * s2, abs=1e-9 * s1 * s2)
    np.testing.assert_allclose(tril_to_params(m, L), (mu1, mu2, s1, s2, rho), rtol=1e-9, atol=1e-9)
    Lc = cov_to_tril(cov)  # (with 1e-12 I added: L L^T reproduces cov, though an ill-conditioned L may differ)
    assert Lc[0, 1] == 0 and (np.diag(Lc) > 0).all()
    np.testing.assert_allclose(Lc @ Lc.T, cov, rtol=0, atol=1e-11 + 1e-9 * np.abs(cov).max())


def test_rho_is_clipped_and_a_non_positive_cov_is_refused():
    _, L = params_to_tril(0, 0, 1, 1, 1.0)
    assert L[1, 1] > 0 and tril_to_params(np.zeros(2), L)[4] == pytest.approx(0.999)
    with pytest.raises(np.linalg.LinAlgError):
        cov_to_tril([[1.0, 2.0], [2.0, 1.0]])


class EncodedLG(LinearGaussianModel):
    """A linear-Gaussian model with an 'encoder': the exact posterior's mean and marginal standard deviations."""

    def encode(self, x):
        post = self.posterior(x)
        return Independent(Normal(post.mean, torch.diagonal(post.covariance_matrix, dim1=-2, dim2=-1).sqrt()), 1)


@pytest.fixture(scope="module")
def lg():
    m = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.7, seed=5)
    enc = EncodedLG(m.W, m.b, m.s)
    return enc, enc.sample(3, torch.Generator().manual_seed(6))


def test_encoder_q_is_the_encoders_diagonal_gaussian(lg):
    m, x = lg
    mean, L = encoder_q(m, x[0].numpy())
    post = m.posterior(x[:1])
    np.testing.assert_allclose(mean, post.mean[0].numpy(), atol=1e-12)
    np.testing.assert_allclose(np.diag(L) ** 2, torch.diagonal(post.covariance_matrix[0]).numpy(), atol=1e-12)
    assert L[0, 1] == 0 and L[1, 0] == 0
    assert encoder_q(LinearGaussianModel(m.W, m.b, m.s), x[0]) is None  # no encoder


def test_gauss_hermite_elbo_against_closed_forms(lg):
    """ELBO(q) = log p(x) - KL(q || p(z|x)): 0 gap for the exact posterior, the closed-form KL for other q."""
    m, x = lg
    for b in range(3):
        post = m.posterior(x[b : b + 1])
        log_px = float(m.log_marginal(x[b : b + 1])[0])
        L = torch.linalg.cholesky(post.covariance_matrix[0])
        assert gaussian_elbo(m, x[b], post.mean[0].numpy(), L.numpy()) == pytest.approx(log_px, abs=1e-8)
        mean, tril = params_to_tril(0.3, -0.4, 0.5, 1.2, 0.4)
        q = MultivariateNormal(torch.tensor(mean), scale_tril=torch.tensor(tril))
        exact = MultivariateNormal(post.mean[0], post.covariance_matrix[0])
        want = log_px - float(kl_divergence(q, exact))
        assert gaussian_elbo(m, x[b], mean, tril) == pytest.approx(want, abs=1e-8)


def test_gaussian_and_model_x_follow_the_models_device_and_dtype():
    net = torch.nn.Linear(2, 2).to(torch.float32)
    assert model_device_dtype(net) == (torch.device("cpu"), torch.float32)
    assert model_device_dtype(object()) == (torch.device("cpu"), torch.float64)
    assert model_x(net, np.ones((2, 2))).shape == (4,) and model_x(net, np.ones(3)).dtype == torch.float32
    q = gaussian(net, [1.0, 2.0], np.diag([0.5, 2.0]), batch=3)
    assert q.batch_shape == (3,) and q.loc.dtype == torch.float32
    np.testing.assert_allclose(q.covariance_matrix[2].numpy(), np.diag([0.25, 4.0]), atol=1e-6)
    assert float(q.log_prob(torch.tensor([1.0, 2.0]))[0]) == pytest.approx(-math.log(2 * math.pi), abs=1e-5)
