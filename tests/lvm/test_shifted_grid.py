"""The shifted-grid estimate of log p(x) (``lvm.estimators.shifted_grid``): unbiased for p(x) over the shift, a lower
bound on log p(x) in expectation, exact in the limit of fine grids, and differentiable in the decoder only."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm.errors import ModelInputError
from lvm.estimators.shifted_grid import shifted_grid, shifted_grid_log_marginal
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.models.vae import VAE


@given(n=st.integers(1, 9), limit=st.floats(0.5, 6.0), dim=st.sampled_from([1, 2]), seed=st.integers(0, 1000))
@settings(max_examples=30, deadline=None)
def test_one_point_in_every_cell(n, limit, dim, seed):
    z, log_volume = shifted_grid(dim, n, limit, torch.Generator().manual_seed(seed), dtype=torch.float64)
    h = 2 * limit / n
    assert z.shape == (n**dim, dim) and log_volume == pytest.approx(dim * math.log(h))
    cells = torch.floor((z + limit) / h)
    assert torch.unique(cells, dim=0).shape[0] == n**dim  # (each cell once)
    offsets = z + limit - cells * h  # the one shift, the same in every cell
    assert torch.allclose(offsets, offsets[:1].expand_as(offsets), atol=1e-9)


def test_unbiased_for_p_and_a_lower_bound_for_log_p():
    """Linear-Gaussian, closed form: over many shifts the mean of p_hat is p(x) (within its standard error) and the
    mean of log p_hat is below log p(x); a coarse grid (cells wider than the posterior) makes both visible."""
    model = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.3, seed=1)
    x = model.sample(3, torch.Generator().manual_seed(2))
    exact = model.log_marginal(x)
    g = torch.Generator().manual_seed(3)
    logs = torch.stack([shifted_grid_log_marginal(model, x, n=12, limit=7.0, generator=g) for _ in range(4000)])
    ratio = (logs - exact).exp()  # p_hat / p(x)
    mean, se = ratio.mean(0), ratio.std(0) / math.sqrt(len(ratio))
    assert (ratio.std(0) > 0.05).all()  # (coarse: the shift matters)
    assert ((mean - 1).abs() < 4 * se).all(), (mean, se)
    assert (logs.mean(0) < exact).all()


def test_a_fine_grid_is_exact():
    model = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.3, seed=1)
    x = model.sample(5, torch.Generator().manual_seed(2))
    est = shifted_grid_log_marginal(model, x, n=160, limit=7.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(est, model.log_marginal(x), atol=1e-6)


def test_bernoulli_fast_path_equals_the_model_likelihood():
    torch.manual_seed(0)
    vae = VAE(latent_dim=2, data_dim=20, hidden=(16,), image_shape=None).double()
    x = (torch.rand(4, 20, dtype=torch.float64) < 0.5).double()

    class Generic:  # the same model without the fast path
        latent_dim = 2

        def log_prior(self, z):
            return vae.log_prior(z)

        def log_likelihood(self, x, z):
            return vae.log_likelihood(x, z)

    fast = shifted_grid_log_marginal(vae, x, n=16, generator=torch.Generator().manual_seed(5))
    slow = shifted_grid_log_marginal(Generic(), x, n=16, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(fast, slow, atol=1e-9)


def test_gradients_reach_the_decoder_only():
    torch.manual_seed(0)
    vae = VAE(latent_dim=2, data_dim=20, hidden=(16,), image_shape=None)
    x = (torch.rand(4, 20) < 0.5).float()
    shifted_grid_log_marginal(vae, x, n=8).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.decoder.parameters())
    assert all(p.grad is None for p in vae.encoder.parameters())


def test_errors_say_what_to_change():
    model = LinearGaussianModel.random(data_dim=4, latent_dim=3)
    with pytest.raises(ModelInputError, match="1-D or 2-D latent"):
        shifted_grid_log_marginal(model, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ModelInputError, match="float tensor"):
        shifted_grid_log_marginal(LinearGaussianModel.random(data_dim=4), torch.zeros(4))
    with pytest.raises(ModelInputError, match="n >= 1"):
        shifted_grid(2, 0, 4.0)
