"""The Inference lab's state, Qt-free: what the user set up (each panel's settings and seeds, the panel shown) and
what the lab remembers (the x it analyses and q's parameters in the KL gap explorer).

``to_dict`` / ``from_dict`` are the lab's part of a session (``views.inference``): the panel and the panels'
settings. The selected x and q are the workspace's own session fields (``selected_index``, ``q``), so they are not
repeated here. ``from_dict`` validates: a value of the wrong type is a ``SessionError`` naming the field; a number
out of its range is clamped into it (as the spin boxes would).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from lvm.errors import SessionError
from lvm.estimators.convergence import DEFAULT_KS

PANELS = ("kl", "slice", "onedim", "convergence", "jensen", "scatter")
WHERE = "views.inference"

# the 1-D picture: the slides' presets N(2, 2) and N(-4, 0.75) (second number: variance or standard deviation)
PRESETS = ((2.0, 2.0), (-4.0, 0.75))
Z_RANGE = (-8.0, 8.0)
SIGMA_RANGE = (0.05, 5.0)
SHIFT_RANGE = (-20.0, 20.0)  # the convergence study's proposal: the encoder's q moved this many sigmas ...
SCALE_RANGE = (0.05, 20.0)  # ... and its scale times this


def analysis_problem(model: Any, data: Any, index: int | None) -> str:
    """What stops the lab from analysing x #``index`` of ``data`` (a split: ``.x`` (N, D)) under ``model``, said
    as what to do; "" when nothing does. A 2-D latent gets exact posteriors by quadrature; more dimensions a slice
    through the posterior and log p(x) by AIS (``is_sliced``); both need matching data."""
    if model is None:
        return "Open or train a model (File → Open model…) to see its posteriors."
    if data is None:
        return "Load a data set first."
    if int(getattr(model, "latent_dim", 0)) < 2:
        return (
            f"This model has a {getattr(model, 'latent_dim', '?')}-D latent space; the lab's pictures need at least "
            "2 dimensions (the 1-D picture tab has its own 1-D model)."
        )
    if data.x.shape[1] != getattr(model, "data_dim", -1):
        return (
            f"The model expects {getattr(model, 'data_dim', '?')} features but the data set has {data.x.shape[1]}; "
            "load matching data."
        )
    if index is None:
        return "Select a data point."
    return ""


def is_sliced(model: Any) -> bool:
    """The lab shows a slice of the posterior and estimates log p(x) by AIS: the latent space has more than 2
    dimensions (quadrature, and the exact pictures, need at most 2)."""
    return model is not None and int(getattr(model, "latent_dim", 0)) > 2


class _Settings:
    """A panel's settings: dataclass fields with ``LIMITS[name] = (low, high)``; ints stay ints."""

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Any:
        if not isinstance(d, dict):
            raise SessionError(f"{where} must be an object of settings; got {type(d).__name__}")
        out = cls()
        for f in fields(out):  # type: ignore[arg-type]
            if f.name not in d:
                continue
            v = d[f.name]
            lo, hi = cls.LIMITS[f.name]
            if isinstance(getattr(out, f.name), int):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise SessionError(f"{where}.{f.name} must be an integer in [{lo:g}, {hi:g}]; got {v!r}")
                setattr(out, f.name, int(min(max(v, lo), hi)))
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise SessionError(f"{where}.{f.name} must be a finite number in [{lo:g}, {hi:g}]; got {v!r}")
                setattr(out, f.name, float(min(max(float(v), lo), hi)))
        return out


@dataclass
class OneDSettings(_Settings):
    """The 1-D picture: observed ``x``, decoder noise ``s``, the user's q = N(``mu``, ``sigma``^2) and whether the
    presets' second number is a variance (``convention`` 0) or a standard deviation (1)."""

    x: float = 9.0
    s: float = 3.0
    mu: float = 2.0
    sigma: float = math.sqrt(2.0)
    convention: int = 0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "x": (-2.0, 30.0),
        "s": (0.05, 10.0),
        "mu": Z_RANGE,
        "sigma": SIGMA_RANGE,
        "convention": (0, 1),
    }

    def preset(self, i: int) -> tuple[float, float]:
        """(mu, sigma) of preset i under the chosen convention."""
        mu, second = PRESETS[i]
        return mu, (math.sqrt(second) if self.convention == 0 else second)


@dataclass
class ConvergenceSettings(_Settings):
    """The convergence study: repeats, seed, samples drawn, the largest k, and the importance-sampling proposal:
    the encoder's q(z|x) = N(m, L L^T) moved ``shift`` of its standard deviations along its first axis and its scale
    multiplied by ``scale``, N(m + shift L e_1, scale^2 L L^T) (0 and 1: the encoder's q itself)."""

    repeats: int = 10
    seed: int = 0
    n_show: int = 200
    kmax: int = 5000
    shift: float = 0.0
    scale: float = 1.0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "repeats": (1, 200),
        "seed": (0, 10**6),
        "n_show": (10, 2000),
        "kmax": (10, 20000),
        "shift": SHIFT_RANGE,
        "scale": SCALE_RANGE,
    }

    def proposal(self, mean: np.ndarray, tril: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The proposal's (mean, scale_tril) from the encoder's: N(m + shift L e_1, (scale L)(scale L)^T)."""
        L = np.asarray(tril, dtype=float)
        return np.asarray(mean, dtype=float) + self.shift * L[:, 0], self.scale * L

    def proposal_name(self) -> str:
        """The proposal in words."""
        if self.shift == 0 and self.scale == 1:
            return "the encoder's q"
        moves = ([f"moved {self.shift:g} σ along its first axis"] if self.shift else []) + (
            [f"its σ × {self.scale:g}"] if self.scale != 1 else []
        )
        return "the encoder's q, " + ", ".join(moves)

    def ks(self) -> tuple[int, ...]:
        """The k's of the study: the default ones below ``kmax``, and ``kmax``."""
        return tuple(sorted({k for k in DEFAULT_KS if k < self.kmax} | {self.kmax}))


@dataclass
class JensenSettings(_Settings):
    k: int = 5
    repeats: int = 2000
    seed: int = 0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"k": (1, 5000), "repeats": (50, 20000), "seed": (0, 10**6)}


@dataclass
class ScatterSettings(_Settings):
    n: int = 1000
    seed: int = 0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"n": (10, 10000), "seed": (0, 10**6)}

    def indices(self, n_all: int) -> np.ndarray:
        """The seeded random subset of min(n, n_all) of the split's ``n_all`` points, sorted."""
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(n_all, size=min(self.n, n_all), replace=False))


SETTINGS: dict[str, type[_Settings]] = {
    "onedim": OneDSettings,
    "convergence": ConvergenceSettings,
    "jensen": JensenSettings,
    "scatter": ScatterSettings,
}


MAX_Q_PATH = 5000  # snapshots of one optimisation of q kept (the lab's runs yield 151)


@dataclass(frozen=True)
class QPathStep:
    """q = N(mean, tril tril^T) after ``step`` optimisation steps."""

    step: int
    mean: np.ndarray
    tril: np.ndarray


@dataclass
class InferenceState:
    """The lab's state. ``index``: the x it analyses (follows the workspace's selection); ``q_mean`` (2,) and
    ``q_tril`` (2, 2): q = N(q_mean, q_tril q_tril^T) in the KL gap explorer (reset to the encoder's q per x)."""

    panel: str = "kl"
    index: int | None = None
    q_mean: np.ndarray | None = None
    q_tril: np.ndarray | None = None
    onedim: OneDSettings = field(default_factory=OneDSettings)
    convergence: ConvergenceSettings = field(default_factory=ConvergenceSettings)
    jensen: JensenSettings = field(default_factory=JensenSettings)
    scatter: ScatterSettings = field(default_factory=ScatterSettings)
    # q's path while "q = best Gaussian" last optimised it, for File → Export animation (not saved in sessions)
    q_path: list[QPathStep] = field(default_factory=list)

    def select(self, index: int | None) -> bool:
        """A new x to analyse: q and its optimisation path are forgotten (the lab sets the encoder's q). Returns
        whether the x changed."""
        changed = index != self.index
        self.index = index
        if changed:
            self.q_mean = self.q_tril = None
            self.q_path = []
        return changed

    def record_q_path(self, step: int, mean, tril) -> None:
        """One snapshot of an optimisation of q (step 0 starts a new path); at most MAX_Q_PATH are kept."""
        if step == 0:
            self.q_path = []
        if len(self.q_path) < MAX_Q_PATH:
            m = np.asarray(mean, dtype=float).reshape(2).copy()
            self.q_path.append(QPathStep(int(step), m, np.asarray(tril, dtype=float).reshape(2, 2).copy()))

    def q(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, scale_tril) of q, or None before the first x."""
        return None if self.q_mean is None or self.q_tril is None else (self.q_mean, self.q_tril)

    def set_q(self, mean, tril) -> tuple[np.ndarray, np.ndarray]:
        """q = N(mean, L L^T) with L the lower triangle of ``tril``; ``ValueError`` unless finite with a positive
        diagonal."""
        m = np.asarray(mean, dtype=float).reshape(2)
        L = np.tril(np.asarray(tril, dtype=float).reshape(2, 2))
        if not (np.isfinite(m).all() and np.isfinite(L).all()) or (np.diag(L) <= 0).any():
            raise ValueError("q needs a finite mean and a lower-triangular scale with a positive diagonal")
        self.q_mean, self.q_tril = m.copy(), L.copy()
        return self.q_mean, self.q_tril

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``{"panel": name, "onedim": {...}, "convergence": {...}, "jensen": {...}, "scatter": {...}}``."""
        return {"panel": self.panel, **{key: getattr(self, key).to_dict() for key in SETTINGS}}

    @classmethod
    def from_dict(cls, d: Any) -> InferenceState:
        """The state ``to_dict`` wrote (missing keys keep their defaults); ``SessionError`` naming the bad field."""
        if not isinstance(d, dict):
            raise SessionError(f"{WHERE} must be an object; got {type(d).__name__}")
        out = cls()
        panel = d.get("panel", out.panel)
        if panel not in PANELS:
            raise SessionError(f"{WHERE}.panel must be one of {', '.join(PANELS)}; got {panel!r}")
        out.panel = panel
        for key, kind in SETTINGS.items():
            if key in d:
                setattr(out, key, kind.from_dict(d[key], f"{WHERE}.{key}"))
        return out

    def with_settings_of(self, other: InferenceState) -> InferenceState:
        """This state's x and q with ``other``'s panel and settings (a restored session's)."""
        return replace(other, index=self.index, q_mean=self.q_mean, q_tril=self.q_tril, q_path=self.q_path)
