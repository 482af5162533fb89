"""``lvm fit-gmm``, clustering metrics, PCA and the PNG reader/writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvm.cli import main
from lvm.errors import DatasetError
from lvm.imageio import encode_png, read_png, write_png
from lvm.models.gmm_metrics import normalized_mutual_info, purity
from lvm.models.pca import pca_fit, pca_inverse, pca_transform


def _npz_images(tmp_path, n=120, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(3, size=n)
    protos = rng.rand(3, 64) > 0.5
    x = np.clip(protos[y] * 0.8 + rng.rand(n, 64) * 0.2, 0, 1).astype(np.float32)
    path = tmp_path / "imgs.npz"
    np.savez(path, x=(x * 255).astype(np.uint8), y=y)
    return path


def test_fit_gmm_toy_json(capsys):
    rc = main(["fit-gmm", "--data", "blobs:n=300,seed=0", "--k", "3", "--cov", "full", "--json", "--device", "cpu"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["k"] == 3 and rep["n_samples"] == 300
    for key in ("mean_log_likelihood", "bic", "n_iter", "converged", "purity", "nmi"):
        assert key in rep
    assert 0 <= rep["nmi"] <= 1 and rep["purity"] > 0.5


def test_fit_gmm_images_pca_png(tmp_path, capsys):
    data = _npz_images(tmp_path)
    out = tmp_path / "means.png"
    rc = main(
        [
            "fit-gmm",
            "--data",
            str(data),
            "--k",
            "3",
            "--cov",
            "diag",
            "--space",
            "pca:5",
            "--json",
            "--means-png",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_features"] == 5
    img = read_png(out)
    assert img.dtype == np.uint8 and img.ndim == 2


def test_fit_gmm_user_errors_exit_2(tmp_path, capsys):
    assert main(["fit-gmm", "--data", "no/such/folder", "--k", "3"]) == 2
    assert main(["fit-gmm", "--data", "blobs:n=300", "--k", "3", "--space", "pca:x"]) == 2
    assert main(["fit-gmm", "--data", "blobs:n=300", "--k", "3", "--means-png", str(tmp_path / "m.png")]) == 2
    assert main(["fit-gmm", "--data", "blobs:n=5", "--k", "10"]) == 2
    err = capsys.readouterr().err
    assert "error" in err


def test_metrics_match_sklearn():
    from sklearn.metrics import normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    rng = np.random.RandomState(0)
    for _ in range(20):
        a = rng.randint(rng.randint(1, 6), size=200)
        b = rng.randint(rng.randint(1, 6), size=200)
        assert normalized_mutual_info(a, b) == pytest.approx(normalized_mutual_info_score(b, a), abs=1e-10)
        c = contingency_matrix(b, a)
        assert purity(a, b) == pytest.approx(c.max(0).sum() / c.sum())
    assert purity([0, 0, 1, 1], [5, 5, 6, 6]) == 1.0
    assert normalized_mutual_info([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)


def test_pca_matches_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(1)
    X = rng.randn(200, 6) @ rng.randn(6, 6) + 3
    mean, comps = pca_fit(torch.as_tensor(X), 3)
    ref = PCA(3).fit(X)
    np.testing.assert_allclose(mean.numpy(), ref.mean_, rtol=1e-10)
    # same subspace and order (signs may differ)
    np.testing.assert_allclose(np.abs(comps.numpy() @ ref.components_.T), np.eye(3), atol=1e-8)
    Z = pca_transform(torch.as_tensor(X), mean, comps)
    full_mean, full = pca_fit(torch.as_tensor(X), 6)
    back = pca_inverse(pca_transform(torch.as_tensor(X), full_mean, full), full_mean, full)
    np.testing.assert_allclose(back.numpy(), X, atol=1e-8)
    assert Z.shape == (200, 3)


@pytest.mark.parametrize("shape", [(7, 5), (4, 9, 3), (1, 1)])
def test_png_roundtrip(tmp_path, shape):
    a = np.random.RandomState(0).randint(0, 256, size=shape).astype(np.uint8)
    write_png(tmp_path / "a.png", a)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), a)


def test_png_reader_rejects_other_files(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError):
        read_png(tmp_path / "bad.png")
    data = bytearray(encode_png(np.zeros((3, 3), np.uint8)))
    data[24] = 16  # bit depth 16 under the old header CRC: a corrupt header
    (tmp_path / "d16.png").write_bytes(bytes(data))
    with pytest.raises(DatasetError):
        read_png(tmp_path / "d16.png")
    with pytest.raises(DatasetError):
        read_png(tmp_path / "missing.png")


def test_png_reader_filters():
    """Rows with sub/up/average/paeth filters decode like the raw rows (an encoder using them, by hand)."""
    import struct
    import zlib

    rng = np.random.RandomState(2)
    img = rng.randint(0, 256, size=(5, 4, 3)).astype(np.uint8)
    h, stride, bpp = 5, 12, 3
    raw = img.reshape(h, stride).astype(np.int32)
    lines = []
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f = y % 5
        cur = raw[y]
        out = np.zeros(stride, np.int32)
        for x in range(stride):
            left = cur[x - bpp] if x >= bpp else 0
            up = prev[x]
            ul = prev[x - bpp] if x >= bpp else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = left
            elif f == 2:
                pred = up
            elif f == 3:
                pred = (left + up) // 2
            else:
                pa, pb, pc = abs(up - ul), abs(left - ul), abs(left + up - 2 * ul)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
            out[x] = (cur[x] - pred) & 0xFF
        lines.append(bytes([f]) + out.astype(np.uint8).tobytes())
        prev = cur

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 5, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(lines)))
        + chunk(b"IEND", b"")
    )
    from lvm.imageio import decode_png

    np.testing.assert_array_equal(decode_png(png), img)
