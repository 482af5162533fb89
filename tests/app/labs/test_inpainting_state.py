"""The Inpainting lab's Qt-free state (app.labs.inpainting.state): sessions, the mean-field rules, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.labs.inpainting.images import composite_rgb, phi_rgb, tile_rgb
from app.labs.inpainting.state import DEFAULT_INDEX, InpaintingState
from lvm.errors import ModelInputError, SessionError
from lvm.inpainting import make_mask

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _drawn_state() -> InpaintingState:
    s = InpaintingState(index=5, mask_name="left", brush=2.5, tool="hide", follow=False, show_means=True)
    rng = np.random.default_rng(0)
    image = rng.random(784).astype(np.float32)
    mask = rng.random(784) < 0.5
    s.set_drawing(image, mask)
    s.set_phi(np.where(mask, 0.0, rng.random(784)).astype(np.float32), "optimised")
    return s


def test_round_trip_through_json_keeps_the_drawing():
    s = _drawn_state()
    d = json.loads(json.dumps(s.to_dict()))
    r = InpaintingState.from_dict(d)
    assert (r.index, r.mask_name, r.brush, r.tool, r.follow, r.show_means) == (5, "left", 2.5, "hide", False, True)
    assert r.pending is not None  # the drawing waits for the canvas
    assert np.array_equal(r.pending.image, s.image) and np.array_equal(r.pending.mask, s.mask)
    assert np.array_equal(r.pending.phi, s.phi) and r.pending.phi_name == "optimised"
    assert r.to_dict() == d  # a restored drawing not shown yet is saved again as it came
    drawing = r.take_pending()
    assert drawing is not None and r.pending is None
    r.set_drawing(drawing.image, drawing.mask)
    r.set_phi(drawing.phi, drawing.phi_name)
    assert r.to_dict() == d


def test_missing_keys_are_defaults_and_old_sessions_without_phi_open():
    r = InpaintingState.from_dict({})
    assert r.index == DEFAULT_INDEX and r.mask_name == "top" and r.pending is None
    d = _drawn_state().to_dict()
    d["phi"], d["phi_name"] = None, None
    r = InpaintingState.from_dict(d)
    assert r.pending.phi is None and r.pending.phi_name is None
    d = _drawn_state().to_dict()
    del d["phi_name"]
    assert InpaintingState.from_dict(d).pending.phi_name == "optimised"  # (a phi without a name: the optimiser's)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("index", -1),
        ("index", True),
        ("index", "3"),
        ("mask", "middle"),
        ("tool", None),
        ("brush", "x"),
        ("brush", float("nan")),
        ("follow", 1),
        ("show_means", "yes"),
        ("image", [0.5] * 783),
        ("image", [2.0] * 784),
        ("image", [True] * 784),
        ("mask_pixels", [2] * 784),
        ("phi", [1.5] * 784),
        ("phi", [float("inf")] * 784),
        ("phi_name", "best"),
    ],
)
def test_bad_input_is_refused_naming_the_field(key, value):
    d = _drawn_state().to_dict()
    d[key] = value
    with pytest.raises(SessionError, match=f"views.inpainting.{key}"):
        InpaintingState.from_dict(d)


def test_a_drawing_needs_both_ink_and_mask_and_the_state_must_be_an_object():
    d = _drawn_state().to_dict()
    del d["mask_pixels"]
    with pytest.raises(SessionError, match="mask_pixels"):
        InpaintingState.from_dict(d)
    with pytest.raises(SessionError, match="object"):
        InpaintingState.from_dict([1, 2])


def test_brush_out_of_range_is_clamped():
    assert InpaintingState.from_dict({"brush": 100}).brush == 4.0
    assert InpaintingState.from_dict({"brush": 0}).brush == 0.5


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["index", "mask", "brush", "tool", "follow", "show_means", "phi_name", "junk"]), json_values
    )
)
def test_any_json_is_a_session_error_or_a_state(d):
    try:
        s = InpaintingState.from_dict(d)
    except SessionError:
        return
    json.dumps(s.to_dict())


def test_mask_presets_forget_phi_and_unknown_ones_say_so():
    s = _drawn_state()
    mask = s.mask_for("random:0.5", seed=3)
    assert s.mask_name == "random:0.5" and s.phi is None and s.phi_name is None
    assert np.array_equal(mask, make_mask("random:0.5", seed=3))
    with pytest.raises(ModelInputError):
        s.mask_for("middle", seed=0)


def test_follow_selection_remembers_the_digit_for_a_hidden_lab():
    s = InpaintingState()
    assert s.follow_selection(7, visible=True) and s.follow_pending is None
    assert not s.follow_selection(8, visible=False) and s.follow_pending == 8
    s.follow = False
    assert not s.follow_selection(9, visible=True) and s.follow_pending == 8
    assert not s.follow_selection(None, visible=True)


def test_the_template_is_another_nine():
    s = InpaintingState(index=2)
    x = np.arange(6 * 784, dtype=np.float32).reshape(6, 784)
    assert np.array_equal(s.template(x, np.array([9, 1, 9, 9, 0, 0])), x[0])
    s.index = 0
    assert np.array_equal(s.template(x, np.array([9, 1, 9, 9, 0, 0])), x[2])
    assert np.array_equal(s.template(x, None), x[5])  # no labels: a fixed index, within the data
    assert s.template(x[:0], None) is None


def test_phi_presets_and_which_are_scored():
    s = InpaintingState()
    s.set_drawing(np.zeros(784, np.float32), make_mask("top"))
    half = s.preset("half")
    assert np.allclose(half[~s.mask], 0.5) and np.all(half[s.mask] == 0)
    assert s.preset("template") is None and s.preset("predictive") is None  # their input is missing
    assert np.allclose(s.preset("predictive", predictive=np.full(784, 0.3))[~s.mask], 0.3)
    assert set(s.phis_to_score(template=None)) == {"half", "ones"}
    s.set_phi(s.preset("predictive", predictive=np.full(784, 0.3)), "predictive")
    phis = s.phis_to_score(template=np.ones(784))
    assert set(phis) == {"half", "ones", "template", "predictive"} and phis["predictive"] is not s.phi
    s.set_phi(half, "ones")
    assert s.optimiser_start() is None  # phi = 1: a corner of the cube (logit = inf)
    s.set_phi(half, "half")
    assert np.array_equal(s.optimiser_start(), half)


def test_elbos_keep_the_optimisers_estimate_while_its_phi_is_shown():
    s = InpaintingState()
    s.set_optimised(np.full(784, 0.5, np.float32), -50.0, 0.5)
    s.merge_elbos({"half": (-60.0, 1.0)}, -49.0)
    assert s.elbos == {"optimised": (-50.0, 0.5), "half": (-60.0, 1.0)} and s.log_p_obs == -49.0
    names, values, lp = s.chart_values()
    assert names == ["0.5", "optimised"] and values == [-60.0, -50.0] and lp == -49.0
    html = s.summary_html()
    assert "gap&nbsp;11.0" in html and "gap&nbsp;1.0" in html and html.index("0.5") < html.index("optimised")
    assert " " not in html.replace(" &nbsp;&nbsp; ", "")  # a wrapped line breaks between entries only
    s.set_phi(s.phi, "half")
    s.merge_elbos({"half": (-61.0, 1.0)}, -49.0)
    assert "optimised" not in s.elbos


def test_pixel_rows():
    s = _drawn_state()
    rows = s.pixel_rows(predictive=np.full(784, 0.25))
    assert rows[0] == ["pixel", "row", "col", "observed_value", "observed", "predictive_p1", "phi"]
    assert len(rows) == 785 and rows[1 + 30][:3] == [30, 1, 2]
    for j in (0, 100, 500):
        row = rows[1 + j]
        assert row[4] == int(s.mask[j]) and row[5] == "0.25" and (row[6] == "") == bool(s.mask[j])


def test_pictures():
    mask = make_mask("top")
    rgb = composite_rgb(np.ones(784), mask, np.zeros(784))
    assert rgb.shape == (28, 28, 3) and (rgb[20] == 255).all() and (rgb[0] == [25, 35, 70]).all()
    tiles = tile_rgb([rgb] * 5, cols=2, gap=1)
    assert tiles.shape == (3 * 28 + 2, 2 * 28 + 1, 3) and (tiles[28, 0] == 90).all()
    lut = np.stack([np.arange(256)] * 3, -1)
    img = phi_rgb(np.zeros(784), mask, np.where(mask, 0.0, 1.0), lut)
    assert (img[0] == 255).all() and (img[20] == 60).all()
