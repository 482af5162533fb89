"""The Infinite mixture lab's Qt-free state: sessions round-trip, bad input is named, the seeded draws and the
seeded fit jobs."""

from __future__ import annotations

import numpy as np
import pytest

from app.labs.infinite.state import (
    DEFAULT_N_Z,
    RANGE_PRESETS,
    FitSettings,
    InfiniteState,
    fit_figures,
    fit_job,
    random_start,
    sample_noise,
)
from lvm.errors import ModelInputError, SessionError
from lvm.models.lecture_vae import OutputRanges


def made_state() -> InfiniteState:
    s = InfiniteState()
    s.set_range_preset("lecture")
    s.set_latent_dim(2)
    s.set_param(("B", 1, 1), 1.25)
    s.set_param(("c", 0), -0.5)
    s.n_z = 17
    s.show["curve"] = False
    s.fits = FitSettings(dataset="rings", k=5, stretch=False, seed=21)
    return s


def test_round_trip():
    d = made_state().to_dict()
    back = InfiniteState.from_dict(d)
    assert back.to_dict() == d
    assert back.latent_dim == 2 and back.model.theta()["B"][1, 1] == 1.25 and back.range_preset == "lecture"
    assert back.model.ranges == RANGE_PRESETS["lecture"][1] and back.n_z == 17 and back.fits.seed == 21
    assert InfiniteState.from_dict({}).to_dict() == InfiniteState().to_dict()


def test_old_sessions_without_a_fit_seed_load():
    d = made_state().to_dict()
    del d["fits"]["seed"]
    assert InfiniteState.from_dict(d).fits.seed == 0


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("latent_dim", 7, "latent_dim"),
        ("theta", "junk", "theta"),
        ("theta", {"A": [[1.0]]}, "theta"),
        ("ranges", "huge", "ranges"),
        ("n_z", 2.5, "n_z"),
        ("show", 3, "show"),
        ("show", {"bogus": True}, "show"),
        ("fits", {"dataset": "nope"}, "fits.dataset"),
        ("fits", {"seed": -1.5}, "fits.seed"),
    ],
)
def test_bad_input_is_named(key, value, field):
    d = {**made_state().to_dict(), key: value}
    with pytest.raises(SessionError, match=f"views.infinite.{field}"):
        InfiniteState.from_dict(d)
    lenient = InfiniteState.from_dict(d, strict=False)  # the rest comes back
    assert lenient.range_preset == ("lecture" if key != "ranges" else "wide")
    if key == "theta":  # the latent dimension is kept, with the default theta
        assert lenient.latent_dim == 2 and lenient.model.theta()["B"][1, 1] != 1.25


def test_latent_dim_and_params():
    s = InfiniteState()
    assert s.latent_dim == 1 and s.n_z == DEFAULT_N_Z[1]
    assert not s.set_param(("A", 0, 1), 3.0)  # no second column with a 1-D latent
    s.set_latent_dim(2)
    assert s.n_z == DEFAULT_N_Z[2] and s.set_param(("A", 0, 1), 3.0) and s.model.theta()["A"][0, 1] == 3.0
    with pytest.raises(ModelInputError):
        s.set_latent_dim(3)
    assert s.component_latents().shape == (25, 2) and len(s.mean_curves()) == 10
    xs, ys = s.x_grid()
    assert len(xs) == len(ys) == 100 and (xs[-1] - xs[0]) == pytest.approx(ys[-1] - ys[0])  # square window


def test_a_loaded_fit_uses_its_ranges_and_the_data_window():
    s = InfiniteState()
    ranges = OutputRanges((-1.0, -2.0), (1.0, 2.0), -2.0, 0.0)
    theta = {"A": [[1.0, 0.0], [0.0, 1.0]], "B": [[0.0, 0.0], [0.0, 0.0]], "c": [0.1, 0.2], "d": [0.0, 0.0]}
    s.load_fit(theta, ranges, 2)
    assert s.range_preset == "fitted" and s.model.ranges == ranges and s.show["data"] and s.latent_dim == 2
    x = np.array([[10.0, 10.0], [12.0, 11.0]])
    xs, ys = s.x_grid(x)
    assert xs[0] < 10 and xs[-1] > 12 and ys[0] < 10
    assert s.to_dict()["ranges"] == "lecture"  # (a fitted preset is not a named one)


def test_the_draws_are_seeded():
    z, eps = sample_noise(5, 2)
    assert z.shape == (400, 2) and eps.shape == (400, 2)
    assert np.array_equal(z, sample_noise(5, 2)[0]) and not np.array_equal(z, sample_noise(6, 2)[0])
    a, b = random_start(2, OutputRanges(), 3), random_start(2, OutputRanges(), 3)
    assert all(np.array_equal(a.theta()[k], b.theta()[k]) for k in "ABcd")
    assert not np.array_equal(a.theta()["A"], random_start(2, OutputRanges(), 4).theta()["A"])
    assert "samples, seed 5" in InfiniteState().legend_text(5)


def test_fit_jobs_are_seeded():
    from lvm.density_fits import train_test_toy

    x_train, x_test = train_test_toy("moons", 200, seed=0)
    grid = (np.linspace(-2, 3, 5), np.linspace(-2, 2, 5))

    def final(seed):
        job, info = fit_job("gmm", x_train, x_test, grid, 1, OutputRanges(), 3, seed)
        assert info is None
        return [s for s in job()][-1]

    assert final(1).train_log_lik == final(1).train_log_lik
    job, info = fit_job("exact", x_train, x_test, grid, 2, OutputRanges.for_data(x_train), 3, 0)
    assert info[1] == 2
    with pytest.raises(ModelInputError, match="unknown fit"):
        fit_job("magic", x_train, x_test, grid, 1, OutputRanges(), 3, 0)
    assert "train <b>" in fit_figures("gmm", final(2))
