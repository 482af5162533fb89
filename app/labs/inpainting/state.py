"""The Inpainting lab's state, Qt-free: what the user drew (the ink x and the observed pixels O), the digit and mask
preset it started from, the pen, the mean-field phi with its ELBO estimates, and the rules that turn them into what
the lab shows and saves.

The canvas widget draws into ``image`` and ``mask`` (the view keeps them in step); a drawing restored from a session
waits in ``pending`` until the lab is first shown (the lab's own first load of its digit must not overwrite it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lvm.errors import SessionError
from lvm.inpainting import make_mask, preset_phi

IMAGE_DIM = 784
MASK_CHOICES = ("top", "bottom", "left", "right", "random:0.5", "random:0.8", "none")
TOOLS = ("brush", "eraser", "observe", "hide")
PHI_NAMES = {
    "half": "φ = 0.5",
    "ones": "φ = 1",
    "template": "φ = a 9",
    "predictive": "φ = predictive",
    "optimised": "φ optimised",
}
PHI_TICKS = {"half": "0.5", "ones": "1", "template": "a 9", "predictive": "predictive", "optimised": "optimised"}
SCORED_PRESETS = ("half", "ones", "template")  # ELBO(phi) estimated for these whenever the drawing changes
DEFAULT_INDEX = 12  # a 9 in the bundled MNIST test set
TEMPLATE_INDEX = 16  # another 9: the lecture's "phi close to 1 on the top of a 9"
BRUSH_RANGE = (0.5, 4.0)
UNDERSTATES_BY = 1.0  # nats: H(q) this far below the exact per-pixel entropy is said to under-state it
DEFAULT_BRUSH = 1.2
MAX_DRAWING_STEPS = 1000  # (about 4 kB each)


@dataclass(frozen=True)
class Drawing:
    """A drawing from a session: ink (784,) in [0, 1], observed pixels (784,) bool and the mean-field phi."""

    image: np.ndarray
    mask: np.ndarray
    phi: np.ndarray | None
    phi_name: str | None


@dataclass
class InpaintingState:
    """What the user set up in the Inpainting lab and what the lab remembers (see the module docstring)."""

    index: int = DEFAULT_INDEX
    mask_name: str = "top"
    brush: float = DEFAULT_BRUSH
    tool: str = "brush"
    follow: bool = True
    show_means: bool = False
    image: np.ndarray = field(default_factory=lambda: np.zeros(IMAGE_DIM, np.float32))
    mask: np.ndarray = field(default_factory=lambda: make_mask("top"))
    phi: np.ndarray | None = None
    phi_name: str | None = None
    elbos: dict[str, tuple[float, float]] = field(default_factory=dict)  # phi name -> (ELBO, stderr)
    log_p_obs: float | None = None
    pending: Drawing | None = None  # restored from a session, not on the canvas yet
    uncertainty: Any = None  # lvm.inpainting.uncertainty.PredictiveEntropy of the drawing shown (a worker's)
    follow_pending: int | None = None  # a selection made while the lab was hidden
    # the drawing step by step since the digit was loaded: (ink, observed pixels) after each stroke or mask change,
    # for File → Export animation (not saved in sessions)
    drawing_steps: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def forget_results(self) -> None:
        """Another model: the ELBOs, log p(x_O) and the predictive's uncertainty were the previous model's."""
        self.elbos, self.log_p_obs, self.uncertainty = {}, None, None

    # -- the drawing ---------------------------------------------------------------------------------------------
    def set_drawing(self, image: np.ndarray, mask: np.ndarray) -> None:
        """The canvas's ink and observed pixels (flat views of its arrays: strokes change them in place)."""
        self.image, self.mask = np.asarray(image).reshape(-1), np.asarray(mask, bool).reshape(-1)

    def restart_drawing_steps(self) -> None:
        """A digit (or a session's drawing) was put on the canvas: the drawing's history starts again from it."""
        self.drawing_steps = []
        self.record_drawing_step()

    def record_drawing_step(self) -> None:
        """The drawing after a stroke or a mask change (one that changed nothing is not a step). At most
        MAX_DRAWING_STEPS are kept: the first, then the latest."""
        image = np.asarray(self.image, np.float32).reshape(-1).copy()
        mask = np.asarray(self.mask, bool).reshape(-1).copy()
        if self.drawing_steps:
            last_image, last_mask = self.drawing_steps[-1]
            if np.array_equal(last_image, image) and np.array_equal(last_mask, mask):
                return
        if len(self.drawing_steps) >= MAX_DRAWING_STEPS:
            del self.drawing_steps[1]
        self.drawing_steps.append((image, mask))

    def mask_for(self, name: str, seed: int) -> np.ndarray:
        """The observed pixels of the preset ``name`` (``random:p`` masks use ``seed``); remembers the choice and
        forgets phi, which belonged to the old mask. Raises ModelInputError for an unknown preset."""
        mask = make_mask(name, seed=seed)
        self.mask_name = name
        self.phi, self.phi_name = None, None
        return mask

    def follow_selection(self, index: int | None, visible: bool) -> bool:
        """Whether to load the selected digit now; a hidden lab remembers it for when it is shown."""
        if index is None or not self.follow:
            return False
        if not visible:
            self.follow_pending = int(index)
            return False
        return True

    def take_pending(self) -> Drawing | None:
        drawing, self.pending = self.pending, None
        return drawing

    # -- mean-field phi ------------------------------------------------------------------------------------------
    def template(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray | None:
        """The "a 9" template: the first 9 of the data set other than the digit shown (without labels: a fixed
        index)."""
        if len(x) == 0:
            return None
        if y is not None:
            nines = np.flatnonzero(np.asarray(y) == 9)
            nines = nines[nines != self.index]
            if nines.size:
                return np.asarray(x[nines[0]])
        return np.asarray(x[min(TEMPLATE_INDEX if self.index != TEMPLATE_INDEX else DEFAULT_INDEX, len(x) - 1)])

    def preset(
        self, key: str, template: np.ndarray | None = None, predictive: np.ndarray | None = None
    ) -> np.ndarray | None:
        """phi of a preset for the current drawing; None when its input (template, predictive) is missing."""
        if key == "template":
            return None if template is None else preset_phi("template", self.image, self.mask, template=template)
        if key == "predictive":
            return (
                None if predictive is None else preset_phi("predictive", self.image, self.mask, predictive=predictive)
            )
        return preset_phi(key, self.image, self.mask)

    def set_phi(self, phi: np.ndarray | None, name: str | None) -> None:
        self.phi, self.phi_name = phi, name

    def phis_to_score(self, template: np.ndarray | None) -> dict[str, np.ndarray]:
        """The presets whose ELBO is shown, and the current phi (copied: a worker scores them)."""
        phis = {k: self.preset(k, template) for k in SCORED_PRESETS}
        if self.phi is not None and self.phi_name is not None and self.phi_name not in phis:
            phis[self.phi_name] = self.phi.copy()
        return {k: v for k, v in phis.items() if v is not None}

    def merge_elbos(self, values: dict[str, tuple[float, float]], log_p_obs: float) -> None:
        """New ELBO estimates; the optimiser's own estimate is kept while its phi is the one shown."""
        keep = {k: v for k, v in self.elbos.items() if k == "optimised" and self.phi_name == "optimised"}
        self.elbos = {**keep, **values}
        self.log_p_obs = log_p_obs

    def set_optimised(self, phi: np.ndarray, elbo: float, stderr: float) -> None:
        """A snapshot of the optimiser: its best phi so far and that phi's ELBO estimate."""
        self.phi, self.phi_name = phi, "optimised"
        self.elbos["optimised"] = (float(elbo), float(stderr))

    def optimiser_start(self) -> np.ndarray | None:
        """Where the optimiser starts: the current phi, except phi = 1 (a corner of the cube: logit = inf)."""
        return None if self.phi is None or self.phi_name == "ones" else self.phi.copy()

    def q_entropy(self) -> float | None:
        """H(q) = sum over the missing pixels of h(phi_i), h(p) = -p log p - (1 - p) log(1 - p) (nats); None
        without phi."""
        if self.phi is None:
            return None
        p = np.clip(np.asarray(self.phi, np.float64).reshape(-1), 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0))
        return float(h[~self.mask].sum())

    def uncertainty_html(self) -> str:
        """The mean-field q's uncertainty over the missing pixels against the exact predictive's: pixel by pixel
        (q's H(q) = sum_i h(phi_i) against sum_i h(p(x_i = 1 | x_O))) and, for the exact one, jointly."""
        u, hq = self.uncertainty, self.q_entropy()
        if u is None or u.n_missing == 0:
            return ""
        q_part = "" if hq is None else f"q: Σ h(φ<sub>i</sub>) = <b>{hq:.1f}</b>"
        exact = (
            f"exact: Σ h(p(x<sub>i</sub>=1|x<sub>O</sub>)) = <b>{u.marginal_sum:.1f}</b> "
            f"(jointly {u.joint:.1f} &plusmn; {u.stderr:.1f})"
        )
        text = f"Uncertainty of the {u.n_missing} missing pixels, nats: " + " &nbsp;·&nbsp; ".join(
            t for t in (q_part, exact) if t
        )
        if hq is not None and hq < u.marginal_sum - UNDERSTATES_BY:
            text += " — <b>q is surer of each pixel than the model</b>"
        return text

    def elbo_order(self) -> list[str]:
        return [k for k in PHI_NAMES if k in self.elbos]

    def chart_values(self) -> tuple[list[str], list[float], float | None]:
        """(bar names, ELBO values, log p(x_O)) for the chart (names short: the axis says "φ")."""
        order = self.elbo_order()
        return [PHI_TICKS[k] for k in order], [self.elbos[k][0] for k in order], self.log_p_obs

    def summary_html(self) -> str:
        """One entry per phi, "name: ELBO ± stderr (gap)", non-breaking inside an entry: a wrapped line breaks
        between entries only."""
        entries = []
        if self.log_p_obs is not None:
            entries.append(f"log p(x<sub>O</sub>) = <b>{self.log_p_obs:.1f}</b>")
        for k in self.elbo_order():
            elbo, se = self.elbos[k]
            gap = "" if self.log_p_obs is None else f" (gap {self.log_p_obs - elbo:.1f})"
            entries.append(f"{PHI_NAMES[k]}: <b>{elbo:.1f}</b>&plusmn;{se:.1f}{gap}")
        return " &nbsp;&nbsp; ".join(e.replace(" ", "&nbsp;") for e in entries)

    # -- export --------------------------------------------------------------------------------------------------
    def pixel_rows(self, predictive: np.ndarray | None) -> list[list[Any]]:
        """The CSV rows: pixel, row, col, observed value, observed, p(x_j = 1 | x_O), phi (missing pixels only)."""
        pred = np.full(IMAGE_DIM, np.nan) if predictive is None else np.asarray(predictive).reshape(-1)
        phi = np.full(IMAGE_DIM, np.nan) if self.phi is None else self.phi
        rows: list[list[Any]] = [["pixel", "row", "col", "observed_value", "observed", "predictive_p1", "phi"]]
        for j in range(IMAGE_DIM):
            obs = bool(self.mask[j])
            rows.append(
                [
                    j,
                    j // 28,
                    j % 28,
                    f"{self.image[j]:.6g}",
                    int(obs),
                    f"{pred[j]:.6g}",
                    "" if obs or np.isnan(phi[j]) else f"{phi[j]:.6g}",
                ]
            )
        return rows

    # -- sessions ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The session's ``views.inpainting`` (float32 values: exact in JSON). A drawing restored and not shown yet
        is saved again as it came."""
        d = self.pending or Drawing(self.image, self.mask, self.phi, self.phi_name)
        return {
            "index": self.index,
            "mask": self.mask_name,
            "brush": self.brush,
            "tool": self.tool,
            "follow": self.follow,
            "show_means": self.show_means,
            "image": np.asarray(d.image, np.float32).reshape(-1).tolist(),
            "mask_pixels": np.asarray(d.mask, bool).reshape(-1).astype(int).tolist(),
            "phi": None if d.phi is None else np.asarray(d.phi, np.float32).reshape(-1).tolist(),
            "phi_name": d.phi_name,
        }

    @classmethod
    def from_dict(cls, d: Any) -> InpaintingState:
        """A state from ``to_dict``'s output; missing keys keep their defaults, a drawing (``image`` with
        ``mask_pixels``) becomes ``pending``. Raises SessionError naming the field and what it must be."""
        if not isinstance(d, dict):
            raise SessionError(f"the Inpainting lab's state must be an object; got {type(d).__name__}")
        state = cls()
        index = d.get("index", state.index)
        if not _is_int(index) or index < 0:
            raise _bad("index", "a non-negative integer")
        state.index = index
        state.mask_name = _choice(d, "mask", MASK_CHOICES, state.mask_name)
        state.tool = _choice(d, "tool", TOOLS, state.tool)
        brush = d.get("brush", state.brush)
        if isinstance(brush, bool) or not isinstance(brush, (int, float)) or not _finite(brush):
            raise _bad("brush", "a number")
        state.brush = float(min(max(brush, BRUSH_RANGE[0]), BRUSH_RANGE[1]))
        for key in ("follow", "show_means"):
            value = d.get(key, getattr(state, key))
            if not isinstance(value, bool):
                raise _bad(key, "true or false")
            setattr(state, key, value)
        image, mask = d.get("image"), d.get("mask_pixels")
        if (image is None) != (mask is None):
            raise _bad("image" if image is None else "mask_pixels", "given together with the other")
        if image is not None:
            phi = None if d.get("phi") is None else _pixels(d["phi"], "phi", 0.0, 1.0)
            name = d.get("phi_name")
            if name is not None and (not isinstance(name, str) or name not in PHI_NAMES):  # (a list: unhashable)
                raise _bad("phi_name", f"null or one of {', '.join(PHI_NAMES)}")
            state.pending = Drawing(
                _pixels(image, "image", 0.0, 1.0).astype(np.float32),
                _pixels(mask, "mask_pixels", 0, 1).astype(bool),
                None if phi is None else phi.astype(np.float32),
                None if phi is None else (name or "optimised"),
            )
        return state


def _finite(value: int | float) -> bool:
    return isinstance(value, int) or math.isfinite(value)  # (an int of any size is finite; float() may overflow)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(key: str, want: str) -> SessionError:
    return SessionError(f"views.inpainting.{key} must be {want}")


def _choice(d: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    value = d.get(key, default)
    if value not in choices:
        raise _bad(key, f"one of {', '.join(choices)}")
    return str(value)


def _pixels(value: Any, key: str, lo: float, hi: float) -> np.ndarray:
    """784 finite numbers in [lo, hi]."""
    want = f"a list of {IMAGE_DIM} numbers in [{lo}, {hi}]"
    if not isinstance(value, list) or len(value) != IMAGE_DIM:
        raise _bad(key, want)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise _bad(key, want)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise _bad(key, want) from None
    if not np.isfinite(arr).all() or (arr < lo).any() or (arr > hi).any():
        raise _bad(key, want)
    return arr
