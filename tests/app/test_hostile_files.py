"""Hostile and broken files (hypothesis): every file the app reads gives the library's clear error naming the file.

IDX (truncated, wrong magic, absurd headers, byte flips, gzip), npz (wrong keys, dtypes, shapes, NaN, pickled object
arrays, .npy or random bytes in disguise), checkpoints (another architecture, truncated, wrong dtype, NaN weights,
edited headers, random byte flips) and session files (any field missing or wrong, random JSON): each either loads or
raises DatasetError / CheckpointError / SessionError whose message names the file — never another exception.
The CLI exits 2 without a traceback; the GUI shows a message and keeps the current session.

The number of cases tried (hypothesis examples plus fixed cases) is printed at the end of the module.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import struct
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.core.workspace import Workspace, read_session
from lvm.checkpoint import load_model, save_model
from lvm.data import encode_idx, load_dataset, read_idx
from lvm.errors import CheckpointError, DatasetError, SessionError
from lvm.models.vae import VAE

CASES: Counter = Counter()
EXAMPLES = int(os.environ.get("LVM_HOSTILE_EXAMPLES", "60"))  # per property; raise it for a long run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _report_cases(request):
    yield
    total = sum(CASES.values())
    line = f"hostile files: {total} cases tried (" + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items())) + ")"
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print("\n" + line)


@contextlib.contextmanager
def scratch():
    with tempfile.TemporaryDirectory(prefix="lvm-hostile-") as d:
        yield Path(d)


def expect_clear_error(fn, error, name: str):
    """``fn()`` succeeds or raises ``error`` whose message contains ``name``; anything else fails the test."""
    try:
        return fn()
    except error as exc:
        assert name in str(exc), f"the message does not name {name}: {exc}"
        return None


# -- IDX ---------------------------------------------------------------------------------------------------------------
def _valid_idx(rng: np.random.Generator, n: int = 3) -> bytes:
    return encode_idx(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))


idx_mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 3 * 784 + 20)),
    st.tuples(st.just("magic"), st.binary(min_size=2, max_size=2)),
    st.tuples(st.just("code"), st.integers(0, 255)),
    st.tuples(st.just("ndim"), st.integers(0, 255)),
    st.tuples(st.just("dims"), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=50)),
    st.tuples(
        st.just("flip"), st.lists(st.tuples(st.integers(0, 3 * 784 + 15), st.integers(1, 255)), min_size=1, max_size=8)
    ),
)


def _mutate_idx(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[:arg])
    if kind == "magic":
        b[0:2] = arg
    elif kind == "code":
        b[2] = arg
    elif kind == "ndim":
        b[3] = arg
    elif kind == "dims":
        return bytes([0, 0, 0x08, len(arg)]) + struct.pack(f">{len(arg)}I", *arg) + bytes(b[16:])
    elif kind == "append":
        return bytes(b) + arg
    elif kind == "flip":
        for pos, x in arg:
            if pos < len(b):
                b[pos] ^= x
    return bytes(b)


@FUZZ
@given(mutation=idx_mutation, gz=st.booleans(), labels=st.booleans(), seed=st.integers(0, 2**16))
def test_idx_folders_only_raise_dataset_error(mutation, gz, labels, seed):
    """A folder in MNIST layout whose images (or labels) file is damaged: load_dataset names that file."""
    CASES["idx"] += 1
    rng = np.random.default_rng(seed)
    images = _valid_idx(rng)
    label_bytes = encode_idx(rng.integers(0, 10, size=3, dtype=np.uint8))
    if labels:
        label_bytes = _mutate_idx(label_bytes, mutation)
    else:
        images = _mutate_idx(images, mutation)
    with scratch() as d:
        suffix = ".gz" if gz else ""
        img_path, lab_path = d / f"t10k-images-idx3-ubyte{suffix}", d / f"t10k-labels-idx1-ubyte{suffix}"
        pack = (lambda x: gzip.compress(x, mtime=0)) if gz else (lambda x: x)
        img_path.write_bytes(pack(images))
        lab_path.write_bytes(pack(label_bytes))
        bad = lab_path.name if labels else img_path.name
        ds = expect_clear_error(lambda: load_dataset(d), DatasetError, bad)
        if ds is not None:
            x = ds.split().x
            assert x.dtype == np.float32 and x.ndim == 2 and np.isfinite(x).all()


@FUZZ
@given(data=st.binary(max_size=200), cut=st.integers(0, 200))
def test_truncated_or_random_gzip_names_the_file(data, cut):
    CASES["idx-gzip"] += 1
    with scratch() as d:
        path = d / "train-images-idx3-ubyte.gz"
        path.write_bytes(gzip.compress(data, mtime=0)[:cut])
        expect_clear_error(lambda: read_idx(path), DatasetError, path.name)


@pytest.mark.parametrize("dims", [(10**6, 10**6), (1000, 1000, 1000, 1000), (2**32 - 1, 2**32 - 1, 28)])
def test_idx_header_claiming_1e12_items_is_refused_before_allocating(tmp_path, dims):
    CASES["idx-huge"] += 1
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + b"\x00" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="refusing") as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.name in str(info.value)
    assert peak < 10 * 2**20, f"{peak / 2**20:.1f} MiB allocated before refusing"


# -- npz ---------------------------------------------------------------------------------------------------------------
NPZ_KEYS = ["train", "valid", "test", "x", "y", "train_labels", "train_y", "test_labels", "images", "foo"]


@st.composite
def npz_arrays(draw):
    arrays = {}
    for key in draw(st.lists(st.sampled_from(NPZ_KEYS), min_size=0, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["u1", "i8", "f4", "f8", "f2", "b1", "c8", "U3", "O", "V4", "M8[s]"]))
        shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=4)))
        if kind == "O":
            arr = np.empty(shape, dtype=object)
            arr.fill({"evil": 1})
        elif kind in ("U3", "V4", "M8[s]"):
            arr = np.zeros(shape, dtype=kind)
        else:
            arr = (np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) % 7).astype(kind)
            if kind in ("f4", "f8", "f2") and arr.size and draw(st.booleans()):
                arr.reshape(-1)[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        arrays[key] = arr
    return arrays


@FUZZ
@given(arrays=npz_arrays(), compressed=st.booleans())
def test_npz_contents_only_raise_dataset_error(arrays, compressed):
    CASES["npz-contents"] += 1
    with scratch() as d:
        path = d / "hostile.npz"
        (np.savez_compressed if compressed else np.savez)(path, **arrays)
        ds = expect_clear_error(lambda: load_dataset(path), DatasetError, path.name)
        if ds is not None:
            for split in ds.splits.values():
                assert split.x.dtype == np.float32 and split.x.ndim == 2 and np.isfinite(split.x).all()
                assert split.y is None or len(split.y) == len(split.x)
        if any(a.dtype == object for a in arrays.values()) and ds is None:
            pass  # refused, and never unpickled (np.load runs with allow_pickle=False)


@FUZZ
@given(
    kind=st.sampled_from(["truncate", "flip", "random", "npy", "pickle", "empty"]),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), min_size=1, max_size=6),
    noise=st.binary(max_size=300),
    compressed=st.booleans(),
)
def test_damaged_npz_files_only_raise_dataset_error(kind, cut, flips, noise, compressed):
    CASES["npz-bytes"] += 1
    buf = io.BytesIO()
    x = (np.arange(20 * 16) % 255).astype(np.uint8).reshape(20, 16)
    (np.savez_compressed if compressed else np.savez)(buf, x=x, y=np.arange(20) % 3)
    data = bytearray(buf.getvalue())
    if kind == "truncate":
        data = data[:cut]
    elif kind == "flip":
        for pos, v in flips:
            data[pos % len(data)] ^= v
    elif kind == "random":
        data = bytearray(noise)
    elif kind == "npy":  # a plain .npy renamed .npz
        b = io.BytesIO()
        np.save(b, x)
        data = bytearray(b.getvalue())
    elif kind == "pickle":
        import pickle

        data = bytearray(pickle.dumps({"x": x}))
    else:
        data = bytearray()
    with scratch() as d:
        path = d / "damaged.npz"
        path.write_bytes(bytes(data))
        expect_clear_error(lambda: load_dataset(path), DatasetError, path.name)


def test_pickled_object_arrays_are_never_unpickled(tmp_path, monkeypatch):
    CASES["npz-pickle"] += 1
    import pickle

    calls = []
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append(a) or {})
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(a) or {})
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DatasetError, match="evil.npz"):
        load_dataset(path)
    assert not calls


# -- checkpoints -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_checkpoint() -> bytes:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "good.safetensors"
        save_model(VAE(data_dim=16, latent_dim=2, hidden=(8,), image_shape=(4, 4)), path, {"epochs": 1})
        return path.read_bytes()


def _split_checkpoint(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join_checkpoint(header: dict, payload: bytes) -> bytes:
    h = json.dumps(header).encode()
    return len(h).to_bytes(8, "little") + h + payload


config_edit = st.one_of(
    st.tuples(
        st.sampled_from(["data_dim", "latent_dim", "min_log_var"]),
        st.one_of(st.integers(-5, 10**15), st.floats(allow_nan=True), st.text(max_size=5), st.none()),
    ),
    st.tuples(
        st.just("hidden"),
        st.one_of(
            st.lists(st.one_of(st.integers(-3, 10**13), st.floats()), max_size=3),
            st.integers(),
            st.text(max_size=4),
            st.none(),
        ),
    ),
    st.tuples(st.sampled_from(["activation", "decoder"]), st.one_of(st.text(max_size=8), st.integers(), st.none())),
    st.tuples(st.just("image_shape"), st.one_of(st.none(), st.lists(st.integers(-2, 50), max_size=3), st.text())),
    st.tuples(st.just("unknown_key"), st.integers()),
)


@FUZZ
@example(edit=("hidden", [10**13]))
@example(edit=("hidden", [float("inf")]))
@example(edit=("image_shape", [-1, 16]))
@given(edit=config_edit)
def test_checkpoint_from_another_architecture_or_edited_config(good_checkpoint, edit):
    CASES["checkpoint-config"] += 1
    header, payload = _split_checkpoint(good_checkpoint)
    config = json.loads(header["__metadata__"]["config"])
    config[edit[0]] = edit[1]
    header["__metadata__"]["config"] = json.dumps(config)
    with scratch() as d:
        path = d / "edited.safetensors"
        path.write_bytes(_join_checkpoint(header, payload))
        expect_clear_error(lambda: load_model(path), CheckpointError, path.name)


@FUZZ
@example(meta_key="config", value='{"hidden": [1e400]}', delete=False)
@example(meta_key="config", value='{"hidden": [1e300]}', delete=False)
@example(meta_key="config", value="[" * 5000, delete=False)
@given(
    meta_key=st.sampled_from(["format", "format_version", "kind", "config", "info"]),
    value=st.one_of(
        st.text(max_size=30),
        st.sampled_from(['{"hidden": [1e400]}', "[" * 5000, '"x"', "null", "1e999", '{"data_dim": 16}']),
    ),
    delete=st.booleans(),
)
def test_checkpoint_metadata_edits(good_checkpoint, meta_key, value, delete):
    CASES["checkpoint-metadata"] += 1
    header, payload = _split_checkpoint(good_checkpoint)
    if delete:
        header["__metadata__"].pop(meta_key)
    else:
        header["__metadata__"][meta_key] = value
    with scratch() as d:
        path = d / "meta.safetensors"
        path.write_bytes(_join_checkpoint(header, payload))
        expect_clear_error(lambda: load_model(path), CheckpointError, path.name)


@FUZZ
@given(
    dtype=st.sampled_from(
        [torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int8, torch.uint8, torch.bool, torch.float32]
    ),
    poison=st.sampled_from([None, float("nan"), float("inf"), -float("inf")]),
    which=st.integers(0, 3),
    drop=st.booleans(),
    extra=st.booleans(),
    reshape=st.booleans(),
)
def test_checkpoint_weights_wrong_dtype_shape_or_nan(good_checkpoint, dtype, poison, which, drop, extra, reshape):
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    CASES["checkpoint-weights"] += 1
    header, _ = _split_checkpoint(good_checkpoint)
    tensors = st_load(good_checkpoint)
    key = sorted(tensors)[which % len(tensors)]
    t = tensors[key].clone()
    if poison is not None:
        t.view(-1)[0] = poison
    t = t.to(dtype)
    if reshape:
        t = t.reshape(-1)
    tensors[key] = t
    if drop:
        tensors.pop(sorted(tensors)[(which + 1) % len(tensors)])
    if extra:
        tensors["encoder.99.weight"] = torch.zeros(2, 2)
    with scratch() as d:
        path = d / "weights.safetensors"
        path.write_bytes(st_save(tensors, metadata=header["__metadata__"]))
        model = expect_clear_error(lambda: load_model(path), CheckpointError, path.name)
        if model is not None:
            assert all(torch.isfinite(p).all() for p in model[0].parameters())


@FUZZ
@given(
    kind=st.sampled_from(["truncate", "flip", "flip-header", "random"]),
    cut=st.integers(0, 3000),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=10),
    noise=st.binary(max_size=400),
)
def test_truncated_or_byte_flipped_checkpoints(good_checkpoint, kind, cut, flips, noise):
    CASES["checkpoint-bytes"] += 1
    data = bytearray(good_checkpoint)
    n = int.from_bytes(data[:8], "little")
    if kind == "truncate":
        data = data[: cut % len(data)]
    elif kind == "flip":
        for pos, v in flips:
            data[pos % len(data)] ^= v
    elif kind == "flip-header":
        for pos, v in flips:
            data[pos % (n + 8)] ^= v
    else:
        data = bytearray(noise)
    with scratch() as d:
        path = d / "flipped.safetensors"
        path.write_bytes(bytes(data))
        model = expect_clear_error(lambda: load_model(path), CheckpointError, path.name)
        if model is not None:
            assert all(torch.isfinite(p).all() for p in model[0].parameters())


# -- sessions ----------------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
SESSION_FIELDS = [
    "format",
    "version",
    "dataset",
    "split",
    "model",
    "selected_index",
    "q",
    "device",
    "seeds",
    "current_view",
    "views",
]


def _valid_session() -> dict:
    d = Workspace(device="cpu").session_dict()
    d.update(
        dataset="digits",
        split="test",
        selected_index=3,
        current_view="latent",
        q={"mean": [0.1, 0.2], "scale_tril": [[1.0, 0.0], [0.5, 1.0]]},
        seeds={"global": 1, "latent": 2},
        views={"latent": {"grid_n": 10}},
    )
    return d


def _check_session(raw):
    """What open_session relies on after read_session accepted a file."""
    assert isinstance(raw["dataset"], str)
    for seed in raw.get("seeds", {}).values():
        np.random.default_rng(seed)
        torch.Generator().manual_seed(seed)


@FUZZ
@example(field="seeds", value={"global": -3}, delete=False)
@example(field="seeds", value={"inpainting": 2**70}, delete=False)
@given(
    field=st.sampled_from(SESSION_FIELDS),
    value=json_values | st.dictionaries(st.text(max_size=8), st.integers(-(2**70), 2**70), max_size=3),
    delete=st.booleans(),
)
def test_session_fields_missing_or_wrong(field, value, delete):
    CASES["session-fields"] += 1
    d = _valid_session()
    if delete:
        d.pop(field)
    else:
        d[field] = value
    with scratch() as tmp:
        path = tmp / "lesson.lvmsession"
        path.write_text(json.dumps(d))
        raw = expect_clear_error(lambda: read_session(path), SessionError, path.name)
        if raw is not None:
            _check_session(raw)


@FUZZ
@given(doc=json_values, raw_bytes=st.binary(max_size=100), as_bytes=st.booleans())
def test_random_json_and_bytes_as_session(doc, raw_bytes, as_bytes):
    CASES["session-random"] += 1
    with scratch() as tmp:
        path = tmp / "random.lvmsession"
        if as_bytes:
            path.write_bytes(raw_bytes)
        else:
            path.write_text(json.dumps(doc))
        raw = expect_clear_error(lambda: read_session(path), SessionError, path.name)
        if raw is not None:
            _check_session(raw)


# -- the command line: exit 2, no traceback ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, content",
    [
        ("bad.npz", b"PK\x03\x04 truncated zip"),
        ("bad.npz", b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }" + b" " * 50),
        ("t10k-images-idx3-ubyte", bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10**6, 10**3, 10**3)),
    ],
)
def test_cli_data_info_bad_file_exits_2_without_traceback(tmp_path, capsys, name, content):
    from lvm.cli import main

    CASES["cli"] += 1
    path = tmp_path / name
    path.write_bytes(content)
    target = tmp_path if name.startswith("t10k") else path
    assert main(["data", "info", str(target)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and name in err and err.startswith("lvm data: error:")


def test_cli_data_info_in_a_subprocess(tmp_path):
    import subprocess
    import sys

    CASES["cli"] += 1
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not an archive at all")
    out = subprocess.run(
        [sys.executable, "-m", "lvm", "data", "info", str(path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr and "broken.npz" in out.stderr


# -- the GUI: a message, the session untouched -------------------------------------------------------------------------
def _state(window):
    ws = window.workspace
    return (ws.dataset, ws.dataset_spec, ws.model, ws.model_path, ws.selected_index, ws.q, dict(ws.seeds))


def test_gui_bad_idx_folder_keeps_the_session(qtbot, workspace_window, tmp_path):
    CASES["gui"] += 1
    window = workspace_window
    window.workspace.select(5)
    before = _state(window)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10, 28, 28) + b"\0")
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        window.load_dataset(str(tmp_path))
    assert _state(window) == before
    assert "t10k-images-idx3-ubyte" in window.last_error and "truncated" in window.last_error


def test_gui_bad_checkpoint_keeps_the_session(qtbot, workspace_window, tmp_path, good_checkpoint):
    CASES["gui"] += 1
    window = workspace_window
    before = _state(window)
    path = tmp_path / "cut.safetensors"
    path.write_bytes(good_checkpoint[: len(good_checkpoint) // 2])
    with qtbot.waitSignal(window.loading_finished, timeout=30000):
        window.load_model(str(path))
    assert _state(window) == before
    assert "cut.safetensors" in window.last_error


def test_gui_bad_session_field_keeps_the_session(qtbot, workspace_window, tmp_path):
    CASES["gui"] += 1
    window = workspace_window
    window.workspace.select(7)
    before = _state(window)
    d = _valid_session()
    d["seeds"] = {"global": -3}
    path = tmp_path / "wrong.lvmsession"
    path.write_text(json.dumps(d))
    window.open_session(str(path))
    # refused when read (nothing loads); were it refused by a loading worker, this waits for that worker's answer
    qtbot.waitUntil(lambda: not window.is_loading() and "wrong.lvmsession" in window.last_error, timeout=30000)
    assert _state(window) == before
    assert "wrong.lvmsession" in window.last_error and "seeds" in window.last_error


@settings(
    max_examples=max(10, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_gui_labs_tolerate_any_view_state_in_a_session(qtbot, workspace_window, excepthook_errors, data):
    """Session "views" are restored by each lab's restore_view_state: junk keys and values are ignored."""
    CASES["session-views"] += 1
    window = workspace_window
    for name in ("mixture", "latent", "inference", "inpainting", "infinite", "discrete"):
        lab = window.lab(name)
        keys = list(lab.view_state()) + ["junk"]
        state = data.draw(st.dictionaries(st.sampled_from(keys), json_values, max_size=4), label=name)
        lab.restore_view_state(state)
        lab.view_state()
    qtbot.wait(10)  # a negative check: lets a queued slot that would raise run; it waits for nothing to finish
    assert not excepthook_errors, "\n".join(excepthook_errors)


@pytest.fixture
def excepthook_errors(monkeypatch):
    import sys
    import traceback

    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: seen.append("".join(traceback.format_exception(*exc))))
    return seen


# -- npz headers claiming huge arrays (appended with the npz header check) ---------------------------------------------
@pytest.mark.parametrize("shape", [(10**12,), (2**31, 2**31), (10**6, 10**6, 784)])
@pytest.mark.parametrize("compressed", [False, True])
def test_npz_header_claiming_huge_array_is_refused_before_allocating(tmp_path, shape, compressed):
    import zipfile

    from numpy.lib.format import write_array_header_1_0

    CASES["npz-huge"] += 1
    path = tmp_path / "huge.npz"
    np.savez(path, y=np.zeros(3, np.int64))
    header = io.BytesIO()
    write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as zf:
        zf.writestr("x.npy", header.getvalue() + b"\x00" * 64)
    error, peak = _error_and_peak_bytes(lambda: load_dataset(path))
    assert isinstance(error, DatasetError) and "claims shape" in str(error) and "huge.npz[x.npy]" in str(error), error
    assert peak < 10 * 2**20, f"{peak / 2**20:.1f} MiB allocated before refusing"


def _error_and_peak_bytes(fn) -> tuple[BaseException | None, int]:
    """What ``fn()`` raised (None if nothing) and the peak bytes traced while it ran."""
    tracemalloc.start()
    try:
        fn()
        error = None
    except Exception as exc:  # noqa: BLE001 - returned for the caller to check
        error = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, peak
