"""Training a VAE by maximising the ELBO jointly over theta and phi, as a generator of progress snapshots.

Cancel by stopping iteration (``close()`` the generator, or break): it stops between steps. A NaN/inf loss stops
training before the step is applied and keeps the last good weights: those of the previous (finite) step when they are
all finite, else the ones saved at the end of the previous epoch; the final snapshot says ``stopped_reason="nan"``.

All randomness (shuffling, dynamic binarization, the reparameterisation noise) comes from generators seeded with
``config.seed``: the global torch RNG is neither used nor reseeded, so a run is reproducible on one device even while
other threads draw random numbers.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Iterator

import numpy as np
import torch

from lvm.data.binarize import binarize
from lvm.errors import ModelInputError
from lvm.models.vae import VAE


@dataclasses.dataclass(frozen=True)
class TrainSnapshot:
    """Progress of training: elbo values are per-image means in nats (higher is better)."""

    epoch: int  # completed epochs (fractional progress in ``progress``)
    step: int
    total_steps: int
    train_elbo: float  # running mean over the current epoch
    valid_elbo: float | None  # at epoch ends
    images_per_s: float
    lr: float
    done: bool = False
    stopped_reason: str | None = None  # "nan" when a non-finite loss was caught

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3  # 2e-3 diverged twice on the 3 x 512 model (resources/README.md)
    schedule: str = "onecycle"  # or "constant"
    binarization: str = "dynamic"  # for Bernoulli decoders: "dynamic" | "threshold" | "none"
    seed: int = 0
    report_every: int = 50  # steps between snapshots
    valid_limit: int = 2000  # validation images evaluated at each epoch end


@torch.no_grad()
def mean_elbo(model: VAE, x: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> float:
    """Mean single-sample ELBO over ``x`` (seeded)."""
    model.eval()
    g = torch.Generator(device=x.device).manual_seed(seed)
    total = 0.0
    for i in range(0, x.shape[0], batch_size):
        total += model.elbo(x[i:i + batch_size], generator=g).sum().item()
    return total / x.shape[0]


def train_vae(model: VAE, x_train: np.ndarray | torch.Tensor, x_valid: np.ndarray | torch.Tensor | None = None,
              config: TrainConfig = TrainConfig(), device: torch.device | str = "cpu") -> Iterator[TrainSnapshot]:
    """Maximise the mean ELBO on ``x_train`` with Adam; yield a ``TrainSnapshot`` every ``report_every`` steps
    and at each epoch end (with the validation ELBO). Seeded and reproducible on one device."""
    device = torch.device(device)
    if config.epochs < 1 or config.batch_size < 1 or config.report_every < 1:
        raise ModelInputError("epochs, batch_size and report_every must be at least 1")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ModelInputError(f"the learning rate must be a positive number, got {config.lr}")
    if config.schedule not in ("onecycle", "constant"):
        raise ModelInputError(f"schedule must be 'onecycle' or 'constant', got {config.schedule!r}")
    if config.binarization not in ("dynamic", "threshold", "none"):
        raise ModelInputError(f"binarization must be dynamic, threshold or none, got {config.binarization!r}")
    x_train = torch.as_tensor(np.asarray(x_train, dtype=np.float32) if not torch.is_tensor(x_train) else x_train,
                              dtype=torch.float32).to(device)
    if x_train.ndim != 2 or x_train.shape[1] != model.data_dim:
        raise ModelInputError(f"training data must be (N, {model.data_dim}); got {tuple(x_train.shape)}")
    if x_train.shape[0] == 0:
        raise ModelInputError("the training data is empty")
    if not torch.isfinite(x_train).all():
        raise ModelInputError("training data contains NaN or infinity")
    bernoulli = model.config.decoder == "bernoulli"
    if bernoulli and (x_train.min() < 0 or x_train.max() > 1):
        raise ModelInputError("a Bernoulli decoder needs pixel values in [0, 1]; rescale the data or use --decoder gaussian")
    binarization = config.binarization if bernoulli else "none"
    g = torch.Generator(device="cpu").manual_seed(config.seed)
    gbin = torch.Generator(device=device).manual_seed(config.seed + 1)
    geps = torch.Generator(device=device).manual_seed(config.seed + 2)
    x_val = None
    if x_valid is not None:
        x_val = torch.as_tensor(np.asarray(x_valid, dtype=np.float32) if not torch.is_tensor(x_valid) else x_valid,
                                dtype=torch.float32)[: config.valid_limit].to(device)
        if x_val.ndim != 2 or x_val.shape[1] != model.data_dim or x_val.shape[0] == 0:
            raise ModelInputError(f"validation data must be (N, {model.data_dim}) with N > 0; got {tuple(x_val.shape)}")
        if not torch.isfinite(x_val).all():
            raise ModelInputError("validation data contains NaN or infinity")
        if binarization != "none":
            x_val = binarize(x_val, "threshold" if binarization == "threshold" else "dynamic",
                             generator=torch.Generator(device=device).manual_seed(12345))
    model.to(device)
    n = x_train.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total)
             if config.schedule == "onecycle" else None)
    good_state = copy.deepcopy(model.state_dict())
    step, t0, seen = 0, time.perf_counter(), 0
    valid_elbo = None
    for epoch in range(config.epochs):
        model.train()
        perm = torch.randperm(n, generator=g).to(device)
        running, count = 0.0, 0
        for b in range(steps_per_epoch):
            xb = x_train[perm[b * config.batch_size:(b + 1) * config.batch_size]]
            if binarization != "none":
                xb = binarize(xb, binarization, generator=gbin)
            loss = -model.elbo(xb, generator=geps).mean()
            if not torch.isfinite(loss):
                if not all(torch.isfinite(p).all() for p in model.parameters()):
                    model.load_state_dict(good_state)
                yield TrainSnapshot(epoch, step, total, running / max(count, 1), valid_elbo, 0.0,
                                    opt.param_groups[0]["lr"], done=True, stopped_reason="nan")
                return
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            seen += xb.shape[0]
            running += -loss.item() * xb.shape[0]
            count += xb.shape[0]
            if step % config.report_every == 0 and b < steps_per_epoch - 1:
                yield TrainSnapshot(epoch + (b + 1) / steps_per_epoch, step, total, running / count, valid_elbo,
                                    seen / (time.perf_counter() - t0), opt.param_groups[0]["lr"])
        if not all(torch.isfinite(p).all() for p in model.parameters()):  # the epoch's last step diverged
            model.load_state_dict(good_state)
            yield TrainSnapshot(epoch, step, total, running / max(count, 1), valid_elbo, 0.0,
                                opt.param_groups[0]["lr"], done=True, stopped_reason="nan")
            return
        good_state = copy.deepcopy(model.state_dict())
        if x_val is not None:
            valid_elbo = mean_elbo(model, x_val, seed=config.seed)
        yield TrainSnapshot(epoch + 1, step, total, running / count, valid_elbo, seen / (time.perf_counter() - t0),
                            opt.param_groups[0]["lr"], done=epoch + 1 == config.epochs)
