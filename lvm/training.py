"""Training a VAE by maximising the ELBO jointly over theta and phi, as a generator of progress snapshots.

``objective="grid"`` (a 1-D or 2-D latent space): the decoder maximises log p(x) itself, estimated on a randomly
shifted grid shared by the batch (``lvm.estimators.shifted_grid``: unbiased for p(x), a lower bound on log p(x) in
expectation, nearly exact once a cell is narrower than the posterior), while the encoder keeps maximising the ELBO
with the decoder held fixed, so that q(z|x) follows the decoder's posterior. Each gradient reaches only its own
network: the ELBO's pull on the decoder (towards posteriors that q can fit) is left out.

Cancel by stopping iteration (``close()`` the generator, or break): it stops between steps. A NaN/inf loss stops
training before the step is applied and keeps the last good weights: those of the previous (finite) step when they are
all finite, else the ones saved at the end of the previous epoch (with ``keep_best``: the best ones seen); the final
snapshot says ``stopped_reason="nan"``.

All randomness (shuffling, dynamic binarization, the reparameterisation noise) comes from generators seeded with
``config.seed``: the global torch RNG is neither used nor reseeded, so a run is reproducible on one device even while
other threads draw random numbers (``new_vae`` initialises a model the same way).

Continuing a trained model: Adam with a fresh learning rate takes steps of about lr in every weight at once (its first
step is lr * sign(gradient)), which knocks a converged model off its optimum (a one-cycle run to lr 1e-3 continued
at 1e-3 for 3 epochs lost 3 nats of training ELBO). A run records where its schedule ended (``ScheduleState``, kept
in checkpoints as ``info["training_state"]``); ``continue_config`` continues from there at a constant
lr = max(final lr, 1% of the peak lr) (a one-cycle schedule ends at peak / 250,000, too small to move), or at
``CONSERVATIVE_LR`` when the model's schedule is unknown; it evaluates the ELBO before the first step (epoch 0) and
keeps the best model seen (``keep_best``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from lvm.data.binarize import binarize
from lvm.errors import ModelInputError
from lvm.models.vae import BINARY_DECODERS, VAE, VAEConfig

SCHEDULES = ("onecycle", "constant", "cosine")  # cosine: from lr down to 0 over the run (for fine-tuning)
OBJECTIVES = ("elbo", "grid")
CONTINUE_FRACTION = 0.01  # a continued run's lr is at least this fraction of the previous run's peak lr
CONSERVATIVE_LR = 1e-5  # continuing a model whose schedule is unknown (Adam's steps are about lr per weight)


@dataclasses.dataclass(frozen=True)
class ScheduleState:
    """Where a model's training schedule ended: enough to continue it without knocking it off its optimum.

    ``schedule`` and ``peak_lr`` of the last run, ``final_lr`` the learning rate its last kept step would have been
    followed by, ``steps`` the optimizer steps taken since the first run that recorded a state (a model saved
    without one starts the count again)."""

    schedule: str
    peak_lr: float
    final_lr: float
    steps: int

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ModelInputError(f"training_state.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("peak_lr", "final_lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0 <= v <= 1):
                raise ModelInputError(f"training_state.{name} must be a number in [0, 1], got {v!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ModelInputError(f"training_state.steps must be a whole number >= 0, got {self.steps!r}")

    @property
    def continue_lr(self) -> float:
        """The learning rate to continue at: max(final_lr, CONTINUE_FRACTION * peak_lr), and > 0."""
        return max(self.final_lr, CONTINUE_FRACTION * self.peak_lr) or CONSERVATIVE_LR

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: object) -> ScheduleState:
        """Validated; raises ModelInputError naming the bad field."""
        if not isinstance(d, Mapping):
            raise ModelInputError(f"training_state must be an object, got {type(d).__name__}")
        missing = [k for k in ("schedule", "peak_lr", "final_lr", "steps") if k not in d]
        if missing:
            raise ModelInputError(f"training_state lacks {', '.join(missing)}")
        return cls(d["schedule"], d["peak_lr"], d["final_lr"], d["steps"])


def schedule_state_from_info(info: Mapping[str, Any] | None) -> ScheduleState | None:
    """The ``training_state`` a checkpoint's info holds (None for checkpoints saved without one); ModelInputError
    when it is present but damaged."""
    state = None if not info else info.get("training_state")
    if state is None or isinstance(state, ScheduleState):
        return state
    return ScheduleState.from_dict(state)


def continuation_lr(state: ScheduleState | None) -> float:
    """Where to continue a model's schedule: ``state.continue_lr``, or CONSERVATIVE_LR when it is unknown."""
    return CONSERVATIVE_LR if state is None else state.continue_lr


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3  # 2e-3 diverged twice on the 3 x 512 model (resources/README.md)
    schedule: str = "onecycle"  # or "constant", "cosine"
    binarization: str = "dynamic"  # for Bernoulli decoders: "dynamic" | "threshold" | "none"
    seed: int = 0
    report_every: int = 50  # steps between snapshots
    valid_limit: int = 2000  # validation images evaluated at each epoch end
    evaluate_start: bool = False  # yield an epoch-0 snapshot: the ELBO before the first step
    keep_best: bool = False  # end with the weights of the epoch (0 included) with the best score
    eval_limit: int = 10000  # training images the epoch-0 train ELBO (and the score without validation data) uses
    previous: ScheduleState | None = None  # where the model's schedule stood before this run (continuing)
    objective: str = "elbo"  # or "grid": the decoder on log p(x) by a shifted grid, the encoder on the ELBO
    grid_size: int = 64  # (objective "grid") points per latent axis over [-GRID_LIMIT, GRID_LIMIT]


def continue_config(
    state: ScheduleState | None, epochs: int, seed: int = 0, batch_size: int = 128, **kwargs: Any
) -> TrainConfig:
    """A run continuing a trained model: constant lr = ``continuation_lr(state)``, the ELBO evaluated before the
    first step, the best model kept."""
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=continuation_lr(state),
        schedule="constant",
        seed=seed,
        evaluate_start=True,
        keep_best=True,
        previous=state,
        **kwargs,
    )


@dataclasses.dataclass(frozen=True)
class TrainSnapshot:
    """Progress of training: elbo values are per-image means in nats (higher is better)."""

    epoch: float  # completed epochs, fractional between epoch ends (epoch 0: before the first step)
    step: int
    total_steps: int
    train_elbo: float  # running mean over the current epoch (epoch 0: evaluated on the training images)
    valid_elbo: float | None  # at epoch ends
    images_per_s: float
    lr: float
    done: bool = False
    stopped_reason: str | None = None  # "nan" when a non-finite loss was caught
    score: float | None = None  # the ELBO the best model is chosen by (epoch 0 and epoch ends, with keep_best)
    kept_epoch: int | None = None  # (done, keep_best) the epoch whose weights the model ends with
    schedule_state: ScheduleState | None = None  # (done) where the schedule stands for the weights the model holds
    train_kl: float | None = None  # running mean of KL(q(z|x) || p(z)) over the epoch (nats; ~0: posterior collapse)
    train_log_p: float | None = None  # (objective "grid") running mean of the shifted-grid log p(x) over the epoch

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


def schedule_state_at(config: TrainConfig, snap: TrainSnapshot) -> ScheduleState | None:
    """Where the schedule stands for the weights of ``snap`` (an epoch end): the run's schedule and peak, the lr
    after its last step; the previous state for epoch 0 (the weights are the starting ones)."""
    if snap.step == 0:
        return config.previous
    start = 0 if config.previous is None else config.previous.steps
    return ScheduleState(config.schedule, float(config.lr), float(snap.lr), start + snap.step)


@torch.no_grad()
def mean_elbo(model: VAE, x: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> float:
    """Mean single-sample ELBO over ``x`` (seeded)."""
    model.eval()
    g = torch.Generator(device=x.device).manual_seed(seed)
    total = 0.0
    for i in range(0, x.shape[0], batch_size):
        total += model.elbo(x[i : i + batch_size], generator=g).sum().item()
    return total / x.shape[0]


def new_vae(config: VAEConfig, seed: int, device: torch.device | str = "cpu") -> VAE:
    """A fresh VAE initialised from a generator seeded with ``seed`` (not the global RNG): every linear layer as
    torch initialises it, weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    with torch.device("meta"):
        model = VAE(config)
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(int(seed))
    covered: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                for p in (module.weight, module.bias):
                    p.copy_(torch.rand(p.shape, generator=g) * (2 * bound) - bound)
                    covered.add(id(p))
    if any(id(p) not in covered for p in model.parameters()):  # (a layer new_vae does not know)
        raise ModelInputError("new_vae initialises linear layers only; this VAE has other parameters")
    return model.to(device)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): a seeded random ``fraction`` of range(n) held out (at least 1, at most
    2000, and never all of it when n > 1)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    k = int(min(max(1, round(n * fraction)), 2000, max(n - 1, 1)))
    return np.sort(perm[k:]), np.sort(perm[:k])


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x, dtype=torch.float32)


def train_vae(
    model: VAE,
    x_train: np.ndarray | torch.Tensor,
    x_valid: np.ndarray | torch.Tensor | None = None,
    config: TrainConfig = TrainConfig(),
    device: torch.device | str = "cpu",
) -> Iterator[TrainSnapshot]:
    """Maximise the mean ELBO on ``x_train`` with Adam; yield a ``TrainSnapshot`` every ``report_every`` steps
    and at each epoch end (with the validation ELBO). Seeded and reproducible on one device.

    ``evaluate_start``: first an epoch-0 snapshot, the ELBO of the model as it is (training images: the first
    ``eval_limit``, binarized once with a fixed seed). ``keep_best``: each epoch end is scored (the validation ELBO,
    or that fixed training ELBO without validation data), and the model ends with the best-scoring weights seen,
    the starting ones included; the final snapshot says which (``kept_epoch``)."""
    device = torch.device(device)
    if config.epochs < 1 or config.batch_size < 1 or config.report_every < 1 or config.eval_limit < 1:
        raise ModelInputError("epochs, batch_size, report_every and eval_limit must be at least 1")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ModelInputError(f"the learning rate must be a positive number, got {config.lr}")
    if config.schedule not in SCHEDULES:
        raise ModelInputError(f"schedule must be one of {SCHEDULES}, got {config.schedule!r}")
    check_objective(model, config)
    if config.binarization not in ("dynamic", "threshold", "none"):
        raise ModelInputError(f"binarization must be dynamic, threshold or none, got {config.binarization!r}")
    x_train = _as_tensor(x_train).to(device)
    if x_train.ndim != 2 or x_train.shape[1] != model.data_dim:
        raise ModelInputError(f"training data must be (N, {model.data_dim}); got {tuple(x_train.shape)}")
    if x_train.shape[0] == 0:
        raise ModelInputError("the training data is empty")
    if not torch.isfinite(x_train).all():
        raise ModelInputError("training data contains NaN or infinity")
    bernoulli = model.config.decoder in BINARY_DECODERS
    if bernoulli and (x_train.min() < 0 or x_train.max() > 1):
        raise ModelInputError(
            "a Bernoulli decoder needs pixel values in [0, 1]; rescale the data or use --decoder gaussian"
        )
    binarization = config.binarization if bernoulli else "none"
    g = torch.Generator(device="cpu").manual_seed(config.seed)
    gbin = torch.Generator(device=device).manual_seed(config.seed + 1)
    geps = torch.Generator(device=device).manual_seed(config.seed + 2)

    def fixed_binarization(x: torch.Tensor, seed: int) -> torch.Tensor:
        if binarization == "none":
            return x
        mode = "threshold" if binarization == "threshold" else "dynamic"
        return binarize(x, mode, generator=torch.Generator(device=device).manual_seed(seed))

    x_val = None
    if x_valid is not None:
        x_val = _as_tensor(x_valid)[: config.valid_limit].to(device)
        if x_val.ndim != 2 or x_val.shape[1] != model.data_dim or x_val.shape[0] == 0:
            raise ModelInputError(f"validation data must be (N, {model.data_dim}) with N > 0; got {tuple(x_val.shape)}")
        if not torch.isfinite(x_val).all():
            raise ModelInputError("validation data contains NaN or infinity")
        x_val = fixed_binarization(x_val, 12345)
    x_eval = (
        fixed_binarization(x_train[: config.eval_limit], 54321) if config.evaluate_start or config.keep_best else None
    )
    model.to(device)
    n = x_train.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched: torch.optim.lr_scheduler.LRScheduler | None = None
    if config.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total)
    elif config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    step_grads = _grid_gradients(model, config, geps) if config.objective == "grid" else None

    def current_lr() -> float:
        return float(opt.param_groups[0]["lr"])

    def score_now(valid: float | None) -> float:
        if valid is not None:
            return valid
        assert x_eval is not None
        return mean_elbo(model, x_eval, seed=config.seed)

    best: dict[str, Any] = {"score": -math.inf, "epoch": None, "state": None, "snap": None}

    def consider(snap: TrainSnapshot) -> None:
        if config.keep_best and snap.score is not None and snap.score > best["score"]:
            best.update(score=snap.score, epoch=int(snap.epoch), state=copy.deepcopy(model.state_dict()), snap=snap)

    def end_with_best(snap: TrainSnapshot, **changes: Any) -> TrainSnapshot:
        """The final snapshot: with keep_best the model is given the best weights seen first."""
        if not config.keep_best or best["state"] is None:
            kept = None if changes.get("stopped_reason") else snap
            state = None if kept is None else schedule_state_at(config, kept)
            return dataclasses.replace(snap, done=True, schedule_state=state, **changes)
        if best["epoch"] != snap.epoch or changes.get("stopped_reason"):
            model.load_state_dict(best["state"])
        return dataclasses.replace(
            snap,
            done=True,
            kept_epoch=best["epoch"],
            schedule_state=schedule_state_at(config, best["snap"]),
            **changes,
        )

    good_state = copy.deepcopy(model.state_dict())
    step, t0, seen = 0, time.perf_counter(), 0
    valid_elbo = None
    if config.evaluate_start:
        assert x_eval is not None
        if x_val is not None:
            valid_elbo = mean_elbo(model, x_val, seed=config.seed)
        start_train = mean_elbo(model, x_eval, seed=config.seed)
        start = TrainSnapshot(
            0,
            0,
            total,
            start_train,
            valid_elbo,
            0.0,
            current_lr(),
            score=valid_elbo if valid_elbo is not None else start_train,
        )
        consider(start)
        yield start
        t0 = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        perm = torch.randperm(n, generator=g).to(device)
        running, running_kl, running_log_p, count = 0.0, 0.0, 0.0, 0
        for b in range(steps_per_epoch):
            xb = x_train[perm[b * config.batch_size : (b + 1) * config.batch_size]]
            if binarization != "none":
                xb = binarize(xb, binarization, generator=gbin)
            log_p = None
            if step_grads is not None:
                log_p, rec, kl = step_grads(xb)
            else:
                rec, kl = model.elbo_terms(xb, generator=geps)
            loss = -(rec - kl).mean()
            if not torch.isfinite(loss) or (log_p is not None and not torch.isfinite(log_p).all()):
                if not all(torch.isfinite(p).all() for p in model.parameters()):
                    model.load_state_dict(good_state)
                last = TrainSnapshot(epoch, step, total, running / max(count, 1), valid_elbo, 0.0, current_lr())
                yield end_with_best(last, stopped_reason="nan")
                return
            if step_grads is None:
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            seen += xb.shape[0]
            running += -loss.item() * xb.shape[0]
            running_kl += kl.detach().sum().item()
            running_log_p += 0.0 if log_p is None else log_p.detach().sum().item()
            count += xb.shape[0]
            if step % config.report_every == 0 and b < steps_per_epoch - 1:
                yield TrainSnapshot(
                    epoch + (b + 1) / steps_per_epoch,
                    step,
                    total,
                    running / count,
                    valid_elbo,
                    seen / (time.perf_counter() - t0),
                    current_lr(),
                    train_kl=running_kl / count,
                    train_log_p=None if step_grads is None else running_log_p / count,
                )
        if not all(torch.isfinite(p).all() for p in model.parameters()):  # the epoch's last step diverged
            model.load_state_dict(good_state)
            last = TrainSnapshot(epoch, step, total, running / max(count, 1), valid_elbo, 0.0, current_lr())
            yield end_with_best(last, stopped_reason="nan")
            return
        good_state = copy.deepcopy(model.state_dict())
        if x_val is not None:
            valid_elbo = mean_elbo(model, x_val, seed=config.seed)
        snap = TrainSnapshot(
            epoch + 1,
            step,
            total,
            running / count,
            valid_elbo,
            seen / (time.perf_counter() - t0),
            current_lr(),
            score=score_now(valid_elbo) if config.keep_best else None,
            train_kl=running_kl / count,
            train_log_p=None if step_grads is None else running_log_p / count,
        )
        consider(snap)
        yield end_with_best(snap) if epoch + 1 == config.epochs else snap


GRID_LIMIT = 4.0  # objective "grid": the box [-4, 4]^Dz (the prior puts 1.3e-4 of its mass outside it in 2-D)


def check_objective(model: VAE, config: TrainConfig) -> None:
    """Say what to change when ``config.objective`` cannot train ``model``."""
    if config.objective not in OBJECTIVES:
        raise ModelInputError(f"objective must be one of {OBJECTIVES}, got {config.objective!r}")
    if config.objective != "grid":
        return
    if model.latent_dim > 2:
        raise ModelInputError(
            f"objective 'grid' integrates over the latent space on a grid: it needs a 1-D or 2-D latent space, this "
            f"model's is {model.latent_dim}-D (train it with objective 'elbo')"
        )
    if model.config.decoder == "autoregressive":
        raise ModelInputError("objective 'grid' needs a pixel-factorised decoder (bernoulli or gaussian)")
    if not 2 <= config.grid_size <= 1024:
        raise ModelInputError(f"grid_size must lie in 2..1024 points per axis, got {config.grid_size}")


def _grid_gradients(
    model: VAE, config: TrainConfig, generator: torch.Generator
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One step's gradients for objective "grid", set on the parameters: the decoder's from -mean log p_hat(x) (one
    shifted grid), the encoder's from -mean ELBO with the decoder fixed. Returns (log p_hat(x), rec, kl)."""
    from lvm.estimators.shifted_grid import shifted_grid_log_marginal

    decoder = [p for p in model.decoder.parameters() if p.requires_grad]
    encoder = [p for p in model.encoder.parameters() if p.requires_grad]

    def step(xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_p = shifted_grid_log_marginal(model, xb, config.grid_size, GRID_LIMIT, generator)
        rec, kl = model.elbo_terms(xb, generator=generator)
        for params, loss in ((decoder, -log_p.mean()), (encoder, -(rec - kl).mean())):
            for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
                p.grad = g
        return log_p.detach(), rec.detach(), kl.detach()

    return step
