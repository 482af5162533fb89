"""``lvm lesson``: check lesson files, list the bundled lessons (a subcommand the app contributes to ``lvm``'s command
line through the ``lvm.commands`` entry point; Qt-free, runs without a display)."""

from __future__ import annotations

import argparse

from app.lessons.format import bundled_lessons, lesson_titles, load_lesson

HELP = "check lesson files (lvm lesson check FILE...) or list the bundled lessons (lvm lesson list)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    check = sub.add_parser(
        "check", help="validate lesson files: exit 0 when every file is usable, 2 at the first error"
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="a lesson .toml file, or a bundled lesson's name")
    sub.add_parser("list", help="the bundled lessons and their steps")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, path in bundled_lessons().items():
            title, steps = lesson_titles(path)
            print(f"{name}: {title} ({len(steps)} steps)")
            for i, step in enumerate(steps, 1):
                print(f"  {i:2d}. {step}")
        return 0
    for f in args.files:
        lesson = load_lesson(f)  # LessonError: lvm's command line prints it (file, line, what to change), exit 2
        labs = sorted({s.lab for s in lesson.steps})
        print(f"{f}: ok, {lesson.title!r}: {len(lesson.steps)} steps in {', '.join(labs)}")
    return 0
