"""Animations of the lecture's histories, Qt-free: where they go (an animated GIF or a folder of PNG frames, written
whole or not at all) and, for ``lvm animate``, their frames drawn with matplotlib's Agg backend.

Writers (used by the app's File → Export animation too): ``open_writer(path, size, fps)`` checks everything first
(``ExportError`` saying what to change), then ``add(image)`` per frame and ``finish()``: a ``.gif`` is encoded by
Pillow (a frame lasts 1/fps s, looping forever) and written atomically; a folder ``DIR/`` receives
``frame_0001.png`` ... from a temporary folder renamed into place. ``abort()`` leaves nothing behind.

Histories and their frames (one frame per history entry, so a GIF re-opens with as many frames as the history has):

- ``em_history`` / ``em_frames``: EM on 2-D points, one frame per half step: points coloured by the responsibilities
  r_nk = p(z=k | x_n) (grey before the first E-step), each component's 1- and 2-sigma ellipses, the mean
  log-likelihood (1/N) sum_n log p(x_n) in the title.
- ``vi_history`` / ``vi_frames``: a full-covariance Gaussian q(z) = N(m, L L^T) fitted to the exact posterior p(z|x)
  of a 2-D latent model by maximising ELBO(q) = E_q[log p(x, z) - log q(z)] (Gauss-Hermite nodes); the posterior's
  highest-density regions and q's ellipse per step, ELBO, log p(x) and their gap KL(q || p(z|x)) in the title.
- ``train_history`` / ``train_frames``: a 2-D VAE trained for a few epochs; the encoder means mu_phi(x) of a fixed
  subset per epoch (epoch 0: before the first step), coloured by label.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from lvm.errors import LVMError
from lvm.io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lvm.estimators.vi import VISnapshot
    from lvm.models.gmm import EMSnapshot

FPS_RANGE = (1.0, 50.0)  # GIF delays are whole centiseconds; viewers slow down anything faster than 50 fps
SIDE_RANGE = (64, 4096)  # pixels per side: big enough for a legible caption, small enough to hold in memory
FRAME_NAME = "frame_{:04d}.png"
_FRAME_FILE = re.compile(r"frame_\d{4,}\.png")
Kind = Literal["gif", "png"]
Size = tuple[int, int]


class ExportError(LVMError):
    """An animation or a figure cannot be written: a bad size, frame rate or place to write. Says what to change."""


# -- settings ---------------------------------------------------------------------------------------------------------
def check_size(width: object, height: object) -> Size:
    """(width, height) in pixels, each a whole number in ``SIDE_RANGE``; ExportError otherwise."""
    lo, hi = SIDE_RANGE
    sides = []
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
            raise ExportError(f"the {name} must be a whole number of pixels from {lo} to {hi}; got {value!r}")
        sides.append(int(value))
    return sides[0], sides[1]


def parse_size(text: str) -> Size:
    """``"640x480"`` -> (640, 480); ExportError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if m is None:
        raise ExportError(f"size {text!r}: write it as WIDTHxHEIGHT in pixels, e.g. 640x480")
    return check_size(int(m[1]), int(m[2]))


def check_fps(fps: object) -> float:
    """Frames per second, a finite number in ``FPS_RANGE``; ExportError otherwise."""
    lo, hi = FPS_RANGE
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not lo <= fps <= hi:
        raise ExportError(f"the frame rate must be from {lo:g} to {hi:g} frames per second; got {fps!r}")
    return float(fps)


def frame_duration_ms(fps: float) -> int:
    """How long one frame shows, in milliseconds (GIF keeps centiseconds: 1/fps s rounded to 10 ms)."""
    return max(20, int(round(100.0 / check_fps(fps))) * 10)


def output_kind(path: str | os.PathLike[str]) -> Kind:
    """``"png"`` (a PNG sequence) for a name ending in ``/``, else ``"gif"`` for a ``.gif`` name, else ``"png"`` for
    an existing folder or a name without a suffix. ExportError for any other suffix."""
    text = os.fspath(path)
    p = Path(text)
    if text.endswith(("/", os.sep)):
        return "png"
    if p.suffix.lower() == ".gif":
        return "gif"
    if not p.suffix or p.is_dir():
        return "png"
    raise ExportError(
        f"{text}: {p.suffix} is not an animation LVM Explorer writes; give a .gif file, or a folder (ending in /) "
        "for a PNG sequence"
    )


def _writable_parent(target: Path) -> None:
    """The folder that will hold ``target`` exists or can be made, and can be written to."""
    existing = next((p for p in (target.parent, *target.parent.parents) if p.exists()), None)
    if existing is None:  # (a relative path's parents end at ".", which exists)
        raise ExportError(f"{target}: none of its folders exist; choose another place")
    if not existing.is_dir():
        raise ExportError(f"could not write {target}: {existing} is a file, not a folder; choose another place")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"could not write {target}: no permission to write in {existing}; choose another folder")


def _foreign_files(folder: Path) -> list[str]:
    """What a folder holds besides frames of an earlier PNG sequence."""
    return sorted(p.name for p in folder.iterdir() if not (p.is_file() and _FRAME_FILE.fullmatch(p.name)))


def check_target(path: str | os.PathLike[str], kind: Kind) -> Path:
    """Where the animation goes, checked before any frame is made: ExportError saying what to change."""
    target = Path(os.fspath(path)).expanduser()
    if kind == "gif":
        if target.is_dir():
            raise ExportError(f"{target} is a folder; give a file name ending in .gif")
    elif target.exists():
        if not target.is_dir():
            raise ExportError(f"{target} is a file; give a folder (ending in /) for the PNG sequence")
        foreign = _foreign_files(target)
        if foreign:
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            raise ExportError(
                f"{target} holds other files ({shown}); choose an empty or new folder for the PNG sequence "
                "(an earlier sequence's frame_NNNN.png files are replaced)"
            )
    _writable_parent(target)
    return target


# -- writers ----------------------------------------------------------------------------------------------------------
class AnimationWriter:
    """Frames in, one animation out. ``add(image)`` per frame (a PIL image of exactly ``size``; another size is
    scaled to it), then ``finish()``: the file or folder appears only then, whole. ``abort()`` (or an exception in a
    ``with`` block) leaves nothing behind and the target as it was."""

    def __init__(self, target: Path, size: Size, fps: float):
        self.target, self.size, self.fps = target, size, fps
        self.count = 0
        self.done = False  # finished or aborted: no more frames
        self.written = False  # the file or folder is in place

    def add(self, image: Image.Image) -> None:
        if self.done:
            raise ExportError("this animation is already finished")
        im = image if image.mode == "RGB" else image.convert("RGB")
        if im.size != self.size:
            im = im.resize(self.size, Image.Resampling.LANCZOS)
        self._add(im)
        self.count += 1

    def finish(self) -> Path:
        if self.count == 0:
            self.abort()
            raise ExportError(f"no frames to write to {self.target}: the history is empty")
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        self.done = self.written = True
        return self.target

    def abort(self) -> None:
        self.done = True

    def _add(self, image: Image.Image) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> AnimationWriter:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is not None or not self.done:
            self.abort()


class GifWriter(AnimationWriter):
    """An animated GIF, looping forever, each frame 1/fps s. Frames are kept as 256-colour palette images (one byte a
    pixel) until ``finish`` encodes them with Pillow and writes the file atomically (``lvm.io.atomic_write_bytes``).
    Pillow merges a frame identical to the one before into it (a longer delay): frames meant to be counted must
    differ (the app's captions and ``lvm animate``'s titles number them)."""

    def __init__(self, target: Path, size: Size, fps: float):
        super().__init__(target, size, fps)
        self.frames: list[Image.Image] = []

    def _add(self, image: Image.Image) -> None:
        # no dithering: plots are flat colours and thin lines, which dithering turns into noise
        self.frames.append(image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))

    def _finish(self) -> None:
        buffer = io.BytesIO()
        first, *rest = self.frames
        first.save(
            buffer, "GIF", save_all=True, append_images=rest, duration=frame_duration_ms(self.fps), loop=0, disposal=1
        )
        atomic_write_bytes(self.target, buffer.getvalue())
        self.frames = []

    def abort(self) -> None:
        self.frames = []
        super().abort()


class PngSequenceWriter(AnimationWriter):
    """A folder of ``frame_0001.png`` ...: written into a temporary folder beside the target, renamed into place at
    ``finish`` (an earlier sequence in the target is replaced whole)."""

    def __init__(self, target: Path, size: Size, fps: float):
        super().__init__(target, size, fps)
        self.tmp: Path | None = None  # made with the first frame

    def _add(self, image: Image.Image) -> None:
        if self.tmp is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent))
        image.save(self.tmp / FRAME_NAME.format(self.count + 1), "PNG", optimize=False, compress_level=6)

    def _finish(self) -> None:
        assert self.tmp is not None  # (finish refuses an animation without frames)
        old = None
        if self.target.exists():
            check_target(self.target, "png")  # (still only an earlier sequence's frames)
            old = self.target.with_name(self.tmp.name[:-4] + ".old")
            os.replace(self.target, old)
        try:
            os.replace(self.tmp, self.target)
        except OSError:
            if old is not None:
                os.replace(old, self.target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        super().abort()


def open_writer(path: str | os.PathLike[str], size: Size, fps: float) -> AnimationWriter:
    """A writer for ``path`` (``.gif``, or a folder for a PNG sequence) after checking the size, the frame rate and
    the place: ExportError before any work when one is wrong."""
    size = check_size(*size)
    fps = check_fps(fps)
    kind = output_kind(path)
    target = check_target(path, kind)
    return GifWriter(target, size, fps) if kind == "gif" else PngSequenceWriter(target, size, fps)


def write_animation(frames: Iterable[Image.Image], path: str | os.PathLike[str], size: Size, fps: float) -> int:
    """Write every frame of ``frames`` to ``path`` (see ``open_writer``); the number of frames written."""
    with open_writer(path, size, fps) as writer:
        try:
            for frame in frames:
                writer.add(frame)
            writer.finish()
        except OSError as exc:
            raise ExportError(f"could not write {writer.target}: {exc.strerror or exc}; choose another place") from None
        return writer.count


# -- drawing with matplotlib (Agg) ------------------------------------------------------------------------------------
# Okabe & Ito's colour-blind-safe colours, then a few more: one per mixture component or digit label
COLOURS = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#000000",
    "#999999",
    "#8C564B",
)


def _rgb(colours: Sequence[str]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.array([[int(c[i : i + 2], 16) / 255.0 for i in (1, 3, 5)] for c in colours])
    return out


class _Canvas:
    """One matplotlib figure of exactly ``size`` pixels, drawn off screen (Agg) and read back as a PIL image."""

    def __init__(self, size: Size):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.size = size
        dpi = 100.0
        self.figure: Figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes: Axes = self.figure.add_subplot(1, 1, 1)
        self.font = float(np.clip(min(size) / 40.0, 6.0, 11.0))  # points: legible, and the title fits

    def finish_axes(
        self, xlim: tuple[float, float], ylim: tuple[float, float], title: str, latent: bool = False
    ) -> None:
        """Equal scales on both axes, fixed limits (the camera never moves between frames), the title; ``latent``:
        the axes are z1 and z2."""
        ax = self.axes
        if latent:
            ax.set_xlabel("z₁", fontsize=self.font)
            ax.set_ylabel("z₂", fontsize=self.font)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize=self.font * 0.85)
        ax.set_title(title, fontsize=self.font)

    def image(self) -> Image.Image:
        self.canvas.draw()  # type: ignore[no-untyped-call]
        rgba = np.asarray(self.canvas.buffer_rgba())  # type: ignore[no-untyped-call]
        im = Image.fromarray(rgba).convert("RGB")
        return im if im.size == self.size else im.resize(self.size, Image.Resampling.LANCZOS)


def _ellipse_xy(mean: npt.ArrayLike, cov: npt.ArrayLike, n_sigma: float, n: int = 97) -> npt.NDArray[np.float64]:
    """Points (n, 2) of {z : (z - m)^T Sigma^-1 (z - m) = n_sigma^2}: m + n_sigma L (cos t, sin t), Sigma = L L^T."""
    t = np.linspace(0.0, 2.0 * np.pi, n)
    c = np.asarray(cov, dtype=np.float64)
    L = np.linalg.cholesky(c + 1e-12 * np.eye(2))
    out: npt.NDArray[np.float64] = np.asarray(mean, dtype=np.float64)[None] + n_sigma * (
        np.stack([np.cos(t), np.sin(t)], 1) @ L.T
    )
    return out


def _padded(lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], pad: float = 0.06) -> tuple[Any, Any]:
    span = np.maximum(hi - lo, 1e-6)
    return (lo[0] - pad * span[0], hi[0] + pad * span[0]), (lo[1] - pad * span[1], hi[1] + pad * span[1])


# -- EM ---------------------------------------------------------------------------------------------------------------
HALF_STEP_WORDS = {"init": "initial parameters", "E": "after the E-step", "M": "after the M-step"}


def em_history(
    x: npt.ArrayLike,
    k: int,
    *,
    seed: int = 0,
    max_iter: int = 20,
    covariance_type: str = "full",
    init: str = "random_from_data",
    tol: float = 1e-4,
) -> list[EMSnapshot]:
    """Every half step of one EM run on the 2-D points ``x`` (``lvm.models.gmm.GaussianMixture.em_steps``): the
    initial parameters, then an E- and an M-step per iteration, until |delta L| < tol or ``max_iter`` iterations."""
    import torch

    from lvm.models.gmm import GaussianMixture

    pts = np.asarray(x, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ExportError(f"EM animations draw 2-D points; the data has shape {pts.shape}")
    if not 1 <= k <= len(COLOURS) or k > len(pts):
        raise ExportError(f"k must be from 1 to {min(len(COLOURS), len(pts))} (at most the points); got {k}")
    if max_iter < 1:
        raise ExportError(f"max_iter must be at least 1; got {max_iter}")
    gm = GaussianMixture(
        k,
        covariance_type=covariance_type,
        max_iter=max_iter,
        tol=tol,
        init_params=init,
        random_state=seed,
        device="cpu",
        dtype=torch.float64,
    )
    return list(gm.em_steps(pts))


def _responsibilities(x: npt.NDArray[np.float64], snap: EMSnapshot, covariance_type: str) -> npt.NDArray[np.float64]:
    from lvm.models.gmm import GaussianMixture

    if snap.resp is not None:
        return np.asarray(snap.resp, dtype=np.float64)
    gm = GaussianMixture.from_params(snap.weights, snap.means, snap.covariances, covariance_type, device="cpu")
    return np.asarray(gm.predict_proba(x), dtype=np.float64)


def em_frames(
    x: npt.ArrayLike, history: Sequence[EMSnapshot], size: Size, covariance_type: str = "full"
) -> Iterator[Image.Image]:
    """One picture per half step of ``history`` (see the module docstring); the axes stay put from frame to frame."""
    from lvm.models.gmm import full_covariances

    pts = np.asarray(x, dtype=np.float64)
    canvas = _Canvas(size)
    ax = canvas.axes
    palette = _rgb(COLOURS)
    xlim, ylim = _padded(pts.min(0), pts.max(0))
    for i, snap in enumerate(history):
        k = len(snap.weights)
        ax.clear()
        if snap.half == "init":
            colours = np.full((len(pts), 3), 0.6)
        else:
            colours = np.clip(_responsibilities(pts, snap, covariance_type) @ palette[:k], 0.0, 1.0)
        ax.scatter(pts[:, 0], pts[:, 1], s=6, c=colours, linewidths=0)
        covs = full_covariances(snap.covariances, covariance_type, k, 2)
        for j in range(k):
            for n_sigma, width in ((1.0, 2.0), (2.0, 1.0)):
                e = _ellipse_xy(snap.means[j], covs[j], n_sigma)
                ax.plot(e[:, 0], e[:, 1], color=COLOURS[j], lw=width)
            ax.plot(*snap.means[j], marker="+", ms=12, mew=2.5, color="black")
        canvas.finish_axes(
            xlim,
            ylim,
            f"EM half step {i} of {len(history) - 1}: {HALF_STEP_WORDS.get(snap.half, snap.half)}\n"
            f"iteration {snap.iteration}, mean log-likelihood {snap.log_likelihood:.4f}",
        )
        yield canvas.image()


# -- VI ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VIHistory:
    """q's path while maximising the ELBO, and the exact posterior it approaches (``lvm.posterior_grid``)."""

    steps: list[VISnapshot]
    density: npt.NDArray[np.float64]  # p(z|x) on the fine grid, [i, j] at (z1_i, z2_j)
    extent: tuple[float, float, float, float]
    levels: tuple[float, ...]  # densities bounding the highest-density regions (decreasing)
    log_px: float


VI_STARTS = ("broad", "encoder", "prior")


def vi_history(
    model: Any, x: npt.ArrayLike, *, steps: int = 100, lr: float = 0.05, every: int = 5, init: str = "broad"
) -> VIHistory:
    """Fit q(z) = N(m, L L^T) to p(z|x) for one x under a 2-D latent ``model`` (``lvm.estimators.vi_steps``,
    Gauss-Hermite ELBO), a snapshot every ``every`` steps. q starts at N(encoder mean, I) (``init="broad"``: it
    shrinks onto the posterior), at the encoder's q(z|x) (``"encoder"``: the amortisation gap closes) or at the
    prior N(0, I) (``"prior"``: often a local optimum far from the posterior, reverse KL's mode seeking). The exact
    posterior comes from ``lvm.posterior_grid``."""
    import torch

    from lvm.estimators import vi_steps
    from lvm.gaussian_q import encoder_q, model_x
    from lvm.posterior_grid import CoarseGrid, posterior_picture

    if int(getattr(model, "latent_dim", 0)) != 2:
        raise ExportError(
            f"VI animations draw a 2-D latent space; this model's is {getattr(model, 'latent_dim', '?')}-D"
        )
    if steps < 1 or every < 1:
        raise ExportError(f"steps and every must be at least 1; got {steps} and {every}")
    if init not in VI_STARTS:
        raise ExportError(f"init must be one of {', '.join(VI_STARTS)}; got {init!r}")
    xt = model_x(model, np.asarray(x))
    encoder = encoder_q(model, xt) if init != "prior" else None
    if encoder is None:
        start = (np.zeros(2), np.eye(2))
    else:
        start = encoder if init == "encoder" else (encoder[0], np.eye(2))
    with torch.no_grad():
        coarse = CoarseGrid.build(model, xt[None].cpu().numpy())
        pic = posterior_picture(coarse, xt)
    init_q = (torch.as_tensor(start[0]), torch.as_tensor(start[1]))
    path = list(vi_steps(model, xt, steps=steps, lr=lr, init=init_q, every=every))
    return VIHistory(path, pic.density, pic.extent, pic.levels, float(pic.log_px))


def vi_frames(history: VIHistory, size: Size) -> Iterator[Image.Image]:
    """One picture per snapshot: p(z|x) (shaded, with its 50/90/99 % regions) and q's 1- and 2-sigma ellipses."""
    canvas = _Canvas(size)
    ax = canvas.axes
    lo1, hi1, lo2, hi2 = history.extent
    n1, n2 = history.density.shape
    z1 = lo1 + (np.arange(n1) + 0.5) * (hi1 - lo1) / n1
    z2 = lo2 + (np.arange(n2) + 0.5) * (hi2 - lo2) / n2
    boxes = [np.array([[lo1, lo2], [hi1, hi2]])]
    for s in history.steps:
        L = s.scale_tril.double().cpu().numpy()
        e = _ellipse_xy(s.mean.double().cpu().numpy(), L @ L.T, 2.0)
        boxes.append(np.stack([e.min(0), e.max(0)]))
    corners = np.concatenate(boxes)
    xlim, ylim = _padded(corners.min(0), corners.max(0), 0.04)
    levels = sorted(v for v in history.levels if v > 0)
    total = len(history.steps)
    for i, s in enumerate(history.steps):
        ax.clear()
        ax.imshow(
            history.density.T,
            origin="lower",
            extent=history.extent,
            cmap="Greys",
            aspect="auto",
            interpolation="bilinear",
        )
        if len(levels) and np.ptp(history.density) > 0:
            ax.contour(z1, z2, history.density.T, levels=levels, colors="#0072B2", linewidths=1.2)
        mean = s.mean.double().cpu().numpy()
        L = s.scale_tril.double().cpu().numpy()
        for n_sigma, style in ((1.0, "--"), (2.0, "-")):
            e = _ellipse_xy(mean, L @ L.T, n_sigma)
            ax.plot(e[:, 0], e[:, 1], style, color="#D55E00", lw=2.0)
        ax.plot(*mean, marker="+", ms=12, mew=2.5, color="#D55E00")
        elbo = float(s.elbo)
        canvas.finish_axes(
            xlim,
            ylim,
            f"VI step {s.step} (frame {i + 1} of {total}): ELBO {elbo:.2f}\n"
            f"log p(x) {history.log_px:.2f}, KL(q ‖ p(z|x)) = {history.log_px - elbo:.2f} nats\n"
            "blue: p(z|x) 50/90/99 %; orange: q, 1σ and 2σ",
            latent=True,
        )
        yield canvas.image()


# -- VAE training -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpochFrame:
    """The encoder means of the shown points after an epoch (epoch 0: before the first step) and the ELBO then."""

    epoch: int
    mu: npt.NDArray[np.float32]  # (n, 2)
    train_elbo: float


@dataclass(frozen=True)
class TrainHistory:
    frames: list[EpochFrame]
    labels: npt.NDArray[np.int64] | None  # of the shown points


def train_history(
    x: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    epochs: int = 5,
    seed: int = 0,
    hidden: tuple[int, ...] = (128,),
    lr: float = 3e-3,
    n_show: int = 1000,
    image_shape: tuple[int, int] | None = (28, 28),
) -> TrainHistory:
    """Train a new 2-D Bernoulli VAE on ``x`` (N, D) in [0, 1] for ``epochs`` epochs (``lvm.training.train_vae``,
    seeded) and keep, at epoch 0 and after every epoch, the encoder means of ``n_show`` points (a seeded subset)."""
    from lvm.latent_space import encode_dataset
    from lvm.models.vae import VAEConfig
    from lvm.training import TrainConfig, new_vae, train_vae

    data = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if data.ndim != 2 or len(data) < 2:
        raise ExportError(f"training needs at least 2 rows of features; the data has shape {data.shape}")
    if epochs < 1:
        raise ExportError(f"epochs must be at least 1; got {epochs}")
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(len(data), size=min(n_show, len(data)), replace=False))
    y = None if labels is None else np.asarray(labels, dtype=np.int64)[shown]
    config = VAEConfig(data_dim=int(data.shape[1]), latent_dim=2, hidden=tuple(hidden), image_shape=image_shape)
    model = new_vae(config, seed)
    train = TrainConfig(epochs=epochs, lr=lr, seed=seed, batch_size=128, report_every=10**9, evaluate_start=True)
    frames: list[EpochFrame] = []
    for snap in train_vae(model, data, None, train):
        if float(snap.epoch).is_integer() and (not frames or frames[-1].epoch != int(snap.epoch)):
            mu, _ = encode_dataset(model, data[shown])
            frames.append(EpochFrame(int(snap.epoch), mu[:, :2].copy(), float(snap.train_elbo)))
    return TrainHistory(frames, y)


def train_frames(history: TrainHistory, size: Size) -> Iterator[Image.Image]:
    """One picture per epoch: the encoder means coloured by label, the prior's 1, 2, 3 sigma circles."""
    canvas = _Canvas(size)
    ax = canvas.axes
    lo, hi = np.full(2, -3.2), np.full(2, 3.2)  # the prior's 3-sigma circle, and each epoch's bulk
    for f in history.frames:
        lo = np.minimum(lo, np.percentile(f.mu, 1.0, axis=0))
        hi = np.maximum(hi, np.percentile(f.mu, 99.0, axis=0))
    xlim, ylim = _padded(lo, hi, 0.03)
    palette = _rgb(COLOURS)
    if history.labels is None:
        colours = np.tile(palette[4], (len(history.frames[0].mu), 1))
    else:
        colours = palette[history.labels % len(COLOURS)]
    t = np.linspace(0, 2 * np.pi, 181)
    last = history.frames[-1].epoch
    for f in history.frames:
        ax.clear()
        for r in (1, 2, 3):
            ax.plot(r * np.cos(t), r * np.sin(t), "--", color="0.55", lw=0.8)
        ax.scatter(f.mu[:, 0], f.mu[:, 1], s=5, c=colours, linewidths=0)
        when = "before training" if f.epoch == 0 else f"after epoch {f.epoch} of {last}"
        canvas.finish_axes(
            xlim,
            ylim,
            f"encoder means μφ(x) {when}\ntrain ELBO {f.train_elbo:.1f} nats; dashed: prior 1, 2, 3σ",
            latent=True,
        )
        yield canvas.image()
