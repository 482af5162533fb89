"""The ``lvm`` command line. Each subcommand lives in its own module of this package.

A subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Errors a user can cause (``LVMError``) print their message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lvm import prefer_passive_openmp
from lvm.errors import LVMError, out_of_memory_message

prefer_passive_openmp()  # before any subcommand imports torch

# subcommand name -> module (imported lazily so ``lvm --help`` stays fast)
COMMANDS: dict[str, str] = {
    "data": "lvm.cli.data",
    "fit-gmm": "lvm.cli.fit_gmm",
    "train-vae": "lvm.cli.train_vae",
    "eval": "lvm.cli.eval",
    "inpaint": "lvm.cli.inpaint",
    "fit-infinite": "lvm.cli.fit_infinite",
    "train-discrete": "lvm.cli.train_discrete",
    "bench": "lvm.cli.bench",
    "animate": "lvm.cli.animate",
}


def _all_commands() -> dict[str, str]:
    """The built-in subcommands and those installed packages contribute through the ``lvm.commands`` entry point
    group (name = module; the app contributes ``lesson``; lvm itself never imports the app)."""
    from importlib.metadata import entry_points

    commands = dict(COMMANDS)
    for ep in entry_points(group="lvm.commands"):
        commands.setdefault(ep.name, ep.value)
    return commands


def build_parser() -> argparse.ArgumentParser:
    from lvm import __version__

    parser = argparse.ArgumentParser(
        prog="lvm", description="LVM Explorer's command line: latent variable models on your data."
    )
    parser.add_argument("--version", action="version", version=f"lvm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in _all_commands().items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a subcommand not built yet
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LVMError as exc:
        print(f"lvm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        message = out_of_memory_message(exc)
        if message is None:
            raise
        print(f"lvm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def console_main() -> None:  # the entry point
    sys.exit(main())
