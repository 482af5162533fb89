"""Lesson files (app.lessons.format, Qt-free) and ``lvm lesson``: the bundled lecture is valid and follows the
lecture; every error names the file and the line of the offending entry."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.lessons.format import LAB_NAMES, LessonError, bundled_lessons, load_lesson, parse_lesson
from lvm.cli import main as lvm_main

GOOD = """\
title = "Two steps"

[[step]]
title = "Mixtures"
lab = "mixture"
caption = "A caption."
formula = 'p(x) = \\sum_k \\pi_k \\mathcal{N}(x \\mid \\mu_k, \\Sigma_k)'
watch = "Watch this."

[step.setup]
k = 3
dataset = "blobs"

[[step]]
title = "The ELBO"
lab = "inference"
caption = "Another caption."

[step.setup]
panel = "kl"

[step.workspace]
select = 4
q = { mean = [0.0, 1.0], std = [1.0, 0.5] }

[step.question]
ask = "Where is the ELBO largest?"
reveal = "elbo-optimum"
"""

LECTURE_IDEAS = [
    "latent variables",
    "generative process",
    "posterior as clustering",
    "handwritten digits",
    "infinite mixture",
    "missing pixels",
    "intractable",
    "naive monte carlo",
    "importance sampling",
    "jensen",
    "the elbo",
    "elbo + kl",
    "two gaussian q",
    "mean-field q",
    "maximising the elbo",
]


def test_a_good_lesson_parses_with_every_field():
    lesson = parse_lesson(GOOD, "good.toml")
    assert [s.lab for s in lesson.steps] == ["mixture", "inference"]
    first, second = lesson.steps
    assert first.setup == {"k": 3, "dataset": "blobs"} and first.line == 3 and first.formula.startswith("p(x)")
    assert second.select == 4 and second.q == ((0.0, 1.0), (1.0, 0.5))
    assert second.question is not None and second.question.reveal == "elbo-optimum"


def test_the_bundled_lecture_follows_the_lecture_one_step_per_idea():
    lesson = load_lesson("lecture")
    titles = [s.title.lower() for s in lesson.steps]
    assert len(titles) == len(LECTURE_IDEAS)
    for title, idea in zip(titles, LECTURE_IDEAS, strict=True):
        assert idea in title, (title, idea)
    assert {s.lab for s in lesson.steps} == set(LAB_NAMES)  # every lab takes part
    assert sum(s.question is not None for s in lesson.steps) >= 3


@pytest.mark.parametrize("name", sorted(bundled_lessons()))
def test_every_bundled_lesson_is_valid(name):
    assert load_lesson(name).steps


@pytest.mark.parametrize(
    ("old", "new", "line", "says"),
    [
        ('lab = "mixture"', 'lab = "mixtures"', 5, "is not a lab"),
        ("k = 3", "k = 99", 11, "setup.k: must be an integer from 1 to 20"),
        ('dataset = "blobs"', 'dataset = "circles"', 12, "setup.dataset: must be one of"),
        ('panel = "kl"', 'panel = "kl2"', 20, "setup.panel must be one of"),
        ("select = 4", "select = -1", 23, "select must be a whole number"),
        ("std = [1.0, 0.5]", "std = [1.0, 0.0]", 24, "q must be"),
        ('reveal = "elbo-optimum"', 'reveal = "most-probable-component"', 28, "needs the mixture lab"),
        ('reveal = "elbo-optimum"', 'reveal = "magic"', 28, "choose one of"),
        ('watch = "Watch this."', 'whatch = "Watch this."', 8, "'whatch' is not a key of a step"),
        ("\\mathcal{N}", "\\mathcal{N", 7, "does not typeset"),
        ('title = "Mixtures"', "title = 3", 4, "title must be a non-empty text"),
        ("k = 3", "grid = 15", 11, "'grid' is not a setting of the mixture lab; its settings are"),
        ('panel = "kl"', "onedim = { x = 4.0, y = 2.0 }", 20, "setup.onedim.y is not a setting"),
    ],
)
def test_an_error_names_the_line_and_what_to_change(old, new, line, says):
    assert old in GOOD
    with pytest.raises(LessonError) as err:
        parse_lesson(GOOD.replace(old, new, 1), "teacher.toml")
    assert f"teacher.toml, line {line}" in str(err.value) and says in str(err.value), str(err.value)


def test_broken_toml_names_the_line_and_an_empty_lesson_is_refused():
    with pytest.raises(LessonError, match=r"bad.toml: not valid TOML: .*line 4"):
        parse_lesson(GOOD.replace('title = "Mixtures"', "title = "), "bad.toml")
    with pytest.raises(LessonError, match="at least one"):
        parse_lesson('title = "empty"\n', "empty.toml")
    with pytest.raises(LessonError, match="no such lesson file"):
        load_lesson("/nonexistent/lesson.toml")


SETUP_KEYS = {"k": ("k = 3", 11), "dataset": ('dataset = "blobs"', 12)}


@settings(max_examples=40, deadline=None)
@given(
    key=st.sampled_from(sorted(SETUP_KEYS)),
    value=st.one_of(
        st.integers(min_value=21, max_value=10**6).map(str),
        st.integers(max_value=0).map(str),
        st.text(alphabet="abcxyz ", min_size=1, max_size=8).map(lambda s: f'"{s}"'),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.booleans().map(lambda b: str(b).lower()),
    ),
)
def test_any_bad_setting_is_refused_at_its_own_line(key, value):
    """A wrong value for a lab setting (out of range, wrong kind) is refused by the lab's own rules, at its line."""
    old, line = SETUP_KEYS[key]
    text = GOOD.replace(old, f"{key} = {value}", 1)
    if key == "dataset" and value.strip('"') in ("blobs", "moons", "rings", "pinwheel", "anisotropic"):
        return
    with pytest.raises(LessonError) as err:
        parse_lesson(text, "t.toml")
    assert re.search(rf"t\.toml, line {line} \(step 1\): setup\.{key}", str(err.value)), str(err.value)


def test_lvm_lesson_check_exits_0_for_a_good_file_and_2_naming_the_line(tmp_path, capsys):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("k = 3", "k = 0"))
    assert lvm_main(["lesson", "check", str(good), "lecture"]) == 0
    assert "ok" in capsys.readouterr().out
    assert lvm_main(["lesson", "check", str(bad)]) == 2
    assert f"{bad}, line 11 (step 1): setup.k" in capsys.readouterr().err
    assert lvm_main(["lesson", "list"]) == 0
    assert "lecture" in capsys.readouterr().out
