"""Animations and figures from the app (issue 16, "Slides and figures"), through real widgets: each lab's history is
exported by ``app.widgets.animation_export`` as a GIF (re-opened with Pillow: one frame per history entry, the size
asked for) and as a PNG sequence; the display comes back to where the user had it; bad settings or places are refused
before anything is drawn and leave no file; File → Export view as PNG takes a scale."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QSize

from app.widgets.animation_export import (
    AnimationDialog,
    AnimationExport,
    ExportProgress,
    FigureDialog,
    compose_frame,
    render_widget,
    start_animation_export,
    to_pil,
)
from lvm.animation import ExportError


def export(qtbot, lab, path, size=(320, 200), fps=5.0) -> tuple[bool, str]:
    """Run an export of ``lab``'s history to its end; (ok, message)."""
    job = AnimationExport(lab, path, size, fps)
    with qtbot.waitSignal(job.finished, timeout=60000) as signal:
        job.start()
    return tuple(signal.args)


def gif_frames(path) -> tuple[int, tuple[int, int], list[int]]:
    with Image.open(path) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info.get("duration"))
        return im.n_frames, im.size, durations


# -- the Mixture lab: EM's half steps ----------------------------------------------------------------------------------
@pytest.fixture
def mixture(open_lab):
    from app.labs.mixture.view import SPEED_MAX, MixtureLab

    lab = open_lab(MixtureLab, dataset=None)
    lab.speed.setValue(SPEED_MAX)
    lab.state.first_fit = False
    return lab


def run_em_steps(qtbot, lab, halves: int) -> None:
    """Reset, then ``halves`` clicks on E-step / M-step (real buttons), waiting for each."""
    lab.reset_button.click()
    qtbot.waitUntil(lambda: len(lab.history) == 1 and not lab.is_em_running(), timeout=30000)
    for i in range(halves):
        n = len(lab.history)
        (lab.e_button if i % 2 == 0 else lab.m_button).click()
        qtbot.waitUntil(lambda n=n: len(lab.history) == n + 1 and not lab.is_em_running(), timeout=30000)


def test_mixture_em_half_steps_export_as_gif_with_one_frame_each(qtbot, mixture, tmp_path):
    lab = mixture
    assert lab.animation_problem()  # nothing yet
    run_em_steps(qtbot, lab, 5)
    assert len(lab.history) == 6 and lab.animation_problem() is None and lab.animation_frame_count() == 6
    lab.history_slider.setValue(2)  # the user looks at step 2
    assert lab.shown == 2
    ok, message = export(qtbot, lab, tmp_path / "em.gif", size=(320, 200), fps=5)
    assert ok, message
    n, size, durations = gif_frames(tmp_path / "em.gif")
    assert (n, size) == (6, (320, 200))
    assert durations == [200] * 6  # 1/5 s
    assert lab.shown == 2 and lab.history_slider.value() == 2 and not lab.state.history.follow  # back where it was
    assert "6 frames" in message
    assert [p.name for p in tmp_path.iterdir()] == ["em.gif"]  # no temporary file left


def test_mixture_png_sequence_and_the_frames_show_each_step(qtbot, mixture, tmp_path):
    lab = mixture
    run_em_steps(qtbot, lab, 3)
    ok, message = export(qtbot, lab, tmp_path / "frames", size=(300, 220))
    assert ok, message
    files = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert files == [f"frame_{i:04d}.png" for i in range(1, 5)]
    images = [np.asarray(Image.open(tmp_path / "frames" / f).convert("RGB")) for f in files]
    assert all(im.shape == (220, 300, 3) for im in images)
    # the init frame has grey points, the E-step frame coloured ones: the pictures differ above the caption too
    assert np.abs(images[0][:180].astype(int) - images[1][:180].astype(int)).sum() > 0
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
    # an earlier sequence in the folder is replaced whole
    run_em_steps(qtbot, lab, 1)
    ok, _ = export(qtbot, lab, tmp_path / "frames", size=(300, 220))
    assert ok and sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_0001.png", "frame_0002.png"]


def test_export_refuses_bad_settings_and_places_and_leaves_nothing(qtbot, mixture, tmp_path):
    lab = mixture
    run_em_steps(qtbot, lab, 1)
    with pytest.raises(ExportError, match="width"):
        AnimationExport(lab, tmp_path / "a.gif", (0, 200), 5)
    with pytest.raises(ExportError, match="frame rate"):
        AnimationExport(lab, tmp_path / "a.gif", (320, 200), 0)
    with pytest.raises(ExportError, match=r"\.mp4"):
        AnimationExport(lab, tmp_path / "a.mp4", (320, 200), 5)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="other files"):
        AnimationExport(lab, tmp_path / "notes/", (320, 200), 5)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        AnimationExport(lab, tmp_path / "file" / "a.gif", (320, 200), 5)
    if os.geteuid() != 0:  # (root writes anywhere)
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(ExportError, match="no permission"):
                AnimationExport(lab, locked / "a.gif", (320, 200), 5)
        finally:
            locked.chmod(stat.S_IRWXU)
    expected = ["file", "notes"] if os.geteuid() == 0 else ["file", "locked", "notes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["mine.txt"]


def test_cancel_and_interruptions_write_nothing_and_restore_the_view(qtbot, mixture, tmp_path):
    lab = mixture
    run_em_steps(qtbot, lab, 4)
    lab.history_slider.setValue(1)
    job = AnimationExport(lab, tmp_path / "em.gif", (320, 200), 5)
    with qtbot.waitSignal(job.finished, timeout=30000) as signal:
        job.start()
        qtbot.waitUntil(lambda: job.done >= 1, timeout=30000)
        job.cancel()
    assert signal.args[0] is False and "cancelled" in signal.args[1]
    assert lab.shown == 1 and list(tmp_path.iterdir()) == []
    # the status bar's Cancel and progress in a window; a GIF over an existing file replaces it only when done
    from PySide6.QtWidgets import QMainWindow

    window = QMainWindow()
    qtbot.addWidget(window)
    errors: list[str] = []
    window.show_error = errors.append
    (tmp_path / "old.gif").write_bytes(b"old")
    job = start_animation_export(window, lab, str(tmp_path / "old.gif"), (320, 200), 5)
    progress = window.statusBar().findChild(ExportProgress, "animation-export-progress")
    assert job is not None and job.running and progress is not None
    with qtbot.waitSignal(job.finished, timeout=30000):
        qtbot.waitUntil(lambda: job.done >= 1, timeout=30000)
        assert (tmp_path / "old.gif").read_bytes() == b"old"  # not yet replaced
        assert progress.bar.value() >= 1
        progress.cancel_button.click()
    assert (tmp_path / "old.gif").read_bytes() == b"old" and errors and "cancelled" in errors[-1]
    assert start_animation_export(window, lab, str(tmp_path / "x.gif"), (10, 10), 5) is None
    assert "width" in errors[-1]


def test_input_to_the_lab_is_held_back_while_exporting(qtbot, mixture, tmp_path):
    from PySide6.QtCore import Qt

    lab = mixture
    run_em_steps(qtbot, lab, 2)
    job = AnimationExport(lab, tmp_path / "em.gif", (320, 200), 5)
    with qtbot.waitSignal(job.finished, timeout=30000):
        job.start()
        n = len(lab.history)
        qtbot.mouseClick(lab.e_button, Qt.MouseButton.LeftButton)  # held back: no new half step
    assert len(lab.history) == n and not lab.is_em_running()


# -- helpers -----------------------------------------------------------------------------------------------------------
def test_frames_are_rendered_at_the_size_asked_and_carry_their_caption(qtbot):
    from PySide6.QtWidgets import QLabel

    label = QLabel("a view")
    label.resize(200, 100)
    qtbot.addWidget(label)
    image = render_widget(label, QSize(400, 400))  # twice as large, letterboxed
    assert (image.width(), image.height()) == (400, 400)
    a = to_pil(compose_frame(label, QSize(300, 180), "step one", 0, 2))
    b = to_pil(compose_frame(label, QSize(300, 180), "step one", 1, 2))
    assert a.size == (300, 180) and a.mode == "RGB"
    assert np.asarray(a).tobytes() != np.asarray(b).tobytes()  # "1 / 2" and "2 / 2" differ: no GIF frame merges


def test_dialogs_offer_format_size_fps_and_scale(qtbot, mixture):
    lab = mixture
    run_em_steps(qtbot, lab, 1)
    dialog = AnimationDialog(lab)
    qtbot.addWidget(dialog)
    kind, (w, h), fps = dialog.settings()
    assert kind == "gif" and w == 960 and 200 < h < 960 and fps == 4.0
    dialog.format_combo.setCurrentIndex(1)
    dialog.width_spin.setValue(640)
    assert dialog.settings()[0] == "png" and dialog.settings()[1][0] == 640
    figure = FigureDialog(lab)
    qtbot.addWidget(figure)
    figure.width_spin.setValue(lab.width() * 3)
    assert figure.scale() == pytest.approx(3.0, abs=0.01) and f"{lab.width() * 3} ×" in figure.result_label.text()


def test_export_view_as_png_takes_a_scale(qtbot, workspace_window, tmp_path):
    window = workspace_window
    window.set_view("mixture")
    widget = window.lab("mixture").export_widget()
    window.export_view(str(tmp_path / "x2.png"), scale=2.0)
    window.export_view(str(tmp_path / "x1.png"))
    with Image.open(tmp_path / "x2.png") as im:
        assert im.size == (2 * widget.width(), 2 * widget.height())
        assert im.info["dpi"] == pytest.approx((192, 192), abs=1)
    with Image.open(tmp_path / "x1.png") as im:
        assert im.size[0] >= widget.width()  # (as before: a grab, at the screen's pixel ratio)
    window.export_view(str(tmp_path / "bad.png"), scale=100.0)
    assert "scale" in window.last_error and not (tmp_path / "bad.png").exists()


# -- the Inference lab: q's path while it is optimised ----------------------------------------------------------------
@pytest.fixture
def inference(qtbot, open_lab, tiny_vae):
    from app.labs.inference.view import InferenceLab

    lab = open_lab(InferenceLab, tiny_vae)
    lab.activate()
    qtbot.waitUntil(lambda: lab.picture is not None, timeout=60000)
    return lab


def test_inference_q_path_exports_one_frame_per_snapshot_and_q_comes_back(qtbot, inference, tmp_path):
    lab, kl = inference, inference.kl
    assert "optimise" in lab.animation_problem()
    kl.prior_button.click()
    kl.optimise(steps=20, lr=0.1)  # snapshots every 2 steps: 0, 2, ..., 20
    assert lab.animation_problem()  # (while it runs)
    qtbot.waitUntil(lambda: [s.step for s in lab.state.q_path] == list(range(0, 21, 2)), timeout=60000)
    qtbot.waitUntil(lambda: not kl.is_optimising(), timeout=60000)
    kl.prior_button.click()  # the user moves q on; the path stays for export
    lab.set_panel("onedim")
    before = lab.state.q()
    ok, message = export(qtbot, lab, tmp_path / "vi.gif", size=(400, 260), fps=10)
    assert ok, message
    assert gif_frames(tmp_path / "vi.gif")[:2] == (11, (400, 260))
    after = lab.state.q()
    assert np.allclose(after[0], before[0]) and np.allclose(after[1], before[1])
    assert lab.current_panel_name() == "onedim"
    assert lab.workspace.q is not None and np.allclose(lab.workspace.q.mean, before[0])  # never published
    # another x: its path is another one
    lab.workspace.select(1)
    qtbot.waitUntil(lambda: lab.state.index == 1, timeout=10000)
    assert lab.animation_frame_count() == 0 and lab.animation_problem()


# -- the Latent lab: training epochs ----------------------------------------------------------------------------------
def test_latent_training_epochs_export_with_one_frame_each(qtbot, workspace_window, tmp_path):
    from lvm.models.vae import VAE

    window = workspace_window
    torch.manual_seed(0)
    window.workspace.set_model(VAE(data_dim=784, latent_dim=2, hidden=(32,)).eval(), None, {})
    window.set_view("latent")
    lab = window.lab("latent")
    qtbot.waitUntil(lambda: len(lab.mu) == 10000 and not lab.is_busy(), timeout=30000)
    assert "train" in lab.animation_problem()
    before_mu = lab.mu.copy()
    lab.train_panel.epochs.setValue(2)
    lab.train_panel.train_button.click()
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=120000)
    run = lab.run
    assert [f.epoch for f in run.frames] == [0.0, 1.0, 2.0]
    assert run.frames[0].mu.shape == (2000, 2) and run.frames[0].mosaic.dtype == np.uint8
    assert np.allclose(run.frames[0].mu, before_mu[run.frame_rows], atol=1e-5)  # epoch 0: the model as it was
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
    curve = lab.train_panel.train_curve.getData()[0].copy()
    ok, message = export(qtbot, lab, tmp_path / "train", size=(480, 300), fps=2)
    assert ok, message
    files = sorted((tmp_path / "train").iterdir())
    assert [p.name for p in files] == [f"frame_{i:04d}.png" for i in (1, 2, 3)]
    first, last = (np.asarray(Image.open(p).convert("RGB"))[:260].astype(int) for p in (files[0], files[-1]))
    assert np.abs(first - last).sum() > 0  # the means moved
    # back to the trained model's view: its encodings, its curves
    assert np.array_equal(lab.scatter.xy, lab.mu[:, :2]) and np.array_equal(
        lab.train_panel.train_curve.getData()[0], curve
    )
    assert lab.mosaic_item.isVisible()


# -- the Inpainting lab: the drawing, step by step ---------------------------------------------------------------------
def _canvas_pos(canvas, row: float, col: float):
    from PySide6.QtCore import QPoint

    r = canvas._square()
    return QPoint(int(r.left() + col / 28 * r.width()), int(r.top() + row / 28 * r.height()))


def _stroke(canvas, points) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _canvas_pos(canvas, *points[0]))
    for p in points[1:]:
        QTest.mouseMove(canvas, _canvas_pos(canvas, *p))
    QTest.mouseRelease(
        canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _canvas_pos(canvas, *points[-1])
    )


def test_inpainting_drawing_exports_one_frame_per_step_and_the_drawing_comes_back(qtbot, workspace_window, tmp_path):
    from lvm.models.vae import VAE

    window = workspace_window
    window.set_view("inpainting")
    lab = window.lab("inpainting")
    torch.manual_seed(1)
    window.workspace.set_model(VAE(hidden=(64,)).eval(), None, {})
    qtbot.waitUntil(lambda: lab.grid is not None and lab.result is not None and not lab.is_busy(), timeout=60000)
    lab.load_index(3)
    assert len(lab.state.drawing_steps) == 1
    _stroke(lab.canvas, [(18, 5), (20, 10), (22, 15)])
    _stroke(lab.canvas, [(24, 20), (25, 24)])
    lab.set_mask_preset("bottom")
    assert len(lab.state.drawing_steps) == 4
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
    image, mask, log_p = lab.canvas.image.copy(), lab.canvas.mask.copy(), lab.result.log_p_obs
    ok, message = export(qtbot, lab, tmp_path / "drawing.gif", size=(500, 300), fps=3)
    assert ok, message
    n, size, durations = gif_frames(tmp_path / "drawing.gif")
    assert (n, size) == (4, (500, 300)) and durations == [330] * 4
    assert np.array_equal(lab.canvas.image, image) and np.array_equal(lab.canvas.mask, mask)
    assert np.array_equal(lab.state.image, image.reshape(-1))
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30000)
    assert lab.result.log_p_obs == pytest.approx(log_p)
