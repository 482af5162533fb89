"""The Latent lab's Qt-free state: sessions round-trip, bad input is named, the display rules and the training run's
state machine (epoch 0, the best model seen, where the schedule stands), and the training plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.labs.latent.state import (
    MAX_PINNED,
    MODES,
    LatentState,
    TrainingRun,
    TrainSettings,
    continue_lr_text,
    parse_hidden,
)
from app.labs.latent.train_job import plan_training, run_plan, split_for_training
from lvm.errors import ModelInputError, SessionError
from lvm.training import CONSERVATIVE_LR, ScheduleState, TrainConfig, TrainSnapshot


def full_state() -> LatentState:
    drawn = np.zeros(784, np.float32)
    drawn[100:140] = 0.75
    return LatentState(
        view_range=((-2.0, 3.0), (-1.5, 4.0)),
        points=False,
        thumbnails=True,
        background="aggregate",
        grid_n=12,
        quantiles=True,
        pinned=[3, 17],
        drawn=drawn,
        hover=(0.25, -1.0),
        train=TrainSettings(mode=MODES[1], hidden="64,32", decoder="gaussian", epochs=7, lr=2e-3, seed=9),
    )


def test_to_dict_from_dict_round_trip():
    state = full_state()
    d = state.to_dict()
    back = LatentState.from_dict(d)
    assert back.to_dict() == d
    assert back.view_range == ((-2.0, 3.0), (-1.5, 4.0)) and back.train.hidden_sizes() == (64, 32)
    assert np.array_equal(back.drawn, state.drawn)
    assert LatentState.from_dict({}).to_dict() == LatentState().to_dict()  # missing keys: defaults


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("range", [[1, 0], [0, 1]]),
        ("range", "bad"),
        ("points", 1),
        ("background", "rainbow"),
        ("grid_n", "20"),
        ("pinned", [1, -2]),
        ("drawn", [0.5] * 783),
        ("drawn", [2.0] * 784),
        ("hover", [0.0]),
        ("train", {"mode": "sideways"}),
        ("train", {"lr": float("nan")}),
        ("train", {"hidden": "x" * 500}),
    ],
)
def test_bad_input_is_named(key, value):
    d = {**full_state().to_dict(), key: value}
    with pytest.raises(SessionError, match=f"views.latent.{key}"):
        LatentState.from_dict(d)
    lenient = LatentState.from_dict(d, strict=False)  # a bad field keeps its default, the others come back
    assert lenient.to_dict()[key] == LatentState().to_dict()[key] or key == "train"
    assert lenient.grid_n == (12 if key != "grid_n" else 20)
    with pytest.raises(SessionError):
        LatentState.from_dict([1, 2])


def test_numbers_are_clamped_like_the_spin_boxes():
    s = LatentState.from_dict({"grid_n": 1000, "train": {"epochs": 0, "lr": 5.0}})
    assert s.grid_n == 40 and s.train.epochs == 1 and s.train.lr == 0.1
    assert len(LatentState.from_dict({"pinned": list(range(200))}).pinned) == MAX_PINNED


def test_hidden_sizes():
    assert parse_hidden("512, 256,") == (512, 256)
    for bad in ("", "a,b", "0", "9000"):
        with pytest.raises(ModelInputError, match="comma-separated"):
            parse_hidden(bad)


def test_pins_grid_points_and_ranges():
    s = LatentState(mu=np.array([[0.0, 0.0], [1.0, 1.0], [3.0, -1.0]], np.float32))
    s.toggle_pin(2)
    s.toggle_pin(1)
    s.toggle_pin(2)
    assert s.pinned == [1]
    s.set_encodings(s.mu[:1], s.mu[:1], None, ("k",))
    assert s.pinned == []  # pins beyond the data go
    s.set_encodings(np.array([[0.0, 0.0], [2.0, 2.0]], np.float32), np.ones((2, 2), np.float32), None, None)
    assert s.nearest_to_grid_point(1.8, 1.5) == 1
    s.quantiles = True
    z = s.grid_to_z(0.5, 0.975)
    assert z[0] == pytest.approx(0.0, abs=1e-12) and z[1] == pytest.approx(1.959964, abs=1e-5)
    assert s.z_to_grid(z) == pytest.approx((0.5, 0.975))
    zx, zy, rect = s.mosaic_cells(((-9.0, 9.0), (-1.0, 1.0)))
    assert rect == (0.0, 0.0, 1.0, 1.0) and len(zx) == len(zy) == 20  # quantiles: n x n on (0, 1)^2
    s.quantiles = False
    zx, zy, (left, bottom, w, h) = s.mosaic_cells(((-9.0, 9.0), (-1.0, 1.0)))
    assert len(zx) == 20 and len(zy) == 3 and w / len(zx) == pytest.approx(h / len(zy))  # square cells
    (x0, x1), (y0, y1) = LatentState().fit_range()
    assert x0 < -3.2 and x1 > 3.2 and y0 < -3.2 and y1 > 3.2


def test_problems_status_and_csv():
    s = LatentState()
    assert "no model" in s.problem()
    s.model = type("NotAModel", (), {"latent_dim": 2, "data_dim": 4})()
    assert "not a latent model" in s.problem() and "log_prior" in s.problem()
    s.model = type("M", (), {"latent_dim": 1, "data_dim": 4, "log_prior": print, "log_likelihood": print})()
    assert "at least 2" in s.problem()
    s.model.latent_dim = 2
    assert s.problem() is None and s.data_problem(None) == "no dataset"
    assert "expects 4 features" in s.data_problem(type("D", (), {"x": np.zeros((3, 5))})())
    s.set_encodings(np.array([[0.5, -1.0]], np.float32), np.array([[0.1, 0.2]], np.float32), np.array([7]), ("k",))
    s.timings.update(encode_ms=12.0, grid_ms=3.0, grid_nx=9, grid_ny=20)
    assert "1 points encoded in 12 ms" in s.status_text() and "9×20 grid" in s.status_text()
    assert s.csv_rows() == [
        ["index", "label", "z1_mean", "z2_mean", "z1_sd", "z2_sd"],
        [0, 7, "0.5", "-1", "0.1", "0.2"],
    ]
    assert s.colours().shape == (1, 3)


# -- the training run ------------------------------------------------------------------------------------------------
def snap(epoch, step, train, valid, score=None, lr=1e-5, done=False) -> TrainSnapshot:
    return TrainSnapshot(epoch, step, 30, train, valid, 100.0, lr, done=done, score=score)


def test_the_run_keeps_the_curves_from_epoch_zero_and_the_best_model():
    previous = ScheduleState("onecycle", 1e-3, 4e-9, 500)
    config = TrainConfig(epochs=3, lr=1e-5, schedule="constant", evaluate_start=True, keep_best=True, previous=previous)
    run = TrainingRun()
    run.begin(config, epoch_offset=100, info={"dataset": "digits"})
    assert run.running
    run.add(snap(0, 0, -132.0, -131.0, score=-131.0), "m0")
    run.add(snap(0.5, 5, -133.0, -131.0), None)
    run.add(snap(0.7, 7, -133.5, -131.0), "between")  # a copy between epoch ends is shown, never kept as best
    run.add(snap(1, 10, -132.5, -130.5, score=-130.5), "m1")
    run.add(snap(2, 20, -132.4, -130.9, score=-130.9), "m2")
    assert run.train_points[0] == (100.0, -132.0) and [p[0] for p in run.valid_points] == [100, 101, 102]
    assert run.latest == "m2" and run.best == "m1"
    model, info = run.result()
    assert model == "m1" and info["epochs_completed"] == 101 and info["valid_elbo"] == -130.5
    assert info["training_state"] == {"schedule": "constant", "peak_lr": 1e-5, "final_lr": 1e-5, "steps": 510}
    assert info["dataset"] == "digits"
    assert "kept the model after epoch 1" in run.ending_text(stopped=True)
    run.end()
    assert not run.running


def test_a_run_that_never_beats_its_start_ends_with_the_start_and_its_old_schedule():
    previous = ScheduleState("onecycle", 1e-3, 4e-9, 500)
    config = TrainConfig(epochs=1, lr=1e-5, schedule="constant", keep_best=True, previous=previous)
    run = TrainingRun()
    run.begin(config, 100, {"training_state": previous.to_dict()})
    run.add(snap(0, 0, -132.0, -131.0, score=-131.0), "m0")
    run.add(snap(1, 10, -140.0, -135.0, score=-135.0, done=True), "m1")
    model, info = run.result()
    assert model == "m0" and info["epochs_completed"] == 100 and info["training_state"] == previous.to_dict()
    assert "kept the starting model" in run.ending_text(stopped=False)
    assert TrainingRun().result() is None


def test_continue_text_names_the_learning_rate():
    line, why = continue_lr_text(None)
    assert f"{CONSERVATIVE_LR:.0e}" in line and "without its schedule" in line and "epoch 0" in why
    line, _ = continue_lr_text(ScheduleState("onecycle", 1e-3, 4e-9, 1200))
    assert "1.0e-05" in line and "1,200 steps" in line


# -- the plan --------------------------------------------------------------------------------------------------------
class Split:
    def __init__(self, x):
        self.x = x


class Dataset:
    image_shape = (2, 2)

    def __init__(self, splits):
        self._splits = splits
        self.splits = list(splits)

    def split(self, name):
        return self._splits[name]


def test_plan_a_new_model_and_a_continuation():
    from lvm.models.vae import VAE

    x = np.random.default_rng(0).uniform(size=(50, 4)).astype(np.float32)
    ds = Dataset({"test": Split(x)})
    kw = dict(dataset=ds, split="test", data=Split(x), model_info={}, dataset_spec="toy", device="cpu")
    plan = plan_training(TrainSettings(mode=MODES[1], hidden="8", epochs=2, lr=3e-3, seed=4), model=None, **kw)
    assert plan.new_config is not None and plan.new_config.hidden == (8,) and plan.config.lr == 3e-3
    assert plan.config.schedule == "onecycle" and plan.config.evaluate_start and plan.config.keep_best
    assert len(plan.x_valid) == 5 and "seed 4" in plan.valid_name and plan.info["seed"] == 4
    steps = list(run_plan(plan))
    assert steps[0][0].epoch == 0 and steps[0][1] is not None and steps[-1][0].done

    torch.manual_seed(0)
    model = VAE(data_dim=4, latent_dim=2, hidden=(8,), image_shape=(2, 2))
    info = {"epochs_completed": 6, "training_state": ScheduleState("onecycle", 2e-3, 1e-8, 60).to_dict()}
    plan = plan_training(TrainSettings(epochs=1), model=model, **{**kw, "model_info": info})
    assert plan.new_config is None and plan.epoch_offset == 6 and plan.config.lr == pytest.approx(2e-5)
    assert plan.config.schedule == "constant" and plan.config.previous.steps == 60
    plan = plan_training(TrainSettings(epochs=1), model=model, **kw)
    assert plan.config.lr == CONSERVATIVE_LR
    with pytest.raises(ModelInputError, match="load a dataset"):
        plan_training(TrainSettings(), model=model, **{**kw, "data": None})
    with pytest.raises(ModelInputError, match="expects 4 features"):
        plan_training(TrainSettings(), model=model, **{**kw, "data": Split(np.zeros((5, 3), np.float32))})
    with pytest.raises(ModelInputError, match="Bernoulli"):
        plan_training(TrainSettings(), model=model, **{**kw, "data": Split(x * 3)})


def test_another_split_is_the_held_out_set():
    a, b = np.zeros((10, 4)), np.ones((6, 4))
    x_train, x_valid, name = split_for_training(Dataset({"train": Split(a), "test": Split(b)}), "train", Split(a), 0)
    assert x_train is a and x_valid is b and name == "test"
