"""The ``sipemu`` command.

Each command group is a ``register(subparsers)`` function that adds its parser(s) and sets
``handler`` (``Callable[[argparse.Namespace], int]``) as a default; adding a command is one
function and one line in :data:`COMMANDS`.

User mistakes (a bad topology file, a port in use, an address this machine does not have) are
printed as one sentence on stderr; a traceback means a bug.  Every command exits with the same
statuses (README.md, "Exit statuses"):

* 0: done, and everything judged holds;
* 1: the run went fine but its verdict is "no": an expectation failed (``run``), the fuzzer
  found an emulator bug (``fuzz``), users end up signed out (``check``, unless
  ``--exit-zero``), ``--until`` timed out (``client``, ``clients``), a cache
  entry asked for is absent, the deployment refused (``ctl``);
* 2: usage or input error: a bad option (argparse), a bad or missing file (``topology check``
  too), a port in use;
* 3 and 4: ``ctl``: the control API is unreachable, or refused the token; ``conform``: 3,
  the run cannot happen here (the program is missing, or no network namespace); ``fuzz``:
  3, the cluster or the Redis database of ``--cluster``/``--db`` cannot be used;
* 130, 143: stopped by SIGINT (Ctrl-C) or SIGTERM, cleanly (128 + the signal's number);
* 141: the reader of stdout left (``| head``), stopped cleanly (128 + SIGPIPE).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from typing import TypeAlias

    from emulator.live.deployment import Deployment
    from emulator.report import RunRecord
    from emulator.scenario.model import Scenario
    from emulator.scenario.output import RunOutput
    from emulator.scenario.runner import RunResult
    from emulator.sim.deployment import SimulatedDeployment
    from emulator.topology import Topology
    from emulator.wire import PacketLog, Taps
    from emulator.wire.ladder import Charset, LadderFilter

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["COMMANDS", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

EXIT_USER_ERROR = 2
EXIT_INVALID = 1
EXIT_BROKEN_PIPE = 141
"""The reader of stdout left (128 + SIGPIPE, as a shell reports a process SIGPIPE ended)."""


class UserError(Exception):
    """A mistake of the user's, reported as one sentence (no traceback)."""


def stdout_reader_gone() -> None:
    """The reader of stdout left (``sipemu ... | head``): what is still written, and Python's
    flush at exit, go to /dev/null instead of raising BrokenPipeError again.  The command then
    stops cleanly and exits :data:`EXIT_BROKEN_PIPE`.  (Restoring SIGPIPE's default action
    instead would also kill the process on a write to a closed TCP socket, and leave the
    temporary CA directory and captures half-written.)"""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


# -- sipemu up -------------------------------------------------------------------------------


def register_up(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run every pool of a topology and its fake DNS on real sockets",
        description=(
            "Bind every pool (UDP/TCP/TLS) and the fake DNS, print the endpoints, then log one "
            "line per SIP and DNS exchange until Ctrl-C or SIGTERM. Port 0 in the topology "
            "means an ephemeral port (the DNS SRV records name the bound ports)."
        ),
    )
    parser.add_argument(
        "topology",
        nargs="?",
        help="topology file (TOML) or the name of a shipped example (fast, r1-lab...); "
        "default: the embedded topology",
    )
    parser.add_argument("--quiet", action="store_true", help="no line per exchange")
    parser.add_argument(
        "--verbose", action="store_true", help="also log the heartbeats between pools"
    )
    parser.add_argument(
        "--messages",
        action="store_true",
        help="log every SIP message in full and every DNS message decoded, as it goes by "
        "(docs/seeing-the-wire.md)",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow addresses outside 127.0.0.0/8 and ::1",
    )
    parser.add_argument(
        "--ca-dir", metavar="DIR", help="write the CA certificate here (default: a temp dir)"
    )
    parser.add_argument(
        "--seed", type=int, help="run seed (Call-IDs, tags, branches); default: random"
    )
    _add_stream_limits(parser)  # --idle-timeout, --message-timeout
    from emulator.control.launch import add_up_options

    add_up_options(parser)  # --control, --control-token, --dns-tsig-key, --no-dns-updates
    from emulator.wire.options import add_capture_options

    add_capture_options(parser)  # --pcap, --hep, --keylog
    from emulator.live.netns import add_netns_options

    add_netns_options(parser)  # --netns [NAME], --faults
    parser.set_defaults(handler=_up)


def _add_stream_limits(parser: argparse.ArgumentParser) -> None:
    from emulator.live.stream import StreamLimits

    defaults = StreamLimits()
    parser.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help="close a TCP/TLS connection idle this long, keep-alives count as traffic "
        f"(0: never; default {defaults.idle_timeout:g})",
    )
    parser.add_argument(
        "--message-timeout",
        type=_seconds,
        default=defaults.message_timeout,
        metavar="SECONDS",
        help="close a TCP/TLS connection whose message is not read whole this long after its "
        "first byte, or that brings no message this long after connecting "
        f"(0: never; default {defaults.message_timeout:g})",
    )


def _seconds(text: str) -> float | None:
    """A timeout in seconds for argparse; 0 means never (None)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 <= value < 10**9):  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds: give 0 (never) or a positive number"
        )
    return value or None


def _up(args: argparse.Namespace) -> int:
    topology = _load(args.topology)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional (not on Windows): the default loop works too
        pass
    if isinstance(sys.stdout, io.TextIOWrapper):
        # One line per exchange must reach a pipe (tee, a test) as it happens.
        sys.stdout.reconfigure(line_buffering=True)
    from emulator.live.netns import enter_netns

    isolation = enter_netns(args.netns, sys.stdout)  # before the loop and any thread
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_serve(topology, args, sys.stdout))
    finally:
        if isolation is not None:
            isolation.close()


async def _serve(topology: Topology, args: argparse.Namespace, out: TextIO) -> int:
    from emulator.live.deployment import Deployment
    from emulator.live.stream import StreamLimits
    from emulator.wire import Capture
    from emulator.wire.live import WireRecorder
    from emulator.wire.options import open_sinks, summary

    def log(line: str) -> None:
        if gone:
            return
        try:
            out.write(line + "\n")
        except BrokenPipeError:  # `sipemu up | head`: stop cleanly, exit 141
            stdout_reader_gone()
            gone.append(True)
            os.kill(os.getpid(), signal.SIGTERM)  # the deployment's own clean stop

    gone: list[bool] = []

    taps = open_sinks(args, Capture(virtual=False, name=f"sipemu up {topology.source}"))
    if args.messages:
        from emulator.wire import Taps
        from emulator.wire.messages import MessageLog
        from emulator.wire.names import participants

        taps = taps if taps is not None else Taps()
        taps.add(MessageLog(log, participants(topology)))
    try:
        recorder = WireRecorder(taps) if taps is not None else None
        deployment = Deployment(
            topology,
            log=log,
            ca_dir=args.ca_dir,
            allow_non_loopback=args.allow_non_loopback,
            seed=args.seed,
            quiet=args.quiet,
            verbose=args.verbose,
            stream_limits=StreamLimits(args.idle_timeout, args.message_timeout),
            recorder=recorder,
            keylog=args.keylog,
            faults=args.faults,
        )
        status = await _serve_deployment(deployment, args, out)
        return EXIT_BROKEN_PIPE if gone else status
    finally:
        if taps is not None:
            taps.close()
            for line in summary(taps):
                out.write(line + "\n")
            out.flush()


async def _serve_deployment(deployment: Deployment, args: argparse.Namespace, out: TextIO) -> int:
    from emulator.control.launch import after_start, before_start
    from emulator.live.summary import UpTally

    control = before_start(deployment, args)  # subscribes before the pools start
    tally = UpTally(deployment.pool_names, time.monotonic)
    deployment.subscribe(tally.observe)
    stop = asyncio.Event()
    stopped_by: list[str] = []

    def stopping(name: str) -> None:
        stopped_by.append(name)
        stop.set()

    loop = asyncio.get_running_loop()
    signals = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
    for signum, name in signals.items():
        loop.add_signal_handler(signum, stopping, name)
    started = False
    try:
        await deployment.start()
        started = True
        _print_endpoints(deployment, out)
        await after_start(deployment, control, args, out)
        out.write("sipemu: up; Ctrl-C or SIGTERM stops it\n")
        out.flush()
        await stop.wait()
        out.write("sipemu: stopping\n")
    finally:
        if control is not None:
            await control.stop()
        await deployment.stop()  # removes the temporary CA directory
        for signum in signals:
            loop.remove_signal_handler(signum)
        if started:  # whatever ended it (a signal, an error): what the deployment did
            for line in tally.lines(stopped_by[0] if stopped_by else None):
                out.write(line + "\n")
            out.flush()
    out.write("sipemu: stopped\n")
    out.flush()
    return 0


def _print_endpoints(deployment: Deployment, out: TextIO) -> None:
    topology = deployment.topology
    rows = [
        (row.name, row.role, row.transport.upper(), f"{row.address}:{row.port}")
        for row in deployment.endpoints()
    ]
    out.write(f"topology {topology.source} (domain {topology.domain})\n")
    _table(("NAME", "ROLE", "TRANSPORT", "ADDRESS"), rows, out)
    out.write(f"CA certificate: {deployment.ca_path}\n")
    out.write(f"seed: {deployment.seed}\n")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        out.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


# -- sipemu topology -------------------------------------------------------------------------


def register_topology(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("topology", help="show or check a topology file")
    commands = parser.add_subparsers(dest="topology_command", metavar="ACTION", required=True)
    show = commands.add_parser(
        "show", help="print the default topology (TOML), or a summary of FILE"
    )
    show.add_argument("file", nargs="?", help="topology file (or example name) to summarise")
    show.set_defaults(handler=_topology_show)
    check = commands.add_parser("check", help="validate FILE (exit 2 with the reason if bad)")
    check.add_argument("file", help="topology file (or example name)")
    check.set_defaults(handler=_topology_check)


def _topology_show(args: argparse.Namespace) -> int:
    if args.file is None:
        sys.stdout.write(_default_topology_text())
        return 0
    _summarise(_load(args.file), sys.stdout)
    return 0


def _topology_check(args: argparse.Namespace) -> int:
    from emulator.topology import TopologyError, load_topology

    try:
        topology = load_topology(args.file)
    except (TopologyError, OSError) as exc:
        print(f"sipemu: {_sentence(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR  # a bad file is bad input, as for every other command
    print(
        f"{args.file}: ok ({len(topology.pools)} pools, {len(topology.users)} users, "
        f"domain {topology.domain})"
    )
    return 0


def _default_topology_text() -> str:
    from importlib import resources

    return resources.files("emulator").joinpath("data/default.toml").read_text(encoding="utf-8")


def _summarise(topology: Topology, out: TextIO) -> None:
    out.write(f"topology {topology.source}\n")
    if topology.description:
        out.write(f"description: {topology.description}\n")
    out.write(f"domain: {topology.domain}\n")
    resiliency = topology.resiliency
    out.write(
        "resiliency: failover after "
        f"{resiliency.failover_detection_interval:g} s, failback after "
        f"{resiliency.failback_detection_interval:g} s, heartbeat every "
        f"{resiliency.heartbeat_interval:g} s\n"
    )
    auth = topology.auth
    if auth.enabled:  # issue 16 (docs/topology.md, [auth]); nothing printed when off
        out.write(f"authentication: {auth.scheme}\n")
    rows = []
    for pool in topology.pools:
        ports = ", ".join(f"{t.upper()} {pool.port(t)}" for t in pool.transports)
        rows.append(
            (pool.fqdn, pool.role, pool.site or "-", pool.address, ports, pool.backup or "-")
        )
    _table(("POOL", "ROLE", "SITE", "ADDRESS", "PORTS", "BACKUP"), rows, out)
    homes: dict[str, int] = {}
    for home in topology.users.values():
        homes[home] = homes.get(home, 0) + 1
    per_pool = ", ".join(f"{pool}: {count}" for pool, count in sorted(homes.items()))
    out.write(f"users: {len(topology.users)} ({per_pool or 'none'})\n")
    dns = topology.dns
    out.write(f"dns: {dns.address}:{dns.port}, zones {', '.join(dns.zones) or '-'}\n")
    # What the fake DNS serves, with the ports of the file (0: the port bound at `sipemu up`).
    bound = {(p.fqdn, t): p.ports[t] for p in topology.pools for t in p.transports}
    records = topology.dns_records(bound)
    srv = [r for r in records if r.rtype == "SRV"]
    out.write(f"dns records: {len(records)} ({len(srv)} SRV)\n")
    for record in sorted(records, key=lambda r: (r.rtype != "SRV", r.name)):
        out.write(f"  {record}\n")
    if any(p.port(t) == 0 for p in topology.pools for t in p.transports):
        out.write(
            "  (port 0: ephemeral; `sipemu up` prints the ports bound, the SRV records name them)\n"
        )


# -- sipemu run ------------------------------------------------------------------------------


def register_run(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a scenario in virtual time (or --realtime on loopback) and check it",
        description=(
            "Run a scenario file (docs/scenarios.md): print its timeline and the result of each "
            "expectation. Exit status 0 only if every expectation holds. The seed is printed; "
            "the same seed gives the same trace."
        ),
    )
    parser.add_argument(
        "scenario", help="scenario file (TOML), or the name of a shipped example scenario"
    )
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="require the scenario to hold over N seeds from its seed (default: its `seeds`, "
        "1); the report shown is the first failing seed's",
    )
    parser.add_argument("--json", metavar="FILE", help="write the whole trace and results here")
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write an HTML report here: ladder, timeline, statistics, one self-contained file "
        "(docs/report.md)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also every SIP exchange, DNS query and detail, and every message in full",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the expectation results")
    _add_wire_options(parser)
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run against the live deployment on loopback, in wall-clock time",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="with --realtime: run X times faster than the scenario's clock (default 1)",
    )
    parser.add_argument(
        "--no-coast",
        action="store_true",
        help="simulate every keep-alive and heartbeat packet instead of skipping idle ones "
        "(same behaviour, slower; docs/simulation.md)",
    )
    from emulator.control.launch import add_control_options

    add_control_options(parser, prefix="with --realtime: ")
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="with --realtime: allow a --control address outside 127.0.0.0/8 and ::1",
    )
    from emulator.wire.options import add_capture_options

    add_capture_options(parser)  # --pcap, --hep, --keylog (--realtime)
    from emulator.live.netns import add_netns_options

    add_netns_options(parser, prefix="with --realtime: ")  # --netns [NAME], --faults
    parser.set_defaults(handler=_run)


def _add_wire_options(parser: argparse.ArgumentParser) -> None:
    """``sipemu run``'s views of the wire: whole messages, the ladder, Mermaid
    (docs/seeing-the-wire.md)."""
    parser.add_argument(
        "--messages",
        action="store_true",
        help="record every SIP message in full and every DNS message decoded, in the printed "
        "timeline and the --json trace (--verbose implies it)",
    )
    parser.add_argument(
        "--ladder", action="store_true", help="print a ladder diagram of the packets (sngrep-like)"
    )
    parser.add_argument(
        "--ladder-filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="show only some packets in --ladder and --mermaid; KEY: client, host, call-id, "
        "method, from, until; KEY!=VALUE excludes (repeatable)",
    )
    parser.add_argument(
        "--ladder-group",
        choices=("none", "call-id", "transaction"),
        default="none",
        help="one ladder per Call-ID or per transaction (default: one ladder)",
    )
    parser.add_argument(
        "--ladder-style",
        choices=("auto", "unicode", "ascii"),
        default="auto",
        help="box-drawing characters or plain ASCII (auto: what the output can encode)",
    )
    parser.add_argument(
        "--mermaid", metavar="FILE", help="write a Mermaid sequence diagram of the packets here"
    )


def _wire_views(args: argparse.Namespace) -> list[str]:
    """The views of the wire this run asks for (their option names)."""
    asked = [("--messages", args.messages), ("--ladder", args.ladder), ("--mermaid", args.mermaid)]
    asked += [
        ("--ladder-filter", args.ladder_filter),
        ("--ladder-group", args.ladder_group != "none"),
    ]
    return [option for option, given in asked if given]


def _ladder_filters(args: argparse.Namespace) -> list[LadderFilter]:
    from emulator.wire.ladder import parse_filter

    try:
        return [parse_filter(text) for text in args.ladder_filter]
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _ladder_style(args: argparse.Namespace, out: TextIO) -> Charset:
    if args.ladder_style != "auto":
        return args.ladder_style  # type: ignore[no-any-return]
    try:
        "│─▶◀╌┈…↻".encode(getattr(out, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "ascii"
    return "unicode"


def _crash_report(path: str, scenario: Scenario, run: _SimulatedRun, out: TextIO) -> None:
    """After a crash (a bug) in a run in virtual time: the report of what happened up to it,
    best effort (a report that cannot be made is said in one line; the crash goes on up)."""
    from emulator.report import write_report
    from emulator.scenario.runner import finish

    if run.deployment is None or run.packets is None:
        return
    try:
        record = run.record(finish(scenario, run.deployment))
        size = write_report(path, record)
    except Exception as problem:  # the run's state may be what crashed: say so, go on up
        out.write(f"sipemu: no report of the crashed run ({type(problem).__name__})\n")
        return
    out.write(f"report of the run up to its crash written to {path} ({size:,} bytes)\n")


def _on_scenario_clock(packets: PacketLog, wall_origin: float, scale: float) -> PacketLog:
    """A live run's packets (wall-clock times) on its scenario's clock, as a simulation's are."""
    import dataclasses

    from emulator.scenario.realtime import scenario_time
    from emulator.wire import PacketLog

    moved = PacketLog()
    for p in packets.packets:
        moved.packet(dataclasses.replace(p, time=scenario_time(p.time, wall_origin, scale)))
    return moved


def _draw_wire(result: RunResult, packets: PacketLog, args: argparse.Namespace, out: TextIO) -> str:
    """Write --mermaid and return the --ladder text (empty when not asked)."""
    import shutil

    from emulator.wire.ladder import render_ladder
    from emulator.wire.mermaid import LARGE, render_mermaid

    names = result.participants
    assert names is not None
    filters = _ladder_filters(args)
    notes = result.notes()
    if args.mermaid:
        title = f"{result.scenario.source} (seed {result.seed})"
        text = render_mermaid(packets.packets, names, filters=filters, notes=notes, title=title)
        Path(args.mermaid).write_text(text, encoding="utf-8")
        out.write(f"mermaid diagram written to {args.mermaid}\n")
        if len(text) > LARGE:
            out.write(
                f"sipemu: the diagram has {len(text):,} characters, more than Mermaid draws by "
                "default (maxTextSize 50,000): narrow it with --ladder-filter\n"
            )
    if not args.ladder:
        return ""
    return render_ladder(
        packets.packets,
        names,
        filters=filters,
        notes=notes,
        width=shutil.get_terminal_size((100, 24)).columns,
        charset=_ladder_style(args, out),
        group=args.ladder_group,
    )


EXIT_SIGNALLED = {"SIGINT": 130, "SIGTERM": 143}
"""Exit status of a run stopped by a signal (128 + its number, as a shell reports it)."""


def _run(args: argparse.Namespace) -> int:
    from emulator.examples import resolve
    from emulator.scenario.model import load_scenario
    from emulator.scenario.output import RunOutput
    from emulator.wire import Capture, PacketLog, Taps
    from emulator.wire.options import open_sinks, summary

    scenario = load_scenario(resolve("scenario", args.scenario))
    scenario, args.seed, seeds_line = _over_seeds(scenario, args)
    packets: PacketLog | None = None
    if args.realtime:
        if not args.time_scale > 0:
            raise UserError(f"--time-scale must be > 0, not {args.time_scale:g}")
        if args.no_coast:
            raise UserError("--no-coast applies to virtual-time runs only")
    else:
        if args.keylog is not None:
            raise UserError("--keylog applies to --realtime runs only (the simulator has no TLS)")
        if args.time_scale != 1.0:
            raise UserError("--time-scale applies to --realtime runs only")
        for given, option in (
            (args.netns, "--netns"),
            (None if args.faults == "auto" else args.faults, "--faults"),
            (args.control, "--control"),
            (args.control_token, "--control-token"),
            (args.allow_non_loopback or None, "--allow-non-loopback"),
        ):
            if given is not None:
                raise UserError(
                    f"{option} applies to --realtime runs only (the simulator has no sockets)"
                )
    _ladder_filters(args)  # a bad filter is reported before the run, not after
    if args.ladder or args.mermaid or (args.report and args.realtime):
        packets = PacketLog()
    if not (args.ladder or args.mermaid):
        unused = [v for v in _wire_views(args) if v.startswith("--ladder-")]
        unused += ["--ladder-style"] if args.ladder_style != "auto" else []
        if unused:
            raise UserError(f"{', '.join(unused)}: applies to --ladder and --mermaid only")
    # A realtime run's messages come from its live drivers' recorder, which needs a tap.
    messages = args.messages or args.verbose
    name = f"sipemu run {args.scenario}" + (" --realtime" if args.realtime else "")
    taps = open_sinks(args, Capture(virtual=not args.realtime, name=name))
    if packets is not None:
        taps = taps if taps is not None else Taps()
        taps.add(packets)
    if args.realtime and messages and taps is None:
        taps = Taps()
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        # The timeline must reach a pipe (tee, a test) line by line as it happens.
        out.reconfigure(line_buffering=True)
    output = RunOutput(text=out, json=args.json, verbose=args.verbose, timeline=not args.quiet)
    run = _SimulatedRun(bool(args.report))
    try:
        try:
            if args.realtime:
                from emulator.control.launch import control_options
                from emulator.live.netns import enter_netns
                from emulator.scenario.realtime import run_realtime
                from emulator.wire.live import WireRecorder

                isolation = enter_netns(args.netns, out)  # before the loop and any thread
                result = run_realtime(
                    scenario,
                    seed=args.seed,
                    verbose=args.verbose or bool(args.json),
                    time_scale=args.time_scale,
                    control=control_options(args),
                    out=out,
                    output=output,
                    recorder=WireRecorder(taps) if taps is not None else None,
                    keylog=args.keylog,
                    messages=messages,
                    faults=args.faults,
                )
                if isolation is not None:
                    isolation.close()
            else:
                # The JSON trace is the full one: record detail whenever it is asked for.  A
                # run that records its packets does not coast (prepare: coasting skips idle
                # keep-alives and heartbeats, proven trace-equivalent, docs/simulation.md), so
                # a capture holds what a run without coasting sends.
                result = run.simulate(
                    scenario,
                    seed=args.seed,
                    verbose=args.verbose or bool(args.json),
                    coast=not args.no_coast,
                    messages=messages,
                    taps=taps,
                    output=output,
                )
        finally:
            if taps is not None:
                taps.close()  # a capture is closed cleanly on every way out
    except BaseException as exc:  # what was written stays; the JSON's summary says why it ends
        signalled = _signal_name(exc) if isinstance(exc, KeyboardInterrupt) else None
        output.abort(exc, _exit_status(exc), signalled)
        if args.report and isinstance(exc, Exception) and not isinstance(exc, UserError):
            _crash_report(args.report, scenario, run, out)
        raise
    if result.interrupted is not None:
        status = EXIT_SIGNALLED[result.interrupted]
    else:
        status = 0 if result.passed else EXIT_INVALID
    if packets is not None and result.wall_origin is not None:  # live: on the scenario clock
        packets = _on_scenario_clock(packets, result.wall_origin, args.time_scale)
    wants_drawing = args.ladder or args.mermaid
    ladder = "" if packets is None or not wants_drawing else _draw_wire(result, packets, args, out)
    if args.realtime:
        output.finish(result, status, extra=ladder)  # the rest went out as it happened
    else:
        output.write_run(result, status, extra=ladder)
    if args.json:
        out.write(f"trace written to {args.json}\n")
    if args.report:
        from emulator.report import realtime_record, write_report

        # An interrupted run's report holds what happened up to the stop.
        if args.realtime:
            from emulator.scenario.realtime import client_addresses

            record = realtime_record(
                result,
                [] if packets is None else packets.packets,
                clients=client_addresses(scenario),
            )
        else:
            record = run.record(result)
        size = write_report(args.report, record)
        out.write(f"report written to {args.report} ({size:,} bytes)\n")
    for line in summary(taps) if taps is not None else ():
        out.write(line + "\n")
    if seeds_line:
        out.write(seeds_line + "\n")
    return status


def _over_seeds(scenario: Scenario, args: argparse.Namespace) -> tuple[Scenario, int | None, str]:
    """``seeds = N`` / ``--seeds N``: run the seeds quietly until one fails; the run shown
    is that seed's (or the first's).  The scenario as that seed sees it, the seed, and the
    line that says how the seeds went (docs/scenarios.md, "Over several seeds")."""
    from emulator.scenario.groups import reseeded
    from emulator.scenario.model import MAX_SEEDS
    from emulator.scenario.seeds import run_seeds, seeds_of

    count = args.seeds if args.seeds is not None else scenario.seeds
    if not 1 <= count <= MAX_SEEDS:
        raise UserError(f"--seeds must be from 1 to {MAX_SEEDS}, not {count}")
    seed = args.seed
    if count > 1 and args.realtime:
        if args.seeds is not None:
            raise UserError("--seeds applies to virtual-time runs only (a realtime run is one)")
        first = seeds_of(scenario, 1, seed)[0]
        line = f"seeds: the scenario asks for {count} seeds; a realtime run runs one ({first})"
        return reseeded(scenario, first), seed, line
    if count > 1:
        outcome = run_seeds(scenario, count, seed, coast=not args.no_coast)
        seed, line = outcome.seed, outcome.line()
    else:
        line = ""
    return (scenario if seed is None else reseeded(scenario, seed)), seed, line


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as SIGINT raises KeyboardInterrupt) inside
    :func:`sigterm_interrupts`: what stops a run cleanly on Ctrl-C stops it on SIGTERM too
    (Hypothesis, like the simulator, lets a KeyboardInterrupt through at once)."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within: SIGTERM raises :class:`Terminated` (main thread only; elsewhere nothing
    changes)."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal_name(interrupt: KeyboardInterrupt) -> str:
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


class _SimulatedRun:
    """A run in virtual time, stopped cleanly by SIGINT or SIGTERM: the result then holds the
    trace so far and the verdicts so far (``interrupted``).  An exception (a bug) first writes
    the trace so far to ``output``, then goes on up.  With ``report``, it keeps its packets and
    deployment for the HTML report's record (:meth:`record`)."""

    def __init__(self, report: bool) -> None:
        self.report = report
        self.deployment: SimulatedDeployment | None = None
        self.packets: PacketLog | None = None

    def simulate(
        self,
        scenario: Scenario,
        *,
        seed: int | None,
        verbose: bool,
        coast: bool,
        messages: bool = False,
        taps: Taps | None = None,
        output: RunOutput | None = None,
    ) -> RunResult:
        from emulator.scenario.runner import RunResult, finish, prepare, settle
        from emulator.wire import PacketLog, Taps

        if self.report:
            self.packets = PacketLog()
            taps = taps if taps is not None else Taps()
            taps.add(self.packets)
        deployment = prepare(
            scenario, seed=seed, verbose=verbose, coast=coast, messages=messages, tap=taps
        )
        self.deployment = deployment
        interrupted = None
        try:
            with sigterm_interrupts():
                deployment.run_until(scenario.duration)
        except KeyboardInterrupt as stop:
            interrupted = _signal_name(stop)
        except Exception:
            if output is not None:  # what happened up to the crash, for the bug report
                output.start(scenario, deployment.world.seed, mode="simulated")
                for entry in deployment.world.trace:
                    output.entry(entry)
            raise
        result = finish(scenario, deployment)
        if interrupted is None:
            return result
        stopped_at = deployment.world.now
        return RunResult(
            result.scenario,
            result.seed,
            result.trace,
            result.timeline,
            tuple(settle(r, stopped_at, deployment.step_outcomes) for r in result.results),
            result.events_processed,
            result.violations,
            result.participants,
            interrupted=interrupted,
            stopped_at=stopped_at,
        )

    def record(self, result: RunResult) -> RunRecord:
        """The HTML report's record of the run (``report`` was asked for)."""
        from emulator.report import record_of_simulation

        assert self.deployment is not None and self.packets is not None
        return record_of_simulation(result, self.deployment, self.packets)


# -- sipemu fuzz / sipemu check --------------------------------------------------------------


def register_fuzz(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "fuzz",
        help="search topologies, DNS, clients and faults for broken failover invariants",
        description=(
            "Hypothesis draws topologies, DNS records, clients and fault schedules, runs them in "
            "the simulator and checks the failover invariants (docs/invariants.md). Each "
            "distinct failure is shrunk to a minimal case and written to DIR as a scenario "
            "file that `sipemu run` replays to the same failure (exit status 1). Findings are "
            "sorted into by-design (with advice) and emulator bugs."
        ),
    )
    parser.add_argument("--examples", type=int, default=200, help="examples to run (200)")
    parser.add_argument("--seed", type=int, default=0, help="campaign seed (0)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop after this long")
    parser.add_argument("--workers", type=int, default=1, help="processes (shards), default 1")
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the shards as tasks on a Dask cluster: a scheduler's address "
        "(tcp://HOST:8786), or local:N for N local worker processes; needs the cluster extra "
        "(pip install 'sipemu[cluster]'; docs/invariants.md)",
    )
    parser.add_argument(
        "--shard-examples",
        type=int,
        default=None,
        metavar="N",
        help="with --cluster: examples per task (50)",
    )
    parser.add_argument("--out", default="findings", help="directory for findings (findings/)")
    parser.add_argument(
        "--db",
        help="Hypothesis example database shared by shards and campaigns: a directory, or "
        "redis://HOST:PORT/N (Redis, for a cluster; the cluster extra) "
        "(default: DIR/.hypothesis; none with --cluster ADDRESS)",
    )
    parser.add_argument(
        "--pcap",
        action="store_true",
        help="also write each finding's SIP and DNS messages next to it (SLUG.pcapng, "
        "docs/capture.md)",
    )
    parser.set_defaults(handler=_fuzz)

    check = subparsers.add_parser(
        "check",
        help="resilience report: who is stranded by each single failure",
        description=(
            "For each single pool failure and for the loss of DNS, simulate one user per home "
            "pool with each client profile, running or signing in again during the failure, "
            "with the endpoint-cache states the profile uses, and report who ends up signed "
            "out, in limited mode, or fine, with advice. Exit status 1 when any user ends up "
            "signed out or never signs in (0 with --exit-zero), 2 for a bad topology file."
        ),
    )
    check.add_argument(
        "topology", nargs="?", help="topology file or example name (default: the embedded one)"
    )
    check.add_argument("--json", action="store_true", help="JSON instead of a table")
    check.add_argument(
        "--exit-zero",
        action="store_true",
        help="exit 0 even when users end up signed out (a report only)",
    )
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(handler=_check)


def _fuzz(args: argparse.Namespace) -> int:
    from emulator.fuzz.campaign import (
        CampaignResult,
        FindingWriter,
        ShardsDied,
        run_campaign,
        write_findings,
    )
    from emulator.fuzz.cluster import (
        DEFAULT_SHARD_EXAMPLES,
        EXIT_UNREACHABLE,
        ClusterError,
        parse_cluster,
        run_cluster_campaign,
    )
    from emulator.fuzz.database import DatabaseUnreachable, is_redis, redis_client

    if args.examples < 1 or args.workers < 1:
        raise UserError("--examples and --workers must be at least 1")
    if args.shard_examples is not None and (args.cluster is None or args.shard_examples < 1):
        raise UserError("--shard-examples goes with --cluster, and must be at least 1")
    if args.cluster is not None and args.workers != 1:
        raise UserError(
            "--workers is for processes on this machine; with --cluster, the "
            "cluster's workers run the shards (local:N for N local processes)"
        )
    out = Path(args.out)
    try:
        where = parse_cluster(args.cluster) if args.cluster is not None else None
    except ClusterError as exc:
        print(f"sipemu fuzz: {exc}", file=sys.stderr)
        return exc.status
    database: str | Path | None
    if args.db and is_redis(args.db):
        database = args.db
        try:
            redis_client(args.db).close()  # reachable now, or a sentence and status 3
        except DatabaseUnreachable as exc:
            print(f"sipemu fuzz: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
    elif args.db or not isinstance(where, str):
        database = Path(args.db) if args.db else out / ".hypothesis"
        database.mkdir(parents=True, exist_ok=True)
    else:  # a remote cluster's workers do not see this machine's directory
        database = None
        print(
            "sipemu fuzz: no --db redis://HOST:PORT/N: the cluster's shards share no examples",
            file=sys.stderr,
        )
    runs_on = f"{args.workers} worker(s)" if where is None else f"cluster {args.cluster}"
    print(f"sipemu fuzz: {args.examples} examples, seed {args.seed}, {runs_on}", file=sys.stderr)

    def show(line: str) -> None:  # a finding's file is complete on disk: say so at once
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    writer = FindingWriter(out, show)
    result: CampaignResult
    try:
        with sigterm_interrupts():
            if where is None:
                result = run_campaign(
                    examples=args.examples,
                    seed=args.seed,
                    time_budget=args.time_budget,
                    workers=args.workers,
                    database=database,
                    on_found=writer,
                )
            else:
                result = run_cluster_campaign(
                    cluster=args.cluster,
                    examples=args.examples,
                    seed=args.seed,
                    time_budget=args.time_budget,
                    database=None if database is None else str(database),
                    shard_examples=args.shard_examples or DEFAULT_SHARD_EXAMPLES,
                    on_found=writer,
                )
    except (ClusterError, ShardsDied) as exc:  # every finding shown is on disk already
        print(
            f"sipemu fuzz: {exc}; {len(writer.written)} finding(s) written to {out}",
            file=sys.stderr,
        )
        return exc.status if isinstance(exc, ClusterError) else EXIT_UNREACHABLE
    except KeyboardInterrupt as stop:  # every finding shown is on disk already
        name = _signal_name(stop)
        print(
            f"\nsipemu fuzz: interrupted by {name}; {len(writer.written)} finding(s) written to "
            f"{out} as they were found (each the simplest case so far; not replayed)"
        )
        return EXIT_SIGNALLED[name]
    for note in result.notes:
        print(f"sipemu fuzz: {note}", file=sys.stderr)
    written = write_findings(result, out, pcap=args.pcap)
    rate = result.examples / result.elapsed if result.elapsed else 0.0
    print(
        f"{result.examples} examples in {result.elapsed:.1f} s ({rate:.1f}/s); "
        f"{len(written)} distinct finding(s)"
    )
    for kind in ("emulator-bug", "by-design"):
        for found, path, reproduced in written:
            if found.finding.kind != kind:
                continue
            replay = "replays" if reproduced else "DOES NOT REPLAY (a determinism bug)"
            print(f"  [{kind}] {found.finding.key}: {path} ({replay})")
            if args.pcap:
                print(f"      capture: {path.with_suffix('.pcapng')}")
            print(f"      {found.finding.summary}")
            print(f"      advice: {found.finding.advice}")
    bugs = [f for f, _, _ in written if f.finding.kind == "emulator-bug"]
    return EXIT_INVALID if bugs else 0


def _check(args: argparse.Namespace) -> int:
    from emulator.fuzz.check import check_topology, render_json, render_table, stranded

    topology = _load(args.topology)
    rows = check_topology(topology, seed=args.seed)
    sys.stdout.write((render_json(rows) if args.json else render_table(topology, rows)) + "\n")
    if stranded(rows) and not args.exit_zero:
        return EXIT_INVALID  # 1: users end up signed out (docs/invariants.md)
    return 0


# -- common ----------------------------------------------------------------------------------


def register_client(subparsers: SubParsers) -> None:
    from clients.cli import register_client as register

    register(subparsers)


def register_clients(subparsers: SubParsers) -> None:
    from clients.cli import register_clients as register

    register(subparsers)


def register_ctl(subparsers: SubParsers) -> None:
    from emulator.control.ctl import register_ctl as register

    register(subparsers)


def register_worst(subparsers: SubParsers) -> None:
    from emulator.fuzz.worst import register_worst as register

    register(subparsers)


def register_conform(subparsers: SubParsers) -> None:
    from emulator.conform.cli import register_conform as register

    register(subparsers)


COMMANDS: list[Callable[[SubParsers], None]] = [
    register_up,
    register_topology,
    register_run,
    register_fuzz,
    register_client,
    register_clients,
    register_ctl,
    register_conform,
    register_worst,
]
"""One ``register(subparsers)`` per command group; append to add a command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipemu",
        description="Emulator of a Lync / Skype for Business SIP registrar deployment.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS:
        register(subparsers)
    return parser


def _load(path: str | None) -> Topology:
    from emulator.topology import default_topology, load_topology

    if path is None:
        return default_topology()
    return load_topology(Path(path))


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    return str(exc)


def _user_errors() -> tuple[type[BaseException], ...]:
    from emulator.config import ConfigError
    from emulator.live.deployment import DeploymentError
    from emulator.live.netns import NamespaceError
    from emulator.live.sockets import BindError

    return (UserError, ConfigError, DeploymentError, NamespaceError, BindError, OSError)


def _exit_status(exc: BaseException) -> int | None:
    """The status :func:`main` exits with for ``exc`` (None: a traceback, Python's 1)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_SIGNALLED[_signal_name(exc)]
    if isinstance(exc, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    return EXIT_USER_ERROR if isinstance(exc, _user_errors()) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sipemu`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt as stop:  # Ctrl-C (or SIGTERM) before a run's own handling
        return EXIT_SIGNALLED[_signal_name(stop)]
    except BrokenPipeError:  # `sipemu run ... | head`: the reader left; not an error of ours
        stdout_reader_gone()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"sipemu: {_sentence(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR
        raise


if __name__ == "__main__":
    sys.exit(main())
