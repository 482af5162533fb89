"""lvm.inpainting.snis: self-normalised importance sampling over z converges to the exact completions (the latent
grid of lvm.inpainting.posterior on a 2-D model; the closed form of a 10-D linear-Gaussian model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvm.errors import ModelInputError
from lvm.inpainting import InpaintGrid
from lvm.inpainting.snis import snis_inpaint, snis_problem
from lvm.models.base import standard_normal_log_prob
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.models.vae import VAE


def small_vae(decoder: str = "bernoulli", latent_dim: int = 2) -> VAE:
    torch.manual_seed(3)
    return VAE(data_dim=16, latent_dim=latent_dim, hidden=(16,), decoder=decoder, image_shape=(4, 4)).eval()


def observed_half() -> tuple[np.ndarray, np.ndarray]:
    x = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1], np.float32)
    mask = np.r_[np.ones(8), np.zeros(8)].astype(np.float32)
    return x, mask


@pytest.mark.parametrize("proposal", ["prior", "encoder", "fitted"])
def test_snis_converges_to_the_exact_grid_completion(proposal):
    model = small_vae()
    x, mask = observed_half()
    exact = InpaintGrid.build(model, size=96).infer(x, mask, n_samples=0)
    errors = {}
    for n in (30, 30_000):
        errs, lps = [], []
        for seed in range(3):
            r = snis_inpaint(model, x, mask, n, proposal=proposal, generator=torch.Generator().manual_seed(seed))
            errs.append(float((r.predictive - exact.predictive).abs()[8:].max()))
            lps.append(r.log_p_obs)
            assert 1.0 <= r.ess <= n + 1e-6
        errors[n] = float(np.mean(errs))
    assert errors[30_000] < 0.01, errors
    assert errors[30_000] < errors[30] / 5, errors  # ~ 1/sqrt(S): 1000 times the draws, ~30 times smaller
    assert lps[-1] == pytest.approx(exact.log_p_obs, abs=0.02)


def test_snis_matches_the_linear_gaussian_closed_form_in_10_dimensions():
    """p(x_M | x_O) of p(x) = N(b, W W^T + s^2 I): z | x_O ~ N(m, C) from the observed rows, so x_M | x_O has mean
    W_M m + b_M and variances diag(W_M C W_M^T) + s^2; SNIS's error is within a few posterior sds / sqrt(ESS)."""
    g = torch.Generator().manual_seed(0)
    W, b, s = 0.3 * torch.randn(12, 10, generator=g, dtype=torch.float64), torch.zeros(12, dtype=torch.float64), 1.0
    model = LinearGaussianModel(W, b, s)
    x = model.sample(1, generator=g)[0]
    mask = torch.cat([torch.ones(7), torch.zeros(5)])
    observed = LinearGaussianModel(W[:7], b[:7], s)
    post = observed.posterior(x[None, :7])
    expected = W[7:] @ post.mean[0] + b[7:]
    sd = (torch.diagonal(W[7:] @ post.covariance_matrix[0] @ W[7:].T) + s**2).sqrt()
    r = snis_inpaint(model, x, mask, 20_000, n_samples=8, generator=torch.Generator().manual_seed(1))
    assert r.ess > 500
    assert ((r.predictive[7:].double() - expected).abs() < 5 * sd / r.ess**0.5).all()
    assert r.log_p_obs == pytest.approx(float(observed.log_marginal(x[None, :7])[0]), abs=4 * r.log_p_obs_se)
    assert 0 < r.log_p_obs_se < 0.05
    assert torch.equal(r.samples[:, :7], x[:7].expand(8, 7).to(r.samples.dtype))  # observed pixels kept
    assert r.sample_z.shape == (8, 10) and r.proposal == "prior"


def test_samples_keep_the_observed_pixels_and_are_seeded():
    model = small_vae(latent_dim=5)
    x, mask = observed_half()
    a = snis_inpaint(model, x, mask, 500, n_samples=6, proposal="encoder", generator=torch.Generator().manual_seed(2))
    b = snis_inpaint(model, x, mask, 500, n_samples=6, proposal="encoder", generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.samples, b.samples) and a.ess == b.ess
    assert torch.equal(a.samples[:, :8], torch.as_tensor(x[:8]).expand(6, 8))
    assert set(a.samples[:, 8:].unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(a.log_weights.exp().sum(), torch.tensor(1.0), atol=1e-5)
    gauss = snis_inpaint(small_vae("gaussian", 5), x, mask, 200, n_samples=3, generator=torch.Generator())
    assert gauss.samples.shape == (3, 16) and torch.isfinite(gauss.samples).all()


def test_models_snis_cannot_inpaint_are_refused_with_the_reason():
    class Generic:
        latent_dim = 3

        def log_prior(self, z):
            return standard_normal_log_prob(z)

        def log_likelihood(self, x, z):
            return -(x - z.sum(-1, keepdim=True)).pow(2).sum(-1)

    assert "pixel-factorised" in snis_problem(Generic())
    with pytest.raises(ModelInputError, match="pixel-factorised"):
        snis_inpaint(Generic(), np.zeros(16), np.ones(16))
    auto = VAE(data_dim=16, latent_dim=2, hidden=(8,), decoder="autoregressive", autoregressive_hidden=8)
    assert "autoregressive" in snis_problem(auto)
    lg = LinearGaussianModel.random(16, 3)
    x, mask = observed_half()
    with pytest.raises(ModelInputError, match="no encoder"):
        snis_inpaint(lg, x, mask, proposal="encoder")
    with pytest.raises(ModelInputError, match="shape"):
        snis_inpaint(lg, x[:5], mask[:5])
    with pytest.raises(ModelInputError, match="mask"):
        snis_inpaint(lg, x, np.full(16, 0.5))


def test_the_fitted_proposal_finds_the_posterior_the_encoder_misses():
    """The bundled 10-D VAE with the top half of a digit hidden: the encoder, shown 0.5 in the hidden half, proposes
    far from p(z | x_O); the Gaussian fitted to it gives a far higher ESS and log p(x_O) estimate (an estimate that is
    unbiased for p(x_O) under either proposal, so the higher one is the one that found the mass)."""
    from lvm.checkpoint import load_model
    from lvm.data import load_dataset
    from lvm.resources import pretrained_model_path

    path = pretrained_model_path("vae10d")
    if not path.exists():
        pytest.skip("the 10-D model is not bundled")
    model, _ = load_model(path)
    x = load_dataset("digits").split("test").x[12]
    mask = np.r_[np.zeros(392), np.ones(392)].astype(np.float32)
    runs = {
        p: snis_inpaint(model, x, mask, 2048, proposal=p, generator=torch.Generator().manual_seed(0))
        for p in ("encoder", "fitted")
    }
    assert runs["fitted"].ess > 5 * runs["encoder"].ess
    assert runs["fitted"].log_p_obs > runs["encoder"].log_p_obs + 20
