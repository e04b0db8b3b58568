"""The ``autospec`` command.

Subcommands register themselves in ``SUBCOMMANDS``: a name, a help line, a
function adding arguments to its parser and one running it.  ``depth`` is
wired to ``verification.depth`` when that module exposes
``add_arguments(parser)`` and ``run_from_args(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from typing import Callable

__all__ = ["main", "build_parser", "SUBCOMMANDS", "UsageError"]


# ---------------------------------------------------------------- audit

def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="small matrix, a few minutes on two cores (the default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="the full matrix")
    parser.set_defaults(mode="quick")
    parser.add_argument("--out", default="reports", metavar="DIR", help="where results.json and index.html go (default: reports)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="run the cells on a Dask distributed scheduler (needs autospec[dask])")
    parser.add_argument("--resume", action="store_true", help="keep the finished cells of DIR/results.json and compute the rest")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only cells whose id matches (glob, or substring); repeatable or comma-separated")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="audit seed; every cell's seed derives from it (default 0)")
    parser.add_argument("--sampler", action="append", default=[], metavar="MODULE:ATTR",
                        help="also audit your sampler (an object, or a class/factory taking no arguments); repeatable")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override one setting of the mode (VALUE is JSON, e.g. num_samples=5000 or "
                             "'check_samplers=[\"Sequential\"]'); repeatable")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.add_argument("--no-report", action="store_true", help="skip index.html")
    parser.add_argument("--list", action="store_true", help="list the cells that would run and exit")


def _run_audit(args: argparse.Namespace) -> int:
    from verification.audit import AuditConfig, AuditError, format_table, plan_audit, run_audit

    _working_directory_on_path()
    only = [p.strip() for item in args.only for p in item.split(",") if p.strip()]
    if args.jobs < 1:
        print("autospec audit: --jobs must be at least 1", file=sys.stderr)
        return 2
    if args.seed < 0:
        print("autospec audit: --seed must be non-negative", file=sys.stderr)
        return 2
    try:
        overrides = _parse_overrides(args.overrides)
        config = AuditConfig(mode=args.mode, seed=args.seed, only=only, extra_samplers=list(args.sampler),
                             overrides=overrides)
    except ValueError as error:
        print(f"autospec audit: {error}", file=sys.stderr)
        return 2
    try:
        if args.list:
            specs, status = plan_audit(config)
            for spec in specs:
                print(spec["id"])
            for name, stage in status.items():
                if stage["status"] not in ("ran", "no cells", "filtered out by --only"):
                    print(f"# stage {name}: {stage['status']}")
            return 0
        outcome = run_audit(
            config, out_dir=args.out, jobs=args.jobs, scheduler=args.scheduler, resume=args.resume,
            progress=False if args.no_progress else None, report=not args.no_report,
            command=" ".join(shlex.quote(a) for a in ["autospec", *sys.argv[1:]]),
        )
    except AuditError as error:
        print(f"autospec audit: {error}", file=sys.stderr)
        return 2
    print(format_table(outcome.document))
    print(f"results: {outcome.results_path}" + ("" if args.no_report else f"\nreport:  {outcome.report_path}"))
    if outcome.interrupted:
        print("interrupted: finished cells are saved; rerun with --resume to finish", file=sys.stderr)
    return outcome.exit_code


def _working_directory_on_path() -> None:
    """``--sampler mymodule:X`` finds mymodule.py in the working directory, as ``python -m`` and pytest do
    (the ``autospec`` console script alone would only see installed packages).  Worker processes started
    by --jobs inherit sys.path; Dask workers need the module installed or on their PYTHONPATH."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def _parse_overrides(items: list[str]) -> dict:
    import json

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


# ---------------------------------------------------------------- depth (lazy)

def _depth_module():
    try:
        module = importlib.import_module("verification.depth")
    except ImportError:
        return None
    if hasattr(module, "add_arguments") and hasattr(module, "run_from_args"):
        return module
    return None


def _depth_arguments(parser: argparse.ArgumentParser) -> None:
    module = _depth_module()
    if module is not None:
        module.add_arguments(parser)


def _run_depth(args: argparse.Namespace) -> int:
    module = _depth_module()
    if module is None:
        print("autospec depth: not available (verification.depth with add_arguments/run_from_args is not installed)",
              file=sys.stderr)
        return 2
    try:
        result = module.run_from_args(args)
    except UsageError as error:
        print(f"autospec depth: {error}", file=sys.stderr)
        return 2
    return int(result or 0) if isinstance(result, (int, type(None))) else 0


class UsageError(ValueError):
    """A bad command-line value; the command prints it as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``autospec audit: --jobs: expected ...``) and exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# name -> (help, add_arguments, run)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "audit": ("run every sampler against every target and check; write results.json and index.html",
              _audit_arguments, _run_audit),
    "depth": ("depth-scaling experiments (rounds and queries versus n)", _depth_arguments, _run_depth),
    "chains": ("depth of ParallelDPP (vs k), parallel Glauber (vs T) and Langevin (vs d); exact Langevin KL table",
               lambda p: importlib.import_module("verification.chain_depth").add_arguments(p),
               lambda a: importlib.import_module("verification.chain_depth").run_from_args(a)),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="autospec", description="Prove parallel and speculative samplers exact.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(child)
        child.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a usage error: already printed as one line
        if not stop.code:  # --help
            raise
        return int(stop.code) if isinstance(stop.code, int) else 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
