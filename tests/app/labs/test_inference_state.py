"""The Inference lab's Qt-free state and readouts: to_dict / from_dict round trips, validation of session input,
the x and q it remembers, the panels' settings rules, and the convergence readout's 'surprise' (no Qt here)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app.labs.inference.readouts import convergence_readout, surprise
from app.labs.inference.state import PANELS, ConvergenceSettings, InferenceState, ScatterSettings
from lvm.errors import SessionError
from lvm.estimators.convergence import ConvergenceSnapshot, LkStats, ProposalCoverage


def test_round_trip_through_json():
    st = InferenceState(panel="jensen")
    st.onedim.x, st.onedim.mu, st.onedim.sigma, st.onedim.convention = 4.5, -1.25, 0.7, 1
    st.convergence.kmax, st.convergence.seed = 800, 12
    st.jensen.k, st.scatter.n = 9, 250
    d = json.loads(json.dumps(st.to_dict()))
    assert set(d) == {"panel", "onedim", "convergence", "jensen", "scatter"}  # the session format of before
    back = InferenceState.from_dict(d)
    assert back.to_dict() == st.to_dict()
    assert isinstance(back.convergence.kmax, int) and isinstance(back.onedim.x, float)
    assert InferenceState.from_dict({}).to_dict() == InferenceState().to_dict()  # missing keys: defaults


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ([], "views.inference must be an object"),
        ({"panel": 3}, "views.inference.panel"),
        ({"panel": "nope"}, "views.inference.panel"),
        ({"jensen": {"k": "x"}}, "views.inference.jensen.k"),
        ({"jensen": {"k": True}}, "views.inference.jensen.k"),
        ({"jensen": {"k": 2.5}}, "views.inference.jensen.k"),
        ({"onedim": {"sigma": float("nan")}}, "views.inference.onedim.sigma"),
        ({"onedim": {"x": None}}, "views.inference.onedim.x"),
        ({"scatter": [1, 2]}, "views.inference.scatter must be an object"),
    ],
)
def test_bad_input_is_a_session_error_naming_the_field(bad, field):
    with pytest.raises(SessionError, match=field.replace(".", r"\.")):
        InferenceState.from_dict(bad)


def test_numbers_out_of_range_are_clamped():
    st = InferenceState.from_dict({"convergence": {"kmax": 10**9, "repeats": 0}, "onedim": {"sigma": 1e-9, "mu": 99}})
    lo, hi = ConvergenceSettings.LIMITS["kmax"]
    assert st.convergence.kmax == hi and st.convergence.repeats == 1
    assert st.onedim.sigma == 0.05 and st.onedim.mu == 8.0


def test_a_new_x_forgets_q_and_q_is_validated():
    st = InferenceState()
    assert st.select(4) and st.q() is None
    m, L = st.set_q([0.5, -1.0], [[0.3, 99.0], [0.1, 0.2]])  # the upper triangle is ignored
    np.testing.assert_array_equal(L, [[0.3, 0.0], [0.1, 0.2]])
    assert not st.select(4) and st.q() is not None  # the same x keeps q
    for bad in (([math.nan, 0], np.eye(2)), ([0, 0], np.diag([1.0, -1.0])), ([0, 0], np.zeros((2, 2)))):
        with pytest.raises(ValueError):
            st.set_q(*bad)
    np.testing.assert_array_equal(st.q()[0], m)  # a refused q leaves the last one
    assert st.select(5) and st.q() is None
    kept = st.with_settings_of(InferenceState(panel="scatter"))
    assert kept.index == 5 and kept.panel == "scatter"


def test_panel_settings_rules():
    assert ConvergenceSettings(kmax=5000).ks()[-1] == 5000 and ConvergenceSettings(kmax=5000).ks()[0] == 1
    assert ConvergenceSettings(kmax=300).ks() == (1, 2, 5, 10, 20, 50, 100, 200, 300)
    assert ConvergenceSettings(kmax=200).ks()[-2:] == (100, 200)
    a = ScatterSettings(n=50, seed=3).indices(1000)
    assert len(a) == 50 and len(set(a)) == 50 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, ScatterSettings(n=50, seed=3).indices(1000))
    assert len(ScatterSettings(n=50).indices(20)) == 20
    assert set(PANELS) == {"kl", "slice", "onedim", "convergence", "jensen", "scatter"}


# -- the convergence readout: surprises explained -------------------------------------------------------------------
def snapshot(iwae: float, prior: float, ess_iwae: float = 16.0, ess_prior: float = 4.4) -> ConvergenceSnapshot:
    def st(v):
        a = np.array([v - 3, v])
        return LkStats(a, a - 0.3, a + 0.2, np.array([10, 1]))

    return ConvergenceSnapshot(
        ks=(1, 5000),
        done=10,
        repeats=10,
        stats={"iwae": st(iwae), "uniform": st(prior - 1), "prior": st(prior)},
        ess={"iwae": ess_iwae, "uniform": 3.7, "prior": ess_prior},
        samples={},
        seed=0,
    )


def test_no_surprise_when_iwae_is_closer():
    snap = snapshot(iwae=-184.0, prior=-184.5)
    assert surprise(snap, -183.9, None) is None
    text = convergence_readout(snap, 3164, -183.9, -188.3)
    assert "Surprise" not in text and "x = #3164" in text and "ESS 16.0 of 5000" in text


def test_an_off_posterior_encoder_is_named_with_both_ess():
    """Issue 19's case, digit #3164 under the bundled model: the figures lvm.estimators.convergence measures for it
    (L_k at k = 5000 over 10 repeats, seed 0; exact second moments on the posterior's 48^2 grid)."""
    snap = snapshot(iwae=-184.60, prior=-184.15)
    cover = ProposalCoverage({"iwae": 1.73e12, "uniform": 3390.0, "prior": 579.0}, q_mass_2sigma=0.038)
    text = surprise(snap, -183.90, cover)
    assert "naive MC from the prior (-184.15) beats IWAE with the encoder's q (-184.60)" in text
    assert "off the posterior" in text and "holds only 4 % of p(z|x)" in text
    assert "the encoder's q 16.0 of 5000" in text and "the prior 4.4 of 5000" in text  # both measured ESS
    assert "1.7×10<sup>12</sup>" in text and "579" in text
    narrow = ProposalCoverage({"iwae": 1e9, "uniform": 3390.0, "prior": 579.0}, q_mass_2sigma=0.8)
    assert "too narrow" in surprise(snap, -183.90, narrow)
    assert "Why" not in surprise(snap, -183.90, None) and "16.0 of 5000" in surprise(snap, -183.90, None)


def test_a_better_covering_encoder_losing_is_called_chance():
    snap = snapshot(iwae=-184.60, prior=-184.55)
    cover = ProposalCoverage({"iwae": 1.5, "uniform": 3390.0, "prior": 204.0}, q_mass_2sigma=0.99)
    text = surprise(snap, -184.5, cover)
    assert "chance" in text and "off the posterior" not in text and "0.05 nats" in text


def test_what_stops_the_analysis_is_said_as_what_to_do():
    from types import SimpleNamespace

    from app.labs.inference.state import analysis_problem

    vae2 = SimpleNamespace(latent_dim=2, data_dim=784)
    data = SimpleNamespace(x=np.zeros((5, 784)))
    assert analysis_problem(vae2, data, 3) == ""
    assert "Open or train a model" in analysis_problem(None, data, 3)
    assert "Load a data set" in analysis_problem(vae2, None, 3)
    assert analysis_problem(SimpleNamespace(latent_dim=10, data_dim=784), data, 3) == ""  # a slice and AIS
    assert "1-D latent" in analysis_problem(SimpleNamespace(latent_dim=1, data_dim=784), data, 3)
    assert "expects 784 features but the data set has 2" in analysis_problem(
        vae2, SimpleNamespace(x=np.zeros((5, 2))), 3
    )
    assert "Select a data point" in analysis_problem(vae2, data, None)
