"""The Latent lab's training job, Qt-free: a plan made from the train settings and the workspace (which model, which
data, which configuration; checked before anything starts), and the generator a worker runs.

A new model is built in the worker from a generator seeded with the settings' seed (``lvm.training.new_vae``; the
global torch RNG is not touched). Continuing copies the current model in the worker and continues its schedule where
it ended (``lvm.training.continue_config``): the ELBO before the first step is epoch 0 of the curves, and the run
ends with the best model seen.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.labs.latent.state import TrainSettings
from lvm.errors import ModelInputError
from lvm.models.vae import BINARY_DECODERS, VAE, VAEConfig
from lvm.training import (
    ScheduleState,
    TrainConfig,
    TrainSnapshot,
    continue_config,
    holdout_split,
    new_vae,
    schedule_state_from_info,
    train_vae,
)

BATCH_SIZE = 128
REPORT_EVERY = 4  # steps between snapshots
VALID_LIMIT = 1000  # held-out images evaluated at each epoch end
COPY_EVERY_S = 1.5  # between epoch ends, the model shown is refreshed this often


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    """Everything a training run needs, decided on the GUI thread in microseconds; the worker does the rest."""

    new_config: VAEConfig | None  # a new model with this architecture, or None: continue ``base``
    base: Any
    x_train: np.ndarray
    x_valid: np.ndarray
    valid_name: str
    config: TrainConfig
    device: Any
    info: dict[str, Any]
    epoch_offset: float

    def describe(self) -> str:
        return f"training on {len(self.x_train):,} images; {len(self.x_valid):,} held out ({self.valid_name})…"


def split_for_training(dataset: Any, split: str | None, data: Any, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(training images, held-out images, the held-out set's name): another split of the dataset when it has one of
    the same width (valid, then test, then train), else a seeded 10% of this split held out."""
    other = next((s for s in ("valid", "test", "train") if s in dataset.splits and s != split), None)
    if other is not None and dataset.split(other).x.shape[1] == data.x.shape[1]:
        return data.x, dataset.split(other).x, other
    tr, va = holdout_split(len(data.x), 0.1, seed)
    return data.x[tr], data.x[va], f"10% of {split}, seed {seed}"


def plan_training(
    settings: TrainSettings,
    *,
    dataset: Any,
    split: str | None,
    data: Any,
    model: Any,
    model_info: dict[str, Any],
    dataset_spec: Any,
    device: Any,
) -> TrainPlan:
    """The plan for the train panel's settings; ModelInputError saying what to change when it cannot run."""
    if data is None:
        raise ModelInputError("load a dataset before training")
    base_info: dict[str, Any] = {}
    state: ScheduleState | None = None
    if settings.from_scratch or model is None:
        new_config: VAEConfig | None = VAEConfig(
            data_dim=int(data.x.shape[1]),
            latent_dim=2,
            hidden=settings.hidden_sizes(),
            decoder=settings.decoder,
            image_shape=dataset.image_shape,
        )
        decoder = settings.decoder
        epoch_offset = 0.0
    else:
        if not isinstance(model, VAE):
            raise ModelInputError(
                "the current model was not made by LVM Explorer (it is not an lvm VAE): the Latent lab cannot "
                "continue training it; choose 'new model from scratch'"
            )
        if model.data_dim != data.x.shape[1]:
            raise ModelInputError(
                f"the current model expects {model.data_dim} features but the dataset has "
                f"{data.x.shape[1]}; choose 'new model from scratch'"
            )
        new_config, decoder = None, model.config.decoder
        base_info = {k: v for k, v in model_info.items() if k != "kept_on_close"}
        try:
            state = schedule_state_from_info(base_info)
        except ModelInputError:
            state = None  # (a damaged record: continue as for a model saved without one)
        epoch_offset = float(base_info.get("epochs_completed", 0) or 0)
    x_train, x_valid, valid_name = split_for_training(dataset, split, data, settings.seed)
    if 0 < settings.subset < len(x_train):  # a seeded random subset of the training images, in their order
        keep = np.sort(np.random.default_rng(settings.seed).choice(len(x_train), settings.subset, replace=False))
        x_train = x_train[keep]
    if decoder in BINARY_DECODERS and (x_train.min() < 0 or x_train.max() > 1):
        kind = "a Bernoulli" if decoder == "bernoulli" else "an autoregressive Bernoulli"
        raise ModelInputError(f"{kind} decoder needs pixel values in [0, 1]; choose the gaussian decoder")
    if new_config is None:
        config = continue_config(
            state, settings.epochs, settings.seed, BATCH_SIZE, report_every=REPORT_EVERY, valid_limit=VALID_LIMIT
        )
    else:
        config = TrainConfig(
            epochs=settings.epochs,
            lr=settings.lr,
            seed=settings.seed,
            batch_size=BATCH_SIZE,
            report_every=REPORT_EVERY,
            valid_limit=VALID_LIMIT,
            evaluate_start=True,
            keep_best=True,
        )
    info = {
        **base_info,
        "dataset": dataset_spec,
        "split": split,
        "valid_split": valid_name,
        "seed": config.seed,
        "lr": config.lr,
        "batch_size": config.batch_size,
        "schedule": config.schedule,
        "binarization": config.binarization,
        "trained_in": "LVM Explorer Latent lab",
    }
    return TrainPlan(new_config, model, x_train, x_valid, valid_name, config, device, info, epoch_offset)


def run_plan(plan: TrainPlan) -> Iterator[tuple[TrainSnapshot, Any]]:
    """The worker's job: (snapshot, a copy of the model or None). Copies at epoch ends (the best model is chosen
    among them), at the end, and every COPY_EVERY_S seconds between (the plots follow the training)."""
    if plan.new_config is not None:
        model = new_vae(plan.new_config, plan.config.seed)
    else:
        model = copy.deepcopy(plan.base)
    last_copy = 0.0
    for snap in train_vae(model, plan.x_train, plan.x_valid, plan.config, plan.device):
        now = time.perf_counter()
        shot = None
        if snap.done or float(snap.epoch).is_integer() or now - last_copy > COPY_EVERY_S:
            shot = copy.deepcopy(model).eval()
            last_copy = time.perf_counter()
        yield snap, shot


def with_epoch_frames(
    steps: Iterator[tuple[TrainSnapshot, Any]],
    x_shown: np.ndarray | None,
    mosaic_z: tuple[np.ndarray, np.ndarray] | None = None,
) -> Iterator[tuple[TrainSnapshot, Any, tuple[np.ndarray, np.ndarray | None] | None]]:
    """``run_plan``'s (snapshot, copy) with, at each epoch end, what File → Export animation redraws of it: the
    copy's encoder means of ``x_shown`` and its mosaic decoded on the grid ``mosaic_z`` = (z1 centres, z2 centres)
    (None without one or for a model without images); computed here, in the worker."""
    import torch

    from lvm.latent_space import decode_mosaic, encode_dataset, image_shape_of

    for snap, shot in steps:
        frame = None
        if shot is not None and x_shown is not None and float(snap.epoch).is_integer():
            with torch.no_grad():
                mu, _ = encode_dataset(shot, x_shown)
                mosaic = None
                if mosaic_z is not None and image_shape_of(shot) is not None:
                    mosaic = decode_mosaic(shot, *mosaic_z)
            frame = (mu, mosaic)
        yield snap, shot, frame
