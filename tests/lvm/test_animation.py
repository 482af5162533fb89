"""``lvm.animation`` and ``lvm animate`` (issue 16): histories drawn with matplotlib's Agg backend, written by Pillow as
a GIF (one frame per history entry, the size and frame rate asked for) or as a PNG sequence renamed into place; bad
settings or places are refused before any work and leave nothing behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lvm import animation as anim
from lvm.cli import main
from lvm.data import load_dataset


def gif_info(path) -> tuple[int, tuple[int, int], int]:
    with Image.open(path) as im:
        return im.n_frames, im.size, im.info["duration"]


def coloured(i: int, size=(80, 64)) -> Image.Image:
    return Image.new("RGB", size, (40 * i % 256, 90, 200 - 30 * i % 200))


# -- settings and writers ---------------------------------------------------------------------------------------------
def test_sizes_and_frame_rates_are_checked():
    assert anim.parse_size("640x480") == (640, 480) and anim.parse_size(" 320 X 200 ") == (320, 200)
    for bad in ("640", "0x480", "640x0", "-5x10", "axb", "99999x100"):
        with pytest.raises(anim.ExportError, match="size|width|height"):
            anim.parse_size(bad)
    for bad in (0, -1, 51, float("nan"), float("inf"), True, "4"):
        with pytest.raises(anim.ExportError, match="frame rate"):
            anim.check_fps(bad)
    assert anim.frame_duration_ms(4) == 250 and anim.frame_duration_ms(3) == 330 and anim.frame_duration_ms(50) == 20
    assert anim.output_kind("a.gif") == "gif" and anim.output_kind("frames/") == "png"
    assert anim.output_kind("frames") == "png"
    with pytest.raises(anim.ExportError, match=r"\.mp4"):
        anim.output_kind("movie.mp4")


def test_gif_reopens_with_every_frame_its_size_and_delay_and_loops(tmp_path):
    n = anim.write_animation((coloured(i) for i in range(7)), tmp_path / "a.gif", (80, 64), 5)
    assert n == 7 and gif_info(tmp_path / "a.gif") == (7, (80, 64), 200)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.info["loop"] == 0
        im.seek(3)
        assert im.convert("RGB").getpixel((10, 10)) == coloured(3).getpixel((10, 10))
    # a frame of another size is scaled to the size asked for
    anim.write_animation([coloured(0, (160, 128)), coloured(1)], tmp_path / "b.gif", (80, 64), 5)
    assert gif_info(tmp_path / "b.gif")[:2] == (2, (80, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "b.gif"]


def test_png_sequence_is_written_whole_and_replaces_an_earlier_one(tmp_path):
    out = tmp_path / "frames"
    assert anim.write_animation((coloured(i) for i in range(3)), str(out) + "/", (80, 64), 2) == 3
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    assert anim.write_animation((coloured(i) for i in range(2)), out, (80, 64), 2) == 2
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "frame_0002.png"]
    with Image.open(out / "frame_0002.png") as im:
        assert im.size == (80, 64) and im.convert("RGB").getpixel((1, 1)) == coloured(1).getpixel((1, 1))
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no temporary folder left


def test_a_failure_midway_leaves_no_file_and_the_old_one_intact(tmp_path):
    (tmp_path / "a.gif").write_bytes(b"old")

    def frames():
        yield coloured(0)
        raise RuntimeError("the lab broke")

    with pytest.raises(RuntimeError):
        anim.write_animation(frames(), tmp_path / "a.gif", (80, 64), 5)
    with pytest.raises(RuntimeError):
        anim.write_animation(frames(), tmp_path / "seq/", (80, 64), 5)
    with pytest.raises(anim.ExportError, match="no frames"):
        anim.write_animation([], tmp_path / "empty.gif", (80, 64), 5)
    assert (tmp_path / "a.gif").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]


def test_places_that_cannot_be_written_are_refused_first(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(anim.ExportError, match="is a file, not a folder"):
        anim.open_writer(tmp_path / "file" / "a.gif", (80, 64), 5)
    with pytest.raises(anim.ExportError, match="is a file"):
        anim.open_writer(str(tmp_path / "file") + "/", (80, 64), 5)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(anim.ExportError, match="other files"):
        anim.open_writer(str(tmp_path / "mine") + "/", (80, 64), 5)
    (tmp_path / "dir.gif").mkdir()
    with pytest.raises(anim.ExportError, match="is a folder"):
        anim.open_writer(tmp_path / "dir.gif", (80, 64), 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.gif", "file", "mine"]


# -- the histories ----------------------------------------------------------------------------------------------------
def test_em_history_has_every_half_step_and_its_frames_the_size_asked():
    x = load_dataset("blobs:n=200,k=3").split().x
    history = anim.em_history(x, 3, seed=1, max_iter=4)
    halves = [s.half for s in history]
    assert halves[0] == "init" and halves[1:] == ["E", "M"] * ((len(halves) - 1) // 2)
    lls = [s.log_likelihood for s in history[1:]]
    assert all(b >= a - 1e-6 for a, b in zip(lls, lls[1:], strict=False))  # EM never lowers the likelihood
    frames = list(anim.em_frames(x, history, (200, 160)))
    assert len(frames) == len(history) and all(f.size == (200, 160) and f.mode == "RGB" for f in frames)
    assert np.asarray(frames[0]).tobytes() != np.asarray(frames[1]).tobytes()
    with pytest.raises(anim.ExportError, match="k must be"):
        anim.em_history(x, 0)


def test_vi_history_raises_the_elbo_and_draws_each_snapshot(tiny_vae):
    x = load_dataset("digits").split().x[0]
    vi = anim.vi_history(tiny_vae, x, steps=12, lr=0.1, every=3)
    assert [s.step for s in vi.steps] == [0, 3, 6, 9, 12]
    assert float(vi.steps[-1].elbo) > float(vi.steps[0].elbo)
    assert float(vi.steps[-1].elbo) <= vi.log_px + 1e-3  # ELBO <= log p(x)
    frames = list(anim.vi_frames(vi, (180, 150)))
    assert len(frames) == 5 and {f.size for f in frames} == {(180, 150)}


def test_train_history_keeps_the_means_after_every_epoch():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(300, 16)) > 0.5).astype(np.float32)
    history = anim.train_history(x, rng.integers(0, 10, 300), epochs=2, hidden=(8,), n_show=50, image_shape=(4, 4))
    assert [f.epoch for f in history.frames] == [0, 1, 2]
    assert history.frames[0].mu.shape == (50, 2) and history.labels is not None and history.labels.shape == (50,)
    assert not np.allclose(history.frames[0].mu, history.frames[-1].mu)
    assert len(list(anim.train_frames(history, (120, 100)))) == 3


# -- the command line -------------------------------------------------------------------------------------------------
def test_lvm_animate_em_writes_one_frame_per_half_step(tmp_path, capsys):
    out = tmp_path / "em.gif"
    args = ["animate", "em", "--data", "blobs:n=150,k=3", "--k", "3", "--max-iter", "3", "--seed", "2"]
    assert main([*args, "--out", str(out), "--size", "160x120", "--fps", "8"]) == 0
    expected = len(anim.em_history(load_dataset("blobs:n=150,k=3").split().x, 3, seed=2, max_iter=3))
    assert gif_info(out) == (expected, (160, 120), 120)
    assert f"wrote {expected} frames" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "seq") + "/", "--size", "160x120"]) == 0
    assert len(list((tmp_path / "seq").iterdir())) == expected


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "0x120"], "width"),
        (["--size", "160"], "WIDTHxHEIGHT"),
        (["--fps", "0"], "frame rate"),
        (["--k", "0"], "k must be"),
    ],
)
def test_lvm_animate_refuses_bad_input_and_writes_nothing(tmp_path, capsys, extra, message):
    rc = main(["animate", "em", "--data", "blobs:n=60", "--max-iter", "1", "--out", str(tmp_path / "x.gif"), *extra])
    assert rc == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_lvm_animate_refuses_an_unwritable_place(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc = main(["animate", "em", "--max-iter", "1", "--out", str(tmp_path / "file" / "x.gif")])
    assert rc == 2 and "is a file, not a folder" in capsys.readouterr().err
    rc = main(["animate", "em", "--max-iter", "1", "--out", str(tmp_path / "x.avi")])
    assert rc == 2 and ".avi" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_lvm_animate_vi_and_train_small(tmp_path, pretrained_model_path, capsys):
    torch.manual_seed(0)
    out = tmp_path / "vi.gif"
    rc = main(["animate", "vi", "--steps", "4", "--every", "2", "--size", "160x140", "--out", str(out)])
    assert rc == 0 and gif_info(out)[:2] == (3, (160, 140))
    out = tmp_path / "train.gif"
    args = ["animate", "train", "--n", "200", "--epochs", "1", "--hidden", "16", "--show", "100", "--size", "160x140"]
    assert main([*args, "--out", str(out)]) == 0 and gif_info(out)[:2] == (2, (160, 140))
