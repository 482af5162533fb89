"""The Infinite mixture lab's state, Qt-free: the lecture model the sliders move (its latent dimension, theta, output
ranges), the quadrature, what is shown, the fit panel's settings, with ``to_dict`` / ``from_dict`` for sessions; and
what is drawn from them (the x-window, component latents, mean curves, the samples' fixed noise, the fits' jobs).

Random numbers and their seeds, all shown in the lab and set by the user: the samples (dots) use fixed noise
z ~ N(0, I), eps ~ N(0, I) drawn with the workspace's seed for this lab ("sample seed"), so they move smoothly with
theta; the fit panel's seed draws the toy data (training points with it, test points with it + 1) and seeds every
fit (the random start of theta, the quadrature shifts, minibatches and noise, EM's initialisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lvm.data.toy import TOY_SETS
from lvm.density_fits import FitSnapshot, fit_elbo, fit_exact, fit_gmm, fit_mlp
from lvm.errors import ModelInputError, SessionError
from lvm.models.lecture_vae import LectureVAE, OutputRanges, lecture_params

GRID_N = 100  # x-grid points per axis of the live heatmap
N_SAMPLES = 400
PARAM_LIMIT = 8.0
N_Z_RANGE = (2, 256)
K_RANGE = (1, 64)
SEED_RANGE = (0, 2**31 - 1)
RANGE_PRESETS = {
    "lecture": ("Lecture: μ ∈ (0,1)², σ² ∈ (1, e)", OutputRanges()),
    "wide": ("Wide: μ ∈ (−3,3)², σ² ∈ (e⁻³, 1)", OutputRanges((-3.0, -3.0), (3.0, 3.0), -3.0, 0.0)),
}
SHOW_KEYS = ("components", "curve", "samples", "data")
METHODS = ("exact", "elbo", "gmm", "mlp")
DEFAULT_N_Z = {1: 128, 2: 32}


def _bad(where: str, want: str, value: Any) -> SessionError:
    return SessionError(f"{where} must be {want}, got {str(value)[:60]!r}; the session was edited or damaged")


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, "a whole number", value)
    return min(max(value, lo), hi)


def sample_noise(seed: int, latent_dim: int, n: int = N_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """(z, eps): n fixed draws of z ~ N(0, I_Dz) and eps ~ N(0, I_2) from ``seed``; the samples are
    x = mu(z) + Sigma(z)^(1/2) eps."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, latent_dim)), rng.standard_normal((n, 2))


@dataclass
class FitSettings:
    """The fit panel: which toy data, K of the finite mixture, whether the output ranges stretch to the data, and
    the seed of the data and the fits."""

    dataset: str = "moons"
    k: int = 8
    stretch: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "k": self.k, "stretch": self.stretch, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: Any, where: str = "views.infinite.fits", strict: bool = True) -> FitSettings:
        if not isinstance(d, dict):
            raise _bad(where, "an object", d)
        out = cls()
        for key, parse in (
            ("dataset", _toy_name),
            ("k", lambda v, w: _int(v, w, *K_RANGE)),
            ("stretch", _flag),
            ("seed", lambda v, w: _int(v, w, *SEED_RANGE)),
        ):
            if key in d:
                try:
                    setattr(out, key, parse(d[key], f"{where}.{key}"))
                except SessionError:
                    if strict:
                        raise
        return out


def _toy_name(value: Any, where: str) -> str:
    if value not in TOY_SETS:
        raise _bad(where, f"one of {', '.join(TOY_SETS)}", value)
    return str(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(where, "true or false", value)
    return value


@dataclass
class InfiniteState:
    """What the user set up in the Infinite mixture lab; ``model`` is the lecture VAE the sliders move."""

    model: LectureVAE = field(default_factory=lambda: LectureVAE(1, ranges=RANGE_PRESETS["wide"][1]))
    range_preset: str = "wide"  # the lecture's ranges draw one unit-variance blob; "wide" shows the idea
    fitted_ranges: OutputRanges | None = None  # the ranges of an exact fit loaded into the sliders
    n_z: int = DEFAULT_N_Z[1]
    show: dict[str, bool] = field(
        default_factory=lambda: {"components": True, "curve": True, "samples": True, "data": False}
    )
    fits: FitSettings = field(default_factory=FitSettings)

    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    # -- changes ---------------------------------------------------------------------------------------------------
    def set_latent_dim(self, dz: int, theta: dict[str, Any] | None = None) -> None:
        """A fresh model with ``dz`` latent dimensions (``theta`` or the default), the same ranges; the quadrature
        goes back to its default for ``dz``. ModelInputError on a bad theta or dz."""
        self.model = LectureVAE(dz, ranges=self.model.ranges, theta=theta)
        self.n_z = DEFAULT_N_Z[dz]

    def set_param(self, key: tuple, value: float) -> bool:
        """One entry of theta: ("A", i, j), ("B", i, j), ("c", i) or ("d", i). False when it does not exist for this
        latent dimension."""
        import torch

        name = key[0]
        arr = getattr(self.model, name)
        with torch.no_grad():
            if name in ("A", "B"):
                if key[2] >= self.latent_dim:
                    return False
                arr[key[1], key[2]] = value
            else:
                arr[key[1]] = value
        return True

    def set_range_preset(self, key: str) -> None:
        if key in RANGE_PRESETS:
            self.range_preset, self.model.ranges = key, RANGE_PRESETS[key][1]
        elif key == "fitted" and self.fitted_ranges is not None:
            self.range_preset, self.model.ranges = "fitted", self.fitted_ranges

    def load_fit(self, theta: dict[str, Any], ranges: OutputRanges, dz: int) -> None:
        """An exact fit's theta into the sliders; its ranges become the 'fitted' preset, the data is shown."""
        self.fitted_ranges = ranges
        self.range_preset = "fitted"
        self.model = LectureVAE(dz, ranges=ranges)
        self.set_latent_dim(dz, theta)
        self.show["data"] = True

    # -- what is drawn ---------------------------------------------------------------------------------------------
    def x_grid(self, x_train: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A square x-window holding the means' range plus 2.5 of the largest standard deviation (with the 'fitted'
        ranges: the training data and a quarter of its span around it), GRID_N points per axis."""
        r = self.model.ranges
        s = float(np.exp(0.5 * r.v_hi))
        lo, hi = np.asarray(r.m_lo, float) - 2.5 * s, np.asarray(r.m_hi, float) + 2.5 * s
        if self.range_preset == "fitted" and x_train is not None and len(x_train):
            lo, hi = np.minimum(lo, x_train.min(0)), np.maximum(hi, x_train.max(0))
            span = hi - lo
            lo, hi = x_train.min(0) - 0.25 * span.max(), x_train.max(0) + 0.25 * span.max()
        centre, half = (lo + hi) / 2, (hi - lo).max() / 2
        return (
            np.linspace(centre[0] - half, centre[0] + half, GRID_N),
            np.linspace(centre[1] - half, centre[1] + half, GRID_N),
        )

    def component_latents(self) -> np.ndarray:
        """The z of the drawn components: 9 on [-2, 2] (1-D), a 5 x 5 grid of [-2, 2]^2 (2-D)."""
        if self.latent_dim == 1:
            return np.linspace(-2.0, 2.0, 9)[:, None]
        a = np.linspace(-2.0, 2.0, 5)
        g1, g2 = np.meshgrid(a, a, indexing="ij")
        return np.stack([g1.ravel(), g2.ravel()], 1)

    def params(self, z: np.ndarray, theta: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mu(z), log diag Sigma(z)) in NumPy (GUI thread: no torch thread pool)."""
        return lecture_params(theta or self.model.theta(), self.model.ranges, z)

    def mean_curves(self, theta: dict | None = None) -> list[np.ndarray]:
        """z -> mu(z) for z in [-3, 3] (1-D), or the images of the lines z1 = const, z2 = const (2-D)."""
        t = np.linspace(-3.0, 3.0, 121)
        if self.latent_dim == 1:
            return [self.params(t[:, None], theta)[0]]
        v = np.linspace(-2.0, 2.0, 5)[:, None]
        tt, vv = np.broadcast_to(t, (5, 121)), np.broadcast_to(v, (5, 121))
        z = np.concatenate([np.stack([tt, vv], -1), np.stack([vv, tt], -1)])  # (10, 121, 2)
        return list(self.params(z, theta)[0])

    def legend_text(self, sample_seed: int) -> str:
        if self.latent_dim == 1:
            col = (
                "colour = z: <span style='color:#42039d'>■</span> z = −2.5 … "
                "<span style='color:#cb4678'>■</span> z = 0 … <span style='color:#f0a024'>■</span> z = +2.5"
            )
            comps = "9 components at z = −2, −1.5, …, 2"
        else:
            col = "colour = z: hue = direction of z, saturation = |z| (grey at z = 0)"
            comps = "25 components on a 5×5 grid of z ∈ [−2, 2]²"
        nodes = self.n_z**self.latent_dim
        return (
            f"{col}. Ellipses: 1σ contours, {comps}; black: z → μθ(z). Dots: {N_SAMPLES} samples, seed "
            f"{sample_seed}. Heatmap: {nodes} quadrature nodes, {GRID_N}×{GRID_N} x-grid."
        )

    # -- sessions --------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "theta": {k: v.tolist() for k, v in self.model.theta().items()},
            "ranges": self.range_preset if self.range_preset in RANGE_PRESETS else "lecture",
            "n_z": self.n_z,
            "show": dict(self.show),
            "fits": self.fits.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, strict: bool = True) -> InfiniteState:
        """Validated; SessionError naming the field (``views.infinite.<key>``). ``strict=False`` keeps the defaults of
        bad fields."""
        where = "views.infinite"
        if not isinstance(d, dict):
            raise _bad(where, "an object", d)
        out = cls()

        def attempt(fn: Callable[[], None]) -> None:
            try:
                fn()
            except SessionError:
                if strict:
                    raise

        def ranges() -> None:
            if not isinstance(d["ranges"], str) or d["ranges"] not in RANGE_PRESETS:
                raise _bad(f"{where}.ranges", f"one of {', '.join(RANGE_PRESETS)}", d["ranges"])
            out.set_range_preset(d["ranges"])

        def model() -> None:
            dz, theta = d.get("latent_dim", 1), d.get("theta")
            if dz not in (1, 2) or isinstance(dz, bool):
                raise _bad(f"{where}.latent_dim", "1 or 2", dz)
            try:
                if theta is not None and not isinstance(theta, dict):
                    raise TypeError("not an object")
                out.set_latent_dim(dz, theta)
            except (ModelInputError, TypeError, ValueError) as exc:
                out.set_latent_dim(dz)  # (the default theta, unless strict)
                raise _bad(f"{where}.theta", f"A, B (2 x {dz}) and c, d (2) ({exc})", theta) from None

        def n_z() -> None:
            out.n_z = _int(d["n_z"], f"{where}.n_z", *N_Z_RANGE)

        def show() -> None:
            s = d["show"]
            if not isinstance(s, dict) or not all(k in SHOW_KEYS and isinstance(v, bool) for k, v in s.items()):
                raise _bad(f"{where}.show", f"an object of true/false for {', '.join(SHOW_KEYS)}", s)
            out.show.update(s)

        def fits() -> None:
            out.fits = FitSettings.from_dict(d["fits"], f"{where}.fits", strict)

        if "ranges" in d:
            attempt(ranges)
        if "latent_dim" in d or "theta" in d:
            attempt(model)
        for key, fn in (("n_z", n_z), ("show", show), ("fits", fits)):
            if key in d:
                attempt(fn)
        return out


# -- the fits ------------------------------------------------------------------------------------------------------
def random_start(latent_dim: int, ranges: OutputRanges, seed: int) -> LectureVAE:
    """The lecture VAE the exact and ELBO fits start from: theta ~ N(0, 0.5^2) entry-wise, drawn with ``seed`` (the
    same start for both)."""
    rng = np.random.default_rng(seed)
    model = LectureVAE(latent_dim, ranges=ranges)
    model.set_theta(**{k: 0.5 * rng.standard_normal(v.shape) for k, v in model.theta().items()})
    return model


def fit_job(
    method: str,
    x_train: np.ndarray,
    x_test: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray],
    latent_dim: int,
    ranges: OutputRanges,
    k: int,
    seed: int,
) -> tuple[Callable[[], Iterator[FitSnapshot]], tuple[OutputRanges, int] | None]:
    """(the worker's job, the fitted lecture model's (ranges, latent_dim) or None) for one of METHODS, seeded."""
    if method in ("exact", "elbo"):
        model = random_start(latent_dim, ranges, seed)
        fit = fit_exact if method == "exact" else fit_elbo
        return (lambda: fit(model, x_train, x_test, grid=grid, seed=seed)), (model.ranges, model.latent_dim)
    if method == "gmm":
        return (lambda: fit_gmm(x_train, x_test, n_components=k, seed=seed, grid=grid)), None
    if method == "mlp":
        return (lambda: fit_mlp(x_train, x_test, seed=seed, grid=grid)), None
    raise ModelInputError(f"unknown fit {method!r}; choose one of {', '.join(METHODS)}")


def fit_figures(method: str, snap: FitSnapshot) -> str:
    """The text under a fit's cell."""
    if snap.done:
        extra = "" if method == "gmm" else f" · {'ELBO' if method != 'exact' else 'objective'} {snap.objective:.3f}"
        return f"log p(x): train <b>{snap.train_log_lik:.3f}</b> · test <b>{snap.test_log_lik:.3f}</b> nats{extra}"
    obj = "log p" if method == "exact" else "ELBO"
    return f"fitting… {obj} {snap.objective:.3f}" if math.isfinite(snap.objective) else "fitting…"
