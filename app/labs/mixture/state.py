"""The Mixture lab's state, Qt-free: what the user set up and what the lab remembers.

- the data: a toy set (name, n, seed), the workspace's 2-D dataset, the digits page, or points the user clicked in;
- the EM configuration (K, covariance type, initialisation, seed);
- the stored half steps (``History``): which one is shown, whether the view follows new ones, and the bounded
  tables of responsibilities r_nk = p(z=k | x_n) and point colours sum_k r_nk colour_k behind them;
- the BIC/AIC grid (``BICGrid``) and the data and covariance type it was computed for (stale after a change);
- the selection, the view range, the density mode, the digits page's settings;
- the covariance floor ``reg_covar`` (EM adds it to every covariance's diagonal: a component collapsing onto a point
  stops there) and the "compare with seed" run: a second EM run on the same data from another seed, of which only
  the end is kept (``compare``), to show EM's local optima side by side.

``MixtureState.to_dict`` / ``update_from_dict`` / ``from_dict`` are the session's ``views.mixture`` (keys unchanged
since sessions version 1). The view (``view.py``) binds widgets to this object and draws it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.core.workspace import MAX_SESSION_POINTS
from app.labs.mixture.engine import (
    COV_TYPES,
    INITS,
    EMConfig,
    Step,
    blend_colours,
    component_log_joint,
    posterior,
    step_full_covs,
)
from app.widgets.palette import component_colours
from lvm.data.toy import TOY_SETS
from lvm.errors import SessionError
from lvm.models.gmm_selection import CriterionPoint, best_k

GREY = np.array([0.55, 0.55, 0.55], np.float32)
USER_POINTS, WORKSPACE, DIGITS = "your points (click to add)", "workspace dataset (2-D)", "digits (cluster images)"
SOURCES = (*TOY_SETS, USER_POINTS, WORKSPACE, DIGITS)
DENSITY_MODES = ("no density", "log p(x) heatmap", "log p(x) contours")
DIGIT_SPACES = ("pixels (diag)", "PCA: 50 (full)", "VAE latent (full)")
# ranges of the lab's settings (the spin boxes use them; a session value outside is refused)
K_RANGE, SEED_RANGE, N_RANGE, DATA_SEED_RANGE = (1, 20), (0, 9999), (10, 200_000), (0, 9999)
DIGITS_K_RANGE, DIGITS_N_RANGE = (2, 40), (50, 70_000)
REG_COVARS = (
    1e-6,
    1e-4,
    1e-2,
    1e-1,
)  # the covariance floors offered (EMConfig.reg_covar; scikit-learn's default first)
FLOOR_FACTOR = 10.0  # a smallest variance within this factor of reg_covar is "at the floor"
# The lab keeps up to CACHE_SIZE (N x K) float32 responsibility tables and as many colour tables: at K = 20 about
# 750 bytes a point, so a million points cost ~0.75 GB at most. A larger workspace dataset is subsampled.
CACHE_SIZE = 9
MAX_LAB_POINTS = 1_000_000
BIC_KS, BIC_SEEDS = tuple(range(1, 9)), (0, 1, 2)

HALF_STEP_TEXT = {
    "E": "after the E-step (responsibilities updated)",
    "M": "after the M-step (parameters updated)",
}


def _cache_put(cache: dict[int, Any], key: int, value: Any) -> None:
    """A bounded cache keyed by history index: at most CACHE_SIZE entries, the oldest goes first."""
    if len(cache) >= CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value


class History:
    """The stored half steps of the EM runs, the one shown, and the rules of scrubbing and branching.

    - ``append``: a new step goes at the end; the view shows it while it follows (or when nothing is shown yet).
    - ``scrub(i)``: show step i; the view follows new steps again only when i is the newest.
    - ``branch_here``: a new run continues from what is on screen: the steps after the shown one are dropped.
    - ``clear`` / ``restart``: a new run from scratch (or from one given step). Every edit starts one, and the view
      follows it: scrubbing back, then editing, must not leave the view on an old step.
    """

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.shown = -1
        self.follow = True
        self.resp_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # E-step index -> (resp (N, K), log p(x_n))
        self.colour_cache: dict[int, np.ndarray] = {}  # E-step index -> (N, 3) point colours

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> Step:
        return self.steps[i]

    @property
    def current(self) -> Step | None:
        return self.steps[self.shown] if 0 <= self.shown < len(self.steps) else None

    @property
    def newest(self) -> int:
        return len(self.steps) - 1

    def clear(self) -> None:
        self.steps = []
        self.shown = -1
        self.follow = True
        self.forget_tables()

    def forget_tables(self) -> None:
        """Drop the responsibility and colour tables (the points changed)."""
        self.resp_cache.clear()
        self.colour_cache.clear()

    def restart(self, first: Step) -> None:
        """A new run whose first stored step is ``first``; it is shown and the view follows the run."""
        self.clear()
        self.append(first)

    def append(self, step: Step, colours: np.ndarray | None = None) -> bool:
        """Store ``step`` (with the points' colours the worker computed for it); True when the view should show it."""
        self.steps.append(step)
        if colours is not None:
            _cache_put(self.colour_cache, self.newest, colours)
        if self.follow or self.shown < 0:
            self.shown = self.newest
            return True
        return False

    def scrub(self, i: int) -> Step:
        """Show step i (clamped to the stored ones); follow new steps iff i is the newest."""
        if not self.steps:
            raise IndexError("no steps stored")
        self.shown = min(max(int(i), 0), self.newest)
        self.follow = self.shown == self.newest
        return self.steps[self.shown]

    def branch_here(self) -> Step | None:
        """Drop the steps after the shown one (new steps continue from what is on screen) and follow again."""
        if not self.steps:
            return None
        del self.steps[self.shown + 1 :]
        self.resp_cache = {i: v for i, v in self.resp_cache.items() if i <= self.shown}
        self.colour_cache = {i: v for i, v in self.colour_cache.items() if i <= self.shown}
        self.follow = True
        return self.steps[self.shown]

    def resp_index(self, i: int) -> int | None:
        """The index whose responsibilities are shown at i: after an E-step its own, after an M-step those of the
        E-step it used (colours change at E-steps only); None for the very first initialisation, which has none."""
        step = self.steps[i]
        j = i - 1 if step.half == "M" and i > 0 else i
        if j == 0 and self.steps[0].half == "init" and step.half != "M":
            return None
        return j

    def responsibilities(self, i: int, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(r (N, K), log p(x_n) (N,)) shown at index i (computed once per E-step, kept in the bounded cache)."""
        j = self.resp_index(i)
        if j is None:
            return None
        if j not in self.resp_cache:
            _cache_put(self.resp_cache, j, posterior(X, self.steps[j]))
        return self.resp_cache[j]

    def colours(self, i: int, X: np.ndarray) -> np.ndarray:
        """(N, 3) colours of the points at index i: sum_k r_nk colour_k (grey before the first E-step)."""
        j = self.resp_index(i)
        if j is None:
            return np.tile(GREY, (len(X), 1))
        if j in self.colour_cache:
            return self.colour_cache[j]
        resp = self.responsibilities(i, X)[0]  # type: ignore[index]  # j is not None: there are responsibilities
        colours = blend_colours(resp, component_colours(resp.shape[1]))
        _cache_put(self.colour_cache, j, colours)
        return colours


@dataclasses.dataclass
class BICGrid:
    """The BIC/AIC fits for K = 1..8 and the (data version, covariance type) they were computed for."""

    points: list[CriterionPoint] = dataclasses.field(default_factory=list)
    basis: tuple[int, str] | None = None

    def start(self, data_version: int, cov_type: str) -> None:
        self.points = []
        self.basis = (data_version, cov_type)

    def add(self, point: CriterionPoint) -> None:
        self.points.append(point)

    def stale_reason(self, data_version: int, cov_type: str) -> str | None:
        """Why the grid no longer describes the lab's data and model (None: it does, or there is none)."""
        if not self.points or self.basis is None:
            return None
        if self.basis[0] != data_version:
            return "the data changed"
        if self.basis[1] != cov_type:
            return f"computed for {self.basis[1]} covariances"
        return None

    def best_k(self) -> int | None:
        return best_k(self.points)

    def curves(self) -> dict[str, np.ndarray]:
        """Arrays to draw: every fit (k, bic, aic) and, per K, the lowest BIC and AIC over the seeds."""
        arr = np.array([(p.k, p.bic, p.aic) for p in self.points], float).reshape(-1, 3)
        ks = np.unique(arr[:, 0])
        return {
            "k": arr[:, 0],
            "bic": arr[:, 1],
            "aic": arr[:, 2],
            "ks": ks,
            "bic_min": np.array([arr[arr[:, 0] == k, 1].min() for k in ks]),
            "aic_min": np.array([arr[arr[:, 0] == k, 2].min() for k in ks]),
        }


@dataclasses.dataclass(frozen=True)
class DigitsSettings:
    """The digits page's fit settings: feature space, K, number of digits, seed."""

    space: str = DIGIT_SPACES[0]
    k: int = 10
    n: int = 3000
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LLCurve:
    """The log-likelihood plot: points (x = half step, mean log p(x)), which are after an E or M step, the range."""

    x: np.ndarray
    ll: np.ndarray
    after_e: np.ndarray  # bool masks over x
    after_m: np.ndarray
    x_range: tuple[float, float]
    y_range: tuple[float, float] | None


def ll_curve(steps: list[Step], reference: float | None = None) -> LLCurve:
    """The curve of the finite mean log-likelihoods, with an explicit range: a degenerate start far below the rest
    (one point per component) is left out of it; a flat curve gets a range of at least 0.02. A finite ``reference``
    (the compared run's final log-likelihood, drawn as a line) is kept inside the range."""
    ll = np.array([s.log_likelihood for s in steps], float)
    halves = np.array([s.half for s in steps])
    ok = np.isfinite(ll)
    x = np.arange(len(ll), dtype=float)
    x_range = (-0.5, max(len(ll) - 0.5, 0.5))
    f = ll[ok]
    if reference is not None and math.isfinite(reference):
        f = np.append(f, reference)
    y_range = None
    if f.size:
        lo, hi = float(f.min()), float(f.max())
        if f.size >= 5:
            rest = float(f[2:].min())
            if f[0] < rest - max(10 * (hi - rest), 1.0):
                lo = rest
        pad = max(0.08 * (hi - lo), 0.01)  # init and the first E-step share one value: no range of 1e-16
        y_range = (lo - pad, hi + pad)
    return LLCurve(x[ok], ll[ok], (halves == "E")[ok], (halves == "M")[ok], x_range, y_range)


def step_text(i: int, step: Step) -> str:
    what = ("initial parameters" if i == 0 else "parameters set by hand") if step.half == "init" else None
    what = what or HALF_STEP_TEXT[step.half]
    return f"step {i}: iteration {step.iteration}, {what}; log-lik/point {step.log_likelihood:.4f}"


def collapse_text(flagged: tuple[int, ...]) -> str:
    if not flagged:
        return ""
    names = ", ".join(str(k) for k in flagged)
    return (
        f"\u26a0 component {names} collapsing: its covariance shrinks towards a single point "
        "(likelihood \u2192 \u221e). Reset with another seed or fewer components."
    )


def smallest_variance(step: Step) -> tuple[int, float]:
    """(k, lambda_min): the component with the smallest covariance eigenvalue, and that eigenvalue (the variance of
    the component along its narrowest direction; EM never lets it fall below reg_covar)."""
    eig = np.linalg.eigvalsh(step_full_covs(step)).min(axis=1)
    k = int(np.argmin(eig))
    return k, float(eig[k])


def variance_text(step: Step, reg_covar: float) -> str:
    """The smallest component variance against the floor reg_covar, on one line: a component shrinking onto a point
    shows here (its variance falls by orders of magnitude while the log-likelihood climbs), and so does the floor."""
    k, lam = smallest_variance(step)
    if lam <= FLOOR_FACTOR * reg_covar:
        return (
            f"smallest variance {lam:.2e} (component {k}) = the floor reg_covar {reg_covar:.0e}: without it "
            "\u03a3 \u2192 0 and log p(x) \u2192 \u221e"
        )
    return f"smallest variance {lam:.2e} (component {k}); floor reg_covar {reg_covar:.0e}"


def compare_text(seed: int, other: Step | None, done: bool, main: Step | None, main_seed: int) -> str:
    """The comparison's caption: the other run's log-likelihood per point beside this run's."""
    if other is None:
        return f"seed {seed}: starting\u2026"
    text = f"seed {seed}: log-lik/point {other.log_likelihood:.4f}"
    text += "" if done else f" (iteration {other.iteration}\u2026)"
    if main is not None:
        text += f"  \u00b7  this run, seed {main_seed}: {main.log_likelihood:.4f}"
        if done:
            diff = other.log_likelihood - main.log_likelihood
            if abs(diff) < 1e-4:
                text += " (the same optimum)"
            else:
                text += f"; seed {seed if diff > 0 else main_seed} ends {abs(diff):.4f} higher"
    return text


def subsample(x: np.ndarray, y: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """At most MAX_LAB_POINTS of the points (a random subset, sorted), and what to tell the user when cut."""
    if len(x) <= MAX_LAB_POINTS:
        return x, y, None
    keep = np.sort(np.random.default_rng(seed).choice(len(x), MAX_LAB_POINTS, replace=False))
    message = (
        f"the workspace dataset has {len(x):,} points; the Mixture lab fits and draws a random "
        f"{MAX_LAB_POINTS:,} of them (seed {seed}): its step-by-step history of more would need several GB "
        "of memory. lvm fit-gmm fits all of them (it keeps no history)"
    )
    return x[keep], None if y is None else y[keep], message


def fit_range(X: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """A view range around the points (8% margins; +-5 without points)."""
    if len(X) == 0:
        return (-5.0, 5.0), (-5.0, 5.0)
    lo, hi = X.min(0).astype(float), X.max(0).astype(float)
    pad = 0.08 * np.maximum(hi - lo, 1e-3) + (0.5 if len(X) < 5 else 0.0)
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


class MixtureState:
    """Everything the Mixture lab holds that is not a widget (see the module docstring)."""

    def __init__(self) -> None:
        self.source = "blobs"
        self.n = 1500
        self.data_seed = 0
        self.config = EMConfig(k=4, cov_type="full", init="random", seed=0)
        self.density = 0
        self.view_range: tuple[tuple[float, float], tuple[float, float]] | None = None
        self.selected_point: int | None = None
        self.restored_selection: int | None = None  # a session's selection, taken once its points are loaded
        self.digits = DigitsSettings()
        self.X = np.zeros((0, 2), np.float32)
        self.labels: np.ndarray | None = None
        self.data_version = 0
        self.history = History()
        self.bic = BICGrid()
        self.first_fit = True  # after the first fit: select the most ambiguous point, compute the BIC grid
        self.compare_on = False  # a comparison run asked for ("compare with seed")
        self.compare_seed = 1
        self.compare_step: Step | None = None  # the comparison run's latest step (its end once ``compare_done``)
        self.compare_colours: np.ndarray | None = None
        self.compare_done = False

    # -- data ------------------------------------------------------------------------------------------------------
    @property
    def is_toy(self) -> bool:
        return self.source in TOY_SETS

    def toy_points(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = TOY_SETS[self.source](n=self.n, seed=self.data_seed)
        return x, y

    def set_points(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """Replace the data: the selection and the responsibility tables go, the BIC grid becomes stale."""
        self.X = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 2)
        self.labels = None if y is None else np.asarray(y)
        self.selected_point = None
        self.data_version += 1
        self.history.forget_tables()
        self.forget_compare()

    def forget_compare(self) -> None:
        """The comparison run belonged to other points or another configuration."""
        self.compare_step, self.compare_colours, self.compare_done = None, None, False

    def receive_compare(self, step: Step, colours: np.ndarray | None, done: bool) -> None:
        if colours is not None and len(colours) != len(self.X):
            colours = None
        self.compare_step, self.compare_done = step, done
        if colours is not None:
            self.compare_colours = colours

    def compare_config(self) -> EMConfig | None:
        """The comparison run's configuration: the lab's, with the compared seed (None: no comparison)."""
        if not self.compare_on:
            return None
        return dataclasses.replace(self.config, seed=self.compare_seed)

    def edit_points(self, x: np.ndarray) -> Step | None:
        """The user changed the points: they become 'your points'. The shown model is kept: a new run starts from it
        (returned; its log-likelihood is on the new points). None: it cannot (no model, or fewer points than K)."""
        shown = self.history.current
        self.source = USER_POINTS
        self.set_points(x)
        if shown is None or len(self.X) < shown.k:
            self.history.clear()
            return None
        ll = float(posterior(self.X, shown)[1].mean())
        restart = dataclasses.replace(shown, half="init", iteration=0, log_likelihood=ll, collapsed=())
        self.history.restart(restart)
        return restart

    def data_scale(self) -> float:
        return float(self.X.std()) if len(self.X) > 1 else 1.0

    def bic_stale_reason(self) -> str | None:
        return self.bic.stale_reason(self.data_version, self.config.cov_type)

    # -- EM --------------------------------------------------------------------------------------------------------
    def can_fit(self) -> bool:
        return len(self.X) >= self.config.k

    def receive(self, step: Step, colours: np.ndarray | None) -> bool:
        """A half step from the worker (with the points' colours after an E-step); True: the view shows it."""
        if colours is not None and len(colours) != len(self.X):
            colours = None  # computed for other points
        return self.history.append(step, colours)

    def step_plan(self, half: str) -> tuple[Step, int] | None:
        """(start, number of half steps) for one E- or M-step from the shown step (an M right after an M or init
        first needs an E); the steps after the shown one are dropped."""
        start = self.history.branch_here()
        if start is None:
            return None
        return start, 1 if (half == "E") == (start.half != "E") else 2

    def drag_mean(self, k: int, xy: tuple[float, float]) -> Step:
        """Mean k moved to ``xy`` by hand: a new 'init' step after the shown one (the steps after it are dropped)."""
        base = self.history.branch_here()
        if base is None:
            raise IndexError("no step to move a mean of")
        means = base.means.copy()
        means[k] = xy
        moved = dataclasses.replace(base, half="init", means=means, log_likelihood=0.0, collapsed=())
        ll = float(posterior(self.X, moved)[1].mean()) if len(self.X) else 0.0
        moved = dataclasses.replace(moved, log_likelihood=ll)
        self.history.append(moved)
        return moved

    def selected_posterior(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(joint pi_k N(x; mu_k, Sigma_k) (K,), posterior p(z=k|x) (K,)) of the selected point under the shown step:
        Bayes' rule, p(z=k|x) = joint_k / sum_j joint_j (normalised in log space)."""
        step = self.history.current
        if self.selected_point is None or step is None or self.selected_point >= len(self.X):
            return None
        lj = component_log_joint(self.X[self.selected_point], step)
        post = np.exp(lj - lj.max())
        return np.exp(lj), post / post.sum()

    def most_ambiguous_point(self) -> int | None:
        """The point whose largest responsibility under the newest step is smallest."""
        if not len(self.X) or not len(self.history):
            return None
        resp = posterior(self.X, self.history[self.history.newest])[0]
        return int(np.argmin(resp.max(1)))

    # -- export ----------------------------------------------------------------------------------------------------
    def export_rows(self) -> Iterator[list]:
        """CSV rows: x1, x2, p(z=k|x) under the shown step, the most probable k, the true label (when known)."""
        i = self.history.shown
        r = None
        if i >= 0:
            r = self.history.responsibilities(i, self.X) or posterior(self.X, self.history[i])
        K = 0 if r is None else r[0].shape[1]
        yield [
            "x1",
            "x2",
            *[f"p_z{k}" for k in range(K)],
            "label",
            *(["true_label"] if self.labels is not None else []),
        ]
        for n in range(len(self.X)):
            row: list = [f"{self.X[n, 0]:.6g}", f"{self.X[n, 1]:.6g}"]
            if r is not None:
                row += [f"{p:.6g}" for p in r[0][n]] + [int(np.argmax(r[0][n]))]
            else:
                row += [""]
            if self.labels is not None:
                row.append(int(self.labels[n]))
            yield row

    # -- session ---------------------------------------------------------------------------------------------------
    def session_losses(self) -> list[str]:
        """What a saved session would not keep."""
        if self.source == USER_POINTS and len(self.X) > MAX_SESSION_POINTS:
            return [f"the Mixture lab's {len(self.X):,} points (a session keeps at most {MAX_SESSION_POINTS:,})"]
        return []

    def to_dict(self) -> dict:
        """The session's ``views.mixture`` (JSON-able)."""
        keep_points = self.source == USER_POINTS and len(self.X) <= MAX_SESSION_POINTS
        return {
            "k": self.config.k,
            "cov_type": self.config.cov_type,
            "init": self.config.init,
            "seed": self.config.seed,
            "reg_covar": self.config.reg_covar,
            "compare": self.compare_on,
            "compare_seed": self.compare_seed,
            "dataset": self.source,
            "n": self.n,
            "data_seed": self.data_seed,
            "view_range": None if self.view_range is None else [list(self.view_range[0]), list(self.view_range[1])],
            "density": self.density,
            "digits": self.digits.to_dict(),
            # the user's own points (clicked in, or a data set edited by clicks) travel with the session
            "points": self.X.tolist() if keep_points else None,
            "selected_point": self.selected_point,
        }

    def update_from_dict(self, d: dict) -> list[str]:
        """Take the valid entries of a session's ``views.mixture``; a missing key keeps the current value. Returns
        what was refused ("views.mixture.KEY: why"); the history starts again."""
        if not isinstance(d, dict):
            return [f"views.mixture must be an object, got {type(d).__name__}"]
        problems: list[str] = []

        def bad(key: str, why: str) -> None:
            problems.append(f"views.mixture.{key}: {why}, got {d[key]!r:.60}")

        cfg: dict[str, Any] = {}
        for key, (lo, hi) in (("k", K_RANGE), ("seed", SEED_RANGE)):
            if key in d:
                v = _int_in(d[key], lo, hi)
                if v is None:
                    bad(key, f"must be an integer from {lo} to {hi}")
                else:
                    cfg[key] = v
        for key, choices in (("cov_type", COV_TYPES), ("init", INITS)):
            if key in d:
                if d[key] in choices:
                    cfg[key] = d[key]
                else:
                    bad(key, f"must be one of {', '.join(choices)}")
        if "reg_covar" in d:
            reg = _choice_of(d["reg_covar"], REG_COVARS)
            if reg is None:
                bad("reg_covar", f"must be one of {', '.join(f'{r:g}' for r in REG_COVARS)}")
            else:
                cfg["reg_covar"] = reg
        self.config = dataclasses.replace(self.config, **cfg)
        if "compare" in d:
            if isinstance(d["compare"], bool):
                self.compare_on = d["compare"]
            else:
                bad("compare", "must be true or false")
        if "compare_seed" in d:
            v = _int_in(d["compare_seed"], *SEED_RANGE)
            if v is None:
                bad("compare_seed", f"must be an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}")
            else:
                self.compare_seed = v
        for key, (lo, hi) in (("n", N_RANGE), ("data_seed", DATA_SEED_RANGE)):
            if key in d:
                v = _int_in(d[key], lo, hi)
                if v is None:
                    bad(key, f"must be an integer from {lo} to {hi}")
                else:
                    setattr(self, key, v)
        if "density" in d:
            v = _int_in(d["density"], 0, len(DENSITY_MODES) - 1)
            if v is None:
                bad("density", f"must be an integer from 0 to {len(DENSITY_MODES) - 1}")
            else:
                self.density = v
        points = None
        if d.get("points") is not None:
            points = _points(d["points"])
            if points is None:
                bad("points", f"must be a list of at most {MAX_SESSION_POINTS:,} finite [x, y] pairs")
        if "dataset" in d:
            ds = d["dataset"]
            if ds not in SOURCES:
                bad("dataset", f"must be one of {', '.join(SOURCES)}")
            elif ds == USER_POINTS:
                if points is not None:  # (without them, e.g. too many to save, the current data stays)
                    self.source = USER_POINTS
                    self.set_points(points)
            else:
                self.source = ds
        if "view_range" in d and d["view_range"] is None:
            self.view_range = None  # (the view fits the points)
        elif d.get("view_range") is not None:
            vr = _view_range(d["view_range"])
            if vr is None:
                bad("view_range", "must be [[x0, x1], [y0, y1]] with finite x0 < x1 and y0 < y1")
            else:
                self.view_range = vr
        if "digits" in d:
            self.digits, why = _digits(d["digits"], self.digits)
            if why:
                problems.append(f"views.mixture.digits.{why}")
        self.restored_selection = None
        if d.get("selected_point") is not None:
            sel = _int_in(d["selected_point"], 0, MAX_SESSION_POINTS - 1)
            if sel is None:
                bad("selected_point", "must be a point's index")
            self.restored_selection = sel
        self.history.clear()
        self.forget_compare()
        return problems

    @classmethod
    def from_dict(cls, d: dict) -> MixtureState:
        """A state from a session's ``views.mixture``; ``SessionError`` naming every refused entry."""
        state = cls()
        problems = state.update_from_dict(d)
        if problems:
            raise SessionError("; ".join(problems) + " (fix or remove these entries of the session file)")
        if state.source in TOY_SETS:
            state.set_points(*state.toy_points())
        return state

    def take_restored_selection(self) -> None:
        """Select the session's point once the points are loaded (when it is one of them)."""
        sel, self.restored_selection = self.restored_selection, None
        if sel is not None and sel < len(self.X):
            self.selected_point = sel


def _int_in(value: object, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        return None
    return value


def _choice_of(value: object, choices: tuple[float, ...]) -> float | None:
    """The entry of ``choices`` equal to ``value`` (a finite number, to a relative 1e-9), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return next((c for c in choices if math.isclose(float(value), c, rel_tol=1e-9)), None)


def _points(value: object) -> np.ndarray | None:
    """An (N, 2) float32 array of finite points, N <= MAX_SESSION_POINTS, or None."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) > MAX_SESSION_POINTS or not np.isfinite(arr).all():
        return None
    return arr.astype(np.float32)


def _view_range(value: object) -> tuple[tuple[float, float], tuple[float, float]] | None:
    pairs: Any = value
    try:
        (x0, x1), (y0, y1) = pairs
        vals = [float(x0), float(x1), float(y0), float(y1)]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in vals) or vals[1] <= vals[0] or vals[3] <= vals[2]:
        return None
    return (vals[0], vals[1]), (vals[2], vals[3])


def _digits(value: object, current: DigitsSettings) -> tuple[DigitsSettings, str | None]:
    """The digits page's settings from a session (valid entries taken) and what was refused."""
    if not isinstance(value, dict):
        return current, f"must be an object, got {type(value).__name__}"
    out, why = {}, []
    if "space" in value:
        if value["space"] in DIGIT_SPACES:
            out["space"] = value["space"]
        else:
            why.append(f"space must be one of {', '.join(DIGIT_SPACES)}")
    for key, (lo, hi) in (("k", DIGITS_K_RANGE), ("n", DIGITS_N_RANGE), ("seed", SEED_RANGE)):
        if key in value:
            v = _int_in(value[key], lo, hi)
            if v is None:
                why.append(f"{key} must be an integer from {lo} to {hi}")
            else:
                out[key] = v
    return dataclasses.replace(current, **out), "; ".join(why) or None
