"""The Mixture lab's Qt-free state (app/labs/mixture/state.py): history / branch / follow rules, caches, BIC staleness,
session round trip and bad input. Nothing here imports Qt (checked in a fresh process)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from app.labs.mixture.engine import EMConfig, em_halfsteps, em_run, init_step, posterior
from app.labs.mixture.state import (
    CACHE_SIZE,
    DIGITS,
    GREY,
    USER_POINTS,
    History,
    MixtureState,
    ll_curve,
    step_text,
)
from lvm.data.toy import blobs
from lvm.errors import SessionError
from lvm.models.gmm_selection import CriterionPoint


@pytest.fixture(scope="module")
def run():
    """Points and a short EM run on them: init, then 7 half steps (E, M, E, M, E, M, E)."""
    X, y = blobs(n=300, k=3, seed=1)
    cfg = EMConfig(k=3, seed=0, init="kmeans")
    s0 = init_step(X, cfg)
    return X, y, cfg, [s0, *em_halfsteps(X, cfg, s0, n_halves=7)]


def fitted_state(run) -> MixtureState:
    X, y, cfg, steps = run
    st = MixtureState()
    st.config = cfg
    st.set_points(X, y)
    for s in steps:
        st.receive(s, None)
    return st


def test_new_steps_are_followed_until_the_user_scrubs_back(run):
    st = fitted_state(run)
    h = st.history
    assert h.shown == h.newest == 7 and h.follow
    h.scrub(2)
    assert h.shown == 2 and not h.follow
    assert not h.append(run[3][1])  # a step of a run still going: stored, not shown
    assert h.shown == 2 and len(h) == 9
    h.scrub(h.newest)  # back to the end: following again
    assert h.follow and h.append(run[3][2]) and h.shown == h.newest


def test_an_edit_after_scrubbing_back_starts_a_run_the_view_follows(run):
    """Issue 19: scrubbed back, then points added: EM restarts from the shown step and the view follows it."""
    X = run[0]
    st = fitted_state(run)
    st.history.scrub(0)
    shown = st.history.current
    restart = st.edit_points(np.concatenate([X, [[9.0, 9.0]]]))
    assert restart is not None and st.source == USER_POINTS and len(st.X) == len(X) + 1
    assert np.array_equal(restart.means, shown.means) and restart.half == "init" and restart.iteration == 0
    assert restart.log_likelihood == pytest.approx(posterior(st.X, restart)[1].mean())
    assert st.history.steps == [restart] and st.history.shown == 0 and st.history.follow
    for s in em_halfsteps(st.X, st.config, restart, n_halves=3):
        assert st.receive(s, None)  # every new step is shown
    assert st.history.shown == st.history.newest == 3
    # a reset (K, seed, data...) also follows, whatever was scrubbed before
    st.history.scrub(1)
    st.history.clear()
    assert st.history.follow and st.receive(run[3][0], None) and st.history.shown == 0


def test_an_edit_leaving_fewer_points_than_k_asks_for_a_reset(run):
    st = fitted_state(run)
    assert st.edit_points(run[0][:2]) is None and not st.history.steps and st.history.follow


def test_branching_drops_the_future_and_its_tables(run):
    X = run[0]
    st = fitted_state(run)
    h = st.history
    for i in range(len(h)):
        h.colours(i, X)
    assert set(h.resp_cache) == {1, 3, 5, 7}  # E-steps only: an M-step shows its E-step's responsibilities
    h.scrub(4)
    start, n = st.step_plan("M")
    # from an M (index 4) an M-step first needs an E-step: two half steps; steps 5.. are gone with their tables
    assert start is run[3][4] and n == 2 and len(h) == 5 and h.follow
    assert set(h.resp_cache) <= {1, 3} and all(i <= 4 for i in h.colour_cache)
    assert st.step_plan("E") == (start, 1)
    moved = st.drag_mean(0, (5.0, -5.0))
    assert len(h) == 6 and h.shown == 5 and moved.half == "init" and tuple(moved.means[0]) == (5.0, -5.0)
    assert moved.log_likelihood == pytest.approx(posterior(X, moved)[1].mean())


def test_colours_grey_before_the_first_e_step_and_blend_the_posterior_after(run):
    from app.widgets.palette import component_colours

    X = run[0]
    h = fitted_state(run).history
    assert np.array_equal(h.colours(0, X), np.tile(GREY, (len(X), 1)))
    resp = posterior(X, run[3][1])[0]
    np.testing.assert_allclose(h.colours(1, X), resp @ component_colours(3), atol=1e-6)
    assert h.colours(2, X) is h.colours(1, X)  # the M-step keeps its E-step's colours


def test_caches_are_bounded(run):
    X = run[0]
    h = History()
    for i in range(40):
        h.append(dataclasses.replace(run[3][1], iteration=i, half="E"))
        h.colours(i, X)
    assert len(h.resp_cache) == CACHE_SIZE and len(h.colour_cache) == CACHE_SIZE
    assert max(h.resp_cache) == 39


def test_the_bic_grid_goes_stale_when_the_data_or_covariance_type_change(run):
    st = fitted_state(run)
    st.bic.start(st.data_version, "full")
    assert st.bic_stale_reason() is None  # (an empty grid is not stale)
    for k in (1, 2, 3):
        st.bic.add(CriterionPoint(k, 0, bic=100.0 - 10 * k + k * k * 3, aic=90.0, mean_log_likelihood=-2.0))
    assert st.bic_stale_reason() is None and st.bic.best_k() == 2
    st.config = dataclasses.replace(st.config, cov_type="diag")
    assert "full" in st.bic_stale_reason()
    st.config = dataclasses.replace(st.config, cov_type="full")
    st.edit_points(st.X[:-1])
    assert st.bic_stale_reason() == "the data changed"
    st.bic.start(st.data_version, "full")
    assert st.bic_stale_reason() is None


def test_em_job_reports_what_it_does(run):
    X, _, cfg, _ = run
    reports = []
    steps = list(em_run(X, cfg, None, 4, np.eye(3, dtype=np.float32), report=lambda f, t: reports.append((f, t))))
    assert [s.half for s, _ in steps] == ["init", "E", "M", "E", "M"]
    assert all(c is None for s, c in steps if s.half != "E") and all(c.shape == (300, 3) for s, c in steps[1::2])
    assert reports[0] == (0.0, "300 points") and reports[-1] == (1.0, "300 points, half step 4 of 4")


def test_ll_curve_range_keeps_every_point_but_a_degenerate_start(run):
    s = run[3][0]
    steps = [dataclasses.replace(s, log_likelihood=-500.0)] + [
        dataclasses.replace(s, log_likelihood=-4.0 + 0.1 * i) for i in range(1, 6)
    ]
    y0, y1 = ll_curve(steps).y_range
    assert -500.0 < y0 < -3.8 and y1 > -3.5  # the curve from the third value on fills the plot
    flat = [dataclasses.replace(s, log_likelihood=-4.0005)] + [
        dataclasses.replace(s, log_likelihood=-4.0 + 1e-5 * i) for i in range(1, 6)
    ]
    c = ll_curve(flat)
    assert c.y_range[0] < -4.0005 and c.y_range[1] > -4.0 + 5e-5 and len(c.x) == 6
    nan = ll_curve([dataclasses.replace(s, log_likelihood=float("nan"))])
    assert nan.y_range is None and len(nan.x) == 0
    assert step_text(0, s).startswith("step 0: iteration 0, initial parameters")


def test_session_round_trip(run):
    st = fitted_state(run)
    st.edit_points(np.concatenate([run[0], [[1.5, -2.5]]]))
    st.selected_point = 7
    st.view_range = ((-3.0, 4.0), (-1.0, 2.0))
    st.density = 2
    d = st.to_dict()
    assert json.loads(json.dumps(d)) == d
    back = MixtureState.from_dict(json.loads(json.dumps(d)))
    assert back.restored_selection == 7
    back.take_restored_selection()
    assert back.to_dict() == d
    np.testing.assert_array_equal(back.X, st.X)
    # a toy set keeps no points: they come back from (name, n, seed)
    toy = MixtureState()
    toy.n = 250
    toy.data_seed = 3
    d2 = toy.to_dict()
    assert d2["points"] is None
    back2 = MixtureState.from_dict(d2)
    assert back2.to_dict() == d2 and len(back2.X) == 250
    assert MixtureState.from_dict({**d2, "dataset": DIGITS}).source == DIGITS
    # the old session format (version 1: no digits key, no view range) reads
    assert MixtureState.from_dict({"k": 3, "dataset": "moons"}).config.k == 3


@pytest.mark.parametrize(
    "key, value, why",
    [
        ("k", "bad", "integer from 1 to 20"),
        ("k", 21, "integer from 1 to 20"),
        ("k", True, "integer from 1 to 20"),
        ("cov_type", "banded", "one of full"),
        ("init", 3, "one of kmeans"),
        ("dataset", "mnist", "one of blobs"),
        ("n", 5, "integer from 10"),
        ("density", 3, "integer from 0 to 2"),
        ("view_range", 5, "finite x0 < x1"),
        ("view_range", [[1, 0], [0, 1]], "finite x0 < x1"),
        ("points", [[0.0, 1.0], [2.0]], "finite [x, y] pairs"),
        ("points", [[0.0, float("nan")]], "finite [x, y] pairs"),
        ("selected_point", -1, "a point's index"),
        ("digits", {"space": "fourier"}, "digits.space must be one of"),
        ("digits", {"k": 1}, "digits.k must be an integer from 2 to 40"),
    ],
)
def test_bad_session_entries_are_named(key, value, why):
    with pytest.raises(SessionError, match=f"views.mixture.{key}") as err:
        MixtureState.from_dict({"k": 3, key: value})
    assert why in str(err.value)
    # the view takes what it can: the valid entries, the current values for the rest
    st = MixtureState()
    problems = st.update_from_dict({"k": 3, key: value})
    assert len(problems) == 1 and st.config.k == (3 if key != "k" else 4)


def test_session_losses_and_the_points_limit():
    from app.core.workspace import MAX_SESSION_POINTS

    st = MixtureState()
    st.source = USER_POINTS
    st.set_points(np.zeros((MAX_SESSION_POINTS + 1, 2)))
    assert st.to_dict()["points"] is None and "200,000" in st.session_losses()[0]
    st.set_points(np.zeros((5, 2)))
    assert st.to_dict()["points"] == [[0.0, 0.0]] * 5 and st.session_losses() == []
