"""The VAE library: ELBO gradients, training (improves, seeded, cancellable, NaN-safe), checkpoints and the CLI."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from lvm.checkpoint import FORMAT, FORMAT_VERSION, load_model, read_metadata, save_model
from lvm.errors import CheckpointError, ModelInputError
from lvm.models.vae import VAE, VAEConfig
from lvm.training import TrainConfig, mean_elbo, train_vae


@pytest.fixture(scope="module")
def digits_subset() -> np.ndarray:
    from lvm.data import load_dataset

    x = load_dataset("digits").split().x
    return x[:600]


def small_vae(seed: int = 0, **kw) -> VAE:
    torch.manual_seed(seed)
    cfg = dict(data_dim=784, latent_dim=2, hidden=(32,), decoder="bernoulli")
    cfg.update(kw)
    return VAE(**cfg)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the objective -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
def test_elbo_gradient_matches_finite_differences(decoder):
    """d/dtheta of the reparameterised single-sample ELBO (eps fixed by seeding) equals central differences."""
    torch.manual_seed(1)
    model = VAE(data_dim=6, latent_dim=2, hidden=(5,), decoder=decoder, activation="tanh", image_shape=None).double()
    x = torch.rand(4, 6, dtype=torch.float64)
    if decoder == "bernoulli":
        x = (x > 0.5).double()

    def objective() -> torch.Tensor:
        g = torch.Generator().manual_seed(123)  # the same eps on every call
        return model.elbo(x, generator=g).mean()

    model.zero_grad()
    objective().backward()
    h = 1e-6
    checked = 0
    for name, p in model.named_parameters():
        grad = p.grad.clone()
        flat = p.data.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 4)):
            old = flat[i].item()
            with torch.no_grad():
                flat[i] = old + h
                up = objective().item()
                flat[i] = old - h
                down = objective().item()
                flat[i] = old
            fd = (up - down) / (2 * h)
            assert grad.view(-1)[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-7), (name, i)
            checked += 1
    assert checked > 10


def test_elbo_matches_the_monte_carlo_elbo():
    """elbo (analytic KL) averages to E_q[log p(x|z) + log p(z) - log q(z|x)]."""
    torch.manual_seed(0)
    model = VAE(data_dim=20, latent_dim=2, hidden=(8,), image_shape=None).double()
    x = (torch.rand(3, 20, dtype=torch.float64) > 0.5).double()
    with torch.no_grad():
        q = model.encode(x)
        z = q.sample((20000,))
        mc = (model.log_likelihood(x, z) + model.log_prior(z) - q.log_prob(z)).mean(0)
        ours = model.elbo(x.repeat(20000, 1), generator=torch.Generator().manual_seed(0)).view(20000, 3).mean(0)
    assert torch.allclose(mc, ours, rtol=1e-2)


# -- training ------------------------------------------------------------------------------------------------------
def test_training_improves_the_elbo(digits_subset):
    model = small_vae()
    x_tr, x_va = digits_subset[:400], digits_subset[500:]
    before = mean_elbo(model, torch.as_tensor(x_va).bernoulli(generator=torch.Generator().manual_seed(0)))
    snaps = list(train_vae(model, x_tr, x_va, TrainConfig(epochs=2, batch_size=40, lr=3e-3, report_every=4)))
    assert snaps[-1].done and snaps[-1].stopped_reason is None
    assert [s.epoch for s in snaps if s.valid_elbo is not None and float(s.epoch).is_integer()][-1] == 2
    after = snaps[-1].valid_elbo
    assert after > before + 50, (before, after)
    assert snaps[-1].train_elbo > snaps[0].train_elbo
    assert all(0 < s.progress <= 1 for s in snaps)


def test_training_is_seeded_and_reproducible(digits_subset):
    x = digits_subset[:200]
    cfg = TrainConfig(epochs=2, batch_size=40, report_every=2, seed=7)

    def run(seed_cfg):
        model = small_vae()
        torch.manual_seed(999)  # the global RNG must not matter
        snaps = [(s.step, s.train_elbo, s.valid_elbo) for s in train_vae(model, x, x[:50], seed_cfg)]
        return snaps, model.state_dict()

    s1, w1 = run(cfg)
    torch.rand(100)  # other draws in between change nothing
    s2, w2 = run(cfg)
    assert s1 == s2 and states_equal(w1, w2)
    s3, w3 = run(dataclass_replace(cfg, seed=8))
    assert not states_equal(w1, w3)


def dataclass_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_closing_the_snapshot_stream_stops_training(digits_subset):
    model = small_vae()
    gen = train_vae(model, digits_subset[:400], None, TrainConfig(epochs=50, batch_size=20, report_every=3))
    first = [next(gen) for _ in range(3)]
    assert [s.step for s in first] == [3, 6, 9]
    frozen = copy.deepcopy(model.state_dict())
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert states_equal(frozen, model.state_dict())  # no step after the last yield
    # breaking out of a for loop works the same way
    steps = []
    for snap in train_vae(
        small_vae(), digits_subset[:400], None, TrainConfig(epochs=50, batch_size=20, report_every=3)
    ):
        steps.append(snap.step)
        if len(steps) == 2:
            break
    assert steps == [3, 6]


def test_nan_loss_stops_and_keeps_the_last_good_weights(digits_subset, monkeypatch):
    """A non-finite loss at step k (weights still finite): training stops, weights are those after step k - 1."""
    model = small_vae()
    real_terms = model.elbo_terms  # (training takes the ELBO's two terms: it reports the KL)
    calls = {"n": 0}

    def elbo_terms(x, generator=None):
        calls["n"] += 1
        rec, kl = real_terms(x, generator=generator)
        return (rec * float("nan"), kl) if calls["n"] == 12 else (rec, kl)

    monkeypatch.setattr(model, "elbo_terms", elbo_terms)
    states = []
    snaps = []
    for snap in train_vae(model, digits_subset[:200], None, TrainConfig(epochs=5, batch_size=40, report_every=1)):
        snaps.append(snap)
        if snap.stopped_reason is None:
            states.append(copy.deepcopy(model.state_dict()))
    assert snaps[-1].stopped_reason == "nan" and snaps[-1].done
    assert snaps[-1].step == 11
    assert states_equal(model.state_dict(), states[-1])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_weights_restore_the_end_of_the_previous_epoch(digits_subset):
    """Weights gone NaN mid-epoch 2 (a forward hook poisons them): the end-of-epoch-1 weights come back."""
    model = small_vae()
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        if calls["n"] == 8:  # 5 steps per epoch: step 8 is in the second epoch
            with torch.no_grad():
                module.weight[0, 0] = float("nan")

    model.encoder[0].register_forward_hook(poison)
    epoch_end = None
    last = None
    for snap in train_vae(model, digits_subset[:200], None, TrainConfig(epochs=4, batch_size=40, report_every=100)):
        if snap.stopped_reason is None and snap.epoch == 1:
            epoch_end = copy.deepcopy(model.state_dict())
        last = snap
    assert last.stopped_reason == "nan"
    assert states_equal(model.state_dict(), epoch_end)


def test_training_rejects_bad_input():
    model = small_vae()
    with pytest.raises(ModelInputError, match="784"):
        next(train_vae(model, np.zeros((10, 5), np.float32)))
    with pytest.raises(ModelInputError, match="NaN"):
        next(train_vae(model, np.full((10, 784), np.nan, np.float32)))
    with pytest.raises(ModelInputError, match="empty"):
        next(train_vae(model, np.zeros((0, 784), np.float32)))
    with pytest.raises(ModelInputError, match="learning rate"):
        next(train_vae(model, np.zeros((10, 784), np.float32), config=TrainConfig(lr=-1.0)))
    with pytest.raises(ModelInputError, match=r"\[0, 1\]"):
        next(train_vae(model, np.full((10, 784), 3.0, np.float32)))


# -- checkpoints ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, decoder):
    model = small_vae(decoder=decoder, hidden=(16, 8)).eval()
    path = tmp_path / "m.safetensors"
    save_model(model, path, {"epochs": 3, "np": np.float32(1.5)})
    loaded, info = load_model(path)
    assert info == {"epochs": 3, "np": 1.5}
    assert loaded.config == model.config
    z = torch.randn(5, 2)
    x = torch.rand(5, 784)
    with torch.no_grad():
        assert torch.equal(loaded.decode_mean(z), model.decode_mean(z))
        assert torch.equal(loaded.encode(x).mean, model.encode(x).mean)
        assert torch.equal(loaded.log_likelihood(x, z), model.log_likelihood(x, z))
    assert not loaded.training


def _write(path, tensors, config: dict, **meta_over) -> None:
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "kind": "vae",
        "config": json.dumps(config),
        "info": "{}",
    }
    meta.update(meta_over)
    path.write_bytes(st_save(tensors, metadata=meta))


def _bad(path, *words):
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert str(path) in msg or path.name in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


def test_checkpoint_from_another_architecture(tmp_path):
    a = small_vae(hidden=(16,))
    b = small_vae(hidden=(8,))
    p = tmp_path / "shapes.safetensors"
    _write(p, {k: v.contiguous() for k, v in a.state_dict().items()}, b.config.to_dict())
    _bad(p, "shape", "architecture")
    c = small_vae(hidden=(16, 16))
    p2 = tmp_path / "keys.safetensors"
    _write(p2, {k: v.contiguous() for k, v in c.state_dict().items()}, a.config.to_dict())
    _bad(p2, "unexpected", "another architecture")
    p3 = tmp_path / "missing.safetensors"
    _write(p3, {k: v.contiguous() for k, v in a.state_dict().items()}, c.config.to_dict())
    _bad(p3, "missing")


def test_truncated_and_tampered_checkpoints(tmp_path):
    good = tmp_path / "good.safetensors"
    save_model(small_vae(), good)
    data = good.read_bytes()
    for n, words in [(0, ["truncated"]), (5, ["truncated"]), (100, ["truncated"]), (len(data) - 10, ["truncated"])]:
        p = tmp_path / f"trunc{n}.safetensors"
        p.write_bytes(data[:n])
        _bad(p, *words)
    header_len = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + header_len]
    # a damaged header (not JSON)
    p = tmp_path / "garbled.safetensors"
    p.write_bytes(data[:8] + b"{" + b"\xff" * (header_len - 1) + data[8 + header_len :])
    _bad(p, "header")
    # tampered architecture (same length, other hidden size) -> shapes disagree
    p = tmp_path / "arch.safetensors"
    tampered = header.replace(b'\\"hidden\\": [32]', b'\\"hidden\\": [33]')
    assert tampered != header
    p.write_bytes(data[:8] + tampered + data[8 + header_len :])
    _bad(p, "shape")
    # an architecture asking for an absurd layer is refused without allocating it
    p = tmp_path / "huge.safetensors"
    _write(
        p,
        {k: v.contiguous() for k, v in small_vae().state_dict().items()},
        {**small_vae().config.to_dict(), "hidden": [10**9]},
    )
    _bad(p, "shape")
    # tampered tensor offsets
    p = tmp_path / "offsets.safetensors"
    meta = json.loads(header)
    first = next(k for k in meta if k != "__metadata__")
    meta[first]["data_offsets"][1] += 4
    new_header = json.dumps(meta).encode()
    p.write_bytes(len(new_header).to_bytes(8, "little") + new_header + data[8 + header_len :])
    _bad(p, "corrupt")
    # invalid stored config and info
    p = tmp_path / "config.safetensors"
    _write(p, {"a": torch.zeros(2)}, {"data_dim": "many"})
    _bad(p, "architecture is invalid")
    p = tmp_path / "info.safetensors"
    _write(
        p, {k: v.contiguous() for k, v in small_vae().state_dict().items()}, small_vae().config.to_dict(), info="[1, 2]"
    )
    _bad(p, "info")
    # a safetensors file from another program
    p = tmp_path / "foreign.safetensors"
    p.write_bytes(st_save({"w": torch.zeros(3)}))
    _bad(p, "not an LVM Explorer checkpoint")
    _bad(tmp_path / "nope.safetensors", "not found")


def test_pickle_and_torch_save_files_are_never_unpickled(tmp_path, monkeypatch):
    import pickle as pickle_module

    def forbidden(*a, **k):
        raise AssertionError("unpickling attempted")

    model = small_vae()
    p1 = tmp_path / "model.pt"
    torch.save(model.state_dict(), p1)
    p2 = tmp_path / "model.pkl"
    p2.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    p3 = tmp_path / "model_p2.safetensors"
    p3.write_bytes(pickle.dumps(model.config, protocol=2))
    monkeypatch.setattr(pickle_module, "loads", forbidden)
    monkeypatch.setattr(pickle_module, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    for p in (p1, p2, p3):
        _bad(p, "pickle", "never loaded")


@pytest.mark.parametrize("first_bytes", [b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"])
def test_a_checkpoint_whose_header_length_begins_like_a_pickle_loads(tmp_path, first_bytes):
    """A safetensors header length is 8 little-endian bytes: a header of 1408 bytes begins b"\\x80\\x05", a pickle's
    first bytes. Such a checkpoint (written by ``lvm train-vae``: its metadata's length varies) was refused as a
    pickle (a CI run); its JSON header decides."""
    model = small_vae()
    p = tmp_path / "m.safetensors"
    save_model(model, p, info={"note": "x"})
    data = p.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + n].rstrip(b" ")
    # the smallest header length that begins with first_bytes and holds the JSON
    want = next(w for w in range(int.from_bytes(first_bytes, "little"), 1 << 24, 65536) if w >= len(header))
    padded = header + b" " * (want - len(header))  # (safetensors pads its header with spaces)
    p.write_bytes(want.to_bytes(8, "little") + padded + data[8 + n :])
    assert p.read_bytes()[:2] == first_bytes
    loaded, info = load_model(p)
    assert info["note"] == "x"
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)


def test_nan_weights_and_wrong_versions(tmp_path):
    model = small_vae()
    tensors = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    tensors["decoder.0.bias"][0] = float("nan")
    p = tmp_path / "nan.safetensors"
    _write(p, tensors, model.config.to_dict())
    _bad(p, "NaN", "decoder.0.bias")
    ok = {k: v.contiguous() for k, v in model.state_dict().items()}
    for version in ("2", "0", "one"):
        p = tmp_path / f"v{version}.safetensors"
        _write(p, ok, model.config.to_dict(), format_version=version)
        _bad(p, "format version", "reads version 1")
    p = tmp_path / "kind.safetensors"
    _write(p, ok, model.config.to_dict(), kind="gmm")
    _bad(p, "kind")
    p = tmp_path / "ints.safetensors"
    _write(p, {k: v.to(torch.int32).contiguous() for k, v in model.state_dict().items()}, model.config.to_dict())
    _bad(p, "dtype")
    # saving a diverged model is refused (it could never be loaded back)
    with torch.no_grad():
        model.decoder[0].bias[0] = float("inf")
    with pytest.raises(CheckpointError, match="NaN or infinity"):
        save_model(model, tmp_path / "diverged.safetensors")
    assert not (tmp_path / "diverged.safetensors").exists()


def test_read_metadata_names_the_file():
    with pytest.raises(CheckpointError, match="thing.bin"):
        read_metadata(b"\x00" * 4, "thing.bin")


def test_config_from_dict_coerces_and_validates():
    cfg = VAEConfig.from_dict({"data_dim": 784.0, "latent_dim": "2", "hidden": ["8"], "image_shape": [28, 28]})
    assert cfg.latent_dim == 2 and cfg.hidden == (8,) and cfg.data_dim == 784
    with pytest.raises(ModelInputError):
        VAEConfig(hidden=(0,))
    with pytest.raises(ModelInputError):
        VAEConfig(decoder="poisson")


# -- the CLI -------------------------------------------------------------------------------------------------------
def test_cli_train_vae_writes_a_loadable_checkpoint(tmp_path, capsys):
    from lvm.cli import main

    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, train=rng.random((60, 16), dtype=np.float32), valid=rng.random((20, 16), dtype=np.float32))
    out = tmp_path / "m.safetensors"
    code = main(
        [
            "train-vae",
            "--data",
            str(data),
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs_completed"] == 2 and summary["valid_split"] == "valid"
    model, info = load_model(out)
    assert model.data_dim == 16 and model.config.hidden == (8,) and info["epochs_completed"] == 2
    assert np.isfinite(info["valid_elbo"])
    # where its schedule ended, so that continuing it (the Latent lab) resumes there rather than at a fresh lr
    from lvm.training import schedule_state_from_info

    state = schedule_state_from_info(info)
    assert state is not None and state.steps == 2 * 4 and 0 < state.final_lr <= state.peak_lr


def test_cli_train_vae_bad_input_exits_2(tmp_path, capsys):
    from lvm.cli import main

    code = main(
        [
            "train-vae",
            "--data",
            str(tmp_path / "missing.npz"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "m.safetensors"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "missing.npz" in err and "Traceback" not in err
    assert not (tmp_path / "m.safetensors").exists()
    code = main(["train-vae", "--data", "digits", "--epochs", "1", "--hidden", "a,b", "--out", str(tmp_path / "x")])
    assert code == 2 and "--hidden" in capsys.readouterr().err
    code = main(["train-vae", "--data", "digits", "--epochs", "1", "--out", str(tmp_path)])
    assert code == 2 and "folder" in capsys.readouterr().err


def test_gaussian_decoder_learns_2d_data_with_a_z_dependent_variance():
    """x | z ~ N(mu_theta(z), diag sigma_theta(z)^2) on the moons: training raises the validation ELBO, the learned
    variance varies with z, and the exact log p(x) (quadrature over the 2-D latent) agrees with IWAE-2000 within its
    standard error and lies above the ELBO (Jensen)."""
    from lvm.data.toy import moons
    from lvm.estimators import LatentGrid, importance, log_marginal

    x, _ = moons(n=1200, seed=0)
    x = torch.as_tensor(x, dtype=torch.float32)
    x_train, x_valid = x[:1000], x[1000:]
    torch.manual_seed(0)
    model = VAE(VAEConfig(data_dim=2, latent_dim=2, hidden=(32, 32), decoder="gaussian", image_shape=None))
    before = mean_elbo(model, x_valid)
    for _ in train_vae(model, x_train, x_valid, TrainConfig(epochs=25, batch_size=100, lr=3e-3, report_every=10**6)):
        pass
    model.eval()
    after = mean_elbo(model, x_valid)
    assert after > before + 0.5, (before, after)
    with torch.no_grad():
        _, log_var = model.gaussian_params(torch.randn(200, 2, generator=torch.Generator().manual_seed(1)))
    assert float(log_var.std(0).min()) > 0.01  # Sigma_theta depends on z
    xs = x_valid[:40]
    with torch.no_grad():
        exact = log_marginal(LatentGrid.build(model, size=256, x=xs), xs)
        iw = importance(model, xs, model.encode(xs), 2000, seed=0)
        elbo_1 = model.elbo(xs, generator=torch.Generator().manual_seed(0))
    assert ((iw.value - exact).abs() < 5 * iw.stderr + 0.02).all()
    assert float(exact.mean()) > float(elbo_1.mean())
