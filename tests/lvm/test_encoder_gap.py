"""lvm.estimators.encoder_gap: the encoder's ELBO and the exact log p(x) over many x, against the closed forms of a
linear-Gaussian model whose 'encoder' is the diagonal of the exact posterior (the gap: a closed-form KL)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from lvm.estimators.encoder_gap import encoder_gap_steps
from lvm.models.linear_gaussian import LinearGaussianModel


class DiagonalEncoderLG(LinearGaussianModel):
    def encode(self, x):
        post = self.posterior(x)
        return Independent(Normal(post.mean, torch.diagonal(post.covariance_matrix, dim1=-2, dim2=-1).sqrt()), 1)


def test_gap_is_the_kl_of_the_diagonal_encoder():
    base = LinearGaussianModel.random(data_dim=5, latent_dim=2, s=0.4, seed=11)
    m = DiagonalEncoderLG(base.W, base.b, base.s)
    data = m.sample(30, torch.Generator().manual_seed(12)).numpy()
    idx = np.array([3, 7, 8, 20, 29])
    snaps = list(encoder_gap_steps(m, data, idx, box=[[-5, 5], [-5, 5]], chunk=2, gh_nodes=8))
    assert [s.done for s in snaps] == [2, 4, 5]
    assert np.isnan(snaps[0].elbo[2:]).all() and snaps[0].gap.shape == (2,)
    last = snaps[-1]
    xs = torch.as_tensor(data[idx])
    np.testing.assert_allclose(last.log_px, m.log_marginal(xs).numpy(), atol=1e-4)
    post = m.posterior(xs)
    exact = MultivariateNormal(post.mean, post.covariance_matrix)
    q = m.encode(xs)
    kl = kl_divergence(MultivariateNormal(q.mean, scale_tril=torch.diag_embed(q.stddev)), exact).numpy()
    np.testing.assert_allclose(last.gap, kl, atol=1e-4)  # ELBO by Gauss-Hermite is exact here (quadratic log p(x|z))
    assert (last.gap > 0).all() and last.gap.max() > 1e-3
    np.testing.assert_array_equal(last.indices, idx)
    assert last.elbo[0] == pytest.approx(last.log_px[0] - kl[0], abs=1e-4)
