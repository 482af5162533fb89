"""The lecture VAE: quadrature density, sampling, log-likelihood shapes, and fitting (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm.density_fits import exact_log_lik, fit_elbo, fit_exact, train_test_toy
from lvm.errors import ModelInputError
from lvm.models.lecture_vae import (
    LectureVAE,
    OutputRanges,
    density_on_grid,
    lecture_params,
    log_marginal_quadrature,
    quadrature_nodes,
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These models are tiny: on the shared 2-core CPU one intra-op thread is several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


WIDE = OutputRanges((-3.0, -3.0), (3.0, 3.0), -5.0, 0.0)
coef = st.floats(-4.0, 4.0, allow_nan=False)


def random_theta(draw, dz):
    def arr(*shape):
        return np.array(draw(st.lists(coef, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))).reshape(shape)

    return {"A": arr(2, dz), "B": arr(2, dz), "c": arr(2), "d": arr(2)}


@settings(max_examples=25, deadline=None)
@given(data=st.data(), dz=st.sampled_from([1, 2]), wide=st.booleans())
def test_density_integrates_to_one(data, dz, wide):
    theta = random_theta(data.draw, dz)
    model = LectureVAE(dz, ranges=WIDE if wide else OutputRanges(), theta=theta)
    xs = ys = np.linspace(-10.0, 11.0, 421)
    p = density_on_grid(model, xs, ys, n_z=16 if dz == 1 else 8)
    assert p.shape == (421, 421) and (p >= 0).all()
    mass = p.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert mass == pytest.approx(1.0, abs=2e-3)


SMOOTH = {"A": [[1.0], [-0.5]], "B": [[0.5], [0.5]], "c": [0.0, 0.0], "d": [2.0, 2.0]}


@pytest.mark.parametrize(
    "dz,ranges,theta,n_gh,n_mid", [(2, OutputRanges(), None, 24, 120), (1, WIDE, SMOOTH, 100, 2000)]
)
def test_gauss_hermite_and_midpoint_agree_and_match_log_marginal(dz, ranges, theta, n_gh, n_mid):
    model = LectureVAE(dz, ranges=ranges, theta=theta)
    xs, ys = np.linspace(-4, 4, 21), np.linspace(-4, 4, 17)
    gh = density_on_grid(model, xs, ys, n_z=n_gh)
    mid = density_on_grid(model, xs, ys, n_z=n_mid, method="midpoint", limit=7.0)
    np.testing.assert_allclose(gh, mid, rtol=2e-3, atol=1e-6 * gh.max())
    gx, gy = np.meshgrid(xs, ys)
    lp = log_marginal_quadrature(model, torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1)), n_z=n_gh)
    np.testing.assert_allclose(np.exp(lp.detach().numpy()).reshape(gx.shape), gh, rtol=1e-9, atol=1e-300)


def test_agrees_with_the_shared_quadrature_module():
    from lvm.estimators.quadrature import LatentGrid, log_marginal

    model = LectureVAE(2, ranges=WIDE)
    x = torch.tensor([[0.0, 0.0], [1.5, -2.0], [-2.5, 2.5]], dtype=torch.float64)
    box = torch.tensor([[-6.0, 6.0], [-6.0, 6.0]], dtype=torch.float64)
    ref = log_marginal(LatentGrid.build(model, size=200, box=box), x)
    ours = log_marginal_quadrature(model, x, n_z=200, method="midpoint", limit=6.0)
    np.testing.assert_allclose(ours.detach().numpy(), ref.numpy(), atol=1e-6)


def test_protocol_shapes_and_numpy_twin():
    model = LectureVAE(2)
    x = torch.randn(5, 2, dtype=torch.float64)
    z = torch.randn(7, 5, 2, dtype=torch.float64)
    assert model.log_likelihood(x, z).shape == (7, 5)
    assert model.log_prior(z).shape == (7, 5)
    mean, log_var = model.gaussian_params(z)
    assert mean.shape == log_var.shape == (7, 5, 2)
    assert ((mean > 0) & (mean < 1)).all() and ((log_var >= 0) & (log_var <= 1)).all()  # the lecture's ranges
    m2, v2 = lecture_params(model.theta(), model.ranges, z.numpy())
    np.testing.assert_allclose(m2, mean.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(v2, log_var.detach().numpy(), rtol=1e-12)
    # the lecture's formula, literally
    A, B, c, d = (model.theta()[k] for k in "ABcd")
    zz = z.numpy()[3, 2]
    np.testing.assert_allclose(mean.detach().numpy()[3, 2], 1 / (1 + np.exp(-(A @ zz + c))))
    np.testing.assert_allclose(np.exp(log_var.detach().numpy()[3, 2]), np.exp(1 / (1 + np.exp(-(B @ zz + d)))))


def test_theta_roundtrip_and_errors():
    model = LectureVAE(1)
    model.set_theta(A=[[1.0], [2.0]], d=[0.5, -0.5])
    th = model.theta()
    assert th["A"].tolist() == [[1.0], [2.0]] and th["d"].tolist() == [0.5, -0.5]
    with pytest.raises(ModelInputError, match="shape"):
        model.set_theta(A=[[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ModelInputError):
        LectureVAE(3)
    with pytest.raises(ModelInputError):
        quadrature_nodes(1, 8, method="simpson")
    with pytest.raises(ModelInputError, match="midpoint"):
        quadrature_nodes(1, 500, method="gauss-hermite")


def test_samples_agree_with_density_chi_square():
    scipy_stats = pytest.importorskip("scipy.stats")
    model = LectureVAE(
        1, ranges=WIDE, theta={"A": [[3.0], [-1.5]], "B": [[2.0], [-2.0]], "c": [0.0, 1.0], "d": [0.0, 0.0]}
    )
    n = 20000
    _, x = model.sample(n, generator=torch.Generator().manual_seed(1234))
    x = x.numpy()
    edges = np.linspace(-4.5, 4.5, 10)  # 9 x 9 bins plus one "outside" bin
    fine = 20
    centres = (np.arange(len(edges[:-1]) * fine) + 0.5) * (edges[1] - edges[0]) / fine + edges[0]
    p = density_on_grid(model, centres, centres, n_z=200, method="midpoint", limit=6.0)
    cell = ((edges[1] - edges[0]) / fine) ** 2
    probs = p.reshape(9, fine, 9, fine).sum((1, 3)) * cell  # (y bin, x bin)
    expected = np.append(probs.ravel(), max(1.0 - probs.sum(), 0.0)) * n
    hist, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=[edges, edges])
    observed = np.append(hist.ravel(), n - hist.sum())
    keep = expected >= 5  # the chi-square approximation needs >= 5 expected counts per bin
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] < 5:
        obs, exp = obs[:-1], exp[:-1]
    exp = exp * obs.sum() / exp.sum()
    stat, pvalue = scipy_stats.chisquare(obs, exp)
    assert pvalue > 0.001, (stat, pvalue, len(obs))


@pytest.mark.parametrize("dz", [1, 2])
def test_exact_fit_increases_log_likelihood(dz):
    x_train, x_test = train_test_toy("moons", n=300, seed=0)
    model = LectureVAE(dz, ranges=OutputRanges.for_data(x_train))
    before = exact_log_lik(model, x_train)
    snaps = list(fit_exact(model, x_train, x_test, steps=60, report_every=20))
    assert [s.step for s in snaps] == [20, 40, 60] and snaps[-1].done
    assert snaps[-1].train_log_lik > before + 0.2
    assert np.isfinite(snaps[-1].test_log_lik)
    assert snaps[-1].train_log_lik == pytest.approx(exact_log_lik(model, x_train))


def test_elbo_fit_increases_log_likelihood_and_bounds_it():
    x_train, _ = train_test_toy("moons", n=300, seed=0)
    model = LectureVAE(1, ranges=OutputRanges.for_data(x_train))
    before = exact_log_lik(model, x_train)
    last = list(fit_elbo(model, x_train, steps=150, report_every=50))[-1]
    assert last.train_log_lik > before + 0.2
    assert last.objective <= last.train_log_lik + 0.05  # ELBO <= log p(x) (up to Monte Carlo noise)


def test_mlp_fit_shows_its_density_while_learning_and_bounds_it():
    """mu_theta, Sigma_theta as MLPs (a Gaussian-decoder VAE): every progress snapshot carries p(x) on the grid, the
    final exact log-likelihood is above the final ELBO, and it beats the untrained model's."""
    from lvm.density_fits import fit_mlp, model_density
    from lvm.models.vae import VAE

    x_train, x_test = train_test_toy("moons", n=400, seed=0)
    xs, ys = np.linspace(-1.5, 2.5, 24), np.linspace(-1.0, 1.5, 20)
    torch.manual_seed(0)
    model = VAE(data_dim=2, latent_dim=2, hidden=(32, 32), decoder="gaussian", image_shape=None, min_log_var=-7.0)
    before = exact_log_lik(model.eval(), x_train)
    snaps = list(fit_mlp(x_train, x_test, epochs=40, hidden=(32, 32), grid=(xs, ys), model=model))
    live, last = snaps[:-1], snaps[-1]
    assert live and all(s.density is not None and s.density.shape == (20, 24) for s in live)
    assert not np.allclose(live[0].density, last.density)  # the density changed as it learned
    assert last.done and last.train_log_lik > before + 0.3
    from lvm.training import mean_elbo

    xt = torch.as_tensor(x_train, dtype=torch.float32)
    elbo = np.mean([mean_elbo(model, xt, seed=s) for s in range(30)])  # 30 draws: the ELBO to ~0.01 nats
    assert elbo <= last.train_log_lik + 0.02  # ELBO <= log p(x)
    assert np.isfinite(last.test_log_lik)
    np.testing.assert_allclose(last.density, model_density(model, xs, ys), rtol=1e-4)


def test_fit_can_be_cancelled_between_steps():
    x_train, _ = train_test_toy("moons", n=200, seed=0)
    model = LectureVAE(1)
    gen = fit_exact(model, x_train, steps=10_000, report_every=5)
    first = next(gen)
    gen.close()
    assert first.step == 5 and not first.done


def test_cli_fit_infinite_reports_exact_log_likelihoods(capsys):
    """``lvm fit-infinite``: JSON rows per method with finite train/test log-likelihoods; bad input exits 2."""
    import json

    from lvm.cli import main

    assert main(["fit-infinite", "--data", "moons", "--n", "150", "--methods", "gmm,exact", "--k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in out["fits"]] == ["gmm", "exact"]
    assert all(np.isfinite(r["train_log_lik"]) and np.isfinite(r["test_log_lik"]) for r in out["fits"])
    assert main(["fit-infinite", "--methods", "banana"]) == 2
    assert main(["fit-infinite", "--k", "0"]) == 2
    assert "error" in capsys.readouterr().err
