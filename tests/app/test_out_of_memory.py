"""Requests too big for the machine are refused, chunked or reported before they allocate (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvm.errors import ModelInputError, out_of_memory_message


def test_a_ten_million_point_dataset_is_subsampled_in_the_mixture_lab_and_the_user_told(qtbot):
    from app.core.workers import TaskRunner
    from app.core.workspace import Workspace
    from app.labs.mixture.state import MAX_LAB_POINTS, WORKSPACE
    from app.labs.mixture.view import MixtureLab
    from lvm.data.datasets import Dataset, Split

    ws = Workspace(device="cpu")
    messages: list[str] = []
    ws.events.message.connect(messages.append)
    runner = TaskRunner()
    lab = MixtureLab(ws, runner)
    qtbot.addWidget(lab)
    n = 10_000_000
    x = np.random.default_rng(0).standard_normal((n, 2), dtype=np.float32)
    ws.set_dataset(Dataset(name="big", splits={"train": Split(x, None)}, image_shape=None, source="big.npz"), "big.npz")
    lab.source_combo.setCurrentText(WORKSPACE)
    runner.cancel()
    assert len(lab.X) == MAX_LAB_POINTS
    assert any("10,000,000" in m and f"{MAX_LAB_POINTS:,}" in m for m in messages), messages
    assert np.isin(lab.X[:100, 0], x[:, 0]).all()  # points of the dataset, not made up
    runner.shutdown(10000)


def test_a_grid_whose_tables_would_not_fit_is_decoded_chunk_by_chunk(tiny_vae, monkeypatch):
    from lvm.estimators import quadrature
    from lvm.estimators.quadrature import LatentGrid, log_marginal

    big = LatentGrid.build(tiny_vae, size=1024)  # 1024^2 x 784 float32 logits would be 3.3 GB
    assert not big.stored and big.tables == {}
    x = (torch.rand(3, 784) < 0.3).float()
    stored = LatentGrid.build(tiny_vae, size=64)
    monkeypatch.setattr(quadrature, "MAX_STORED_TABLE_BYTES", 1000)
    chunked = LatentGrid.build(tiny_vae, size=64)
    assert stored.stored and not chunked.stored
    torch.testing.assert_close(log_marginal(chunked, x), log_marginal(stored, x))


def test_a_grid_with_too_many_points_is_refused_before_allocating(tiny_vae):
    from lvm.estimators.quadrature import LatentGrid

    with pytest.raises(ModelInputError, match="100,000\\^2|10,000,000,000"):
        LatentGrid.build(tiny_vae, size=100_000)


@pytest.mark.parametrize(
    "error, says",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), "GPU ran out of memory"),
        (MemoryError(), "computer ran out of memory"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to allocate "
                "80000000000 bytes. out of memory"
            ),
            "computer ran out of memory",
        ),
    ],
)
def test_out_of_memory_in_a_worker_is_told_to_the_user_not_a_crash(qtbot, error, says):
    from app.core import workers
    from app.core.workers import TaskRunner

    runner = TaskRunner()
    messages: list[str] = []
    runner.job_error.connect(lambda channel, message: messages.append(message))

    def too_big():
        raise error

    runner.submit("lab/huge", too_big)
    qtbot.waitUntil(lambda: bool(messages), timeout=10000)
    assert says in messages[0] and "lab/huge" in messages[0]
    assert not workers.unexpected_errors  # an expected condition, not a bug
    runner.shutdown(5000)


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory():
    assert out_of_memory_message(RuntimeError("shape mismatch")) is None
    assert out_of_memory_message(ValueError("out of memory")) is None


def test_the_cli_says_out_of_memory_and_exits_2(monkeypatch, capsys):
    import lvm.cli.data as data_cli
    from lvm.cli import main

    def too_big(args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(data_cli, "run", too_big)
    assert main(["data", "info", "digits"]) == 2
    err = capsys.readouterr().err
    assert "GPU ran out of memory" in err and "--device cpu" in err


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit grey pixels (its data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_inpainting_a_png_claiming_gigapixels_is_refused_before_decoding(tmp_path, capsys, pretrained_model_path):
    from lvm.cli import main

    path = tmp_path / "huge.png"
    path.write_bytes(_png_claiming(100_000, 100_000))
    assert path.stat().st_size < 200
    code = main(
        [
            "inpaint",
            "--model",
            str(pretrained_model_path),
            "--image",
            str(path),
            "--mask",
            "top",
            "--out",
            str(tmp_path / "out.png"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "huge.png" in err and "100000 x 100000" in err, err
    assert not (tmp_path / "out.png").exists()
