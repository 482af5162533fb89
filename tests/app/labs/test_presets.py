"""The failure-mode presets (issue 16), each applied as the Lessons menu applies one: on a lab,
``lab.restore_view_state({**lab.view_state(), **setup})``, then ``lab.toggle_run()`` when its action is "run"; each
test checks through the lab's real widgets and state that the failure shows.

``PRESETS`` is the data of the bundled lesson "failure-modes" (one step a preset); the lesson file is made from it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

pytest.importorskip("pytestqt")

# -- the presets ---------------------------------------------------------------------------------------------------
PRESETS: list[dict] = [
    {
        "title": "EM stuck in a local optimum",
        "lab": "mixture",
        "setup": {
            "dataset": "blobs",
            "n": 1500,
            "data_seed": 0,
            "density": 0,
            "k": 4,
            "cov_type": "full",
            "init": "random_from_data",
            "seed": 4,
            "reg_covar": 1e-6,
            "compare": True,
            "compare_seed": 1,
        },
        "action": None,
        "watch": "Same points, same K = 4, two seeds: this run (seed 4) converges with one component stretched over "
        "two blobs and two sharing one, its curve flat below the dashed line where seed 1 ends (the view under the "
        "plot: one blob per component). EM only climbs to the nearest peak.",
    },
    {
        "title": "A collapsing component",
        "lab": "mixture",
        "setup": {
            "dataset": "blobs",
            "n": 30,
            "data_seed": 0,
            "density": 0,
            "k": 5,
            "cov_type": "full",
            "init": "random",
            "seed": 1,
            "reg_covar": 1e-6,
            "compare": False,
        },
        "action": None,
        "watch": "Component 2 shrinks onto two points: the 'smallest variance' line under the plot falls from about 1 "
        "to the floor reg_covar while the log-likelihood keeps climbing; only the floor stops it (set reg to 1e-02: "
        "the collapse stops there, at a lower likelihood).",
    },
    {
        "title": "Importance weights degenerate",
        "lab": "inference",
        "setup": {
            "panel": "convergence",
            "convergence": {"repeats": 5, "seed": 0, "n_show": 200, "kmax": 1000, "shift": 12.0, "scale": 2.0},
        },
        "action": None,
        "watch": "The proposal is the encoder's q moved 12 of its σ off the posterior: its draws land where p(z|x) is "
        "tiny, one dot carries all the weight and the ESS = (Σw)²/Σw² under the plots falls to about 1 of 200; the "
        "IWAE curve stays far below the exact log p(x) even at k = 1000.",
    },
    {
        "title": "Reverse KL locks onto one mode",
        "lab": "inference",
        "setup": {"panel": "onedim", "onedim": {"x": 9.0, "s": 1.0, "mu": 0.5, "sigma": 1.0, "convention": 0}},
        "action": "run",
        "watch": "x | z ~ N(z², 1) at x = 9: p(z|x) has two equal modes (dotted lines). Maximising the ELBO slides q "
        "off the middle onto one of them and it stays there: KL(q‖p) settles near log 2 ≈ 0.69, the price of leaving "
        "the other mode's half of the mass out. Reverse KL is mode seeking.",
    },
    {
        "title": "Mean-field q under-states uncertainty",
        "lab": "inpainting",
        "setup": {"index": 9, "mask": "bottom"},
        "action": "run",
        "watch": "The bottom of a 9 is hidden: the exact predictive (orange) stays blurred between completions and its "
        "samples differ, while the optimised mean-field φ commits to one sharp stroke. The uncertainty line under the "
        "ELBOs: q's summed pixel entropy Σ h(φᵢ) ends well below the exact Σ h(p(xᵢ=1|x_O)).",
    },
    {
        "title": "Posterior collapse in a VAE",
        "lab": "latent",
        "setup": {
            "train": {
                "mode": "new model from scratch",
                "hidden": "2",
                "decoder": "autoregressive",
                "epochs": 10,
                "lr": 0.01,
                "seed": 0,
                "subset": 5000,
            }
        },
        "action": "run",
        "watch": "A new VAE whose decoder predicts each pixel from the pixels before it (and z) trains for 10 quick "
        "epochs: the KL(q(z|x)‖p(z)) in the status line under Train falls to about 0, every digit's encoding shrinks "
        "onto the origin (the left plane stops sorting the digits by label) and the decoded grid shows the same "
        "image everywhere: the decoder ignores z. (Open the bundled model again afterwards.)",
    },
]


def preset(title: str) -> dict:
    return next(p for p in PRESETS if p["title"] == title)


STATE_CLASSES = {
    "mixture": "app.labs.mixture.state:MixtureState",
    "inference": "app.labs.inference.state:InferenceState",
    "inpainting": "app.labs.inpainting.state:InpaintingState",
    "latent": "app.labs.latent.state:LatentState",
}
DRAWING_KEYS = {"image", "mask_pixels", "phi", "phi_name"}  # what the user drew in the Inpainting lab


def state_class(lab: str):
    import importlib

    module, _, name = STATE_CLASSES[lab].partition(":")
    return getattr(importlib.import_module(module), name)


def fresh_settings(lab: str) -> dict:
    """A fresh lab's settings (its state class's ``to_dict``, less the Inpainting lab's drawing)."""
    return {k: v for k, v in state_class(lab)().to_dict().items() if k not in DRAWING_KEYS}


def apply_preset(lab, p: dict, baseline: str = "view_state") -> None:
    """As the Lessons menu applies a preset: the setup over the lab's current view state (or over a fresh lab's
    settings), then its action."""
    assert lab.name == p["lab"]
    base = lab.view_state() if baseline == "view_state" else fresh_settings(p["lab"])
    lab.restore_view_state({**base, **p["setup"]})
    if p["action"] == "run":
        assert lab.toggle_run() is True


def no_nulls(value) -> bool:
    """TOML has no null: a lesson file can hold the preset only without None anywhere."""
    if isinstance(value, dict):
        return all(no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return value is not None


def test_every_preset_names_a_lab_a_valid_setup_an_action_and_a_watch_line():
    from app.labs import LABS

    assert len(PRESETS) == 6 and len({p["title"] for p in PRESETS}) == 6
    for p in PRESETS:
        assert p["lab"] in LABS and p["action"] in (None, "run") and p["watch"]
        known = state_class(p["lab"])().to_dict()
        assert set(p["setup"]) <= set(known), p["title"]  # settings the lab's sessions know
        for key, value in p["setup"].items():
            if isinstance(value, dict):
                assert set(value) <= set(known[key]), (p["title"], key)
        state_class(p["lab"]).from_dict(p["setup"])  # (validated as a session's: raises on a bad value)
        assert no_nulls(p["setup"]), p["title"]


@pytest.fixture
def make_lab(open_lab):
    """``make_lab(name, workspace, before_activate=None)``: the lab ``name`` on ``workspace``, shown at 1280x720 and
    activated as the window activates the lab it shows (conftest's ``open_lab``)."""
    from app.labs import lab_class

    def make(name, workspace, before_activate=None):
        lab = open_lab(lab_class(name), workspace=workspace, size=(1280, 720))
        if before_activate is not None:
            before_activate(lab)
        lab.activate()
        return lab

    return make


# -- Mixture lab -----------------------------------------------------------------------------------------------------
@pytest.fixture
def mixture(make_lab):
    from app.core.workspace import Workspace
    from app.labs.mixture.view import SPEED_MAX

    def quick(lab):
        lab.state.first_fit = False  # (no BIC/AIC grid after the first fit: not what these tests look at)
        lab.speed.setValue(SPEED_MAX)  # (EM's animation at full speed)

    return make_lab("mixture", Workspace(device="cpu"), quick)


def test_em_local_optimum_two_seeds_end_at_different_log_likelihoods(qtbot, mixture):
    lab = mixture
    apply_preset(lab, preset("EM stuck in a local optimum"))
    st = lab.state
    assert lab.compare_check.isChecked() and lab.compare_spin.value() == 1 and lab.seed_spin.value() == 4
    qtbot.waitUntil(lambda: not lab.is_busy() and st.compare_done, timeout=60000)
    main, other = st.history.current, st.compare_step
    assert main.iteration == st.history[st.history.newest].iteration > 3  # EM ran to convergence
    assert other.log_likelihood - main.log_likelihood > 0.1  # a worse local optimum than seed 1's
    assert lab.compare.isVisible() and "seed 1" in lab.compare.caption.text() and "seed 4" in lab.compare.caption.text()
    assert lab.ll_plot.reference.isVisible() and lab.ll_plot.reference.value() == pytest.approx(other.log_likelihood)
    # both runs end where a plain EM run from each seed ends
    from app.labs.mixture.engine import em_halfsteps, init_step

    for seed, end in ((4, main), (1, other)):
        cfg = dataclasses.replace(st.config, seed=seed)
        last = list(em_halfsteps(st.X, cfg, init_step(st.X, cfg)))[-1]
        assert last.log_likelihood == pytest.approx(end.log_likelihood, abs=1e-6)


def test_collapsing_component_variance_falls_to_the_floor_while_the_likelihood_climbs(qtbot, mixture):
    from app.labs.mixture.state import smallest_variance

    lab = mixture
    apply_preset(lab, preset("EM stuck in a local optimum"))  # (the lesson's step before: its comparison goes)
    apply_preset(lab, preset("A collapsing component"))
    st = lab.state
    assert not st.compare_on and not lab.compare_check.isChecked() and len(st.X) == 30
    qtbot.waitUntil(lambda: not lab.is_busy() and len(st.history) > 10, timeout=60000)
    steps = [s for s in st.history.steps if s.half == "M"]
    first, last = smallest_variance(steps[0])[1], smallest_variance(steps[-1])[1]
    assert first > 0.1 and last < 1e-4  # a component shrank onto (almost) a point
    assert last == pytest.approx(1e-6, rel=0.5)  # ... and stopped at the floor reg_covar
    assert steps[-1].log_likelihood > steps[0].log_likelihood + 1.0  # the likelihood climbed meanwhile
    assert "floor" in lab.var_label.text() and "collapsing" in lab.warn_label.text()
    # the regularisation: a higher floor stops the shrinking there (chosen in the lab's own combo box)
    lab.reg_combo.setCurrentIndex(lab.reg_combo.findData(1e-2))
    qtbot.waitUntil(lambda: not lab.is_busy() and len(st.history) > 10, timeout=60000)
    assert st.config.reg_covar == 1e-2
    assert smallest_variance(st.history.current)[1] >= 1e-2 * (1 - 1e-9)


def test_mixture_preset_keys_round_trip_through_a_session():
    from app.labs.mixture.state import MixtureState
    from lvm.errors import SessionError

    state = MixtureState.from_dict(preset("EM stuck in a local optimum")["setup"])
    assert state.compare_on and state.compare_seed == 1 and state.config.reg_covar == 1e-6 and state.config.seed == 4
    again = MixtureState.from_dict(state.to_dict())
    assert again.compare_on and again.compare_seed == 1 and again.config == state.config
    assert not MixtureState.from_dict({}).compare_on  # (a session from before: no comparison)
    with pytest.raises(SessionError, match="reg_covar"):
        MixtureState.from_dict({"reg_covar": 0.5})
    with pytest.raises(SessionError, match="compare_seed"):
        MixtureState.from_dict({"compare_seed": -1})
    with pytest.raises(SessionError, match="compare"):
        MixtureState.from_dict({"compare": 1})
    assert math.isclose(MixtureState.from_dict({"reg_covar": 0.01}).config.reg_covar, 1e-2)
    assert np.isfinite(again.config.reg_covar)


# -- Inference lab ---------------------------------------------------------------------------------------------------
@pytest.fixture
def default_workspace(pretrained_model_path):
    """A workspace as a fresh window has it: the bundled digits and the bundled 2-D VAE."""
    from app.core.workspace import Workspace
    from lvm.checkpoint import load_model
    from lvm.data import load_dataset

    ws = Workspace(device="cpu")
    ws.set_dataset(load_dataset("digits"), "digits")
    model, info = load_model(pretrained_model_path)
    ws.set_model(model, str(pretrained_model_path), info)
    return ws


@pytest.fixture
def inference(make_lab, default_workspace):
    return make_lab("inference", default_workspace)


def test_importance_weights_degenerate_ess_near_one(qtbot, inference):
    from app.labs.inference.readouts import DEGENERATE_ESS

    lab = inference
    apply_preset(lab, preset("Importance weights degenerate"))
    cp = lab.convergence
    assert lab.current_panel_name() == "convergence" and cp.shift.value() == 12.0 and cp.scale.value() == 2.0
    qtbot.waitUntil(lambda: cp.snapshot is not None and cp.snapshot.done == 5, timeout=60000)
    drawn = cp.snapshot.samples["iwae"]
    w = np.exp(drawn.log_w - drawn.log_w.max())
    ess = w.sum() ** 2 / (w**2).sum()
    assert ess == pytest.approx(drawn.ess) and ess < 2.0  # (sum w)^2 / sum w^2 of 200 weights: about 1
    assert len(drawn.log_w) == 200
    assert f"{drawn.ess:.2f}</b> of 200" in cp.proposal_status.text() and "degenerate" in cp.proposal_status.text()
    assert cp.snapshot.final("iwae") < lab.picture.log_px - 5.0  # the estimate falls far short
    # the encoder's own q as the proposal (the same panel, shift 0, scale 1): the weights do not degenerate. (On this
    # digit the bundled model's encoder is a poor proposal even so: ESS about 4 of 200, where the median test image
    # gets about 30; the README's "Results" says why.)
    shifted_ess = drawn.ess
    cp.shift.setValue(0.0)
    cp.scale.setValue(1.0)
    qtbot.waitUntil(lambda: cp.snapshot is not None and cp.snapshot.done == 5, timeout=60000)
    own_ess = cp.snapshot.samples["iwae"].ess
    assert own_ess > max(DEGENERATE_ESS, 2 * shifted_ess) and "degenerate" not in cp.proposal_status.text()


def test_reverse_kl_locks_onto_one_mode_of_a_bimodal_posterior(qtbot, inference):
    lab = inference
    apply_preset(lab, preset("Reverse KL locks onto one mode"))
    od = lab.onedim
    assert lab.current_panel_name() == "onedim"
    qtbot.waitUntil(lambda: not od.is_optimising(), timeout=60000)
    modes = od.post.modes()
    assert len(modes) == 2 and modes[0] == pytest.approx(-modes[1], abs=0.01)  # the exact posterior: two modes
    assert np.allclose(sorted(od.model.posterior_modes(9.0)), modes, atol=0.01)
    assert min(abs(od.mu - m) for m in modes) < 0.1  # q's mean sits on one of them
    kl = od.elbo_kl(od.mu, od.sigma)[1]
    assert kl > 0 and kl == pytest.approx(math.log(2), abs=0.05)  # the gap: the other mode's half of the mass
    assert [line.isVisible() for line in od.mode_lines] == [True, True]
    assert "2 modes" in od.modes_label.text() and f"{kl:.3f}" in od.modes_label.text()
    # Space again (toggle_run) optimises again from there: q stays on its mode
    assert lab.toggle_run() is True
    qtbot.waitUntil(lambda: not od.is_optimising(), timeout=60000)
    assert min(abs(od.mu - m) for m in modes) < 0.1


def test_inference_preset_settings_round_trip_through_a_session():
    from app.labs.inference.state import InferenceState
    from lvm.errors import SessionError

    setup = preset("Importance weights degenerate")["setup"]
    state = InferenceState.from_dict(setup)
    assert state.convergence.shift == 12.0 and state.convergence.scale == 2.0
    assert InferenceState.from_dict(state.to_dict()) == state
    with pytest.raises(SessionError, match="shift"):
        InferenceState.from_dict({"convergence": {"shift": "far"}})
    mean, tril = state.convergence.proposal(np.array([1.0, 2.0]), np.diag([0.1, 0.2]))
    assert np.allclose(mean, [2.2, 2.0]) and np.allclose(tril, np.diag([0.2, 0.4]))


# -- Inpainting lab --------------------------------------------------------------------------------------------------
@pytest.fixture
def inpainting(make_lab, default_workspace):
    def fewer_steps(lab):
        lab.optimise_steps = 60  # (the test's optimiser: fewer steps than the lab's 150)

    return make_lab("inpainting", default_workspace, fewer_steps)


def test_mean_field_q_understates_the_uncertainty_of_the_missing_pixels(qtbot, inpainting):
    lab = inpainting
    apply_preset(lab, preset("Mean-field q under-states uncertainty"))  # (Run before the grid is decoded: it waits)
    st = lab.state
    assert st.index == 9 and st.mask_name == "bottom" and st.mask[0] and not st.mask[-1]  # the bottom is hidden
    qtbot.waitUntil(
        lambda: st.phi_name == "optimised" and not lab.runner.is_busy(lab.channel("optimise")), timeout=60000
    )
    qtbot.waitUntil(lambda: st.uncertainty is not None and not lab.is_busy(), timeout=60000)
    u, h_q = st.uncertainty, st.q_entropy()
    assert u.n_missing == int((~st.mask).sum()) == 392
    assert h_q < u.marginal_sum - 5.0  # q is surer of the missing pixels than the exact predictive
    assert u.joint <= u.marginal_sum + 3 * u.stderr  # (subadditivity: the pixels co-vary through z)
    text = lab.meanfield.uncertainty.text()
    assert f"{h_q:.1f}" in text and f"{u.marginal_sum:.1f}" in text and "surer" in text
    # the exact predictive's marginals as q (φ = predictive, clipped to [0.02, 0.98]): no under-statement
    lab.phi_buttons["predictive"].click()
    assert st.q_entropy() >= u.marginal_sum
    assert "surer" not in lab.meanfield.uncertainty.text()
    # Space (toggle_run) starts the optimiser again, and stops it
    assert lab.toggle_run() is True and lab.runner.is_busy(lab.channel("optimise"))
    assert lab.toggle_run() is True
    qtbot.waitUntil(lambda: not lab.runner.is_busy(lab.channel("optimise")), timeout=10000)
    assert lab.meanfield.optimise_button.isEnabled()


# -- Latent lab ------------------------------------------------------------------------------------------------------
@pytest.fixture
def latent(make_lab, default_workspace):
    return make_lab("latent", default_workspace)


def train_with(qtbot, lab, setup: dict, timeout: int = 120000):
    """Apply a training setup as a preset (restore, then toggle_run) and wait for the run's end; its last snapshot."""
    apply_preset(lab, {"lab": "latent", "setup": setup, "action": "run"})
    assert lab.is_training()
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=timeout)
    return lab.run.last_snap


def encodings_spread(lab) -> float:
    return float(np.asarray(lab.state.mu).std(0).max())


def test_posterior_collapse_tiny_autoregressive_run_has_a_lower_kl_than_the_standard_decoder(qtbot, latent):
    """The preset's settings at tiny sizes (5 epochs on 2,000 images): the autoregressive decoder's mean KL falls
    far below the pixel-factorised decoder's under the same settings."""
    lab = latent
    tiny = {**preset("Posterior collapse in a VAE")["setup"]["train"], "epochs": 5, "subset": 2000}
    ar = train_with(qtbot, lab, {"train": tiny})
    assert lab.train_panel.decoder.currentText() == "autoregressive" and lab.train_panel.subset.value() == 2000
    assert lab.workspace.model.config.decoder == "autoregressive"
    standard = train_with(qtbot, lab, {"train": {**tiny, "decoder": "bernoulli"}})
    assert lab.workspace.model.config.decoder == "bernoulli"
    assert ar.done and standard.done and ar.train_kl is not None and standard.train_kl is not None
    assert ar.train_kl < 0.25 * standard.train_kl and standard.train_kl > 1.0
    assert ar.valid_elbo > standard.valid_elbo  # (the autoregressive decoder explains the digits better, without z)


@pytest.mark.slow
def test_posterior_collapse_preset_kl_goes_to_zero_and_the_plane_stops_organising(qtbot, latent):
    lab = latent
    qtbot.waitUntil(lambda: len(lab.state.mu) > 0 and not lab.is_busy(), timeout=60000)
    before = encodings_spread(lab)  # the bundled model's encodings spread over the plane
    apply_preset(lab, preset("Posterior collapse in a VAE"))
    assert lab.is_training()
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=300000)
    snap = lab.run.last_snap
    assert snap.done and snap.train_kl < 0.1  # KL(q(z|x) || p(z)) ~ 0: the posterior collapsed onto the prior
    assert "collapsed" in lab.train_panel.status.text()
    model = lab.workspace.model
    qtbot.waitUntil(lambda: lab.state.model is model and len(lab.state.mu) > 0 and not lab.is_busy(), timeout=60000)
    assert before > 1.0 and encodings_spread(lab) < 0.3  # every digit is encoded near the origin
    assert float(np.asarray(lab.state.sigma).mean()) > 0.8  # with the prior's spread


# -- all six on a fresh window, as the Lessons menu applies them ------------------------------------------------------
@pytest.mark.slow
def test_every_preset_shows_its_failure_on_a_fresh_window(qtbot, workspace_window, pretrained_model_path):
    """The default dataset (digits) and model (the bundled 2-D VAE); each preset: show its lab, restore its setup over
    the lab's view state, run its action; then the failure it is about shows."""
    from app.labs.mixture.state import smallest_variance

    window = workspace_window
    assert window.workspace.model is not None and window.workspace.model.config.decoder == "bernoulli"

    def show(p):  # (over a fresh lab's settings, as the lesson player does; the fast tests use the view state)
        window.set_view(p["lab"])
        lab = window.lab(p["lab"])
        apply_preset(lab, p, baseline="defaults")
        return lab

    lab = show(preset("EM stuck in a local optimum"))
    qtbot.waitUntil(lambda: lab.state.compare_done and not lab.is_em_running(), timeout=120000)
    assert lab.state.compare_step.log_likelihood - lab.state.history.current.log_likelihood > 0.1

    lab = show(preset("A collapsing component"))
    qtbot.waitUntil(lambda: len(lab.state.history) > 10 and not lab.is_em_running(), timeout=120000)
    assert smallest_variance(lab.state.history.current)[1] < 1e-4

    lab = show(preset("Importance weights degenerate"))
    qtbot.waitUntil(lambda: lab.convergence.snapshot is not None and lab.convergence.snapshot.done == 5, timeout=120000)
    assert lab.convergence.snapshot.samples["iwae"].ess < 2.0

    lab = show(preset("Reverse KL locks onto one mode"))
    qtbot.waitUntil(lambda: not lab.onedim.is_optimising(), timeout=120000)
    od = lab.onedim
    assert len(od.post.modes()) == 2 and min(abs(od.mu - m) for m in od.post.modes()) < 0.1
    assert od.elbo_kl(od.mu, od.sigma)[1] > 0.5

    lab = show(preset("Mean-field q under-states uncertainty"))
    qtbot.waitUntil(
        lambda: (
            lab.state.phi_name == "optimised"
            and not lab.runner.is_busy(lab.channel("optimise"))
            and lab.state.uncertainty is not None
            and not lab.is_busy()
        ),
        timeout=180000,
    )
    assert lab.state.q_entropy() < lab.state.uncertainty.marginal_sum - 5.0

    lab = show(preset("Posterior collapse in a VAE"))
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=300000)
    assert lab.run.last_snap.train_kl < 0.1
    assert window.workspace.model.config.decoder == "autoregressive"


def test_latent_training_settings_round_trip_through_a_session():
    from app.labs.latent.state import LatentState
    from lvm.errors import SessionError

    state = LatentState.from_dict(preset("Posterior collapse in a VAE")["setup"])
    assert state.train.decoder == "autoregressive" and state.train.subset == 5000 and state.train.hidden_sizes() == (2,)
    assert LatentState.from_dict(state.to_dict()).train == state.train
    assert LatentState.from_dict({}).train.subset == 0  # (all the images, as before)
    with pytest.raises(SessionError, match="subset"):
        LatentState.from_dict({"train": {"subset": "half"}})


# -- toggle_run (presenter mode's Space) on the labs without a preset -------------------------------------------------
def test_toggle_run_starts_and_stops_the_infinite_labs_fits(qtbot, make_lab):
    from app.core.workspace import Workspace

    lab = make_lab("infinite", Workspace(device="cpu"))
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=60000)
    assert lab.toggle_run() is True and lab.fits.is_fitting()
    assert lab.toggle_run() is True and not lab.fits._queue
    qtbot.waitUntil(lambda: not lab.fits.is_fitting(), timeout=30000)


def test_toggle_run_starts_and_stops_the_discrete_labs_training(qtbot, make_lab, default_workspace):
    lab = make_lab("discrete", default_workspace)
    lab.tabs.setCurrentWidget(lab.train)
    assert lab.toggle_run() is True and lab.is_training()
    assert lab.toggle_run() is True
    qtbot.waitUntil(lambda: not lab.is_training(), timeout=30000)
    lab.tabs.setCurrentWidget(lab.cost)
    assert lab.toggle_run() is False  # (the cost panel computes by itself)
