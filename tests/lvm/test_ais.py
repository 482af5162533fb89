"""Annealed importance sampling and BDMC against closed forms (linear-Gaussian, d = 10) and quadrature (d = 2)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from lvm.errors import LVMError, ModelInputError
from lvm.estimators import AISResult, ais, ais_steps, bdmc, bdmc_simulated, log_marginal_adaptive
from lvm.estimators.ais import LABEL, annealing_schedule, simulate
from lvm.models.linear_gaussian import LinearGaussianModel

D64 = torch.float64


@pytest.fixture(scope="module")
def lg10():
    """A d = 10 linear-Gaussian model (D = 12) whose posterior AIS can reach in a few hundred steps, and 8 x."""
    base = LinearGaussianModel.random(data_dim=12, latent_dim=10, s=1.0, seed=3)
    model = LinearGaussianModel(0.5 * base.W, base.b, 1.0)
    x = model.sample(8, torch.Generator().manual_seed(1))
    return model, x, model.log_marginal(x)


def test_schedules_run_from_0_to_1():
    for kind in ("sigmoid", "linear"):
        b = annealing_schedule(50, kind)
        assert b.shape == (51,) and b[0] == 0 and b[-1] == 1 and (b.diff() > 0).all()
    s = annealing_schedule(100, "sigmoid").diff()
    assert s[0] < s[50] and s[-1] < s[50]  # small steps at both ends
    with pytest.raises(ModelInputError):
        annealing_schedule(10, "cosine")


def test_started_at_the_posterior_every_weight_is_exact(lg10):
    model, x, exact = lg10
    r = ais(model, x, 4, 20, initial=model.posterior(x), dtype=D64)
    assert torch.allclose(r.log_px, exact, atol=1e-9)
    assert float(r.stderr.max()) < 1e-6 and torch.allclose(r.ess, torch.full_like(r.ess, 4.0))


def test_d10_linear_gaussian_agrees_with_closed_form_within_stated_error(lg10):
    model, x, exact = lg10
    r = ais(model, x, 32, 300, dtype=D64, seed=0)
    assert isinstance(r, AISResult) and r.label == LABEL and "exact" not in r.describe(0)
    z = (r.log_px - exact) / r.stderr
    assert z.abs().max() < 4, z
    assert float((r.log_px - exact).abs().mean()) < 0.3
    assert (r.acceptance > 0.4).all() and (r.ess > 2).all() and r.log_weights.shape == (32, 8)


def test_float32_default_agrees_too(lg10):
    model, x, exact = lg10
    r = ais(model, x.numpy(), 32, 300, seed=1)  # numpy x, float32 chains
    assert r.log_px.dtype == D64
    assert ((r.log_px - exact) / r.stderr).abs().max() < 4


def test_bdmc_sandwiches_log_px_and_the_gap_shrinks(lg10):
    model = lg10[0]
    markov = math.log(1000.0)  # p_hat and 1/p_hat_rev are unbiased: each bound misses by > log c with prob <= 1/c
    gaps = []
    for steps in (20, 100, 400):
        z, x, b = bdmc_simulated(model, 8, 16, steps, seed=4)
        exact = model.log_marginal(x)
        assert b.lower.shape == b.upper.shape == (8,) and torch.allclose(b.gap, b.upper - b.lower)
        assert (b.lower < exact + markov).all() and (b.upper > exact - markov).all()
        assert b.mean_lower <= float(exact.mean()) + 0.1 and b.mean_upper >= float(exact.mean()) - 0.1
        gaps.append(b.mean_gap)
    assert gaps[0] > 5 * gaps[1] and gaps[1] > 5 * abs(gaps[2]) and abs(gaps[2]) < 0.3, gaps


def test_bdmc_checks_its_latents(lg10):
    model, x, _ = lg10
    with pytest.raises(ModelInputError, match="z_true"):
        bdmc(model, x, torch.zeros(3, 10), 4, 10)
    with pytest.raises(ModelInputError, match="NaN"):
        bdmc(model, x[:1], torch.full((1, 10), float("nan")), 4, 10)


def test_tiny_2d_vae_agrees_with_quadrature(tiny_vae):
    model = tiny_vae.requires_grad_(False)
    _, x = simulate(model, 4, torch.Generator().manual_seed(0))
    exact = log_marginal_adaptive(model, x, size=256).log_px.double()
    r = ais(model, x, 16, 200, seed=0)
    err = (r.log_px - exact).abs()
    assert (err < 4 * r.stderr + 0.02).all(), (err, r.stderr)
    q = ais(model, x, 16, 100, initial=model.encode(x), seed=0)  # from the encoder's q(z|x)
    assert ((q.log_px - exact).abs() < 4 * q.stderr + 0.02).all()


def test_bad_input_is_refused(lg10):
    model, x, _ = lg10
    cases = [
        (x[:, :5], "columns"),
        (x.unsqueeze(0), "shape"),
        (torch.full_like(x, float("nan")), "NaN"),
        (torch.empty(0, 12), "batch"),
    ]
    for bad, words in cases:
        with pytest.raises(ModelInputError, match=words):
            ais(model, bad, 4, 10)
    for options in ({"chains": 0}, {"steps": 0}, {"schedule": "cosine"}, {"target_acceptance": 1.5}):
        with pytest.raises(ModelInputError):
            ais(model, x, **{"chains": 4, "steps": 10, **options})
    with pytest.raises(ModelInputError, match="batch shape"):
        ais(model, x, 4, 10, initial=model.posterior(x[:2]))
    with pytest.raises(ModelInputError, match="latent model"):
        ais(object(), x, 4, 10)  # type: ignore[arg-type]


def test_generator_yields_frozen_snapshots_and_stops_between_them(lg10):
    model, x, _ = lg10
    gen = ais_steps(model, x[:2], 8, 100, every=10)
    first, second = next(gen), next(gen)
    gen.close()  # the app cancels between yields
    assert (first.step, second.step, first.steps) == (10, 20, 100) and 0 < first.beta < second.beta < 1
    assert first.result is None and first.log_normaliser.shape == (2,) and 0 < first.acceptance <= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.step = 3  # type: ignore[misc]
    snaps = list(ais_steps(model, x[:2], 8, 25, every=10))
    assert [s.step for s in snaps] == [10, 20, 25] and snaps[-1].result is not None
    assert torch.equal(snaps[-1].log_normaliser, snaps[-1].result.log_px)


def test_same_seed_same_answer(lg10):
    model, x, _ = lg10
    a = ais(model, x[:3], 8, 30, seed=5)
    b = ais(model, x[:3], 8, 30, seed=5)
    assert torch.equal(a.log_px, b.log_px)


def test_eval_cli_ais_method(tmp_path, tiny_vae, capsys):
    from lvm.checkpoint import save_model
    from lvm.cli import main
    from lvm.cli.eval import parse_methods

    assert parse_methods("ais,ais:4x20,elbo", 64) == [("ais", 16, 1000), ("ais", 4, 20), ("elbo", 1)]
    for bad in ("ais:16", "ais:0x10", "ais:ax3"):
        with pytest.raises(LVMError):
            parse_methods(bad, 64)
    model_path = tmp_path / "tiny.safetensors"
    save_model(tiny_vae, model_path)
    data = tmp_path / "d.npz"
    np.savez(data, test=(np.random.default_rng(0).random((4, 784)) < 0.2).astype(np.uint8))
    args = ["eval", "--model", str(model_path), "--data", str(data), "--device", "cpu", "--methods"]
    assert main([*args, "ais:8x200,quadrature:128", "--json"]) == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)["methods"]}
    row = rows["ais:8x200"]
    assert row["estimate"] == LABEL and row["ais_stderr"] > 0 and row["ais_start"] == "encoder q(z|x)"
    assert (
        abs(row["mean_log_likelihood"] - rows["quadrature:128"]["mean_log_likelihood"]) < 4 * row["ais_stderr"] + 0.05
    )
    assert main([*args, "ais:4x20"]) == 0
    assert "AIS estimate ± se" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_gpu(tiny_vae):
    model = tiny_vae.to("cuda").requires_grad_(False)
    _, x = simulate(model, 3, torch.Generator(device="cuda").manual_seed(0))
    r = ais(model, x, 8, 50)
    assert r.log_px.device.type == "cuda" and torch.isfinite(r.log_px).all()
