"""The Latent lab's state, Qt-free: what the user set up (view range, toggles, grid, pinned points, the drawing,
the hover point, the training settings) with ``to_dict`` / ``from_dict`` for sessions, what the lab computed from it
(the encodings, timings) and the training run's state machine (curves, the best model seen).

Seeds: training uses ``TrainSettings.seed`` (weights of a new model, the held-out split, the batches and the noise);
the hover preview's sample x ~ p(x|z) uses the workspace's seed for this lab, fresh for each z (the same z and seed
give the same sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.labs.latent import display
from lvm.errors import ModelInputError, SessionError
from lvm.latent_space import (
    LatentPlane,
    axes_plane,
    inverse_normal_cdf,
    nearest_encoding,
    normal_cdf,
    pca_plane,
    quantile_centres,
    square_cells,
)
from lvm.models.capabilities import ModelCapabilities, describe
from lvm.training import CONSERVATIVE_LR, ScheduleState, TrainConfig, TrainSnapshot, schedule_state_at

MODES = ("continue the current model", "new model from scratch")
DECODERS = ("bernoulli", "gaussian", "autoregressive")  # lvm.models.vae.DECODERS
BACKGROUND_KEYS = ("none", "aggregate", "ratio")
PLANE_KINDS = ("pca", "axes")  # a d > 2 latent space: the encodings' PCA plane, or two chosen axes
MAX_AXIS = 10_000
GRID_RANGE = (4, 40)
EPOCHS_RANGE = (1, 1000)
LR_RANGE = (1e-5, 1e-1)
SEED_RANGE = (0, 2**31 - 1)
SUBSET_RANGE = (0, 10_000_000)  # training images used (a seeded random subset; 0: all)
MAX_PINNED = 50
MAX_HIDDEN_TEXT = 200
DRAWN_SIZE = 28 * 28
COLLAPSED_KL = 0.1  # nats: a mean KL(q(z|x) || p(z)) below this says the encoder's q is the prior for every x
DENSITY_GRID = 160  # cells per side of the aggregate posterior's background image
# File → Export animation of a training run: the encoder means of at most ANIMATION_POINTS of the shown points and
# the decoded mosaic (uint8) are kept per epoch; mosaics only while they stay under MOSAIC_BUDGET bytes in all
ANIMATION_POINTS = 2000
MOSAIC_BUDGET = 64 * 2**20


def _bad(where: str, want: str, value: Any) -> SessionError:
    return SessionError(f"{where} must be {want}, got {str(value)[:60]!r}; the session was edited or damaged")


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(where, "true or false", value)
    return value


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    """A whole number, clamped to [lo, hi] (as a spin box takes it)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, "a whole number", value)
    return min(max(value, lo), hi)


def _float(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(where, "a finite number", value)
    return min(max(float(value), lo), hi)


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _bad(where, f"one of {', '.join(choices)}", value)
    return str(value)


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 256' -> (512, 256); ModelInputError saying what to type otherwise."""
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 or s > 8192 for s in sizes):
        raise ModelInputError(f"layers {text!r}: give comma-separated sizes from 1 to 8192, e.g. 512,512")
    return sizes


@dataclass
class TrainSettings:
    """The train panel: continue the current model or start a new one (its layers and decoder), epochs, the
    learning rate of a new model, the seed, and how many training images to use (``subset``: a random subset drawn
    with the seed; 0: all of them)."""

    mode: str = MODES[0]
    hidden: str = "512,512,512"
    decoder: str = "bernoulli"
    epochs: int = 5
    lr: float = 1e-3  # 2e-3 diverged twice on the 3 x 512 model (resources/README.md)
    seed: int = 0
    subset: int = 0

    @property
    def from_scratch(self) -> bool:
        return self.mode == MODES[1]

    def hidden_sizes(self) -> tuple[int, ...]:
        return parse_hidden(self.hidden)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "hidden": self.hidden,
            "decoder": self.decoder,
            "epochs": self.epochs,
            "lr": self.lr,
            "seed": self.seed,
            "subset": self.subset,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "train", strict: bool = True) -> TrainSettings:
        """Validated; SessionError naming the field (``strict=False``: a bad field keeps its default)."""
        if not isinstance(d, dict):
            raise _bad(where, "an object", d)
        parsers = {
            "mode": lambda v, w: _choice(v, w, MODES),
            "hidden": _hidden_text,
            "decoder": lambda v, w: _choice(v, w, DECODERS),
            "epochs": lambda v, w: _int(v, w, *EPOCHS_RANGE),
            "lr": lambda v, w: _float(v, w, *LR_RANGE),
            "seed": lambda v, w: _int(v, w, *SEED_RANGE),
            "subset": lambda v, w: _int(v, w, *SUBSET_RANGE),
        }
        return cls(**_parse_fields(d, parsers, where, strict))


def _hidden_text(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_HIDDEN_TEXT:
        raise _bad(where, f"text of at most {MAX_HIDDEN_TEXT} characters", value)
    return value


def _parse_fields(d: dict, parsers: dict, where: str, strict: bool) -> dict[str, Any]:
    out = {}
    for key, parse in parsers.items():
        if key in d and d[key] is not None:
            try:
                out[key] = parse(d[key], f"{where}.{key}")
            except SessionError:
                if strict:
                    raise
    return out


@dataclass
class LatentState:
    """What the user set up in the Latent lab, and what the lab computed from it (not saved)."""

    view_range: tuple[tuple[float, float], tuple[float, float]] | None = None  # (x0, x1), (y0, y1) of the left plot
    points: bool = True
    thumbnails: bool = False
    background: str = "ratio"
    grid_n: int = 20
    quantiles: bool = False  # decode on the prior's quantiles z = Phi^-1(u) (the grid plot's axes show u)
    pinned: list[int] = field(default_factory=list)
    drawn: np.ndarray | None = None  # the drawing pad's image, flattened (784,)
    hover: tuple[float, float] = (0.0, 0.0)
    train: TrainSettings = field(default_factory=TrainSettings)
    plane_kind: str = "pca"  # d > 2: "pca" (top-2 principal directions of the encodings) or "axes"
    plane_axes: tuple[int, int] = (0, 1)  # the two axes (0-based) of an "axes" plane
    # -- computed, not saved
    model: Any = None  # the displayed model: the workspace's, or the latest copy while training
    plane: LatentPlane | None = None  # the latent plane shown (None: not known yet, e.g. PCA before encoding)
    plane_mu: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # mu projected on the plane
    mu: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    sigma: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray | None = None
    encoded_key: tuple | None = None
    fit_pending: bool = True
    drawn_q: tuple[np.ndarray, np.ndarray] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    device_switched: bool = False  # a device event: the model event that follows keeps the view

    # -- sessions --------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "range": None if self.view_range is None else [list(self.view_range[0]), list(self.view_range[1])],
            "points": self.points,
            "thumbnails": self.thumbnails,
            "background": self.background,
            "grid_n": self.grid_n,
            "quantiles": self.quantiles,
            "pinned": list(self.pinned),
            "drawn": None if self.drawn is None else self.drawn.astype(np.float32).tolist(),
            "hover": list(self.hover),
            "train": self.train.to_dict(),
            "plane": self.plane_kind,
            "plane_axes": [self.plane_axes[0] + 1, self.plane_axes[1] + 1],
        }

    @classmethod
    def from_dict(cls, d: Any, strict: bool = True) -> LatentState:
        """Validated; SessionError naming the field (``views.latent.<key>``). ``strict=False`` keeps the defaults of
        bad fields (a session from another version restores what it can)."""
        where = "views.latent"
        if not isinstance(d, dict):
            raise _bad(where, "an object", d)
        parsers = {
            "range": _parse_range,
            "points": _bool,
            "thumbnails": _bool,
            "background": lambda v, w: _choice(v, w, BACKGROUND_KEYS),
            "grid_n": lambda v, w: _int(v, w, *GRID_RANGE),
            "quantiles": _bool,
            "pinned": _parse_pinned,
            "drawn": _parse_drawn,
            "hover": _parse_point,
            "train": lambda v, w: TrainSettings.from_dict(v, w, strict),
            "plane": lambda v, w: _choice(v, w, PLANE_KINDS),
            "plane_axes": _parse_axes,
        }
        values = _parse_fields(d, parsers, where, strict)
        if "range" in values:
            values["view_range"] = values.pop("range")
        if "plane" in values:
            values["plane_kind"] = values.pop("plane")
        return cls(**values)

    # -- selection and pins ----------------------------------------------------------------------------------------
    def toggle_pin(self, i: int) -> None:
        if i in self.pinned:
            self.pinned.remove(i)
        elif len(self.pinned) < MAX_PINNED:
            self.pinned.append(i)

    def prune_pins(self) -> None:
        """Pins that no longer index an encoded point (another dataset) go."""
        self.pinned = [p for p in self.pinned if p < len(self.mu)]

    def nearest_to_grid_point(self, x: float, y: float) -> int | None:
        """The encoded point nearest (on the plane) to a point of the decoded grid plot."""
        return nearest_encoding(self.plane_mu, self.grid_to_z(x, y))

    # -- the latent plane ------------------------------------------------------------------------------------------
    @property
    def caps(self) -> ModelCapabilities | None:
        """What the displayed model can show (None: no model, or an object that is not a latent model)."""
        try:
            return None if self.model is None else describe(self.model)
        except ModelInputError:
            return None

    @property
    def latent_dim(self) -> int:
        """The displayed model's latent dimension (without one: the encodings' width, 0 without those)."""
        caps = self.caps
        if caps is not None:
            return caps.latent_dim
        return int(self.mu.shape[1]) if self.model is None and self.mu.ndim == 2 and len(self.mu) else 0

    def set_model(self, model: Any) -> None:
        """The displayed model; the plane is chosen again (``choose_plane``)."""
        self.model = model
        self.choose_plane()

    def choose_plane(self) -> LatentPlane | None:
        """The plane to show: the whole latent space for d = 2; for d > 2 the PCA plane of the encodings (None until
        they exist) or two axes (also for a model without an encoder, which has no encodings). The encodings are
        projected on it (``plane_mu``)."""
        d, plane = self.latent_dim, None
        if d == 2:
            plane = axes_plane(2)
        elif d > 2:
            caps = self.caps
            no_encoder = caps is not None and not caps.has_encoder
            if self.plane_kind == "axes" or no_encoder:
                i, j = (min(a, d - 1) for a in self.plane_axes)
                plane = axes_plane(d, *((i, j) if i != j else (0, 1)))
            elif len(self.mu) >= 2 and self.mu.shape[1] == d:
                plane = pca_plane(self.mu)
        self.plane = plane
        self.project()
        return plane

    def project(self) -> None:
        """``plane_mu``: the encodings projected on the plane (none while there is no plane)."""
        if self.plane is None or self.mu.ndim != 2 or self.mu.shape[1] != self.plane.latent_dim:
            self.plane_mu = np.zeros((0, 2), np.float32)
        else:
            self.plane_mu = self.plane.project(self.mu)

    def plane_cov(self, i: int) -> np.ndarray:
        """The 2 x 2 covariance of q(z|x_i)'s marginal on the plane."""
        assert self.plane is not None
        return np.asarray(self.plane.project_cov(self.sigma[i]))

    @property
    def prior_centre(self) -> tuple[float, float]:
        return (0.0, 0.0) if self.plane is None else self.plane.prior_centre

    def axis_labels(self) -> tuple[str, str]:
        return ("z₁", "z₂") if self.plane is None else self.plane.axis_labels()

    def grid_to_z(self, x: float, y: float) -> tuple[float, float]:
        """A point of the grid plot on the plane: (x, y) itself, or c + (Phi^-1(x), Phi^-1(y)) on the quantile grid
        (c: the prior marginal's centre on the plane, 0 unless the plane misses z = 0)."""
        if self.quantiles:
            c = self.prior_centre
            return c[0] + inverse_normal_cdf(x), c[1] + inverse_normal_cdf(y)
        return float(x), float(y)

    def z_to_grid(self, z: tuple[float, float]) -> tuple[float, float]:
        if self.quantiles:
            c = self.prior_centre
            return normal_cdf(z[0] - c[0]), normal_cdf(z[1] - c[1])
        return float(z[0]), float(z[1])

    def mosaic_cells(
        self, grid_range: tuple[tuple[float, float], tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
        """(z1 centres, z2 centres, (left, bottom, width, height) in plot units) of the decoded grid: square cells
        covering the visible range (n along its longer side), or n x n prior quantiles on (0, 1)^2."""
        n = self.grid_n
        if self.quantiles:
            _, z = quantile_centres(n)
            c = self.prior_centre
            return c[0] + z, c[1] + z, (0.0, 0.0, 1.0, 1.0)
        return square_cells(grid_range[0], grid_range[1], n)

    def fit_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The encoded points' robust extent (0.5% to 99.5%) and the prior's 3-sigma circle, padded by 5%."""
        c = np.asarray(self.prior_centre)
        lo, hi = c - 3.2, c + 3.2
        if len(self.plane_mu):
            lo = np.minimum(lo, np.percentile(self.plane_mu, 0.5, axis=0))
            hi = np.maximum(hi, np.percentile(self.plane_mu, 99.5, axis=0))
        pad = 0.05 * (hi - lo)
        return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))

    # -- what can be shown -----------------------------------------------------------------------------------------
    def problem(self) -> str | None:
        """Why nothing can be shown (None when all is well)."""
        if self.model is None:
            return "no model: open one (File ▸ Open model…) or train one (right)"
        try:
            caps = describe(self.model)
        except ModelInputError as exc:
            return str(exc)
        missing = caps.missing("plane")
        if missing:
            return f"{missing}: this lab needs a model with at least 2 latent dimensions"
        return None

    def data_problem(self, data: Any) -> str | None:
        if data is None:
            return "no dataset"
        caps = self.caps
        data_dim = None if caps is None else caps.data_dim
        if data_dim is not None and data.x.shape[1] != data_dim:
            return (
                f"the model expects {data_dim} features, the dataset has {data.x.shape[1]}: "
                "train a new model from scratch on it (right) or open a matching model"
            )
        return None

    def encoder_problem(self) -> str | None:
        """Why the data cannot be encoded (no encoder), or None."""
        caps = self.caps
        if caps is None:
            return self.problem()
        missing = caps.missing("encoder")
        return None if missing is None else f"{missing}; the right plot decodes on the plane of z₁, z₂"

    def decoder_problem(self) -> str | None:
        """Why the plane cannot be decoded into images, or None."""
        caps = self.caps
        if caps is None:
            return self.problem()
        return caps.missing("decoder-mean") or caps.missing("image")

    def set_encodings(self, mu: np.ndarray, sigma: np.ndarray, labels: np.ndarray | None, key: tuple | None) -> None:
        self.mu, self.sigma, self.labels, self.encoded_key = mu, sigma, labels, key
        self.choose_plane()  # (the PCA plane follows the encodings)
        self.prune_pins()

    def clear_encodings(self) -> None:
        self.set_encodings(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), None, None)

    def colours(self, gmm: Any = None) -> np.ndarray:
        """(N, 3) RGB of the encoded points: by the workspace GMM's cluster when it was fitted in this latent space,
        else by label."""
        n = len(self.mu)
        if gmm is not None and n and self.model is not None:
            try:
                if int(getattr(gmm, "dim", getattr(gmm, "data_dim", -1))) == self.model.latent_dim:
                    import torch

                    k = np.asarray(gmm.predict(torch.as_tensor(self.mu))).reshape(-1)
                    if len(k) == n:
                        return np.asarray(display.label_rgb()[k.astype(np.int64) % 10])
            except Exception:  # noqa: BLE001 - an unfamiliar GMM: fall back to labels
                pass
        return display.label_colours(self.labels, n)

    def status_text(self) -> str:
        t = self.timings
        parts = []
        if len(self.mu):
            parts.append(f"{len(self.mu):,} points encoded in {t.get('encode_ms', 0):.0f} ms")
        if "grid_ms" in t:
            parts.append(f"{int(t['grid_nx'])}×{int(t['grid_ny'])} grid decoded in {t['grid_ms']:.0f} ms")
        if "hover_ms" in t:
            parts.append(f"hover decode {t['hover_ms']:.1f} ms")
        parts.append("click: select · shift-click: pin · wheel/drag: zoom/pan")
        return "  ·  ".join(parts)

    def csv_rows(self) -> list[list[Any]]:
        """The encodings as a table: index, label, the means and standard deviations of q(z|x)."""
        d = self.mu.shape[1]
        rows: list[list[Any]] = [
            ["index", "label", *[f"z{k + 1}_mean" for k in range(d)], *[f"z{k + 1}_sd" for k in range(d)]]
        ]
        for i in range(len(self.mu)):
            label = "" if self.labels is None else int(self.labels[i])
            rows.append([i, label, *[f"{v:.6g}" for v in self.mu[i]], *[f"{v:.6g}" for v in self.sigma[i]]])
        return rows


def _parse_range(value: Any, where: str) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        (x0, x1), (y0, y1) = value
        nums = [float(v) for v in (x0, x1, y0, y1) if not isinstance(v, bool)]
    except (TypeError, ValueError):
        raise _bad(where, "[[x0, x1], [y0, y1]]", value) from None
    if len(nums) != 4 or not all(math.isfinite(v) for v in nums) or not (nums[1] > nums[0] and nums[3] > nums[2]):
        raise _bad(where, "[[x0, x1], [y0, y1]] with x0 < x1 and y0 < y1", value)
    return (nums[0], nums[1]), (nums[2], nums[3])


def _parse_axes(value: Any, where: str) -> tuple[int, int]:
    """Two different axes, 1-based in the file (as the spin boxes show them), 0-based in the state."""
    if not isinstance(value, list) or len(value) != 2:
        raise _bad(where, "[i, j], two different axes from 1", value)
    i, j = (_int(v, where, 1, MAX_AXIS) for v in value)
    if i == j:
        raise _bad(where, "[i, j], two different axes from 1", value)
    return i - 1, j - 1


def _parse_point(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise _bad(where, "[z1, z2]", value)
    return _float(value[0], where, -1e6, 1e6), _float(value[1], where, -1e6, 1e6)


def _parse_pinned(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in value):
        raise _bad(where, "a list of point indices", value)
    return list(value[:MAX_PINNED])


def _parse_drawn(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != DRAWN_SIZE:
        raise _bad(where, f"a list of {DRAWN_SIZE} pixel values", value)
    try:
        image = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise _bad(where, f"a list of {DRAWN_SIZE} numbers", value) from None
    if image.ndim != 1 or not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise _bad(where, f"{DRAWN_SIZE} numbers in [0, 1]", value)
    return image.astype(np.float32)


# -- the training run ------------------------------------------------------------------------------------------------
def animation_rows(n: int, seed: int) -> np.ndarray:
    """The shown points whose encoder means a training run keeps per epoch: all of them, or a seeded sorted subset
    of ANIMATION_POINTS."""
    if n <= ANIMATION_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=ANIMATION_POINTS, replace=False))


@dataclass(frozen=True)
class EpochFrame:
    """What the lab redraws of one epoch end of a training run: ``epoch`` on the curves' axis (0 of a new model:
    before the first step), the encoder means (n, 2) of the run's ``frame_rows`` then, and the decoded mosaic (uint8,
    over ``TrainingRun.mosaic_rect``; None past the budget or for a model without images)."""

    epoch: float
    mu: np.ndarray
    mosaic: np.ndarray | None


@dataclass
class TrainingRun:
    """One training run as the lab sees it: idle -> running -> idle. It keeps the curves (epoch 0 is the ELBO before
    the first step), the latest copy of the model (shown while training) and the best one seen at an epoch end
    (by ``TrainSnapshot.score``, the held-out ELBO), which the run ends with, also when stopped."""

    running: bool = False
    config: TrainConfig | None = None
    epoch_offset: float = 0.0  # epochs the model had before this run (the curves' x axis continues from there)
    info: dict[str, Any] = field(default_factory=dict)  # what the resulting model's info starts from
    train_points: list[tuple[float, float]] = field(default_factory=list)
    valid_points: list[tuple[float, float]] = field(default_factory=list)
    latest: Any = None  # the latest copy of the model
    best: Any = None  # the best copy seen at an epoch end
    best_snap: TrainSnapshot | None = None
    last_snap: TrainSnapshot | None = None
    shown_result: Any = None  # the model this run handed to the workspace (its model event keeps the view)
    # per epoch end, for File → Export animation: which shown points (and their labels), where the mosaic lies
    frames: list[EpochFrame] = field(default_factory=list)
    frame_rows: np.ndarray | None = None
    frame_labels: np.ndarray | None = None
    mosaic_rect: tuple[float, float, float, float] | None = None

    def begin(self, config: TrainConfig, epoch_offset: float, info: dict[str, Any]) -> None:
        self.running, self.config, self.epoch_offset, self.info = True, config, float(epoch_offset), dict(info)
        self.train_points, self.valid_points = [], []
        self.latest = self.best = self.best_snap = self.last_snap = self.shown_result = None
        self.frames = []
        self.frame_rows = self.frame_labels = self.mosaic_rect = None

    def add_frame(self, snap: TrainSnapshot, mu: np.ndarray, mosaic: np.ndarray | None) -> None:
        """The encoder means (and mosaic, in [0, 1]) after an epoch end; one frame per epoch."""
        epoch = self.epoch_offset + float(snap.epoch)
        if self.frames and self.frames[-1].epoch == epoch:
            return
        kept = sum(f.mosaic.nbytes for f in self.frames if f.mosaic is not None)
        small = None
        if mosaic is not None and kept + mosaic.size <= MOSAIC_BUDGET:
            small = np.round(np.clip(mosaic, 0.0, 1.0) * 255).astype(np.uint8)
        self.frames.append(EpochFrame(epoch, np.asarray(mu, np.float32)[:, :2].copy(), small))

    def add(self, snap: TrainSnapshot, shot: Any) -> None:
        """A snapshot from the training job, with a copy of the model (or None between copies)."""
        self.last_snap = snap
        x = self.epoch_offset + float(snap.epoch)
        if math.isfinite(snap.train_elbo):
            self.train_points.append((x, float(snap.train_elbo)))
        at_epoch_end = float(snap.epoch).is_integer()
        if (
            snap.valid_elbo is not None
            and at_epoch_end
            and math.isfinite(snap.valid_elbo)
            and (not self.valid_points or self.valid_points[-1][0] != x)
        ):
            self.valid_points.append((x, float(snap.valid_elbo)))
        if shot is not None:
            self.latest = shot
            score = snap.score
            if at_epoch_end and score is not None and math.isfinite(score):
                best = self.best_snap
                if best is None or best.score is None or score > best.score:
                    self.best, self.best_snap = shot, snap

    def result(self) -> tuple[Any, dict[str, Any]] | None:
        """(model, info) the run ends with: the best model seen at an epoch end (else the latest copy), and its
        info (epochs, ELBOs and where its schedule stands). None when there is no copy yet."""
        model, snap = (self.best, self.best_snap) if self.best is not None else (self.latest, self.last_snap)
        if model is None or snap is None or self.config is None:
            return None
        info = dict(self.info)
        last = self.last_snap
        info.update(
            epochs_completed=int(self.epoch_offset + math.floor(snap.epoch)),
            train_elbo=snap.train_elbo,
            valid_elbo=snap.valid_elbo,
            stopped_reason=None if last is None else last.stopped_reason,
        )
        state = schedule_state_at(self.config, snap)  # (at an epoch end or between: the schedule at its step)
        if state is None:
            info.pop("training_state", None)
        else:
            info["training_state"] = state.to_dict()
        return model, info

    def end(self) -> None:
        self.running = False

    def curve_text(self, snap: TrainSnapshot) -> str:
        val = "" if snap.valid_elbo is None else f", held-out {snap.valid_elbo:.1f}"
        if snap.step == 0:
            return f"before training (epoch 0): ELBO {snap.train_elbo:.1f}{val} nats"
        kl = "" if snap.train_kl is None else f"; KL(q(z|x)‖p(z)) {snap.train_kl:.2f}"
        return (
            f"epoch {snap.epoch:.2f}: train ELBO {snap.train_elbo:.1f}{val} nats{kl} ({snap.images_per_s:.0f} images/s)"
        )

    def ending_text(self, stopped: bool) -> str:
        """What the run ended with, in words."""
        snap = self.best_snap
        if snap is None or self.best is None:
            return "stopped" if stopped else "done"
        kept = "the starting model" if snap.step == 0 else f"the model after epoch {int(snap.epoch)}"
        score = "" if snap.score is None else f" (held-out ELBO {snap.score:.1f})"
        text = f"{'stopped' if stopped else 'done'}: kept {kept}{score}, the best seen"
        if snap.train_kl is not None:
            text += f"; KL(q(z|x)‖p(z)) {snap.train_kl:.2f} nats"
            if snap.train_kl < COLLAPSED_KL:
                text += ": the posterior collapsed onto the prior, z is ignored"
        return text


def continue_lr_text(state: ScheduleState | None) -> tuple[str, str]:
    """(a short line, the explanation) of the learning rate 'continue' uses."""
    why = (
        "Continuing goes on from where the model's learning-rate schedule ended: a fresh, large rate knocks a "
        "converged model off its optimum. The ELBO before the first step is epoch 0, and the best model seen is kept."
    )
    if state is None:
        return (
            f"continue at lr {CONSERVATIVE_LR:.0e} (conservative: the model was saved without its schedule)",
            why,
        )
    return (
        f"continue at lr {state.continue_lr:.1e}, where its schedule ended ({state.schedule} to "
        f"{state.peak_lr:.0e}, {state.steps:,} steps)",
        why + f" It ended at lr {state.final_lr:.2e}; continuing uses at least 1% of the peak.",
    )
