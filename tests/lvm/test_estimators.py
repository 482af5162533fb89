"""Monte Carlo estimators of log p(x): naive MC, importance sampling / IWAE, ELBO, ESS and standard errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from lvm.errors import ModelInputError
from lvm.estimators import (
    effective_sample_size,
    elbo,
    importance,
    kl_to_standard_normal,
    log_stderr,
    naive_mc,
)
from lvm.models.linear_gaussian import LinearGaussianModel

D64 = torch.float64


@pytest.fixture(scope="module")
def lg():
    m = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.6, seed=3)
    x = m.sample(50, torch.Generator().manual_seed(4))
    return m, x


def _off_q(m, x, shift=0.3, widen=1.5):
    post = m.posterior(x)
    return MultivariateNormal(post.mean + shift, scale_tril=widen * post.scale_tril)


def test_importance_with_true_posterior_is_exact(lg):
    m, x = lg
    est = importance(m, x, m.posterior(x), 64, seed=0, return_log_weights=True)
    assert torch.allclose(est.value, m.log_marginal(x), atol=1e-10)
    assert est.stderr.max() < 1e-6
    assert torch.allclose(est.ess, torch.full_like(est.ess, 64.0))
    assert est.log_weights.shape == (64, 50)
    assert torch.allclose(est.log_weights, m.log_marginal(x).expand(64, -1), atol=1e-10)


def test_bounds_order_and_iwae_grows_with_k(lg):
    m, x = lg
    q = _off_q(m, x)
    lpx = m.log_marginal(x).mean()
    el = elbo(m, x, q, 2000, seed=0).value.mean()
    means = []
    for k in (1, 10, 100):
        reps = torch.stack([importance(m, x, q, k, seed=s).value for s in range(10)])
        means.append(reps.mean())
    assert el < means[0] + 0.05  # L_1 = ELBO in expectation
    assert abs(float(el - means[0])) < 0.1
    assert means[0] < means[1] < means[2] <= lpx + 0.02  # L_k <= log p(x) up to the estimates' noise
    assert float(lpx - means[2]) < 0.05


def test_elbo_analytic_and_mc_kl_agree(lg):
    m, x = lg
    q = _off_q(m, x)
    a = elbo(m, x, q, 4000, analytic_kl=True, seed=1)
    b = elbo(m, x, q, 4000, analytic_kl=False, seed=1)
    diff = (a.value - b.value).abs()
    assert (diff < 4 * torch.sqrt(a.stderr**2 + b.stderr**2) + 1e-6).all()
    assert (a.value <= m.log_marginal(x) + 4 * a.stderr).all()
    diag = Independent(Normal(torch.zeros(3, 2, dtype=D64), torch.full((3, 2), 0.5, dtype=D64)), 1)
    full = MultivariateNormal(
        torch.zeros(3, 2, dtype=D64), covariance_matrix=0.25 * torch.eye(2, dtype=D64).expand(3, 2, 2)
    )
    assert torch.allclose(kl_to_standard_normal(diag), kl_to_standard_normal(full))
    ref = torch.distributions.kl_divergence(
        full, MultivariateNormal(torch.zeros(2, dtype=D64), torch.eye(2, dtype=D64))
    )
    assert torch.allclose(kl_to_standard_normal(full), ref)


def test_naive_mc_variance_far_exceeds_importance(lg):
    m, x = lg
    x = x[:10]
    q = _off_q(m, x, shift=0.0, widen=1.2)
    naive = torch.stack([naive_mc(m, x, 200, proposal="uniform", seed=s).value for s in range(12)])
    prior = torch.stack([naive_mc(m, x, 200, proposal="prior", seed=s).value for s in range(12)])
    isamp = torch.stack([importance(m, x, q, 200, seed=s).value for s in range(12)])
    assert float(naive.var(0).mean()) > 20 * float(isamp.var(0).mean())
    assert float(prior.var(0).mean()) > 20 * float(isamp.var(0).mean())


def test_naive_uniform_converges_to_box_integral(lg):
    m, x = lg
    est = naive_mc(m, x[:5], 100_000, proposal="uniform", box=(-5.0, 5.0), seed=0)
    assert ((est.value - m.log_marginal(x[:5])).abs() < 5 * est.stderr + 1e-3).all()


def test_stderr_matches_spread_across_seeds(lg):
    m, x = lg
    x = x[:5]
    q = _off_q(m, x, shift=0.2, widen=1.3)
    reps = [importance(m, x, q, 500, seed=s) for s in range(30)]
    spread = torch.stack([r.value for r in reps]).std(0)
    predicted = torch.stack([r.stderr for r in reps]).mean(0)
    ratio = spread / predicted
    assert (ratio > 0.4).all() and (ratio < 2.5).all()


def test_seeded_reproducible_and_chunk_independent_statistics(lg):
    m, x = lg
    q = _off_q(m, x)
    a = importance(m, x, q, 300, seed=7)
    b = importance(m, x, q, 300, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.value, b.value)
    c = importance(m, x, q, 300, seed=7, chunk=7, return_log_weights=True)
    assert c.log_weights.shape == (300, 50)
    lw = c.log_weights
    assert torch.allclose(c.value, torch.logsumexp(lw, 0) - math.log(300))
    assert torch.allclose(c.ess, effective_sample_size(lw))
    assert torch.allclose(c.stderr, log_stderr(c.ess, 300))


def test_diagonal_q_sampling(lg):
    m, x = lg
    post = m.posterior(x)
    q = Independent(Normal(post.mean, post.stddev), 1)
    est = importance(m, x, q, 500, seed=0)
    assert ((est.value - m.log_marginal(x)).abs() < 5 * est.stderr + 1e-3).all()


def test_ess_and_stderr_formulas():
    assert float(effective_sample_size(torch.zeros(10, 1))) == pytest.approx(10.0)
    lw = torch.tensor([[0.0], [-100.0], [-100.0]])
    assert float(effective_sample_size(lw)) == pytest.approx(1.0)
    assert float(log_stderr(torch.tensor(10.0), 10)) == 0.0
    assert math.isnan(float(log_stderr(torch.tensor(1.0), 1)))


def test_bad_inputs(lg):
    m, x = lg
    with pytest.raises(ModelInputError):
        importance(m, x, m.posterior(x), 0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ModelInputError):
        naive_mc(m, bad, 10)
    with pytest.raises(ModelInputError):
        naive_mc(m, x, 10, proposal="nope")


def test_vae_iwae_chunked_memory_bounded(tiny_vae):
    """k is processed in chunks: a large k on a batch never builds the (k, B, D) tensor at once."""
    _, x = tiny_vae.sample(20, torch.Generator().manual_seed(0))
    with torch.no_grad():
        q = tiny_vae.encode(x)
    a = importance(tiny_vae, x, q, 3000, seed=0, chunk=128)
    e = elbo(tiny_vae, x, q, 200, seed=0)
    assert a.value.shape == (20,) and torch.isfinite(a.value).all()
    assert (e.value <= a.value + 4 * (a.stderr + e.stderr)).all()
