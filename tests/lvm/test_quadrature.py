"""Exact quadrature of log p(x) for 1-D/2-D latents, against closed forms (linear-Gaussian) and IWAE (VAE)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal

from lvm.errors import ModelInputError
from lvm.estimators import (
    LatentGrid,
    choose_box,
    elbo_gauss_hermite,
    elbo_quadrature,
    gauss_hermite_nodes,
    importance,
    kl_q_posterior,
    local_box,
    log_marginal,
    log_marginal_adaptive,
    posterior_moments,
    posterior_on_grid,
    refinement_report,
)
from lvm.models.linear_gaussian import LinearGaussianModel
from lvm.models.square_decoder import SquareDecoderToy1D

D64 = torch.float64


@pytest.fixture(scope="module")
def lg2():
    m = LinearGaussianModel.random(data_dim=6, latent_dim=2, s=0.6, seed=3)
    x = m.sample(8, torch.Generator().manual_seed(4))
    return m, x, LatentGrid.build(m, 256)


@pytest.fixture(scope="module")
def lg1():
    m = LinearGaussianModel.random(data_dim=4, latent_dim=1, s=0.5, seed=5)
    x = m.sample(8, torch.Generator().manual_seed(6))
    return m, x, LatentGrid.build(m, 2048)


def closed_form_elbo(m: LinearGaussianModel, x, mean, cov):
    """E_q[log N(x; Wz+b, s^2 I)] - KL(N(mean, cov) || N(0, I)), all closed form."""
    r = x - mean @ m.W.T - m.b
    tr = torch.einsum("di,bij,dj->b", m.W, cov, m.W)
    ell = -0.5 / m.s**2 * (r.pow(2).sum(-1) + tr) - 0.5 * m.data_dim * math.log(2 * math.pi * m.s**2)
    dz = mean.shape[-1]
    kl = 0.5 * (torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) + mean.pow(2).sum(-1) - dz - torch.logdet(cov))
    return ell - kl


def test_log_marginal_matches_closed_form_2d(lg2):
    m, x, grid = lg2
    assert grid.points.shape == (256 * 256, 2)
    assert torch.allclose(log_marginal(grid, x), m.log_marginal(x), atol=1e-4)


def test_log_marginal_matches_closed_form_1d(lg1):
    m, x, grid = lg1
    assert torch.allclose(log_marginal(grid, x), m.log_marginal(x), atol=1e-4)
    ad = log_marginal_adaptive(m, x, size=2048, block=16, tile=2)
    assert torch.allclose(ad.log_px, m.log_marginal(x), atol=1e-4)


def test_adaptive_equals_dense_and_does_less_work(lg2):
    m, x, grid = lg2
    ad = log_marginal_adaptive(m, x, size=256, block=8, box=grid.box)
    assert torch.allclose(ad.log_px, log_marginal(grid, x), atol=1e-6)
    assert ad.fraction < 0.7 and ad.points_per_x >= 1


def test_streaming_grid_equals_stored(lg2):
    m, x, grid = lg2
    streamed = LatentGrid.build(m, 256, store=False, chunk=5000)
    assert not streamed.tables
    assert torch.allclose(log_marginal(streamed, x), log_marginal(grid, x), atol=1e-9)


def test_generic_path_equals_fast_path(lg2):
    m, x, grid = lg2

    class Generic:  # only the bare protocol
        latent_dim = 2
        log_prior = staticmethod(m.log_prior)
        log_likelihood = staticmethod(m.log_likelihood)

    g = LatentGrid.build(Generic(), 64, box=grid.box)
    assert g.kind == "generic"
    assert torch.allclose(log_marginal(g, x), log_marginal(LatentGrid.build(m, 64, box=grid.box), x), atol=1e-9)


def test_masked_marginal_is_marginal_of_observed_dims(lg2):
    m, x, grid = lg2
    mask = torch.tensor([1, 0, 1, 1, 0, 1], dtype=D64)
    obs = mask.bool()
    sub = LinearGaussianModel(m.W[obs], m.b[obs], m.s)
    assert torch.allclose(log_marginal(grid, x, mask=mask), sub.log_marginal(x[:, obs]), atol=1e-4)


def test_posterior_on_grid_normalised_with_right_moments(lg2):
    m, x, grid = lg2
    lp = posterior_on_grid(grid, x[:3])
    assert lp.shape == (3, 256 * 256)
    p = lp.exp()
    assert torch.allclose(p.sum(-1), torch.ones(3, dtype=D64), atol=1e-10)
    mean, cov = posterior_moments(grid, x[:3])
    assert torch.allclose(mean, m.posterior(x[:3]).mean, atol=1e-4)
    assert torch.allclose(cov, m.posterior(x[:3]).covariance_matrix, atol=1e-4)
    assert grid.reshape(lp).shape == (3, 256, 256)
    box = local_box(grid, x[:1])
    fine = LatentGrid.build(m, 64, box=box)  # the fine local picture of one x's posterior
    assert float(posterior_on_grid(fine, x[:1]).exp().sum()) == pytest.approx(1.0)
    assert torch.allclose(log_marginal(fine, x[:1]), m.log_marginal(x[:1]), atol=1e-4)


q_params = st.tuples(
    st.floats(-1.0, 1.0),
    st.floats(-1.0, 1.0),  # mean
    st.floats(0.15, 0.8),
    st.floats(0.15, 0.8),  # diagonal of L
    st.floats(-0.4, 0.4),  # off-diagonal of L
)


@pytest.fixture(scope="module")
def wide_grid(lg2):
    # q's bulk must lie well inside the box: the integrand log p(x, z) - log q(z) grows quadratically
    return LatentGrid.build(lg2[0], 160, box=torch.tensor([[-9.0, 9.0], [-9.0, 9.0]]))


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(params=q_params)
def test_elbo_plus_kl_is_log_px(lg2, wide_grid, params):
    m, x, _ = lg2
    grid = wide_grid
    m1, m2, d1, d2, o = params
    x = x[:2]
    mean = torch.tensor([[m1, m2]], dtype=D64).expand(2, 2)
    L = torch.tensor([[d1, 0.0], [o, d2]], dtype=D64).expand(2, 2, 2)
    q = MultivariateNormal(mean, scale_tril=L)
    lpx = m.log_marginal(x)
    el_q = elbo_quadrature(grid, x, q)
    kl_q = kl_q_posterior(grid, x, q)
    el_cf = closed_form_elbo(m, x, mean, L @ L.transpose(-1, -2))
    assert torch.allclose(el_q, el_cf, atol=1e-4)
    assert torch.allclose(el_q + kl_q, lpx, atol=1e-4)
    assert torch.allclose(kl_q, lpx - el_cf, atol=1e-4)  # KL by quadrature vs log p(x) - closed-form ELBO
    assert (kl_q > -1e-6).all()
    gh = elbo_gauss_hermite(m, x, mean, L, n=8)
    assert torch.allclose(gh, el_cf, atol=1e-8)


def test_kl_zero_at_true_posterior(lg2):
    m, x, grid = lg2
    post = m.posterior(x[:3])
    assert kl_q_posterior(grid, x[:3], post).abs().max() < 1e-4


def test_gauss_hermite_unbatched_and_parts(lg2):
    m, x, _ = lg2
    post = m.posterior(x[:1])
    parts = elbo_gauss_hermite(m, x[0], post.mean[0], post.scale_tril[0], return_parts=True)
    assert parts["elbo"].dim() == 0
    assert abs(float(parts["elbo"]) - float(m.log_marginal(x[:1]))) < 1e-8  # ELBO(p(z|x)) = log p(x)
    u, w = gauss_hermite_nodes(5, 2)
    assert u.shape == (25, 2) and abs(float(w.sum()) - 1.0) < 1e-12
    assert torch.allclose((w[:, None] * u.pow(2)).sum(0), torch.ones(2, dtype=D64))


def test_refinement_report_small_change(lg2):
    m, x, _ = lg2
    rep = refinement_report(m, x, sizes=(64, 128, 256))
    assert rep.sizes == (64, 128, 256) and len(rep.log_px) == 3
    assert rep.max_change < 1e-6
    dense = refinement_report(m, x[:2], sizes=(64, 128), method="dense")
    assert dense.max_change < 1e-6


def test_bimodal_toy_posterior_two_modes():
    t = SquareDecoderToy1D(s=0.3)
    x = torch.tensor([[2.0]], dtype=D64)
    grid = LatentGrid.build(t, 1024, box=torch.tensor([[-5.0, 5.0]]))
    p = posterior_on_grid(grid, x)[0].exp()
    z = grid.points[:, 0]
    assert abs(float(p[z < 0].sum()) - 0.5) < 1e-9  # symmetric
    assert float(z[p.argmax()].abs()) == pytest.approx(math.sqrt(2.0), abs=0.1)
    assert float(p[z.abs() < 0.3].sum()) < 1e-3  # hardly any mass between the modes
    est = importance(
        t, x, Independent(Normal(torch.zeros(1, 1, dtype=D64), torch.ones(1, 1, dtype=D64)), 1), 200_000, seed=0
    )
    assert abs(float(est.value - log_marginal(grid, x))) < 4 * float(est.stderr) + 1e-3


def test_box_covers_prior_and_encoder(tiny_vae):
    box = choose_box(tiny_vae)
    assert torch.equal(box, torch.tensor([[-4.0, 4.0], [-4.0, 4.0]], dtype=D64))
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        q = tiny_vae.encode(x)
    box = choose_box(tiny_vae, x)
    assert (box[:, 0] <= -4).all() and (box[:, 1] >= 4).all()
    assert (box[:, 0] <= (q.mean - 6 * q.stddev).min(0).values.double()).all()


def test_latent_dim_3_is_a_user_error():
    m = LinearGaussianModel.random(data_dim=5, latent_dim=3)
    with pytest.raises(ModelInputError, match="1-D or 2-D"):
        LatentGrid.build(m, 16)


def _sharpened_vae(tiny_vae, factor=6.0):
    """The random tiny VAE with a sharper decoder, so posteriors are narrow and some are multimodal."""
    with torch.no_grad():
        tiny_vae.decoder[-1].weight.mul_(factor)
        tiny_vae.decoder[-1].bias.mul_(factor)
    return tiny_vae


def test_vae_bernoulli_table_equals_likelihood(tiny_vae):
    vae = _sharpened_vae(tiny_vae)
    grid = LatentGrid.build(vae, 32)
    assert grid.kind == "bernoulli"
    _, x = vae.sample(5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        direct = vae.log_likelihood(x, grid.points.unsqueeze(1).expand(-1, 5, -1)).T + grid.log_prior
    assert torch.allclose(grid.log_joint(x), direct, rtol=1e-5, atol=2e-3)
    mask = torch.zeros(784)
    mask[:392] = 1
    with torch.no_grad():
        lp = torch.nn.functional.logsigmoid
        logits = vae.bernoulli_logits(grid.points)
        ref = (mask * (x[:, None] * lp(logits) + (1 - x[:, None]) * lp(-logits))).sum(-1) + grid.log_prior
    assert torch.allclose(grid.log_joint(x, mask=mask), ref, rtol=1e-5, atol=2e-3)


def test_vae_quadrature_vs_iwae(tiny_vae):
    vae = _sharpened_vae(tiny_vae)
    _, x = vae.sample(40, torch.Generator().manual_seed(2))
    box = choose_box(vae, x)
    grid = LatentGrid.build(vae, 256, box=box)
    quad = log_marginal_adaptive(vae, x, size=256, box=box).log_px
    assert (quad - log_marginal(grid, x)).abs().max() < 1e-3  # coarse-to-fine lost nothing
    fine = log_marginal_adaptive(vae, x, size=512, block=16, box=box).log_px
    assert (fine - quad).abs().max() < 0.01  # refinement change
    with torch.no_grad():
        q_enc = vae.encode(x)
    iw = importance(vae, x, q_enc, 1000, seed=0)
    # IWAE is a stochastic lower bound: never above the exact value beyond noise
    assert (iw.value <= quad + 4 * iw.stderr + 1e-3).all()
    # with a good unimodal proposal (moment-matched to the grid posterior) they agree
    mu, cov = posterior_moments(grid, x)
    q = MultivariateNormal(mu, covariance_matrix=cov * 1.44 + 1e-6 * torch.eye(2))
    iw = importance(vae, x, q, 1000, seed=1)
    good = iw.ess > 0.5 * 1000  # unimodal, well-covered posteriors
    assert good.sum() >= 10
    assert ((iw.value - quad).abs()[good] < 4 * iw.stderr[good] + 2e-3).all()
    assert (iw.value <= quad + 4 * iw.stderr + 1e-3).all()


@pytest.mark.mnist
def test_the_shipped_model_on_binarized_mnist(shared_data, pretrained_model_path):
    """The bundled VAE on 200 of the standard binarized-MNIST test images (every 50th): its exact NLL (coarse-to-fine
    quadrature, 512^2) is consistent with the README's 125.82 on all 10,000 (the subset's mean within 6 nats), the
    ELBO lies below it, and IWAE-500 never above it beyond noise."""
    from lvm.checkpoint import load_model
    from lvm.data import load_dataset
    from lvm.estimators import importance, log_marginal_adaptive

    model, info = load_model(pretrained_model_path)
    x = torch.as_tensor(
        load_dataset(str(shared_data / "binarized_mnist" / "binarized_mnist.npz")).split("test").x[::50],
        dtype=torch.float32,
    )
    assert x.shape == (200, 784)
    with torch.no_grad():
        exact = log_marginal_adaptive(model, x, size=512).log_px.double()
        iw = importance(model, x, model.encode(x), 500, seed=0)
        elbo = model.elbo(x, generator=torch.Generator().manual_seed(0)).double()
    nll = -float(exact.mean())
    assert 122.0 < nll < 134.0, nll
    assert float(elbo.mean()) < float(exact.mean())
    assert (iw.value.double() <= exact + 4 * iw.stderr.double() + 0.05).all()
