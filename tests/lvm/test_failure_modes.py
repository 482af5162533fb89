"""The maths behind the failure-mode presets (issue 16): the bimodal 1-D posterior's modes (closed form against the
quadrature grid), reverse KL's price for leaving a mode out, and the entropy of the exact inpainting predictive
(Monte Carlo against enumeration of every completion)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from lvm.inpainting import InpaintGrid, bernoulli_entropy
from lvm.inpainting.uncertainty import binary_entropy, predictive_entropy
from lvm.models.square_decoder import SquareDecoderToy1D
from lvm.posterior_grid import one_d_posterior


@pytest.mark.parametrize(("x", "s", "d"), [(9.0, 1.0, 1), (9.0, 3.0, 1), (2.0, 1.5, 1), (0.3, 1.0, 1), (4.0, 2.0, 3)])
def test_square_decoder_modes_closed_form_match_the_grid(x, s, d):
    model = SquareDecoderToy1D(s=s, data_dim=d)
    xs = torch.full((d,), x, dtype=torch.float64)
    post = one_d_posterior(model, xs, z_range=(-8.0, 8.0), n=16001)
    closed = model.posterior_modes(xs)
    grid = post.modes()
    assert len(grid) == len(closed)
    assert np.allclose(grid, closed, atol=2e-3)  # (the grid's cells are 1e-3 wide)


def test_modes_mass_and_the_reverse_kl_price_of_one_mode():
    """Two well-separated equal modes: each holds half the mass; a Gaussian on one mode (the best one by the grid's
    ELBO) has KL(q || p) = log 2 + KL(q || that mode alone), so just above log 2."""
    model = SquareDecoderToy1D(s=1.0)
    post = one_d_posterior(model, 9.0, z_range=(-12.0, 12.0), n=6001)
    lo, hi = post.modes()
    assert post.mass_between(-np.inf, 0.0) == pytest.approx(0.5, abs=1e-6)
    assert post.mass_between(-np.inf, np.inf) == pytest.approx(1.0, abs=1e-9)
    best = min((post.kl(mu, sg), mu, sg) for mu in np.linspace(2.7, 3.1, 41) for sg in np.linspace(0.1, 0.3, 41))
    kl, mu, _ = best
    assert abs(mu - hi) < 0.05
    assert math.log(2) - 1e-3 < kl < math.log(2) + 0.02
    # a broad q over both modes pays more than log 2 here (the modes are far apart and narrow)
    assert min(post.kl(0.0, sg) for sg in np.linspace(0.5, 5.0, 91)) > 1.0


@pytest.fixture(scope="module")
def small_grid():
    from lvm.models.vae import VAE

    torch.manual_seed(3)
    model = VAE(data_dim=7, latent_dim=2, hidden=(16,), decoder="bernoulli", image_shape=None).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)  # (decoder logits that vary across z: a multimodal predictive)
    return InpaintGrid.build(model, size=64)


def exact_entropy(grid: InpaintGrid, x: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
    """H[p(x_M | x_O)] and the marginals p(x_i = 1 | x_O) by enumerating all 2^|M| completions on the grid."""
    missing = np.flatnonzero(~mask)
    xs = []
    for bits in itertools.product((0.0, 1.0), repeat=len(missing)):
        c = x.copy()
        c[missing] = bits
        xs.append(c)
    xs_t = torch.tensor(np.array(xs), dtype=torch.float32)
    log_p = grid.log_marginal_full(xs_t).double()
    log_obs = grid.infer(x, mask, n_samples=0).log_p_obs
    log_cond = log_p - log_obs
    p = log_cond.exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-5)  # the completions' conditionals sum to one
    marg = (p[:, None] * xs_t.double()).sum(0).numpy()
    return float(-(p * log_cond).sum()), marg


def test_predictive_entropy_matches_enumeration(small_grid):
    x = np.array([1, 0, 1, 1, 0, 1, 0], np.float32)
    mask = np.array([True, True, False, False, False, False, True])
    joint, marg = exact_entropy(small_grid, x, mask)
    est = predictive_entropy(small_grid, x, mask, n_samples=20000, generator=torch.Generator().manual_seed(0))
    assert est.n_missing == 4 and est.n_samples == 20000
    assert abs(est.joint - joint) < 4 * est.stderr + 1e-3
    exact_marginal_sum = float(binary_entropy(torch.tensor(marg))[~torch.tensor(mask)].sum())
    assert est.marginal_sum == pytest.approx(exact_marginal_sum, abs=1e-4)
    assert est.marginal_sum >= joint - 1e-9  # subadditivity
    assert 0 < joint <= 4 * math.log(2) + 1e-9


def test_a_factorised_q_on_the_marginals_has_the_summed_marginal_entropy(small_grid):
    """H(q) of q = prod_i Bernoulli(p_i) is sum_i h(p_i): the closed form the lab shows for the mean-field q."""
    x = np.array([1, 0, 1, 1, 0, 1, 0], np.float32)
    mask = np.array([True, True, False, False, False, False, True])
    est = predictive_entropy(small_grid, x, mask, n_samples=16)
    pred = small_grid.infer(x, mask, n_samples=0).predictive
    h_q = float(bernoulli_entropy(pred, torch.tensor(~mask)))
    assert h_q == pytest.approx(est.marginal_sum, abs=1e-6)


def test_nothing_missing_has_no_uncertainty(small_grid):
    x = np.ones(7, np.float32)
    est = predictive_entropy(small_grid, x, np.ones(7, bool), n_samples=8)
    assert est.joint == 0 and est.marginal_sum == 0 and est.n_missing == 0


# -- the autoregressive decoder (posterior collapse) ------------------------------------------------------------------
def tiny_ar(seed: int = 0, dim: int = 6):
    from lvm.models.vae import VAE

    torch.manual_seed(seed)
    return (
        VAE(
            data_dim=dim, latent_dim=2, hidden=(5,), decoder="autoregressive", image_shape=None, autoregressive_hidden=7
        )
        .double()
        .eval()
    )


def all_images(dim: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=dim)), dtype=torch.float64)


def test_autoregressive_logits_see_only_the_pixels_before():
    model = tiny_ar()
    x = torch.rand(1, 6, dtype=torch.float64, requires_grad=True)
    z = torch.randn(1, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: model.autoregressive_logits(v, z)[0], x)[:, 0, :]
    upper = torch.triu(torch.ones(6, 6, dtype=torch.bool))  # d l_i / d x_j for j >= i
    assert torch.all(jac[upper] == 0) and torch.any(jac[~upper] != 0)


def test_autoregressive_likelihood_is_a_distribution_over_images():
    """sum over all 2^D images of p(x|z) = 1 for any z (each conditional is a Bernoulli of the pixels before)."""
    model = tiny_ar(1)
    xs = all_images(6)
    with torch.no_grad():
        for z in torch.randn(3, 2, dtype=torch.float64):
            lp = model.log_likelihood(xs, z.expand(len(xs), 2))
            assert float(torch.logsumexp(lp, 0)) == pytest.approx(0.0, abs=1e-10)


def test_sequential_sampling_matches_the_one_pass_conditionals_and_their_frequencies():
    model = tiny_ar(2)
    z = torch.randn(1, 2, dtype=torch.float64).expand(20000, 2)
    x, p = model.sample_autoregressive(z, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(model.autoregressive_logits(x, z)), p, atol=1e-12)
        # the empirical frequencies of the 64 images against p(x|z)
        codes = (x * (2 ** torch.arange(5, -1, -1, dtype=torch.float64))).sum(-1).long()
        freq = torch.bincount(codes, minlength=64).double() / len(codes)
        exact = model.log_likelihood(all_images(6), z[:1].expand(64, 2)).exp()
    assert torch.allclose(freq, exact, atol=0.015)
    xm, pm = model.sample_autoregressive(z[:3], mean_field=True)
    assert torch.allclose(xm, pm) and torch.allclose(model.decode_mean(z[:3]), pm)


def test_quadrature_of_a_decoder_that_ignores_z_is_its_likelihood():
    """With the z-path switched off, p(x|z) = p(x) for every z: the quadrature's log p(x) (the generic path, one
    pass per grid point) equals the decoder's log-likelihood (a closed form)."""
    from lvm.estimators import LatentGrid, log_marginal

    model = tiny_ar(3)
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
    xs = all_images(6)[::7]
    grid = LatentGrid.build(model, size=200, box=torch.tensor([[-7.0, 7.0], [-7.0, 7.0]], dtype=torch.float64))
    lp = log_marginal(grid, xs)
    with torch.no_grad():
        direct = model.log_likelihood(xs, torch.zeros(len(xs), 2, dtype=torch.float64))
    assert torch.allclose(lp.double(), direct, atol=1e-6)


def test_quadrature_and_importance_sampling_agree_for_the_autoregressive_decoder():
    from lvm.estimators import LatentGrid, importance, log_marginal

    model = tiny_ar(4)
    xs = all_images(6)[[5, 40]]
    grid = LatentGrid.build(model, size=200, box=torch.tensor([[-7.0, 7.0], [-7.0, 7.0]], dtype=torch.float64))
    exact = log_marginal(grid, xs).double()
    with torch.no_grad():
        est = importance(model, xs, model.encode(xs), 20000, seed=0)
    assert torch.allclose(est.value.double(), exact, atol=0.02)


def test_autoregressive_checkpoint_round_trip(tmp_path):
    from lvm.checkpoint import load_model, save_model

    model = tiny_ar(5).float()
    save_model(model, tmp_path / "ar.safetensors", {"note": "test"})
    again, _ = load_model(tmp_path / "ar.safetensors")
    assert again.config == model.config and again.config.autoregressive_hidden == 7
    x = all_images(6).float()
    z = torch.randn(len(x), 2)
    with torch.no_grad():
        assert torch.allclose(again.log_likelihood(x, z), model.log_likelihood(x, z))


def test_elbo_terms_split_the_elbo_and_training_reports_the_kl():
    from lvm.models.vae import VAEConfig
    from lvm.training import TrainConfig, new_vae, train_vae

    model = new_vae(VAEConfig(data_dim=6, latent_dim=2, hidden=(4,), decoder="autoregressive", image_shape=None), 0)
    x = all_images(6).float()
    rec, kl = model.elbo_terms(x, torch.Generator().manual_seed(0))
    assert torch.allclose(rec - kl, model.elbo(x, torch.Generator().manual_seed(0)))
    mu, log_sigma = model.encoder_params(x)
    closed = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, log_sigma.exp()), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    assert torch.allclose(kl, closed, atol=1e-5)
    snaps = list(train_vae(model, x.repeat(8, 1), None, TrainConfig(epochs=2, batch_size=32, report_every=1)))
    assert all(s.train_kl is not None and s.train_kl >= 0 for s in snaps)
