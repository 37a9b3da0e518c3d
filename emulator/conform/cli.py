"""``sipemu conform PROGRAM [--json FILE] [--situations ...] [--long]``.

Exit status: 0 when every aspect matches, 1 when any differs, 2 for a usage error (an
unknown program or situation), 3 when the run cannot happen here (the program is not
installed, namespaces are unavailable): each with one sentence on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TypeAlias

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["EXIT_CANNOT_RUN", "EXIT_DIFFERS", "register_conform"]

EXIT_DIFFERS = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3


def register_conform(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "conform",
        help="judge a client profile against the real program (baresip, linphonec, sipe)",
        description=(
            "Run a real SIP client program through a catalogue of situations inside a private "
            "network namespace, run the same situations in the simulator with the program's "
            "client profile, and compare them aspect by aspect (docs/conform.md)."
        ),
    )
    parser.add_argument("program", help="baresip, linphonec (linphone) or sipe")
    parser.add_argument("--json", metavar="FILE", help="write the judgements and traces as JSON")
    parser.add_argument(
        "--situations",
        nargs="+",
        metavar="NAME",
        help="only these situations (names, or comma-separated; default: all; --list-situations)",
    )
    parser.add_argument(
        "--long", action="store_true", help="wait for the first refresh at 600 s and 3600 s too"
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="simulator seeds per situation (default 5)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        metavar="N",
        help=(
            "run a situation that differs again, up to N times; a difference counts only if "
            "every try shows it (default 1; 0: the first try is final)"
        ),
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="keep each situation's program config and logs under DIR"
    )
    parser.add_argument(
        "--list-situations", action="store_true", help="print the catalogue and exit"
    )
    parser.set_defaults(handler=_conform)


def _conform(args: argparse.Namespace) -> int:
    from emulator.conform import namespace
    from emulator.conform.drivers import get_driver
    from emulator.conform.situations import CATALOGUE, select

    if args.list_situations:
        for situation in CATALOGUE:
            print(f"{situation.name:20} {situation.duration:>5g} s  {situation.title}")
        return 0
    try:
        driver = get_driver(args.program)
        names = _names(args.situations)
        situations = select(names)
    except ValueError as exc:
        print(f"sipemu conform: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.seeds < 1:
        print("sipemu conform: --seeds must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.retries < 0:
        print(f"sipemu conform: --retries must be 0 or more, not {args.retries}", file=sys.stderr)
        return EXIT_USAGE
    problem = driver.problem()
    if problem is None and not namespace.inside():
        problem = namespace.namespace_problem()
    if problem is not None:
        print(f"sipemu conform: {problem}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if not namespace.inside():
        return namespace.enter(_argv(args))
    from emulator.live.netns import mark_private

    mark_private()  # the child of namespace.enter(): its namespace is its own
    from emulator.conform.run import format_table, run, write_json

    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    report = run(
        driver,
        situations,
        long=args.long,
        seeds=args.seeds,
        keep=keep,
        retries=args.retries,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(report))
    if args.json:
        write_json(report, Path(args.json))
    return 0 if report.passed else EXIT_DIFFERS


def _argv(args: argparse.Namespace) -> list[str]:
    """The command line of this run, for the child inside the namespace."""
    argv = ["conform", args.program, "--seeds", str(args.seeds)]
    argv += ["--retries", str(args.retries)]
    if args.json:
        argv += ["--json", str(Path(args.json).resolve())]
    names = _names(args.situations)
    if names:
        argv += ["--situations", ",".join(names)]
    if args.long:
        argv.append("--long")
    if args.keep:
        argv += ["--keep", str(Path(args.keep).resolve())]
    return argv


def _names(given: list[str] | None) -> list[str] | None:
    """``--situations a b,c`` -> ``[a, b, c]`` (None: all)."""
    if not given:
        return None
    return [name.strip() for part in given for name in part.split(",") if name.strip()]
