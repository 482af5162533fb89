"""``lvm eval`` on a tiny checkpoint and a tiny .npz dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvm.cli import main
from lvm.cli.eval import parse_methods
from lvm.errors import LVMError


@pytest.fixture
def files(tmp_path, tiny_vae):
    from lvm.checkpoint import save_model

    model_path = tmp_path / "tiny.safetensors"
    save_model(tiny_vae, model_path)
    rng = np.random.default_rng(0)
    arrays = {s: (rng.random((n, 784)) < 0.2).astype(np.uint8) for s, n in (("train", 30), ("valid", 10), ("test", 12))}
    data_path = tmp_path / "bin.npz"
    np.savez(data_path, **arrays)
    return model_path, data_path


def test_eval_json(files, capsys):
    model_path, data_path = files
    rc = main(
        [
            "eval",
            "--model",
            str(model_path),
            "--data",
            str(data_path),
            "--limit",
            "8",
            "--device",
            "cpu",
            "--methods",
            "quadrature:64,iwae:200,elbo:10",
            "--json",
            "--batch-size",
            "5",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_images"] == 8 and out["split"] == "test" and out["binary_data"] is True
    rows = {r["method"]: r for r in out["methods"]}
    assert set(rows) == {"quadrature:64", "iwae:200", "elbo:10"}
    for r in rows.values():
        assert r["n"] == 8 and r["seconds"] >= 0 and r["stderr"] > 0
        assert r["nll"] == pytest.approx(-r["mean_log_likelihood"])
    q, iw, el = (rows[k]["mean_log_likelihood"] for k in ("quadrature:64", "iwae:200", "elbo:10"))
    assert el <= iw + 0.5 and iw <= q + 0.5


def test_eval_table_and_seed(files, capsys):
    model_path, data_path = files
    args = [
        "eval",
        "--model",
        str(model_path),
        "--data",
        str(data_path),
        "--limit",
        "4",
        "--methods",
        "iwae:50",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "iwae:50" in table and "NLL" in table
    values = []
    for _ in range(2):
        assert main(args + ["--json"]) == 0
        values.append(json.loads(capsys.readouterr().out)["methods"][0]["mean_log_likelihood"])
    assert values[0] == values[1]


def test_eval_user_errors(files, tmp_path, capsys):
    model_path, data_path = files
    assert main(["eval", "--model", str(tmp_path / "nope.safetensors"), "--data", str(data_path)]) == 2
    assert "nope.safetensors" in capsys.readouterr().err
    assert main(["eval", "--model", str(model_path), "--data", str(data_path), "--methods", "magic"]) == 2
    assert "unknown method" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, test=np.zeros((3, 10), dtype=np.uint8))
    assert main(["eval", "--model", str(model_path), "--data", str(wrong), "--methods", "elbo"]) == 2
    assert "features" in capsys.readouterr().err


def test_parse_methods():
    assert parse_methods("quadrature, iwae:5000 ,elbo", 128) == [("quadrature", 128), ("iwae", 5000), ("elbo", 1)]
    assert parse_methods("quadrature:512,elbo:4", 256) == [("quadrature", 512), ("elbo", 4)]
    for bad in ("iwae", "iwae:x", "elbo:0", "", "foo:3"):
        with pytest.raises(LVMError):
            parse_methods(bad, 256)


def test_quadrature_on_high_dim_latent_is_user_error(tmp_path, capsys):
    from lvm.checkpoint import save_model
    from lvm.models.vae import VAE

    torch.manual_seed(0)
    path = tmp_path / "z5.safetensors"
    save_model(VAE(data_dim=784, latent_dim=5, hidden=(16,)), path)
    data = tmp_path / "d.npz"
    np.savez(data, test=np.zeros((3, 784), dtype=np.uint8))
    assert main(["eval", "--model", str(path), "--data", str(data), "--methods", "quadrature"]) == 2
    assert "1-D or 2-D" in capsys.readouterr().err
