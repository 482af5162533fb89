"""Training on log p(x) itself (``TrainConfig(objective="grid")``): each network gets its own gradient (the decoder
the shifted-grid log p(x), the encoder the ELBO), training raises the exact log p(x) more than the ELBO objective
does from the same start, and the CLI fine-tunes a checkpoint (``--init``) and records the whole recipe."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from lvm.checkpoint import load_model, save_model
from lvm.errors import ModelInputError
from lvm.estimators.quadrature import LatentGrid, log_marginal
from lvm.estimators.shifted_grid import shifted_grid_log_marginal
from lvm.models.vae import VAEConfig
from lvm.training import GRID_LIMIT, TrainConfig, _grid_gradients, new_vae, train_vae

SMALL = VAEConfig(data_dim=784, latent_dim=2, hidden=(64,))


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from lvm.data import load_dataset

    return load_dataset("digits").split().x[:500]


@pytest.fixture(scope="module")
def started(digits):
    """A small VAE after a short ELBO run (one-cycle, 10 epochs): the common start."""
    model = new_vae(SMALL, seed=0)
    *_, last = train_vae(model, digits, None, TrainConfig(epochs=10, lr=3e-3, batch_size=50, report_every=10**9))
    assert last.done
    return model


def exact_log_p(model, x: np.ndarray) -> float:
    xb = torch.as_tensor(x > 0.5, dtype=torch.float32)
    grid = LatentGrid.build(model, 256, x=xb)
    return float(log_marginal(grid, xb).mean())


def test_each_network_gets_its_own_gradient(started, digits):
    model = copy.deepcopy(started)
    xb = torch.as_tensor(digits[:32] > 0.5, dtype=torch.float32)
    config = TrainConfig(objective="grid", grid_size=16)
    _grid_gradients(model, config, torch.Generator().manual_seed(4))(xb)
    dec = {n: p.grad.clone() for n, p in model.decoder.named_parameters()}
    enc = {n: p.grad.clone() for n, p in model.encoder.named_parameters()}
    # the same draws again, each objective alone
    g = torch.Generator().manual_seed(4)
    log_p = shifted_grid_log_marginal(model, xb, 16, GRID_LIMIT, g)
    rec, kl = model.elbo_terms(xb, generator=g)
    want_dec = torch.autograd.grad(-log_p.mean(), list(model.decoder.parameters()))
    want_enc = torch.autograd.grad(-(rec - kl).mean(), list(model.encoder.parameters()))
    assert all(torch.allclose(a, b) for a, b in zip(dec.values(), want_dec, strict=True))
    assert all(torch.allclose(a, b) for a, b in zip(enc.values(), want_enc, strict=True))


def test_grid_training_raises_the_exact_log_likelihood_more_than_the_elbo_does(started, digits):
    """From the same start and seed, the same steps at the same lr: the grid objective ends with a higher exact
    log p(x) on the training images, and reports its own estimate (train_log_p) near the exact value."""
    before = exact_log_p(started, digits)
    ends = {}
    for objective in ("elbo", "grid"):
        model = copy.deepcopy(started)
        cfg = TrainConfig(epochs=6, lr=1e-3, batch_size=50, schedule="cosine", objective=objective, report_every=10**9)
        *_, last = train_vae(model, digits, None, cfg)
        ends[objective] = (exact_log_p(model, digits), last)
    (elbo_end, elbo_last), (grid_end, grid_last) = ends["elbo"], ends["grid"]
    assert grid_end > before + 0.5 and grid_end > elbo_end + 0.2, (before, elbo_end, grid_end)
    assert elbo_last.train_log_p is None and grid_last.train_log_p is not None
    assert grid_last.train_log_p == pytest.approx(grid_end, abs=3.0)  # (dynamic binarization vs threshold)
    assert grid_last.lr == pytest.approx(0.0, abs=1e-9)  # cosine: down to 0


def test_the_grid_objective_says_what_it_cannot_train():
    with pytest.raises(ModelInputError, match="1-D or 2-D latent space.*'elbo'"):
        list(
            train_vae(
                new_vae(VAEConfig(data_dim=16, latent_dim=3, hidden=(8,)), 0),
                np.zeros((4, 16)),
                None,
                TrainConfig(objective="grid"),
            )
        )
    with pytest.raises(ModelInputError, match="objective must be one of"):
        list(train_vae(new_vae(SMALL, 0), np.zeros((4, 784)), None, TrainConfig(objective="iwae")))
    with pytest.raises(ModelInputError, match="grid_size"):
        list(train_vae(new_vae(SMALL, 0), np.zeros((4, 784)), None, TrainConfig(objective="grid", grid_size=1)))


def test_cli_fine_tunes_a_checkpoint_and_keeps_the_recipe(tmp_path, capsys):
    from lvm.cli import main

    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, train=rng.random((60, 16), dtype=np.float32), valid=rng.random((20, 16), dtype=np.float32))
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    common = ["--data", str(data), "--batch-size", "16", "--json"]
    assert main(["train-vae", *common, "--epochs", "2", "--hidden", "8", "--out", str(first)]) == 0
    capsys.readouterr()
    args = ["--epochs", "1", "--init", str(first), "--objective", "grid", "--grid-size", "8", "--schedule", "cosine"]
    assert main(["train-vae", *common, *args, "--out", str(second)]) == 0
    summary = json.loads(capsys.readouterr().out)
    model, info = load_model(second)
    assert model.config.hidden == (8,) and info["objective"] == "grid" and info["grid_size"] == 8
    assert np.isfinite(info["train_log_p"]) and summary["init"]["path"] == "a.safetensors"
    assert info["init"]["train_command"].startswith("lvm train-vae") and info["init"]["epochs_completed"] == 2
    assert info["training_state"]["steps"] == 2 * 4 + 4  # (the step count goes on from the checkpoint's)
    # an architecture flag beside --init is refused, naming it
    assert main(["train-vae", *common, *args, "--hidden", "4", "--out", str(tmp_path / "c.safetensors")]) == 2
    assert "leave out --hidden" in capsys.readouterr().err


def test_a_checkpoint_round_trip_keeps_grid_training_reproducible(started, digits, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(started, path, {})
    a, _ = load_model(path)
    b = copy.deepcopy(started)
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=100, objective="grid", grid_size=16, report_every=10**9)
    *_, la = train_vae(a, digits, None, cfg)
    *_, lb = train_vae(b, digits, None, cfg)
    assert la.train_log_p == lb.train_log_p
