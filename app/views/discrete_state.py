"""The Discrete latents lab's state and computations, Qt-free: the lab's own binary latent model, the exact analysis
of one x (generator with progress, for a worker), the estimators' convergence, the cost curve and training.

The lab never uses the workspace's VAE: its model is the bundled K = 20 binary latent model (or one trained in the
lab). The workspace gives the selected digit, thresholded at 0.5 (the model is over binary images).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from lvm.estimators.discrete import (
    TABLE_MAX_K,
    ZTable,
    build_table_steps,
    enumerate_steps,
    histogram_edges,
    log_joint,
    one_hot_log_marginal,
)
from lvm.models.binary_latent import (
    BinaryLatentConfig,
    BinaryLatentModel,
    load_binary_latent,
    marginals_as_logits,
    pretrained_binary_latent_path,
)
from lvm.threads import single_thread
from lvm.training_discrete import OBJECTIVE_DESCRIPTIONS, choose_objective, train_steps

IMAGE_DIM = 784
TOP_N = 12
SAMPLES_SHOWN = 2000
DEFAULT_KS = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000)


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


def analyse_steps(model: BinaryLatentModel, x: np.ndarray, index: int | None, table: ZTable | None = None,
                  seed: int = 0) -> Iterator[Progress | ZTable | Analysis]:
    """Yield ``Progress`` while enumerating all 2^K configurations for x, the ``ZTable`` when one was built (for
    K <= 24; the lab keeps it for the next x), and finally the ``Analysis``."""
    with single_thread():  # small ops in a loop: one thread beats OpenMP's fork/join (lvm.threads)
        yield from _analyse(model, x, index, table, seed)


def _analyse(model, x, index, table, seed):
    K = model.latent_dim
    xt = torch.as_tensor(binarize(x)).reshape(1, -1)
    table_s = None
    if table is None and K <= TABLE_MAX_K:
        for p in build_table_steps(model):
            if p.table is None:
                yield Progress(0.5 * p.done / p.total, f"a(z) for {p.done:,} of {p.total:,} configurations")
            else:
                table, table_s = p.table, p.table.seconds
                yield table
    base = 0.5 if table_s is not None else 0.0
    with torch.no_grad():
        q_logits = model.encoder_logits(xt)[0]
    result = None
    for p in enumerate_steps(model, xt, table=table, marginals=True, top=TOP_N, histogram=True, q_logits=q_logits,
                             report_every_s=0.1):
        if p.result is None:
            yield Progress(base + (1 - base) * p.fraction, f"summed {p.done:,} of {p.total:,} configurations",
                           float(p.log_px_partial[0]))
        result = p.result
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        zu = (torch.rand(SAMPLES_SHOWN, 1, K, generator=g) < 0.5).float()
        zq = (torch.rand(SAMPLES_SHOWN, 1, K, generator=g) < torch.sigmoid(q_logits)).float()
        uniform_lj = log_joint(model, xt, zu)[:, 0].numpy()
        q_lj = log_joint(model, xt, zq)[:, 0].numpy()
        idx = result.top_index[0]
        bits = ((idx.unsqueeze(1) >> torch.arange(K)) & 1).float()
        images = model.decode_mean(bits).reshape(-1, 28, 28).numpy()
        eye = torch.eye(K)
        one_hot = one_hot_log_marginal(model.log_prior(eye), model.log_likelihood(xt, eye.unsqueeze(1)).T)
    edges, counts, mass = histogram_edges(result.hist[0], 60, result.hist_mass[0])
    log_px = float(result.log_px[0])
    yield Analysis(index=index, model_id=id(model), latent_dim=K, x=binarize(x), log_px=log_px,
                   seconds=result.seconds + (table_s or 0.0), table_seconds=table_s,
                   marginals=result.marginals[0].numpy(), q_probs=torch.sigmoid(q_logits).numpy(),
                   elbo_q=float(result.elbo[0]), kl_q=float(result.kl[0]), top_bits=bits.numpy().astype(np.int8),
                   top_mass=np.exp(result.top_log_joint[0].double().numpy() - log_px), top_images=images,
                   hist_edges=edges, hist_counts=counts, hist_mass=mass, uniform_lj=uniform_lj, q_lj=q_lj,
                   log_px_one_hot=float(one_hot[0]))


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


def cost_steps(model: BinaryLatentModel, x: np.ndarray, ks=(4, 8, 10, 12, 14, 16, 18, 20)) -> Iterator[CostCurve]:
    """Measured wall time of the exact log p(x) for one x (table included) for each K, and the time per data point
    of one gradient evaluation of the training objective (the lecture's budget)."""
    from lvm.bench.discrete import gradient_budget_s, model_with_k, time_exact

    xt = torch.as_tensor(binarize(x)).reshape(1, -1)
    dev = torch.device("cpu")
    with single_thread():
        budget = gradient_budget_s(model, xt.expand(100, -1).contiguous(), dev, repeats=3) if model.is_linear \
            else None
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


def train_job(k: int, x_train: np.ndarray, epochs: int, lr: float, samples: int, seed: int,
              token=None) -> Iterator[TrainUpdate]:
    """Train a new K-feature model on binarized ``x_train`` (exact for K <= 12, VIMCO above), yielding updates."""
    torch.manual_seed(seed)
    model = BinaryLatentModel(BinaryLatentConfig(latent_dim=k))
    xb = binarize(x_train)
    with single_thread():
        for snap in train_steps(model, xb, epochs=epochs, lr=lr, samples=samples, seed=seed, report_every=10,
                                batch_size=100):
            if token is not None and token.cancelled:
                return
            yield TrainUpdate(snap, model if snap.done else None)


@dataclass
class DiscreteState:
    """What the lab holds: its model and the cached table, the current analysis and the latest results."""

    model: BinaryLatentModel | None = None
    model_info: dict = field(default_factory=dict)
    model_source: str = ""
    table: ZTable | None = None
    analysis: Analysis | None = None
    convergence: object | None = None
    cost: CostCurve | None = None
    train_history: list = field(default_factory=list)

    def set_model(self, model, info: dict, source: str) -> None:
        self.model, self.model_info, self.model_source = model, dict(info or {}), source
        self.table = None
        self.analysis = None
        self.convergence = None
        self.cost = None

    def describe_model(self) -> str:
        if self.model is None:
            return "no model"
        m, info = self.model, self.model_info
        obj = info.get("objective")
        how = f", trained by {obj}" if obj else ""
        nll = info.get("exact_test_nll")
        nll_s = f"; exact test NLL {nll:.2f} nats ({info.get('eval_images')} images)" if nll else ""
        return (f"K = {m.latent_dim} binary features, linear decoder W z + b ({self.model_source}{how}{nll_s}); "
                f"2^{m.latent_dim} = {2**m.latent_dim:,} configurations per x")
