"""The Discrete latents lab's state and computations, Qt-free: the lab's own binary latent model, the exact analysis
of one x (generator with progress, for a worker), the estimators' convergence, the cost curve and training, the
texts and plot ranges they are shown with, and the lab's session state (its settings and a model trained here,
embedded as base64 safetensors bytes: nothing is ever unpickled).

The lab never uses the workspace's VAE: its model is the bundled K = 20 binary latent model (or one trained in the
lab). The workspace gives the selected digit, thresholded at 0.5 (the model is over binary images).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.core.workspace import MAX_SESSION_MODEL_BYTES
from lvm.errors import CheckpointError, SessionError
from lvm.estimators.discrete import (
    ESTIMATOR_LABELS,
    ESTIMATORS,
    TABLE_MAX_K,
    ZTable,
    build_table_steps,
    enumerate_steps,
    histogram_edges,
    log_joint,
    one_hot_log_marginal,
)
from lvm.models.binary_latent import (
    MAX_LATENT_DIM,
    BinaryLatentConfig,
    BinaryLatentModel,
    load_binary_latent,
    marginals_as_logits,
    pretrained_binary_latent_path,
    save_binary_latent,
)
from lvm.threads import single_thread
from lvm.training_discrete import OBJECTIVE_DESCRIPTIONS, choose_objective, train_steps

IMAGE_DIM = 784
TOP_N = 12
SAMPLES_SHOWN = 2000
DEFAULT_KS = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000)
COST_KS = (4, 8, 10, 12, 14, 16, 18, 20)
PANELS = ("exact", "estimators", "cost", "train")


def binarize(x) -> np.ndarray:
    """The digit as the model sees it: pixels > 0.5 are 1."""
    return (np.asarray(x, dtype=np.float32) > 0.5).astype(np.float32)


def load_bundled() -> tuple[BinaryLatentModel | None, dict, str]:
    """(model, info, description) of the bundled K = 20 model; (None, {}, why) when it is missing or unreadable."""
    path = pretrained_binary_latent_path()
    if not path.exists():
        return None, {}, f"the bundled model {path.name} is missing: train one in the Train tab"
    try:
        model, info = load_binary_latent(path)
    except Exception as exc:  # noqa: BLE001 - shown to the user, the lab keeps working with a trained model
        return None, {}, f"the bundled model cannot be read ({exc}); train one in the Train tab"
    return model, info, f"bundled {path.name}"


def fresh_model(k: int) -> BinaryLatentModel:
    torch.manual_seed(0)
    return BinaryLatentModel(BinaryLatentConfig(latent_dim=k)).eval()


def objective_text(k: int) -> str:
    obj = choose_objective(k)
    return f"K = {k}: {obj} — {OBJECTIVE_DESCRIPTIONS[obj]}"


@dataclass(frozen=True)
class Progress:
    """A progress snapshot of a lab job: ``fraction`` in [0, 1] and a line of text."""

    fraction: float
    text: str
    partial_log_px: float | None = None


@dataclass(frozen=True)
class Analysis:
    """Everything exact about one x under one model (see ``analyse_steps``)."""

    index: int | None
    model_id: int
    latent_dim: int
    x: np.ndarray  # (784,) binary
    log_px: float
    seconds: float
    table_seconds: float | None
    marginals: np.ndarray  # (K,) p(z_k = 1 | x)
    q_probs: np.ndarray  # (K,) the encoder's q(z_k = 1 | x)
    elbo_q: float  # exact ELBO of the encoder's q
    kl_q: float  # exact KL(q || p(z|x))
    top_bits: np.ndarray  # (n, K) the most probable configurations
    top_mass: np.ndarray  # (n,) their posterior mass p(z|x)
    top_images: np.ndarray  # (n, 28, 28) E[x | z]
    hist_edges: np.ndarray  # (bins + 1,) in log p(x, z)
    hist_counts: np.ndarray  # (bins,) configurations per bin
    hist_mass: np.ndarray  # (bins,) posterior mass per bin
    uniform_lj: np.ndarray  # log p(x, z) of SAMPLES_SHOWN uniform z
    q_lj: np.ndarray  # log p(x, z) of SAMPLES_SHOWN z ~ q
    log_px_one_hot: float  # the sum restricted to one-hot z: a mixture of K Bernoulli images


def analyse_steps(
    model: BinaryLatentModel, x: np.ndarray, index: int | None, table: ZTable | None = None, seed: int = 0
) -> Iterator[Progress | ZTable | Analysis]:
    """Yield ``Progress`` while enumerating all 2^K configurations for x, the ``ZTable`` when one was built (for
    K <= 24; the lab keeps it for the next x), and finally the ``Analysis``."""
    with single_thread():  # small ops in a loop: one thread beats OpenMP's fork/join (lvm.threads)
        yield from _analyse(model, x, index, table, seed)


def _analyse(model, x, index, table, seed):
    K = model.latent_dim
    xt = torch.as_tensor(binarize(x)).reshape(1, -1)
    table_s = None
    if table is None and K <= TABLE_MAX_K:
        for tp in build_table_steps(model):
            if tp.table is None:
                yield Progress(0.5 * tp.done / tp.total, f"a(z) for {tp.done:,} of {tp.total:,} configurations")
            else:
                table, table_s = tp.table, tp.table.seconds
                yield table
    base = 0.5 if table_s is not None else 0.0
    with torch.no_grad():
        q_logits = model.encoder_logits(xt)[0]
    result = None
    for p in enumerate_steps(
        model, xt, table=table, marginals=True, top=TOP_N, histogram=True, q_logits=q_logits, report_every_s=0.1
    ):
        if p.result is None:
            yield Progress(
                base + (1 - base) * p.fraction,
                f"summed {p.done:,} of {p.total:,} configurations",
                float(p.log_px_partial[0]),
            )
        result = p.result
    if result is None:  # (the last progress report carries the result)
        return
    top_index, hist, hist_mass = result.top_index, result.hist, result.hist_mass
    marginals, top_log_joint, elbo, kl = result.marginals, result.top_log_joint, result.elbo, result.kl
    # (asked for above: marginals, top, histogram and q's ELBO are there)
    assert top_index is not None and hist is not None and hist_mass is not None
    assert marginals is not None and top_log_joint is not None and elbo is not None and kl is not None
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        zu = (torch.rand(SAMPLES_SHOWN, 1, K, generator=g) < 0.5).float()
        zq = (torch.rand(SAMPLES_SHOWN, 1, K, generator=g) < torch.sigmoid(q_logits)).float()
        uniform_lj = log_joint(model, xt, zu)[:, 0].numpy()
        q_lj = log_joint(model, xt, zq)[:, 0].numpy()
        idx = top_index[0]
        bits = ((idx.unsqueeze(1) >> torch.arange(K)) & 1).float()
        images = model.decode_mean(bits).reshape(-1, 28, 28).numpy()
        eye = torch.eye(K)
        one_hot = one_hot_log_marginal(model.log_prior(eye), model.log_likelihood(xt, eye.unsqueeze(1)).T)
    edges, counts, mass = histogram_edges(hist[0], 60, hist_mass[0])
    log_px = float(result.log_px[0])
    yield Analysis(
        index=index,
        model_id=id(model),
        latent_dim=K,
        x=binarize(x),
        log_px=log_px,
        seconds=result.seconds + (table_s or 0.0),
        table_seconds=table_s,
        marginals=marginals[0].numpy(),
        q_probs=torch.sigmoid(q_logits).numpy(),
        elbo_q=float(elbo[0]),
        kl_q=float(kl[0]),
        top_bits=bits.numpy().astype(np.int8),
        top_mass=np.exp(top_log_joint[0].double().numpy() - log_px),
        top_images=images,
        hist_edges=edges,
        hist_counts=counts,
        hist_mass=mass,
        uniform_lj=uniform_lj,
        q_lj=q_lj,
        log_px_one_hot=float(one_hot[0]),
    )


def convergence_job(model: BinaryLatentModel, analysis: Analysis, ks=DEFAULT_KS, repeats: int = 10, seed: int = 0):
    """The estimators' convergence for the analysed x (a generator of ``ConvergenceSnapshot``, one per repeat)."""
    from lvm.estimators.discrete import convergence_steps

    xt = torch.as_tensor(analysis.x).reshape(1, -1)
    with torch.no_grad():
        enc = model.encoder_logits(xt)[0]
    marg = marginals_as_logits(torch.as_tensor(analysis.marginals))
    with single_thread():
        yield from convergence_steps(model, xt, enc, marg, ks=ks, repeats=repeats, seed=seed)


@dataclass(frozen=True)
class CostPoint:
    k: int
    seconds: float


@dataclass(frozen=True)
class CostCurve:
    points: tuple[CostPoint, ...]
    budget_s: float | None  # one gradient evaluation per training data point
    done: bool


def cost_steps(model: BinaryLatentModel, x: np.ndarray, ks=COST_KS) -> Iterator[CostCurve]:
    """Measured wall time of the exact log p(x) for one x (table included) for each K, and the time per data point
    of one gradient evaluation of the training objective (the lecture's budget)."""
    from lvm.bench.discrete import gradient_budget_s, model_with_k, time_exact

    xt = torch.as_tensor(binarize(x)).reshape(1, -1)
    dev = torch.device("cpu")
    with single_thread():
        budget = gradient_budget_s(model, xt.expand(100, -1).contiguous(), dev, repeats=3) if model.is_linear else None
        points: list[CostPoint] = []
        for k in ks:
            m = model_with_k(model, k) if model.is_linear else model
            if m.latent_dim != k:
                continue
            points.append(CostPoint(k, time_exact(m, xt, dev)[0]))
            yield CostCurve(tuple(points), budget, False)
        yield CostCurve(tuple(points), budget, True)


def fit_two_to_the_k(points) -> float | None:
    """c in t = c 2^K, least squares in log t over the points with K >= 12 (below, fixed overheads dominate)."""
    pts = [p for p in points if p.k >= 12 and p.seconds > 0]
    if not pts:
        return None
    return float(np.exp(np.mean([math.log(p.seconds) - p.k * math.log(2) for p in pts])))


@dataclass(frozen=True)
class TrainUpdate:
    snapshot: object  # lvm.training_discrete.DiscreteTrainSnapshot
    model: BinaryLatentModel | None = None  # the trained model, on the last update


def train_job(
    k: int, x_train: np.ndarray, epochs: int, lr: float, samples: int, seed: int, token=None
) -> Iterator[TrainUpdate]:
    """Train a new K-feature model on binarized ``x_train`` (exact for K <= 12, VIMCO above), yielding updates."""
    torch.manual_seed(seed)
    model = BinaryLatentModel(BinaryLatentConfig(latent_dim=k))
    xb = binarize(x_train)
    with single_thread():
        for snap in train_steps(
            model, xb, epochs=epochs, lr=lr, samples=samples, seed=seed, report_every=10, batch_size=100
        ):
            if token is not None and token.cancelled:
                return
            yield TrainUpdate(snap, model if snap.done else None)


def cost_ks(model: BinaryLatentModel) -> tuple[int, ...]:
    """The K measured for the cost plot: smaller copies of a linear model (its first K features), else its own K."""
    if not model.is_linear:
        return (model.latent_dim,)
    return tuple(k for k in COST_KS if k <= max(20, model.latent_dim))


# -- what the lab shows ----------------------------------------------------------------------------------------------
def why_not(data_x: np.ndarray | None, selected: bool) -> str:
    """Why there is nothing to analyse ("" when there is): no data, not 28 x 28 images, nothing selected."""
    if data_x is None:
        return "Load a data set of 28 × 28 digits."
    if data_x.shape[1] != IMAGE_DIM:
        return (
            f"This lab's model is over 28 × 28 binary images; the data set has {data_x.shape[1]} features. "
            "Load digits (File → Open dataset, or `digits`)."
        )
    if not selected:
        return "Select a digit."
    return ""


def enumerating_text(index: int | None, latent_dim: int) -> str:
    return f"x #{index}: enumerating all 2^{latent_dim} = {2**latent_dim:,} configurations…"


def progress_text(index: int | None, p: Progress) -> str:
    part = f"; partial sum so far: log p(x) ≥ {p.partial_log_px:.2f}" if p.partial_log_px is not None else ""
    return f"x #{index}: {p.text}{part}"


def analysis_text(a: Analysis) -> str:
    """The exact result in words (rich text)."""
    table = f" (table a(z) {a.table_seconds:.2f} s, kept for the next x)" if a.table_seconds else ""
    return (
        f"x #{a.index}: <b>exact log p(x) = {a.log_px:.3f} nats</b>, the sum of all "
        f"2^{a.latent_dim} = {2**a.latent_dim:,} terms, in {a.seconds:.2f} s{table}. "
        f"Encoder q: exact ELBO {a.elbo_q:.2f}, KL(q‖p(z|x)) {a.kl_q:.2f}. "
        f"Top configuration holds {a.top_mass[0]:.1%} of p(z|x). "
        f"Only one-hot z (a mixture of {a.latent_dim} Bernoulli images, the Mixture lab's sum): "
        f"log p(x) = {a.log_px_one_hot:.1f}."
    )


@dataclass(frozen=True)
class SampleHistograms:
    """Where the uniform and the q samples of an ``Analysis`` fall on its histogram's bins."""

    count_log10: np.ndarray  # log10(1 + configurations per bin)
    uniform_count_log10: np.ndarray  # log10(1 + uniform samples per bin x 2^K / n): the count they estimate
    uniform_fraction: np.ndarray
    q_fraction: np.ndarray
    count_top: float  # the count axis' upper end


def sample_histograms(a: Analysis) -> SampleHistograms:
    edges = a.hist_edges
    u = np.histogram(a.uniform_lj, bins=edges)[0]
    q = np.histogram(np.clip(a.q_lj, edges[0], edges[-1]), bins=edges)[0]
    nu, nq = max(1, len(a.uniform_lj)), max(1, len(a.q_lj))
    return SampleHistograms(
        count_log10=np.log10(1 + a.hist_counts),
        uniform_count_log10=np.log10(1 + u * 2**a.latent_dim / nu),
        uniform_fraction=u / nu,
        q_fraction=q / nq,
        count_top=math.log10(1 + max(1.0, float(a.hist_counts.max()))) * 1.08,
    )


def estimator_ks(kmax: int) -> tuple[int, ...]:
    """The sample sizes of the convergence plot: the default ones below ``kmax``, and ``kmax``."""
    return tuple(sorted({k for k in DEFAULT_KS if k < kmax} | {int(kmax)}))


@dataclass(frozen=True)
class ConvergenceView:
    """A convergence snapshot as drawn: the mean and the 10 % / 90 % quantiles over the repeats so far per
    estimator (bands from 2 repeats on), the plot's y range, the progress and the status text."""

    ks: np.ndarray
    mean: dict[str, np.ndarray]
    band: dict[str, tuple[np.ndarray, np.ndarray] | None]
    y_range: tuple[float, float]
    fraction: float
    text: str


def convergence_view(snap: Any, a: Analysis) -> ConvergenceView:
    """``snap``: an ``lvm.estimators.discrete.ConvergenceSnapshot`` for the analysed x."""
    ks = np.array(snap.ks, dtype=float)
    done = snap.repeats_done
    mean, band, parts = {}, {}, []
    for name in ESTIMATORS:
        v = snap.values[name][:, :done]
        finite = np.where(np.isfinite(v), v, np.nan)
        mean[name] = np.nanmean(finite, 1)
        band[name] = (np.nanquantile(finite, 0.1, axis=1), np.nanquantile(finite, 0.9, axis=1)) if done >= 2 else None
        parts.append(f"{ESTIMATOR_LABELS[name]}: {mean[name][-1]:.2f}")
    gap = max(2.0, a.log_px - a.elbo_q)
    lo = min(a.elbo_q, float(np.nanmin(snap.values["is_encoder"][:, :done]))) - 0.3 * gap
    u = snap.values["uniform"][:, :done]
    text = (
        f"x #{a.index}, repeat {done}/{snap.repeats}, at k = {snap.ks[-1]:,}: "
        + "; ".join(parts)
        + f". Exact log p(x) = {a.log_px:.2f}, exact ELBO(q) = {a.elbo_q:.2f} (KL(q‖p(z|x)) = {a.kl_q:.2f}). "
        f"Naive MC with uniform z is off the plot: between {np.nanmin(u):.0f} and {np.nanmax(u):.0f} nats."
    )
    return ConvergenceView(ks, mean, band, (lo, a.log_px + 0.25 * gap), done / snap.repeats, text)


@dataclass(frozen=True)
class CostView:
    """A cost curve as drawn: the 2^K line's constant c (None below K = 12), the progress and the status text."""

    c: float | None
    fraction: float
    text: str


def cost_view(curve: CostCurve, n_ks: int) -> CostView:
    c = fit_two_to_the_k(curve.points)
    text = []
    if c is not None:
        text.append(f"2^K line: {c:.3g} s × 2^K, so K = 30 would take ≈ {c * 2**30:,.0f} s here")
    if curve.budget_s:
        text.append(f"one gradient evaluation per x costs {curve.budget_s * 1e3:.2f} ms")
        if c is not None:
            text.append(f"the sum fits that budget up to K ≈ {math.log2(curve.budget_s / c):.1f}")
    fraction = 1.0 if curve.done else len(curve.points) / max(1, n_ks)
    return CostView(c, fraction, "; ".join(text) + ". (`lvm bench discrete` measures K = 30 for real.)")


@dataclass
class TrainHistory:
    """The training curve so far: step and objective (nats per x) of each snapshot."""

    steps: list[int] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)

    def add(self, snap: Any) -> None:
        self.steps.append(int(snap.step))
        self.bounds.append(float(snap.bound))

    def y_range(self) -> tuple[float, float]:
        lo, hi = min(self.bounds), max(self.bounds)
        pad = 0.05 * (hi - lo + 1)
        return lo - pad, hi + pad


def train_status(snap: Any) -> str:
    """``snap``: an ``lvm.training_discrete.DiscreteTrainSnapshot``."""
    what = "log p(x) (exact)" if snap.objective == "exact" else "VIMCO bound L_k"
    return (
        f"{snap.objective}: epoch {snap.epoch}/{snap.epochs}, step {snap.step}/{snap.steps}, "
        f"{what} {snap.bound:.2f} nats per x ({snap.seconds:.0f} s)"
    )


def trained_model_info(snap: Any, n_images: int) -> tuple[dict, str]:
    """(info, source) of a model trained here, from its last snapshot."""
    info = {"objective": snap.objective, "epochs": snap.epochs, "train_bound": snap.bound}
    epochs = f"{snap.epochs} epoch{'s' if snap.epochs != 1 else ''}"
    return info, f"{TRAINED_SOURCE}: {epochs} on {n_images:,} images"


def export_rows(a: Analysis) -> list[list[Any]]:
    """The CSV rows: quantity, k, value."""
    rows: list[list[Any]] = [["quantity", "k", "value"], ["log_px", "", a.log_px], ["elbo_encoder_q", "", a.elbo_q]]
    for k in range(a.latent_dim):
        rows.append(["p(z_k=1|x)", k, float(a.marginals[k])])
        rows.append(["q(z_k=1|x)", k, float(a.q_probs[k])])
    for i, m in enumerate(a.top_mass):
        rows.append(["top_configuration_mass", "".join(map(str, a.top_bits[i])), float(m)])
    return rows


# -- the model in a session ------------------------------------------------------------------------------------------
TRAINED_SOURCE = "trained in this lab"


def model_to_base64(model: BinaryLatentModel, info: dict) -> str:
    """``model`` as a ``binary-latent`` safetensors checkpoint, base64 encoded. CheckpointError for NaN weights."""
    with tempfile.TemporaryDirectory(prefix="lvm-discrete-") as tmp:
        target = Path(tmp) / "model.safetensors"
        save_binary_latent(model, target, info)
        return base64.b64encode(target.read_bytes()).decode("ascii")


def model_from_base64(text: Any) -> tuple[BinaryLatentModel, dict]:
    """(model, info) from ``model_to_base64``'s text: validated, never unpickled. Raises SessionError."""
    where = "views.discrete.model.data"
    if not isinstance(text, str) or len(text) > MAX_SESSION_MODEL_BYTES * 4 // 3 + 4:
        raise SessionError(
            f"{where} must be a base64 safetensors checkpoint of at most {MAX_SESSION_MODEL_BYTES >> 20} MiB"
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SessionError(f"{where} must be base64 text (a safetensors checkpoint)") from None
    from lvm.io import atomic_write_bytes

    with tempfile.TemporaryDirectory(prefix="lvm-discrete-") as tmp:
        target = Path(tmp) / "model.safetensors"
        atomic_write_bytes(target, data)  # (a scratch file; every write goes through lvm.io)
        try:
            return load_binary_latent(target)
        except CheckpointError as exc:
            raise SessionError(f"{where}: {str(exc).replace(str(target), 'the embedded model')}") from None


# -- the lab's state -------------------------------------------------------------------------------------------------
@dataclass
class DiscreteSettings:
    """What the user set in the panels (each field's spin box range in ``SETTING_RANGES``)."""

    panel: str = "exact"
    repeats: int = 10
    kmax: int = 10000
    seed: int = 0
    train_k: int = 20
    epochs: int = 3
    lr: float = 1e-3
    samples: int = 10
    train_seed: int = 0


SETTING_RANGES: dict[str, tuple[float, float]] = {
    "repeats": (2, 100),
    "kmax": (10, 100000),
    "seed": (0, 10**6),
    "train_k": (1, MAX_LATENT_DIM),
    "epochs": (1, 500),
    "lr": (1e-4, 0.1),
    "samples": (2, 100),
    "train_seed": (0, 10**6),
}


@dataclass
class DiscreteState:
    """What the lab holds: its model (and whether it was trained here), the cached table, the current analysis and
    the latest results, the training curve and the user's settings."""

    model: BinaryLatentModel | None = None
    model_info: dict = field(default_factory=dict)
    model_source: str = ""
    trained_here: bool = False  # a model made in this lab: sessions carry it
    table: ZTable | None = None
    analysis: Analysis | None = None
    convergence: object | None = None
    cost: CostCurve | None = None
    train_history: TrainHistory = field(default_factory=TrainHistory)
    settings: DiscreteSettings = field(default_factory=DiscreteSettings)
    loaded: bool = False  # a model was set (bundled, trained or restored): showing the lab loads none
    stale: bool = True  # the analysis does not belong to the selection and model any more
    _encoded: tuple[int, str | None, str | None] | None = None  # (id(model), base64, problem), computed once

    def set_model(
        self, model, info: dict, source: str, trained_here: bool = False, model_data: str | None = None
    ) -> None:
        """``model_data``: the model's checkpoint as a session carried it (saved again as it came)."""
        self.model, self.model_info, self.model_source = model, dict(info or {}), source
        self.trained_here = trained_here
        self._encoded = None if model_data is None else (id(model), model_data, None)
        self.loaded = True
        self.stale = True
        self.table = None
        self.clear_results()
        self.cost = None

    def clear_results(self) -> None:
        """Forget the analysis and the convergence (a new x or a new model)."""
        self.analysis = None
        self.convergence = None

    def cached_table(self) -> ZTable | None:
        """The table a(z) built for this model, if any (kept from x to x)."""
        if self.table is not None and self.model is not None and self.table.latent_dim == self.model.latent_dim:
            return self.table
        return None

    def describe_model(self) -> str:
        if self.model is None:
            return "no model"
        m, info = self.model, self.model_info
        obj = info.get("objective")
        how = f", trained by {obj}" if obj else ""
        nll = info.get("exact_test_nll")
        nll_s = f"; exact test NLL {nll:.2f} nats ({info.get('eval_images')} images)" if nll else ""
        return (
            f"K = {m.latent_dim} binary features, linear decoder W z + b ({self.model_source}{how}{nll_s}); "
            f"2^{m.latent_dim} = {2**m.latent_dim:,} configurations per x"
        )

    # -- sessions --------------------------------------------------------------------------------------------------
    def model_data(self) -> tuple[str | None, str | None]:
        """(base64 checkpoint, problem): the model trained here as the session carries it (None for the bundled
        one, which every installation has); ``problem`` says why a model that should travel cannot (NaN weights).
        Encoded once per model (the lab never changes a model's weights after training)."""
        if self.model is None or not self.trained_here:
            return None, None
        if self._encoded is None or self._encoded[0] != id(self.model):
            try:
                self._encoded = (id(self.model), model_to_base64(self.model, self.model_info), None)
            except (CheckpointError, OSError) as exc:
                problem = f"the model trained in the Discrete latents lab cannot be saved ({exc})"
                self._encoded = (id(self.model), None, problem)
        return self._encoded[1], self._encoded[2]

    def to_dict(self) -> dict[str, Any]:
        """The session's ``views.discrete``: the settings and, for a model trained here, the model."""
        d: dict[str, Any] = dataclasses.asdict(self.settings)
        data, _ = self.model_data()
        d["model"] = None if data is None else {"data": data, "source": self.model_source}
        return d

    @staticmethod
    def settings_from_dict(d: Any) -> DiscreteSettings:
        """Settings from ``to_dict``'s output; missing keys keep their defaults, numbers out of range are
        clamped. Raises SessionError naming the field."""
        if not isinstance(d, dict):
            raise SessionError(f"the Discrete latents lab's state must be an object; got {type(d).__name__}")
        settings = DiscreteSettings()
        panel = d.get("panel", settings.panel)
        if panel not in PANELS:
            raise SessionError(f"views.discrete.panel must be one of {', '.join(PANELS)}")
        settings.panel = panel
        for name, (lo, hi) in SETTING_RANGES.items():
            value = d.get(name, getattr(settings, name))
            is_float = name == "lr"
            ok = isinstance(value, (int, float) if is_float else int) and not isinstance(value, bool)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise SessionError(f"views.discrete.{name} must be {'a number' if is_float else 'a whole number'}")
            value = min(max(value, lo), hi)
            setattr(settings, name, float(value) if is_float else int(value))
        return settings

    @staticmethod
    def model_from_dict(d: dict) -> tuple[BinaryLatentModel, dict, str, bool, str] | None:
        """``set_model``'s arguments for the model a session carries (None: the bundled one). Raises SessionError."""
        entry = d.get("model")
        if entry is None:
            return None
        if not isinstance(entry, dict):
            raise SessionError("views.discrete.model must be null or {data: base64 checkpoint, source: text}")
        data = entry.get("data")
        model, info = model_from_base64(data)  # (a str: else refused)
        source = entry.get("source")
        return model, info, source if isinstance(source, str) and source else TRAINED_SOURCE, True, str(data)

    @classmethod
    def from_dict(cls, d: Any) -> DiscreteState:
        """A state from ``to_dict``'s output (the model loaded, validated). Raises SessionError."""
        state = cls(settings=cls.settings_from_dict(d))
        restored = cls.model_from_dict(d)
        if restored is not None:
            state.set_model(*restored)
        return state
