"""An ``Estimate`` can carry the samples its log-weights belong to (``return_samples``): the same draws, the same
weights, chunked or not."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal

from lvm.estimators import elbo, importance, naive_mc
from lvm.models.base import standard_normal_log_prob
from lvm.models.linear_gaussian import LinearGaussianModel


@pytest.fixture(scope="module")
def lg():
    m = LinearGaussianModel.random(data_dim=5, latent_dim=2, s=0.5, seed=1)
    return m, m.sample(3, torch.Generator().manual_seed(2))


def log_joint(m, x, z):
    return m.log_likelihood(x, z) + m.log_prior(z)


@pytest.mark.parametrize("chunk", [None, 7])
def test_importance_samples_are_the_weighted_draws(lg, chunk):
    m, x = lg
    q = m.posterior(x)
    q = Independent(Normal(q.mean + 0.3, torch.diagonal(q.covariance_matrix, dim1=-2, dim2=-1).sqrt() * 1.5), 1)
    est = importance(m, x, q, 50, seed=4, chunk=chunk, return_log_weights=True, return_samples=True)
    assert est.samples.shape == (50, 3, 2) and est.log_weights.shape == (50, 3)
    assert torch.allclose(est.log_weights, log_joint(m, x, est.samples) - q.log_prob(est.samples), atol=1e-10)
    plain = importance(m, x, q, 50, seed=4, chunk=chunk)
    assert plain.samples is None and plain.log_weights is None and torch.equal(plain.value, est.value)
    assert torch.allclose(est.value, torch.logsumexp(est.log_weights, 0) - math.log(50))


def test_naive_mc_samples_follow_their_proposal(lg):
    m, x = lg
    uni = naive_mc(
        m, x, 200, proposal="uniform", box=(-3.0, 2.0), seed=1, chunk=64, return_log_weights=True, return_samples=True
    )
    z = uni.samples
    assert z.shape == (200, 3, 2) and bool((z >= -3.0).all()) and bool((z <= 2.0).all())
    assert torch.allclose(uni.log_weights, log_joint(m, x, z) + 2 * math.log(5.0), atol=1e-10)
    pri = naive_mc(m, x, 200, proposal="prior", seed=1, return_log_weights=True, return_samples=True)
    assert torch.allclose(
        pri.log_weights, log_joint(m, x, pri.samples) - standard_normal_log_prob(pri.samples), atol=1e-10
    )
    again = naive_mc(m, x, 200, proposal="prior", seed=1, return_samples=True)
    assert torch.equal(again.samples, pri.samples)


def test_elbo_carries_its_samples_too(lg):
    m, x = lg
    q = m.posterior(x)
    est = elbo(m, x, q, 40, seed=3, return_samples=True, return_log_weights=True)
    assert est.samples.shape == (40, 3, 2)
    assert torch.allclose(est.log_weights, log_joint(m, x, est.samples) - q.log_prob(est.samples), atol=1e-9)
