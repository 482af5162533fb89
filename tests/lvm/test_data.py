"""The data layer: IDX round trips, every corrupt-file case, npz files, built-ins, binarization."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.format import write_array_header_1_0

from lvm.data import binarize, encode_idx, load_dataset, parse_idx, read_idx, write_idx
from lvm.errors import DatasetError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, compress):
    arr = (np.arange(2 * 3 * 5) % 100).reshape(2, 3, 5).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def _header(code=0x08, dims=(2, 2)):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x02\x08\x01" + b"\x00" * 8, "magic"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]), "dtype code"),
        (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "truncated IDX header"),
        (_header(dims=(2, 2)) + b"\x00" * 3, "truncated"),
        (_header(dims=(2, 2)) + b"\x00" * 5, "unexpected bytes"),
        (_header(dims=(100000, 100000, 1000)), "refusing"),
    ],
)
def test_idx_corrupt_cases(data, message):
    with pytest.raises(DatasetError, match=message):
        parse_idx(data, "bad.idx")


def test_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros((4, 4), np.uint8)))[:20])
    with pytest.raises(DatasetError, match="x.gz"):
        read_idx(path)


def test_gzip_magic_on_a_raw_file_names_file(tmp_path):
    path = tmp_path / "y.idx"
    data = bytearray(encode_idx(np.zeros((4, 4), np.uint8)) + b"\x00" * 64)
    data[:2] = b"\x1f\x8b"  # looks like gzip, holds no valid deflate stream
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="y.idx"):
        read_idx(path)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=64))
def test_random_bytes_only_raise_dataset_error(data):
    try:
        parse_idx(data, "fuzz")
    except DatasetError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    code=st.integers(0, 255),
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=5),
    payload=st.integers(0, 64),
)
def test_random_headers_only_raise_dataset_error(code, dims, payload):
    data = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + b"\x01" * payload
    try:
        out = parse_idx(data, "fuzz")
    except DatasetError:
        return
    assert out.size * out.dtype.itemsize == payload


def _mnist_folder(tmp_path, n_train=12, n_test=5, labels=True, label_count=None):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8))
    if labels:
        write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, label_count or n_train).astype(np.uint8))
    return tmp_path


def test_mnist_layout_folder(tmp_path):
    ds = load_dataset(_mnist_folder(tmp_path))
    assert set(ds.splits) == {"train", "test"} and ds.image_shape == (28, 28)
    assert ds.split("train").x.shape == (12, 784) and ds.split("train").x.dtype == np.float32
    assert 0 <= ds.split("train").x.min() and ds.split("train").x.max() <= 1
    assert ds.split("train").y.shape == (12,) and ds.split("test").y is None


def test_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _mnist_folder(raw)
    assert len(load_dataset(tmp_path).split("train")) == 12


def test_label_count_mismatch(tmp_path):
    with pytest.raises(DatasetError, match="labels for 12 samples"):
        load_dataset(_mnist_folder(tmp_path, label_count=11))


def test_empty_folder_says_what_is_expected(tmp_path):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load_dataset(tmp_path)


def test_missing_path():
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset("/does/not/exist.npz")


def test_npz_splits_and_xy(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "a.npz",
        train=rng.random((20, 784)).astype(np.float32),
        test=rng.random((5, 784)),
        train_labels=np.arange(20) % 10,
    )
    ds = load_dataset(tmp_path / "a.npz")
    assert list(ds.splits) == ["train", "test"] and ds.image_shape == (28, 28)
    assert ds.split("train").y[3] == 3 and ds.split("test").y is None
    np.savez(tmp_path / "b.npz", x=rng.normal(size=(30, 2)), y=np.zeros(30, int))
    ds = load_dataset(tmp_path / "b.npz")
    assert ds.image_shape is None and ds.split().x.shape == (30, 2)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"foo": np.zeros((3, 3))}, "need 'train'"),
        ({"x": np.array([[1.0, np.nan], [0.0, 0.0]])}, "NaN"),
        ({"x": np.zeros((3,))}, "shape"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4, int)}, "4 labels for 3"),
        ({"x": np.array([["a", "b"]])}, "dtype"),
        ({"train": np.zeros((3, 4)), "test": np.zeros((3, 5))}, "disagree"),
        ({"x": np.zeros((0, 2))}, "empty"),
    ],
)
def test_npz_bad_contents(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path / "bad.npz")


def test_npz_pickled_object_arrays_are_never_loaded(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"evil": 1}, None], dtype=object))
    with pytest.raises(DatasetError, match="never loaded"):
        load_dataset(tmp_path / "obj.npz")


def test_npz_truncated(tmp_path):
    np.savez(tmp_path / "t.npz", x=np.zeros((100, 2)))
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="t.npz"):
        load_dataset(tmp_path / "t.npz")


def test_builtin_digits_is_the_bundled_test_set():
    ds = load_dataset("digits")
    split = ds.split()
    assert split.x.shape == (10000, 784) and ds.image_shape == (28, 28)
    assert np.bincount(split.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("name", ["blobs", "moons", "rings", "pinwheel", "anisotropic"])
def test_toy_sets_seeded_and_sized(name):
    a = load_dataset(f"{name}:n=300,seed=4").split()
    b = load_dataset(f"{name}:n=300,seed=4").split()
    c = load_dataset(f"{name}:n=300,seed=5").split()
    assert a.x.shape == (300, 2) and np.isfinite(a.x).all()
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("blobs:n", "key=value"),
        ("blobs:n=abc", "not a number"),
        ("blobs:bogus=3", "bogus"),
        ("nonsense", "no such file or folder.*one of digits"),
    ],
)
def test_bad_builtin_specs(spec, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(spec)


BAD_BUILTIN_ARGS = [
    ("moons:n=-5", "n=-5 is not allowed.*1 to 2,000,000"),
    ("moons:seed=-1", "seed=-1 is not allowed.*from 0"),
    ("rings:n=0", "n=0 is not allowed"),
    ("pinwheel:n=3,k=0", "k=0 is not allowed.*1 to 1,000"),
    ("blobs:k=-1", "k=-1 is not allowed"),
    ("blobs:n=10000000000", "n=10000000000 is not allowed"),
    ("moons:noise=nan", "noise=nan is not allowed.*finite"),
    ("moons:noise=inf", "noise=inf is not allowed"),
    ("moons:noise=-0.1", "noise=-0.1 is not allowed"),
    ("blobs:spread=1e300", "spread=1e\\+300 is not allowed"),
    ("rings:radii=nan", "radii=nan is not allowed"),
    ("moons:n=1.5", "whole number"),
    ("anisotropic:k=1001", "k=1001 is not allowed"),
    ("blobs:seed=18446744073709551616", "seed=18446744073709551616 is not allowed"),
    ("pinwheel:rate=nan", "rate=nan is not allowed"),
    ("pinwheel:radial_std=1e6", "float32 range"),
    ("moons:n=3,n=4", "given twice"),
    ("moons:bogus=1", "no argument 'bogus'; it takes n, seed, noise"),
    ("digits:n=3", "digits takes no arguments"),
]


@pytest.mark.parametrize("spec, message", BAD_BUILTIN_ARGS)
def test_builtin_arguments_are_validated(spec, message):
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(spec)
    assert repr(spec) in str(info.value)


def test_builtin_argument_edges_are_accepted():
    assert len(load_dataset("moons:n=1,seed=0,noise=0").split()) == 1
    assert len(load_dataset("blobs:n=1e3,k=1000,seed=18446744073709551615").split()) == 1000
    assert load_dataset("rings:n=10,radii=3").split().y.max() == 0  # one radius, one ring


def test_toy_functions_validate_direct_calls():
    from lvm.data.toy import blobs, rings

    with pytest.raises(DatasetError, match="blobs: n=-1 is not allowed"):
        blobs(n=-1)
    with pytest.raises(DatasetError, match="rings: radii=-1.0 is not allowed"):
        rings(radii=(1.0, -1.0))
    x, y = rings(n=50, radii=[1.0, 2.0, 3.0])
    assert x.shape == (50, 2) and set(y.tolist()) <= {0, 1, 2}


def test_bad_builtin_arguments_exit_2_without_traceback(capsys):
    from lvm.cli import main

    for spec, _ in BAD_BUILTIN_ARGS:
        assert main(["data", "info", spec]) == 2, spec
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("lvm data: error:") and spec in err, err


def test_path_with_colon_and_comma_is_a_file_not_a_spec(tmp_path):
    np.savez(tmp_path / "run:1,b.npz", x=np.zeros((3, 2)))
    assert len(load_dataset(tmp_path / "run:1,b.npz").split()) == 3


def _npz_with_member(path, name, payload, compress=zipfile.ZIP_STORED):
    np.savez(path, y=np.zeros(3, np.int64))  # a valid npz, then one hand-made member
    with zipfile.ZipFile(path, "a", compression=compress) as zf:
        zf.writestr(name, payload)


def _npy_header_bytes(shape, descr="<f8"):
    buf = io.BytesIO()
    write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize(
    "payload, message",
    [
        (_npy_header_bytes((10**12,)) + b"\x00" * 16, "claims shape \\(1000000000000,\\).*holds 16"),
        (_npy_header_bytes((3, 2)) + b"\x00" * 47, "holds 47"),
        (_npy_header_bytes((0, 2**40, 2**40)), "over the .*-byte limit"),
        (_npy_header_bytes((3, -2)), "negative shape"),
        (_npy_header_bytes((3,), descr="|O"), "never loaded"),
        (b"plain text, not an array", "not a NumPy .npy array"),
    ],
)
def test_npz_member_headers_checked_before_loading(tmp_path, payload, message):
    _npz_with_member(tmp_path / "m.npz", "x.npy", payload)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(tmp_path / "m.npz")
    assert "m.npz[x.npy]" in str(info.value)


def test_npz_size_cap(tmp_path, monkeypatch):
    import lvm.data.datasets as datasets

    np.savez(tmp_path / "big.npz", x=np.zeros((100, 4)))  # 3,200 bytes
    assert len(load_dataset(tmp_path / "big.npz").split()) == 100
    monkeypatch.setattr(datasets, "MAX_NPZ_BYTES", 1000)
    with pytest.raises(DatasetError, match="big.npz\\[x.npy\\].*over the 1,000-byte limit"):
        load_dataset(tmp_path / "big.npz")
    np.savez(tmp_path / "two.npz", x=np.zeros((100, 1)), y=np.zeros(100))  # 800 bytes each, 1,600 together
    with pytest.raises(DatasetError, match="two.npz: its arrays hold over 1,000 bytes together"):
        load_dataset(tmp_path / "two.npz")


def test_npz_compressed_and_fortran_arrays_still_load(tmp_path):
    x = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    np.savez_compressed(tmp_path / "c.npz", x=x, y=np.arange(4))
    split = load_dataset(tmp_path / "c.npz").split()
    np.testing.assert_array_equal(split.x, x)
    assert split.y.tolist() == [0, 1, 2, 3]


def test_binarization_modes():
    x = torch.linspace(0, 1, 10001)
    assert torch.equal(binarize(x, "none"), x)
    assert set(binarize(x, "threshold").unique().tolist()) == {0.0, 1.0}
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = binarize(x, "dynamic", generator=g1), binarize(x, "dynamic", generator=g2)
    assert torch.equal(a, b)  # seeded
    assert not torch.equal(a, binarize(x, "dynamic", generator=g1))  # fresh sample per use
    assert abs(a.mean().item() - 0.5) < 0.02  # E[b] = x
    with pytest.raises(ValueError):
        binarize(x, "bogus")


@pytest.mark.mnist
def test_shared_mnist_loads(shared_data):
    ds = load_dataset(shared_data / "mnist")
    assert len(ds.split("train")) == 60000 and len(ds.split("test")) == 10000
    assert np.bincount(ds.split("train").y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(ds.split("train").x.mean() * 255 - 33.3184) < 1e-3
    bin_ds = load_dataset(shared_data / "binarized_mnist" / "binarized_mnist.npz")
    assert [len(bin_ds.split(s)) for s in ("train", "valid", "test")] == [50000, 10000, 10000]


def test_data_info_cli(capsys):
    from lvm.cli import main

    assert main(["data", "info", "digits", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"count": 10000' in out and '"9": 1009' in out
    assert main(["data", "info", "/no/such/place"]) == 2
    assert "no such file" in capsys.readouterr().err
