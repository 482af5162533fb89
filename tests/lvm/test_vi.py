"""Per-x Gaussian VI and the gap decomposition."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lvm.errors import ModelInputError
from lvm.estimators import LatentGrid, fit_gaussian_q, gap_decomposition, log_marginal, vi_steps
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.models.square_decoder import SquareDecoderToy1D

D64 = torch.float64


@pytest.fixture(scope="module")
def lg():
    m = LinearGaussianModel.random(data_dim=5, latent_dim=2, s=0.5, seed=1)
    x = m.sample(4, torch.Generator().manual_seed(1))
    return m, x


def test_vi_converges_to_true_posterior(lg):
    m, x = lg
    snap = fit_gaussian_q(m, x, steps=200, lr=0.2)
    post = m.posterior(x)
    assert torch.allclose(snap.mean, post.mean, atol=1e-3)
    assert torch.allclose(snap.q.covariance_matrix, post.covariance_matrix, atol=1e-3)
    gap = m.log_marginal(x) - snap.elbo
    assert (gap > -1e-9).all() and gap.max() < 1e-4  # approximation gap ~ 0


def test_vi_snapshots_are_frozen_and_ordered(lg):
    m, x = lg
    snaps = list(vi_steps(m, x[0], steps=50, every=10))
    assert [s.step for s in snaps] == [0, 10, 20, 30, 40, 50]
    assert snaps[0].mean.shape == (2,) and snaps[0].scale_tril.shape == (2, 2) and snaps[0].elbo.dim() == 0
    assert not snaps[-1].mean.requires_grad
    with pytest.raises(dataclasses.FrozenInstanceError):
        snaps[0].step = 3
    assert float(snaps[-1].elbo) > float(snaps[0].elbo)
    assert torch.equal(torch.triu(snaps[-1].scale_tril, 1), torch.zeros(2, 2, dtype=D64))


def test_vi_reparam_objective(lg):
    m, x = lg
    snap = fit_gaussian_q(m, x[:2], objective="reparam", n_samples=32, steps=200, lr=0.2, seed=0)
    post = m.posterior(x[:2])
    assert torch.allclose(snap.mean, post.mean, atol=0.05)
    assert torch.allclose(snap.q.stddev, post.stddev, rtol=0.15)


def test_vi_batch_equals_single(lg):
    m, x = lg
    both = fit_gaussian_q(m, x[:2], steps=40)
    one = fit_gaussian_q(m, x[1], steps=40)
    assert torch.allclose(both.mean[1], one.mean, atol=1e-8)


def test_vi_init_and_bad_objective(lg):
    m, x = lg
    post = m.posterior(x[:1])
    s0 = next(vi_steps(m, x[:1], init=post, steps=1))
    assert torch.allclose(s0.mean, post.mean)
    assert abs(float(s0.elbo[0] - m.log_marginal(x[:1])[0])) < 1e-8
    with pytest.raises(ModelInputError):
        next(vi_steps(m, x, objective="nope"))


def test_bimodal_posterior_leaves_an_approximation_gap():
    t = SquareDecoderToy1D(s=0.3)
    x = torch.tensor([[2.0]], dtype=D64)
    lpx = log_marginal(LatentGrid.build(t, 2048, box=torch.tensor([[-6.0, 6.0]])), x)
    snap = fit_gaussian_q(
        t, x, init=(torch.tensor([[1.0]], dtype=D64), torch.tensor([[[0.5]]], dtype=D64)), steps=200, lr=0.2
    )
    gap = float(lpx - snap.elbo)
    assert 0.5 < gap < 0.8  # ~ log 2: one mode of two
    assert float(snap.mean[0, 0]) == pytest.approx(2**0.5, abs=0.1)


def test_gap_decomposition_sums():
    g = gap_decomposition(torch.tensor([-100.0]), torch.tensor([-104.0]), torch.tensor([-101.5]))
    assert float(g.total) == 4.0 and float(g.amortization) == 2.5 and float(g.approximation) == 1.5
    assert torch.allclose(g.amortization + g.approximation, g.total)
