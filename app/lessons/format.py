"""Lesson files: a teacher's path through the labs, as plain TOML (``resources/lessons/README.md`` documents it).

A lesson is a title and a list of ``[[step]]`` tables. Each step opens one lab in a prepared state: ``setup`` holds
the lab's settings with the same names as a saved session's ``views.<lab>`` (validated by the lab's own Qt-free state
class, so a lesson accepts exactly what a session does), ``workspace`` the shared selection, q and seeds. Errors name
the file and the line. Qt-free: ``lvm lesson check`` runs it without a display.
"""

from __future__ import annotations

import importlib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lvm.errors import LVMError

FORMAT_VERSION = 1
LESSONS_DIR = Path(__file__).resolve().parents[2] / "resources" / "lessons"
# the labs' state classes, whose ``from_dict`` validates a step's setup (app.labs.LABS names the views)
_STATE_CLASSES = {
    "mixture": "app.labs.mixture.state:MixtureState",
    "latent": "app.labs.latent.state:LatentState",
    "inference": "app.labs.inference.state:InferenceState",
    "inpainting": "app.labs.inpainting.state:InpaintingState",
    "infinite": "app.labs.infinite.state:InfiniteState",
    "discrete": "app.labs.discrete.state:DiscreteState",
}
LAB_NAMES = tuple(_STATE_CLASSES)
ACTIONS = ("run",)
# what a question's answer is computed by (app.lessons.probes); the lab each one needs
PROBES = {
    "most-probable-component": "mixture",
    "elbo-optimum": "inference",
    "onedim-optimum": "inference",
    "log-marginal": None,
    "naive-mc": None,
}
_TOP_KEYS = {"title", "description", "format", "step"}
_STEP_KEYS = {"title", "lab", "caption", "formula", "watch", "action", "setup", "workspace", "question"}
_WORKSPACE_KEYS = {"select", "seed", "q"}
_QUESTION_KEYS = {"ask", "reveal", "choices"}


class LessonError(LVMError):
    """A lesson file that cannot be used: the message names the file, the line and what to change."""


@dataclass(frozen=True)
class Question:
    """Predict, then reveal: ``ask`` is shown first; ``reveal`` names the exact computation that answers it."""

    ask: str
    reveal: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    title: str
    lab: str
    caption: str
    formula: str = ""
    watch: str = ""
    action: str | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    select: int | None = None
    seed: int | None = None
    q: tuple[tuple[float, float], tuple[float, float]] | None = None  # (mean, standard deviations) of a 2-D q
    question: Question | None = None
    line: int = 0


@dataclass(frozen=True)
class Lesson:
    title: str
    steps: tuple[Step, ...]
    description: str = ""
    source: str = ""


def bundled_lessons() -> dict[str, Path]:
    """The lessons shipped with the app: name (the file's stem) -> path."""
    return {p.stem: p for p in sorted(LESSONS_DIR.glob("*.toml"))}


def load_lesson(name_or_path: str | Path) -> Lesson:
    """A bundled lesson by name, or a lesson file; ``LessonError`` (file and line) when it cannot be used."""
    path = Path(name_or_path)
    bundled = bundled_lessons()
    if str(name_or_path) in bundled and not path.exists():
        path = bundled[str(name_or_path)]
    if not path.is_file():
        names = ", ".join(bundled) or "none"
        raise LessonError(f"{name_or_path}: no such lesson file (the bundled lessons are: {names})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(f"{path}: cannot be read ({exc})") from None
    return parse_lesson(text, str(path))


def parse_lesson(text: str, source: str = "<lesson>") -> Lesson:
    """Parse and validate a lesson's TOML text (``source`` names it in errors)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LessonError(f"{source}: not valid TOML: {exc}") from None
    lines = _Lines(text, source)
    _no_unknown(raw, _TOP_KEYS, lines, None, "the lesson")
    title = _text(raw, "title", lines, None, required=True)
    description = _text(raw, "description", lines, None)
    version = raw.get("format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise lines.error(None, "format", f"format = {version!r} is not one this app reads (it reads {FORMAT_VERSION})")
    steps_raw = raw.get("step")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise LessonError(f"{source}: a lesson needs at least one [[step]] table")
    steps = tuple(_step(s, i, lines) for i, s in enumerate(steps_raw))
    return Lesson(title=title, steps=steps, description=description, source=source)


def _step(raw: Any, i: int, lines: _Lines) -> Step:
    if not isinstance(raw, dict):
        raise lines.error(i, None, "a step must be a table ([[step]])")
    _no_unknown(raw, _STEP_KEYS, lines, i, "a step")
    lab = _text(raw, "lab", lines, i, required=True)
    if lab not in LAB_NAMES:
        raise lines.error(i, "lab", f"lab = {lab!r} is not a lab; choose one of {', '.join(LAB_NAMES)}")
    formula = _text(raw, "formula", lines, i)
    if formula:
        _check_formula(formula, lines, i)
    action = raw.get("action")
    if action is not None and action not in ACTIONS:
        raise lines.error(i, "action", f"action = {action!r}: the only action is {', '.join(map(repr, ACTIONS))}")
    setup = raw.get("setup", {})
    if not isinstance(setup, dict):
        raise lines.error(i, "setup", "setup must be a table of the lab's settings ([step.setup])")
    _check_setup(lab, setup, lines, i)
    ws = raw.get("workspace", {})
    if not isinstance(ws, dict):
        raise lines.error(i, "workspace", "workspace must be a table ([step.workspace])")
    _no_unknown(ws, _WORKSPACE_KEYS, lines, i, "[step.workspace]")
    select, seed = _whole(ws, "select", lines, i), _whole(ws, "seed", lines, i)
    q = _q(ws.get("q"), lines, i) if "q" in ws else None
    question = _question(raw.get("question"), lab, lines, i) if "question" in raw else None
    return Step(
        title=_text(raw, "title", lines, i, required=True),
        lab=lab,
        caption=_text(raw, "caption", lines, i, required=True),
        formula=formula,
        watch=_text(raw, "watch", lines, i),
        action=action,
        setup=setup,
        select=select,
        seed=seed,
        q=q,
        question=question,
        line=lines.step_line(i),
    )


def _state_class(lab: str) -> Any:
    module_name, _, cls_name = _STATE_CLASSES[lab].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


# what the user drew, not a setting: a fresh lab's (an empty drawing) would hide the digit its ``index`` names
_DRAWING_KEYS = {"image", "mask_pixels", "phi", "phi_name"}


def lab_defaults(lab: str) -> dict[str, Any]:
    """The lab's settings as a fresh lab has them (its state class's ``to_dict``, less the Inpainting lab's drawing,
    which follows from its ``index``): what a step does not set."""
    return {k: v for k, v in _state_class(lab)().to_dict().items() if k not in _DRAWING_KEYS}


def _check_setup(lab: str, setup: dict, lines: _Lines, i: int) -> None:
    """The lab's own state class validates the settings (the same rules as a saved session's)."""
    state_class = _state_class(lab)
    known = state_class().to_dict()  # the settings the lab has (a session's views.<lab> keys), with their defaults
    for key, value in setup.items():
        if key not in known:
            raise lines.error(
                i,
                key,
                f"{key!r} is not a setting of the {lab} lab; its settings are {', '.join(sorted(known))}",
                "setup",
            )
        if isinstance(value, dict) and isinstance(known[key], dict):
            unknown = sorted(set(value) - set(known[key]))
            if unknown:
                raise lines.error(
                    i,
                    key,
                    f"setup.{key}.{unknown[0]} is not a setting; setup.{key} has {', '.join(sorted(known[key]))}",
                    "setup",
                )
    try:
        state_class.from_dict(setup)
    except LVMError as exc:
        bad = re.search(r"views\.\w+\.(\w+)", str(exc))
        key = bad.group(1) if bad and bad.group(1) in setup else next(iter(setup), None)
        message = re.sub(r"views\.\w+\.", "setup.", str(exc))
        for session_words in (
            "(fix or remove these entries of the session file)",
            "; the session was edited or damaged",
        ):
            message = message.replace(session_words, "")
        message = message.strip()
        raise lines.error(i, key, message, table="setup") from None


def _check_formula(formula: str, lines: _Lines, i: int) -> None:
    """The formula must typeset (matplotlib's mathtext, as the app draws it)."""
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(f"${formula}$")
    except ValueError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "cannot be typeset"
        raise lines.error(i, "formula", f"the formula does not typeset: {first}") from None


def _question(raw: Any, lab: str, lines: _Lines, i: int) -> Question:
    if not isinstance(raw, dict):
        raise lines.error(i, "question", "question must be a table ([step.question]) with ask and reveal")
    _no_unknown(raw, _QUESTION_KEYS, lines, i, "[step.question]")
    reveal = _text(raw, "reveal", lines, i, required=True, table="question")
    if reveal not in PROBES:
        raise lines.error(i, "reveal", f"reveal = {reveal!r}; choose one of {', '.join(PROBES)}", table="question")
    needs = PROBES[reveal]
    if needs is not None and needs != lab:
        raise lines.error(i, "reveal", f"reveal = {reveal!r} needs the {needs} lab, not {lab}", table="question")
    choices = raw.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
        raise lines.error(i, "choices", "choices must be a list of texts", table="question")
    ask = _text(raw, "ask", lines, i, required=True, table="question")
    return Question(ask=ask, reveal=reveal, choices=tuple(choices))


def _q(raw: Any, lines: _Lines, i: int) -> tuple[tuple[float, float], tuple[float, float]]:
    def pair(v: Any) -> tuple[float, float] | None:
        ok = isinstance(v, list) and len(v) == 2
        ok = ok and all(isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in v)
        return (float(v[0]), float(v[1])) if ok else None

    mean, std = (pair(raw.get(k)) if isinstance(raw, dict) else None for k in ("mean", "std"))
    if mean is None or std is None or min(std) <= 0 or set(raw) - {"mean", "std"}:
        raise lines.error(
            i, "q", "q must be { mean = [m1, m2], std = [s1, s2] } with finite numbers, s1, s2 > 0", table="workspace"
        )
    return mean, std


def _text(d: dict, key: str, lines: _Lines, i: int | None, required: bool = False, table: str | None = None) -> str:
    v = d.get(key)
    if v is None:
        if required:
            where = "the lesson" if i is None else f"step {i + 1}" + (f"'s [step.{table}]" if table else "")
            raise lines.error(i, None, f'{where} needs {key} = "..."', table=table)
        return ""
    if not isinstance(v, str) or (required and not v.strip()):
        raise lines.error(i, key, f"{key} must be a non-empty text", table=table)
    return v.strip()


def _whole(d: dict, key: str, lines: _Lines, i: int) -> int | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise lines.error(i, key, f"{key} must be a whole number >= 0, got {v!r}", table="workspace")
    return v


def _no_unknown(d: dict, allowed: set[str], lines: _Lines, i: int | None, what: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        table = {"[step.workspace]": "workspace", "[step.question]": "question"}.get(what)
        raise lines.error(
            i, unknown[0], f"{unknown[0]!r} is not a key of {what}; the keys are {', '.join(sorted(allowed))}", table
        )


class _Lines:
    """Line numbers for errors (tomllib gives none): found by scanning the text for step headers and keys."""

    _HEADER = re.compile(r"^\s*\[\[\s*step\s*\]\]")
    _TABLE = re.compile(r"^\s*\[\s*step\.(\w+)\s*\]")

    def __init__(self, text: str, source: str):
        self.source = source
        self.lines = text.splitlines()
        self.starts = [n for n, line in enumerate(self.lines) if self._HEADER.match(line)]

    def step_line(self, i: int) -> int:
        return self.starts[i] + 1 if i < len(self.starts) else 0

    def _span(self, i: int | None) -> range:
        if i is None:
            return range(0, self.starts[0] if self.starts else len(self.lines))
        if i >= len(self.starts):
            return range(0)
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.lines)
        return range(self.starts[i], end)

    def find(self, i: int | None, key: str | None, table: str | None = None) -> int:
        """1-based line of ``key`` (in ``[step.table]`` when given, else in the step's own table), or the step's."""
        span = self._span(i)
        current = None
        key_re = re.compile(rf"^\s*{re.escape(key)}\s*=|[{{,]\s*{re.escape(key)}\s*=") if key else None
        for n in span:
            m = self._TABLE.match(self.lines[n])
            if m:
                current = m.group(1)
                if key is None and table == current:
                    return n + 1
                continue
            if key_re and current == table and key_re.search(self.lines[n]):
                return n + 1
        return (span.start + 1) if len(span) else 0

    def error(self, i: int | None, key: str | None, message: str, table: str | None = None) -> LessonError:
        line = self.find(i, key, table)
        step = "" if i is None else f" (step {i + 1})"
        return LessonError(f"{self.source}, line {line}{step}: {message}")


def lesson_titles(path: Path) -> tuple[str, list[str]]:
    """A lesson file's title and step titles, read without validating (for menus: fast, never raises)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        steps = [str(s.get("title", f"step {i + 1}")) for i, s in enumerate(raw.get("step", []))]
        return str(raw.get("title", path.stem)), steps
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return path.stem, []


__all__ = [
    "Lesson",
    "LessonError",
    "Question",
    "Step",
    "bundled_lessons",
    "lesson_titles",
    "load_lesson",
    "parse_lesson",
]
