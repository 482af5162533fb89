"""Binary latents: the exact sum over {0,1}^K against brute force and closed forms, the estimators' known biases,
training (exact and VIMCO) and checkpoints."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm.errors import CheckpointError, ModelInputError
from lvm.estimators.discrete import (
    HIST_BINS,
    build_table,
    configurations,
    convergence_steps,
    elbo_bernoulli,
    enumerate_exact,
    enumerate_steps,
    exact_log_marginal,
    histogram_edges,
    importance_bernoulli,
    naive_uniform,
    one_hot_log_marginal,
    reference_log_marginal,
    x_independent_terms,
)
from lvm.models.binary_latent import (
    BinaryLatentModel,
    load_binary_latent,
    marginals_as_logits,
    save_binary_latent,
)
from lvm.training_discrete import choose_objective, exact_loss, train_steps, vimco_loss


def random_model(K, D=40, hidden=(), seed=0, scale=1.0, encoder_hidden=()):
    torch.manual_seed(seed)
    m = BinaryLatentModel(latent_dim=K, data_dim=D, decoder_hidden=hidden, encoder_hidden=encoder_hidden)
    with torch.no_grad():
        m.prior_logits.normal_()
        for p in m.decoder.parameters():
            p.mul_(scale)
    return m.eval()


def brute_force_log_joint(m, x):
    """log p(x, z) (2^K, B) in float64 with z from itertools.product, in the order of ``configurations``."""
    K = m.latent_dim
    z = torch.tensor([list(reversed(c)) for c in itertools.product([0, 1], repeat=K)], dtype=torch.float64)
    md = BinaryLatentModel(m.config).double()
    md.load_state_dict(m.state_dict())
    with torch.no_grad():
        logits = md.decoder(z)
        lp = z @ md.prior_logits - F.softplus(md.prior_logits).sum()
        ll = x.double() @ logits.T - F.softplus(logits).sum(-1)
    return (ll + lp).T, z


def binary_x(B, D, seed=1, p=0.3):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, D, generator=g) < p).float()


def test_configurations_order_matches_bits():
    z = configurations(3)
    assert z.tolist()[5] == [1, 0, 1]  # 5 = 0b101: z_0 = 1, z_1 = 0, z_2 = 1
    assert z.shape == (8, 3) and len({tuple(r) for r in z.tolist()}) == 8


@pytest.mark.parametrize("K", [1, 3, 10, 11, 13])
@pytest.mark.parametrize("hidden", [(), (8,)])
@pytest.mark.parametrize("chunk", [None, 64, 1024])
def test_enumeration_matches_brute_force(K, hidden, chunk):
    m = random_model(K, hidden=hidden, scale=2.0)
    x = binary_x(4, 40)
    lj, z = brute_force_log_joint(m, x)
    want = torch.logsumexp(lj, 0)
    got = enumerate_exact(m, x, marginals=True, top=5, histogram=True, chunk=chunk)
    assert torch.allclose(got.log_px.double(), want, atol=2e-4)
    assert torch.allclose(exact_log_marginal(m, x, chunk=chunk).double(), want, atol=2e-4)  # the fast lse-only path
    post = torch.softmax(lj, 0)
    assert torch.allclose(got.marginals.double(), post.T @ z, atol=1e-4)
    top = torch.topk(lj, min(5, 2**K), dim=0)
    assert torch.allclose(got.top_log_joint.double(), top.values.T, atol=2e-4)
    assert (got.top_index[:, 0] == top.indices[0]).all()
    bins = (-lj).floor().clamp(0, HIST_BINS - 1).long()
    for b in range(x.shape[0]):
        assert torch.equal(got.hist[b], torch.bincount(bins[:, b], minlength=HIST_BINS))
        mass = torch.zeros(HIST_BINS, dtype=torch.float64).scatter_add_(0, bins[:, b], post[:, b])
        assert torch.allclose(got.hist_mass[b].double(), mass, atol=1e-5)


def test_table_and_reference_agree_with_streaming():
    m = random_model(14, D=60, scale=1.5)
    x = binary_x(6, 60)
    table = build_table(m)
    assert torch.allclose(table.a, x_independent_terms(m, 0, 2**14))
    a = exact_log_marginal(m, x)
    assert torch.allclose(exact_log_marginal(m, x, table=table), a, atol=1e-4)
    assert torch.allclose(reference_log_marginal(m, x), a, atol=1e-4)


def test_large_logits_take_the_softplus_path_and_the_underflow_fallback():
    m = random_model(12, D=50, scale=40.0)  # |logits| > 80: no exp-product; row sums underflow float64
    x = binary_x(3, 50)
    lj, _ = brute_force_log_joint(m, x)
    assert torch.allclose(exact_log_marginal(m, x).double(), torch.logsumexp(lj, 0), rtol=1e-6, atol=1e-3)


def test_k1_closed_form():
    m = random_model(1, D=30)
    x = binary_x(5, 30)
    W, b, a = m.weight[:, 0].detach(), m.bias.detach(), m.prior_logits.detach()[0]

    def log_lik(logits):
        return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(-1)

    want = torch.logaddexp(F.logsigmoid(-a) + log_lik(b), F.logsigmoid(a) + log_lik(b + W))
    assert torch.allclose(exact_log_marginal(m, x), want, atol=1e-4)


def test_decoder_independent_of_z_gives_the_factorised_likelihood():
    m = random_model(15, D=30)
    with torch.no_grad():
        m.decoder[0].weight.zero_()
    x = binary_x(5, 30)
    b = m.bias.detach()
    want = (x * F.logsigmoid(b) + (1 - x) * F.logsigmoid(-b)).sum(-1)  # sum_z p(z) = 1
    assert torch.allclose(exact_log_marginal(m, x), want, atol=1e-4)
    r = enumerate_exact(m, x, marginals=True)
    assert torch.allclose(r.marginals, torch.sigmoid(m.prior_logits.detach()).expand(5, 15), atol=1e-5)


def test_exact_elbo_and_kl_identity():
    m = random_model(8, D=30, scale=2.0)
    x = binary_x(3, 30)
    q_logits = torch.randn(3, 8)
    lj, z = brute_force_log_joint(m, x)
    log_q = z @ F.logsigmoid(q_logits.double()).T + (1 - z) @ F.logsigmoid(-q_logits.double()).T  # (2^K, B)
    log_px = torch.logsumexp(lj, 0)
    kl = (log_q.exp() * (log_q - (lj - log_px))).sum(0)  # KL(q || p(z|x)) by brute force
    r = enumerate_exact(m, x, q_logits=q_logits)
    assert torch.allclose(r.elbo.double() + kl, log_px, atol=1e-3)  # ELBO + KL = log p(x)
    assert torch.allclose(r.kl.double(), kl, atol=1e-3)
    assert (r.elbo <= r.log_px + 1e-5).all() and (kl >= 0).all()


def _ratio_stats(log_phat, log_px):
    ratio = torch.exp(log_phat.double() - log_px)
    return float(ratio.mean()), float(ratio.std() / math.sqrt(len(ratio)))


def test_naive_uniform_mc_is_unbiased_in_p():
    m = random_model(4, D=8, seed=3)
    x = binary_x(1, 8)
    log_px = exact_log_marginal(m, x).double()
    est = naive_uniform(m, x.expand(4000, 8), k=3, generator=torch.Generator().manual_seed(0))
    mean, se = _ratio_stats(est.value, log_px)
    assert abs(mean - 1.0) < 4 * se + 1e-9, (mean, se)  # E[p_hat] / p(x) = 1 within 4 standard errors
    assert se < 0.05


def test_importance_sampling_is_unbiased_in_p_and_exact_with_the_posterior():
    m = random_model(4, D=8, seed=4)
    x = binary_x(1, 8, seed=2)
    log_px = exact_log_marginal(m, x).double()
    q = torch.randn(1, 4).expand(4000, 4)
    est = importance_bernoulli(m, x.expand(4000, 8), q, k=2, generator=torch.Generator().manual_seed(1))
    mean, se = _ratio_stats(est.value, log_px)
    assert abs(mean - 1.0) < 4 * se, (mean, se)
    assert est.value.double().mean() < log_px  # Jensen: E[log p_hat] < log p(x)
    # with K = 1 a mean-field q can equal the posterior: every weight is p(x)
    m1 = random_model(1, D=8, seed=5)
    r = enumerate_exact(m1, x, marginals=True)
    e = importance_bernoulli(m1, x, marginals_as_logits(r.marginals), k=50, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(e.value, r.log_px, atol=1e-4) and float(e.ess) == pytest.approx(50, rel=1e-4)


def test_elbo_estimate_is_unbiased_for_the_exact_elbo_and_below_log_p():
    m = random_model(6, D=20, seed=6, scale=1.5)
    x = binary_x(1, 20, seed=3)
    q = torch.randn(1, 6)
    r = enumerate_exact(m, x, q_logits=q)
    est = elbo_bernoulli(m, x, q, k=20000, generator=torch.Generator().manual_seed(3))
    assert abs(float(est.value - r.elbo)) < 4 * float(est.stderr)
    assert float(r.elbo) <= float(r.log_px)


def _exact_iwae(m, x, q_logits, k):
    """L_k = E[log (1/k) sum_i w_i] exactly, by enumerating all (2^K)^k tuples of samples."""
    lj, z = brute_force_log_joint(m, x)
    log_q = z @ F.logsigmoid(q_logits.double()) + (1 - z) @ F.logsigmoid(-q_logits.double())
    lw = lj[:, 0] - log_q
    total = 0.0
    for tup in itertools.product(range(z.shape[0]), repeat=k):
        idx = list(tup)
        total += float(torch.exp(log_q[idx].sum()) * (torch.logsumexp(lw[idx], 0) - math.log(k)))
    return total


def test_iwae_is_non_decreasing_in_k_in_expectation():
    m = random_model(2, D=10, seed=7, scale=2.0)
    x = binary_x(1, 10, seed=4)
    q = torch.tensor([1.5, -1.0])
    log_px = float(exact_log_marginal(m, x))
    bounds = [_exact_iwae(m, x, q, k) for k in (1, 2, 3, 4)]
    assert all(b2 >= b1 - 1e-9 for b1, b2 in itertools.pairwise(bounds)), bounds
    assert bounds[-1] <= log_px + 1e-6 and bounds[0] < bounds[-1]
    assert bounds[0] == pytest.approx(float(enumerate_exact(m, x, q_logits=q).elbo), abs=1e-4)  # L_1 = ELBO
    # the sampled estimate agrees with the exact L_k
    est = importance_bernoulli(
        m, x.expand(20000, 10), q.expand(20000, 2), k=3, generator=torch.Generator().manual_seed(5)
    )
    assert abs(float(est.value.double().mean()) - bounds[2]) < 4 * float(est.value.double().std()) / math.sqrt(20000)


@settings(max_examples=25, deadline=None)
@given(
    K=st.integers(1, 7),
    D=st.integers(1, 12),
    hidden=st.sampled_from([(), (5,)]),
    scale=st.floats(0.1, 6.0),
    seed=st.integers(0, 10**6),
)
def test_hypothesis_random_small_models(K, D, hidden, scale, seed):
    m = random_model(K, D=D, hidden=hidden, seed=seed, scale=scale)
    x = binary_x(3, D, seed=seed + 1, p=0.5)
    lj, _z = brute_force_log_joint(m, x)
    log_px = torch.logsumexp(lj, 0)
    q = torch.randn(3, K, generator=torch.Generator().manual_seed(seed))
    r = enumerate_exact(m, x, marginals=True, q_logits=q)
    assert torch.allclose(r.log_px.double(), log_px, atol=1e-3, rtol=1e-6)
    assert torch.allclose(exact_log_marginal(m, x).double(), log_px, atol=1e-3, rtol=1e-6)
    assert (r.elbo <= r.log_px + 1e-4).all() and (r.kl >= -1e-4).all()
    assert ((r.marginals >= -1e-6) & (r.marginals <= 1 + 1e-6)).all()


def test_enumeration_progress_and_stop():
    m = random_model(14, D=20)
    x = binary_x(2, 20)
    snaps = list(enumerate_steps(m, x, chunk=1024, report_every_s=0.0))
    assert len(snaps) == 16 and snaps[-1].result is not None
    partial = torch.stack([s.log_px_partial for s in snaps])
    assert (partial[1:] >= partial[:-1] - 1e-5).all()  # the partial sums rise to log p(x)
    calls = []
    stopped = list(
        enumerate_steps(m, x, chunk=1024, report_every_s=0.0, should_stop=lambda: calls.append(1) or len(calls) > 3)
    )
    assert len(stopped) == 3 and all(s.result is None for s in stopped)


def test_histogram_rebinning_keeps_every_configuration():
    m = random_model(10, D=30, scale=3.0)
    r = enumerate_exact(m, binary_x(1, 30), histogram=True)
    edges, counts, mass = histogram_edges(r.hist[0], 40, r.hist_mass[0])
    assert counts.sum() == 2**10 and len(edges) == len(counts) + 1 and (np.diff(edges) > 0).all()
    assert mass.sum() == pytest.approx(1.0, abs=1e-5) and len(mass) == len(counts)


def test_bad_input_is_a_clear_error():
    m = random_model(3, D=10)
    with pytest.raises(ModelInputError, match="shape"):
        exact_log_marginal(m, torch.zeros(2, 11))
    with pytest.raises(ModelInputError, match="NaN"):
        exact_log_marginal(m, torch.full((1, 10), float("nan")))
    with pytest.raises(ModelInputError, match="latent_dim"):
        BinaryLatentModel(latent_dim=31)
    with pytest.raises(ModelInputError, match="k must be"):
        naive_uniform(m, torch.zeros(1, 10), k=0)


def test_one_hot_sum_is_the_gaussian_mixture():
    from lvm.models import GaussianMixture

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 0.5, (100, 2)), rng.normal(2, 1.0, (150, 2))])
    gmm = GaussianMixture(3, random_state=0).fit(X)
    log_terms = torch.as_tensor(gmm.log_component_densities(X), dtype=torch.float64)
    log_w = torch.log(torch.as_tensor(gmm.weights_, dtype=torch.float64))
    # an unnormalised prior over one-hot z: any common shift of the logits gives the same mixture
    got = one_hot_log_marginal(log_w + 3.7, log_terms - log_w)
    assert np.allclose(got.numpy(), gmm.score_samples(X), atol=1e-6)


def test_one_hot_configurations_of_the_binary_model_form_a_bernoulli_mixture():
    m = random_model(5, D=12, scale=2.0)
    x = binary_x(4, 12)
    eye = torch.eye(5)
    with torch.no_grad():
        log_prior = m.log_prior(eye)
        log_comp = m.log_likelihood(x, eye.unsqueeze(1))  # (K, B)
        lj, z = brute_force_log_joint(m, x)
    one_hot = z.sum(1) == 1
    want = torch.logsumexp(lj[one_hot], 0) - torch.logsumexp(log_prior.double(), 0)  # p(x | exactly one on)
    assert torch.allclose(one_hot_log_marginal(log_prior, log_comp.T).double(), want, atol=1e-4)


# -- training ---------------------------------------------------------------------------------------------------------
def test_objective_choice():
    assert choose_objective(12) == "exact" and choose_objective(13) == "vimco"
    with pytest.raises(ModelInputError):
        choose_objective(20, "exact")


def test_exact_loss_gradient_is_the_gradient_of_log_p():
    m = random_model(4, D=10, scale=1.5)
    x = binary_x(3, 10)
    loss, mean_log_px = exact_loss(m, x)
    assert float(mean_log_px) == pytest.approx(float(exact_log_marginal(m, x).mean()), abs=1e-4)
    m.zero_grad()
    loss.backward()
    g = m.decoder[0].weight.grad.clone()
    m.zero_grad()
    (-torch.logsumexp(brute_force_log_joint_autograd(m, x), 0).mean()).backward()
    assert torch.allclose(g, m.decoder[0].weight.grad, atol=1e-5)


def brute_force_log_joint_autograd(m, x):
    z = configurations(m.latent_dim)
    return m.log_joint(x, z.unsqueeze(1))


def test_vimco_encoder_gradient_is_unbiased():
    """With x = 0 and a linear encoder, q's logits are the encoder's bias; the mean VIMCO gradient over many x
    matches the exact gradient of L_k (k = 2, all (2^K)^2 sample pairs enumerated)."""
    K, D, k, n = 2, 6, 2, 40000
    m = random_model(K, D=D, seed=8, scale=2.0)
    x = torch.zeros(1, D)
    bias = m.encoder[0].bias

    lj, z = brute_force_log_joint(m, x)
    lj = lj[:, 0].float()
    log_q = z.float() @ F.logsigmoid(bias) + (1 - z.float()) @ F.logsigmoid(-bias)
    lw = lj - log_q
    exact = 0.0
    for i, j in itertools.product(range(2**K), repeat=2):
        exact = exact + torch.exp(log_q[i] + log_q[j]) * (torch.logaddexp(lw[i], lw[j]) - math.log(2))
    want = torch.autograd.grad(exact, bias)[0]
    m.zero_grad()
    loss, _ = vimco_loss(m, x.expand(n, D), k, torch.Generator().manual_seed(0))
    (-loss).backward()  # loss is the mean over x of -surrogate
    got = bias.grad
    assert torch.allclose(got, want, atol=0.05 * float(want.abs().max()) + 0.01), (got, want)


def test_exact_training_raises_the_likelihood_and_vimco_trains():
    torch.manual_seed(0)
    truth = random_model(3, D=16, seed=9, scale=3.0)
    _, data = truth.sample(400, torch.Generator().manual_seed(1))
    m = BinaryLatentModel(latent_dim=3, data_dim=16, encoder_hidden=())
    snaps = list(train_steps(m, data.numpy(), epochs=1, batch_size=50, lr=0.05, report_every=2))
    assert snaps[-1].done and snaps[-1].objective == "exact"
    from lvm.training_discrete import init_from_data

    fresh = BinaryLatentModel(latent_dim=3, data_dim=16, encoder_hidden=())
    init_from_data(fresh, data)
    before = float(exact_log_marginal(fresh, data).mean())
    list(train_steps(m, data.numpy(), epochs=30, batch_size=50, lr=0.05, init=False))
    after = float(exact_log_marginal(m, data).mean())
    truth_ll = float(exact_log_marginal(truth, data).mean())  # -10.02 here; independent pixels: -10.18
    assert after > before + 0.1 and after >= truth_ll - 0.02, (before, after, truth_ll)
    v = BinaryLatentModel(latent_dim=14, data_dim=16, encoder_hidden=())
    snaps = list(train_steps(v, data.numpy(), epochs=3, batch_size=50, lr=0.02, samples=4, report_every=5))
    assert snaps[-1].objective == "vimco" and math.isfinite(snaps[-1].bound)
    assert snaps[-1].bound <= float(exact_log_marginal(v, data).mean()) + 1.0  # a lower bound (up to noise)


def test_convergence_steps_shapes():
    m = random_model(6, D=20)
    x = binary_x(1, 20)
    r = enumerate_exact(m, x, marginals=True)
    snaps = list(
        convergence_steps(m, x, torch.zeros(6), marginals_as_logits(r.marginals[0]), ks=(1, 10, 100), repeats=3)
    )
    assert len(snaps) == 3 and snaps[-1].values["uniform"].shape == (3, 3)
    assert not np.isnan(snaps[-1].values["is_marginals"]).any()


# -- checkpoints ------------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_refusals(tmp_path, tiny_vae):
    m = random_model(5, D=12, hidden=(7,), encoder_hidden=(9,))
    p = tmp_path / "m.safetensors"
    save_binary_latent(m, p, {"note": "x"})
    m2, info = load_binary_latent(p)
    x = binary_x(2, 12)
    assert torch.allclose(exact_log_marginal(m, x), exact_log_marginal(m2, x)) and info == {"note": "x"}
    from lvm.checkpoint import save_model

    save_model(tiny_vae, tmp_path / "vae.safetensors")
    with pytest.raises(CheckpointError, match="binary-latent"):
        load_binary_latent(tmp_path / "vae.safetensors")
    (tmp_path / "pickle.safetensors").write_bytes(b"\x80\x04" + b"\0" * 100)
    with pytest.raises(CheckpointError, match="pickle"):
        load_binary_latent(tmp_path / "pickle.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_binary_latent(tmp_path / "none.safetensors")
    with torch.no_grad():
        m.prior_logits[0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        save_binary_latent(m, tmp_path / "nan.safetensors")


def test_bundled_model_loads_and_is_k20():
    from lvm.models.binary_latent import pretrained_binary_latent_path

    path = pretrained_binary_latent_path()
    if not path.exists():
        pytest.skip("binary latent model not bundled")
    m, info = load_binary_latent(path)
    assert m.latent_dim == 20 and m.is_linear and "exact_test_nll" in info


def test_train_discrete_cli(tmp_path, capsys):
    from lvm.cli import main

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        train=(rng.random((60, 16)) < 0.3).astype(np.uint8),
        test=(rng.random((20, 16)) < 0.3).astype(np.uint8),
    )
    out = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train-discrete",
                "--data",
                str(tmp_path / "d.npz"),
                "--k",
                "3",
                "--epochs",
                "2",
                "--out",
                str(out),
                "--encoder-hidden",
                "",
                "--json",
            ]
        )
        == 0
    )
    _m, info = load_binary_latent(out)
    assert info["objective"] == "exact" and info["eval_images"] == 20 and math.isfinite(info["exact_test_nll"])
    assert (
        main(["train-discrete", "--data", str(tmp_path / "d.npz"), "--k", "31", "--epochs", "1", "--out", str(out)])
        == 2
    )


def test_cli_literals_match_the_library():
    from lvm.cli import train_discrete
    from lvm.models.binary_latent import MAX_LATENT_DIM
    from lvm.training_discrete import OBJECTIVES

    assert train_discrete.MAX_LATENT_DIM == MAX_LATENT_DIM and train_discrete.OBJECTIVES == OBJECTIVES


def test_background_pixels_with_subnormal_products_stay_exact():
    """Logits near -95 (MNIST's background): exp(p_hi) exp(p_lo) falls below float32's normal range and is flushed
    to 0 (softplus there is < 1e-38); the sum still matches brute force, on the fast exp-product path."""
    from lvm.estimators.discrete import _exp_shift

    m = random_model(12, D=40, scale=1.0)
    with torch.no_grad():
        m.decoder[0].bias[:20] = -95.0
    assert _exp_shift(m.weight.detach(), m.bias.detach(), 10) is not None
    x = binary_x(3, 40)
    x[:, :20] = 0
    lj, _ = brute_force_log_joint(m, x)
    assert torch.allclose(exact_log_marginal(m, x).double(), torch.logsumexp(lj, 0), atol=2e-4)
    assert torch.allclose(x_independent_terms(m, 0, 4096), build_table(m).a)
