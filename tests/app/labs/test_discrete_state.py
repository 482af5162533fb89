"""The Discrete latents lab's Qt-free state (app.labs.discrete.state): the session round trip with an embedded model,
bad input, and the rules behind what the lab shows."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.labs.discrete.state import (
    PANELS,
    SETTING_RANGES,
    Analysis,
    CostCurve,
    CostPoint,
    DiscreteSettings,
    DiscreteState,
    Progress,
    TrainHistory,
    analysis_text,
    cost_ks,
    cost_view,
    estimator_ks,
    export_rows,
    fresh_model,
    model_from_base64,
    model_to_base64,
    progress_text,
    sample_histograms,
    trained_model_info,
    why_not,
)
from lvm.errors import SessionError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _trained_state() -> DiscreteState:
    state = DiscreteState(settings=DiscreteSettings(panel="train", repeats=7, kmax=500, lr=0.003, train_seed=9))
    model = fresh_model(5)
    with torch.no_grad():
        model.decoder[0].weight.normal_()  # (not the fresh weights: the round trip must carry these)
    state.set_model(model, {"objective": "exact", "epochs": 2}, "trained in this lab: 2 epochs", trained_here=True)
    return state


def test_round_trip_through_json_carries_the_model_trained_here():
    state = _trained_state()
    d = json.loads(json.dumps(state.to_dict()))
    assert d["model"]["source"] == "trained in this lab: 2 epochs" and isinstance(d["model"]["data"], str)
    r = DiscreteState.from_dict(d)
    assert r.settings == state.settings and r.trained_here and r.loaded
    assert r.model.latent_dim == 5 and _same_weights(r.model, state.model) and not r.model.training
    assert r.model_info == {"objective": "exact", "epochs": 2} and r.model_source == state.model_source
    assert r.to_dict() == d


def test_the_bundled_model_does_not_travel_and_is_encoded_once():
    state = DiscreteState()
    state.set_model(fresh_model(3), {}, "bundled")
    assert state.model_data() == (None, None) and state.to_dict()["model"] is None
    assert DiscreteState.from_dict(state.to_dict()).model is None  # (the lab loads the bundled one)
    trained = _trained_state()
    first, problem = trained.model_data()
    assert problem is None and trained.model_data()[0] is first  # cached for this model
    trained.set_model(fresh_model(2), {}, "another", trained_here=True)
    assert trained.model_data()[0] != first


def test_a_model_that_cannot_be_saved_says_why():
    state = _trained_state()
    with torch.no_grad():
        state.model.decoder[0].bias.fill_(float("nan"))
    data, problem = state.model_data()
    assert data is None and "Discrete latents lab cannot be saved" in problem and "NaN" in problem
    assert state.to_dict()["model"] is None


def test_missing_keys_are_defaults_and_numbers_are_clamped():
    assert DiscreteState.settings_from_dict({}) == DiscreteSettings()
    s = DiscreteState.settings_from_dict({"repeats": 10**9, "lr": 5.0, "train_k": 0})
    assert (s.repeats, s.lr, s.train_k) == (SETTING_RANGES["repeats"][1], SETTING_RANGES["lr"][1], 1)
    assert DiscreteState.settings_from_dict({"lr": 1}).lr == 0.1 and set(PANELS) >= {"exact", "train"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("panel", 3),
        ("panel", "plots"),
        ("repeats", "x"),
        ("repeats", 2.5),
        ("repeats", True),
        ("lr", float("nan")),
        ("lr", None),
        ("model", 5),
        ("model", {"data": "not base64!"}),
        ("model", {"data": 12}),
    ],
)
def test_bad_input_is_refused_naming_the_field(key, value):
    with pytest.raises(SessionError, match=f"views.discrete.{key}"):
        DiscreteState.from_dict({key: value})
    with pytest.raises(SessionError, match="object"):
        DiscreteState.from_dict([])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*DiscreteSettings.__dataclass_fields__, "model", "junk"]), json_values))
def test_any_json_is_a_session_error_or_a_state(d):
    try:
        state = DiscreteState.from_dict(d)
    except SessionError:
        return
    json.dumps(state.to_dict())


def test_an_embedded_pickle_or_another_kind_of_model_is_never_loaded():
    pickle = base64.b64encode(b"\x80\x04 a pickle, never loaded").decode()
    with pytest.raises(SessionError, match="pickle"):
        model_from_base64(pickle)
    from app.core.workspace import model_to_base64 as vae_to_base64
    from lvm.models.vae import VAE

    with pytest.raises(SessionError, match="binary-latent"):
        model_from_base64(vae_to_base64(VAE(hidden=(8,)), {}))
    model = fresh_model(2)
    loaded, info = model_from_base64(model_to_base64(model, {"a": 1}))
    assert _same_weights(loaded, model) and info == {"a": 1}


def test_what_is_shown():
    assert estimator_ks(1000) == (1, 3, 10, 30, 100, 300, 1000) and estimator_ks(50) == (1, 3, 10, 30, 50)
    assert cost_ks(fresh_model(3)) == (4, 8, 10, 12, 14, 16, 18, 20)
    assert why_not(None, False).startswith("Load") and "features" in why_not(np.zeros((2, 10)), True)
    assert why_not(np.zeros((2, 784)), False) == "Select a digit." and why_not(np.zeros((2, 784)), True) == ""
    assert progress_text(4, Progress(0.5, "summed 8 of 16", -12.5)) == "x #4: summed 8 of 16; partial sum so far: " + (
        "log p(x) ≥ -12.50"
    )
    snap = SimpleNamespace(epoch=1, epochs=1, step=100, steps=100, objective="exact", bound=-205.37, seconds=1.2)
    info, source = trained_model_info(snap, 10000)
    assert source == "trained in this lab: 1 epoch on 10,000 images" and info["objective"] == "exact"
    history = TrainHistory()
    for step, bound in ((10, -210.0), (20, -200.0)):
        history.add(SimpleNamespace(step=step, bound=bound))
    assert history.steps == [10, 20] and history.y_range() == pytest.approx((-210.55, -199.45))


def _analysis() -> Analysis:
    k = 3
    return Analysis(
        index=4,
        model_id=0,
        latent_dim=k,
        x=np.zeros(784, np.float32),
        log_px=-10.0,
        seconds=0.01,
        table_seconds=None,
        marginals=np.array([0.1, 0.5, 0.9]),
        q_probs=np.array([0.2, 0.5, 0.8]),
        elbo_q=-11.0,
        kl_q=1.0,
        top_bits=np.array([[1, 0, 1], [0, 0, 1]], np.int8),
        top_mass=np.array([0.7, 0.2]),
        top_images=np.zeros((2, 28, 28)),
        hist_edges=np.array([-30.0, -20.0, -10.0]),
        hist_counts=np.array([6, 2]),
        hist_mass=np.array([0.1, 0.9]),
        uniform_lj=np.array([-25.0, -25.0, -15.0, -40.0]),
        q_lj=np.array([-12.0, -12.0, -50.0]),
        log_px_one_hot=-12.0,
    )


def test_histograms_texts_and_export_of_an_analysis():
    a = _analysis()
    h = sample_histograms(a)
    assert h.uniform_fraction.tolist() == [0.5, 0.25]  # (the sample below the first edge is outside the histogram)
    assert h.q_fraction.tolist() == [1 / 3, 2 / 3]  # (q samples are clipped into it)
    assert h.uniform_count_log10 == pytest.approx(np.log10(1 + np.array([2, 1]) * 8 / 4))
    text = analysis_text(a)
    assert "exact log p(x) = -10.000 nats" in text and "2^3 = 8 terms" in text and "70.0%" in text
    rows = export_rows(a)
    assert rows[0] == ["quantity", "k", "value"] and ["log_px", "", -10.0] in rows
    assert ["top_configuration_mass", "101", 0.7] in rows and len(rows) == 3 + 2 * 3 + 2


def test_the_cost_curve_in_words():
    points = tuple(CostPoint(k, 1e-6 * 2**k) for k in (12, 14))
    v = cost_view(CostCurve(points, budget_s=1e-3, done=True), n_ks=2)
    assert v.c == pytest.approx(1e-6) and v.fraction == 1.0
    assert "K ≈ 10.0" in v.text and "1.00 ms" in v.text
    v = cost_view(CostCurve(points[:1] + (), budget_s=None, done=False), n_ks=4)
    assert v.fraction == 0.25 and "budget" not in v.text
