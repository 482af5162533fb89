"""The slice through a d-dimensional posterior (lvm.posterior_slice), against the linear-Gaussian closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, kl_divergence

from lvm.errors import ModelInputError
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.posterior_slice import (
    CommonRandomELBO,
    axis_plane,
    compose_q,
    plane_marginal,
    principal_plane,
    slice_extent,
    slice_log_joint,
)


@pytest.fixture(scope="module")
def model_x():
    g = torch.Generator().manual_seed(0)
    model = LinearGaussianModel(torch.randn(20, 10, generator=g, dtype=torch.float64), s=0.7)
    x = model.marginal().sample((1,))[0]
    post = model.posterior(x[None])
    return model, x, post.loc[0].numpy(), post.scale_tril[0].numpy()


def _random_gaussian(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    A = rng.normal(size=(d, d))
    return rng.normal(size=d), np.linalg.cholesky(A @ A.T + 0.5 * np.eye(d))


@settings(max_examples=40, deadline=None)
@given(d=st.integers(3, 12), seed=st.integers(0, 10**6), principal=st.booleans())
def test_the_composed_q_has_the_dragged_marginal_and_keeps_the_rest(d, seed, principal):
    rng = np.random.default_rng(seed)
    centre, L_star = _random_gaussian(rng, d)
    plane = principal_plane(centre, L_star @ L_star.T) if principal else axis_plane(centre, 0, d - 1)
    np.testing.assert_allclose(plane.basis.T @ plane.basis, np.eye(2), atol=1e-10)
    np.testing.assert_allclose(plane.complement.T @ plane.basis, 0.0, atol=1e-10)
    a, T = rng.normal(size=2), np.linalg.cholesky(np.diag(rng.uniform(0.1, 3.0, size=2)))
    mean, tril = compose_q(plane, a, T, centre, L_star)
    a_back, T_back = plane_marginal(plane, mean, tril)
    np.testing.assert_allclose(a_back, a, atol=1e-9)
    np.testing.assert_allclose(T_back @ T_back.T, T @ T.T, atol=1e-9)
    W = plane.complement  # out of the plane, q is q*'s
    np.testing.assert_allclose(W.T @ (mean - centre), W.T @ (centre - centre), atol=1e-9)
    S, S_star = tril @ tril.T, L_star @ L_star.T
    np.testing.assert_allclose(W.T @ S @ W, W.T @ S_star @ W, atol=1e-8)


def test_in_the_posteriors_principal_plane_the_posterior_is_recomposed_exactly(model_x):
    model, x, m, L = model_x
    plane = principal_plane(m, L @ L.T)
    mean, tril = compose_q(plane, *plane_marginal(plane, m, L), m, L)
    np.testing.assert_allclose(mean, m, atol=1e-9)
    np.testing.assert_allclose(tril @ tril.T, L @ L.T, atol=1e-9)


def test_common_random_elbo_is_log_px_at_the_posterior_and_matches_the_closed_form_elsewhere(model_x):
    model, x, m, L = model_x
    log_px = float(model.log_marginal(x[None])[0])
    crn = CommonRandomELBO(model, x, n_samples=4000, seed=1)
    value, se = crn(m, L)
    assert value == pytest.approx(log_px, abs=1e-9) and se < 1e-9  # no variance at all at the posterior
    post = MultivariateNormal(torch.as_tensor(m), scale_tril=torch.as_tensor(L))
    rng = np.random.default_rng(3)
    for _ in range(3):
        qm, qL = m + 0.3 * rng.normal(size=10), L * rng.uniform(0.6, 1.4)
        q = MultivariateNormal(torch.as_tensor(qm), scale_tril=torch.as_tensor(qL))
        exact = log_px - float(kl_divergence(q, post))
        value, se = crn(qm, qL)
        assert abs(value - exact) < 4 * se + 1e-9 and value < log_px
        assert crn(qm, qL) == (value, se)  # common random numbers: the same q gives the same number


def test_the_slice_is_the_log_joint_on_the_plane(model_x):
    model, x, m, L = model_x
    plane = axis_plane(m, 2, 5)
    ext = slice_extent(plane, m, L, 3.0)
    grid = slice_log_joint(model, x, plane, ext, size=8)
    a1 = np.linspace(ext[0], ext[1], 9)
    a2 = np.linspace(ext[2], ext[3], 9)
    i, j = 3, 6
    z = torch.as_tensor(plane.points([0.5 * (a1[i] + a1[i + 1]), 0.5 * (a2[j] + a2[j + 1])]))
    post = MultivariateNormal(torch.as_tensor(m), scale_tril=torch.as_tensor(L))
    expected = float(model.log_marginal(x[None])[0] + post.log_prob(z))  # log p(x, z) = log p(x) + log p(z|x)
    assert grid[i, j] == pytest.approx(expected, abs=1e-8)


def test_bad_planes_and_qs_are_refused(model_x):
    model, x, m, L = model_x
    with pytest.raises(ModelInputError, match="two different axes"):
        axis_plane(m, 3, 3)
    with pytest.raises(ModelInputError, match="between 1 and 10"):
        axis_plane(m, 0, 10)
    with pytest.raises(ModelInputError, match="10-dimensional"):
        CommonRandomELBO(model, x, 16)(m[:2], L[:2, :2])
