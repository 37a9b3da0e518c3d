"""``sipemu client ...`` and ``sipemu clients run``: emulated clients against any deployment.

* ``sipemu client signin USER --dns HOST:PORT``: one agent; its events as readable lines (or
  JSON lines); with ``--until STATE`` it exits 0 once the state is reached (1 on timeout),
  otherwise it runs until Ctrl-C and then signs out.
* ``sipemu client cache show|clear|seed``: inspect, clear or pre-seed endpoint cache files.
* ``sipemu clients run FILE``: many agents described in a TOML file (docs/clients.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from clients.cache import CacheEntry, CacheError, FileCacheStore, MemoryCacheStore
from clients.events import AgentEvent, ClientActionDone, ClientNote, ClientStateChanged
from clients.profile import PROFILES, profiles_epilog
from emulator.config import ConfigError, TomlContext, parse_toml, read_text
from emulator.net import TRANSPORTS, Address

if TYPE_CHECKING:
    from typing import TypeAlias

    from clients.driver import ClientConfig
    from emulator.wire import Taps

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["register_client", "register_clients"]

STATES = ("discovering", "registering", "registered", "signed-out")
EXIT_BROKEN_PIPE = 141
"""The reader of stdout left (as emulator.cli.EXIT_BROKEN_PIPE)."""


class ClientsFileError(ConfigError):
    """A bad clients file (a sentence naming file, line and key)."""


def _address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.10:5353, not {text!r}")
    return (host.strip("[]"), int(port))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument(
        "--until",
        choices=STATES,
        help="exit 0 once every client is in this state (1 if --timeout passes first)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for --until (default 120)"
    )
    parser.add_argument("--ca-file", help="verify registrars' TLS certificates with this CA")
    parser.add_argument("--seed", type=int, default=0, help="seed of the agents' choices")
    parser.add_argument("--quiet", action="store_true", help="state changes only, no details")
    from emulator.wire.options import add_capture_options

    add_capture_options(parser)  # --pcap, --hep, --keylog (docs/capture.md)


def register_client(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser("client", help="run one emulated client, or manage its cache")
    commands = parser.add_subparsers(dest="client_command", metavar="ACTION", required=True)
    signin = commands.add_parser(
        "signin",
        help="sign one user in against a deployment (ours or a real one)",
        description="Run one client agent: discovery through the given DNS server, the endpoint "
        "cache, 301 handling, refresh and keep-alive, failover and failback.",
        epilog=profiles_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    signin.add_argument("user", help="the user's SIP URI, e.g. sip:clientuser1@contoso.test")
    signin.add_argument("--dns", type=_address, required=True, help="DNS server HOST:PORT")
    signin.add_argument("--cache-dir", help="endpoint cache directory (default: no cache kept)")
    signin.add_argument("--profile", default="lync2010", choices=sorted(PROFILES))
    signin.add_argument("--local-ip", default="127.0.0.1", help="address to send from")
    signin.add_argument("--domain", help="SIP domain for discovery (default: the user's)")
    signin.add_argument(
        "--password",
        help="the user's password, for a registrar that authenticates (Digest or NTLM, as the "
        "profile answers; default: none, a 401 fails)",
    )
    _common(signin)
    signin.set_defaults(handler=_signin)

    cache = commands.add_parser("cache", help="inspect, clear or pre-seed endpoint caches")
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the cache entries (all, or one user's)")
    show.add_argument("--cache-dir", required=True)
    show.add_argument("user", nargs="?")
    show.set_defaults(handler=_cache_show)
    clear = actions.add_parser("clear", help="remove a user's cache entry")
    clear.add_argument("--cache-dir", required=True)
    clear.add_argument("user")
    clear.set_defaults(handler=_cache_clear)
    seed = actions.add_parser("seed", help="write a cache entry, as if the user had signed in")
    seed.add_argument("--cache-dir", required=True)
    seed.add_argument("user")
    seed.add_argument("server", help="home server FQDN (or address)")
    seed.add_argument("--port", type=int, default=5061)
    seed.add_argument("--transport", choices=TRANSPORTS, default="tls")
    seed.add_argument("--address", help="the server's address (then sign-in needs no DNS)")
    seed.set_defaults(handler=_cache_seed)


def register_clients(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "clients",
        help="run many emulated clients from a file",
        epilog=profiles_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="clients_command", metavar="ACTION", required=True)
    run = commands.add_parser("run", help="sign in every client of a clients file")
    run.add_argument(
        "file", help="clients file (TOML, docs/clients.md), or a shipped example's name (r1-lab)"
    )
    run.add_argument("--dns", type=_address, help="DNS server HOST:PORT (overrides the file)")
    _common(run)
    run.set_defaults(handler=_clients_run)


# -- output ----------------------------------------------------------------------------------


class Printer:
    """Events as lines (wall-clock time) or JSON lines; the agents' ``now`` is loop time."""

    def __init__(
        self,
        out: TextIO,
        *,
        as_json: bool,
        quiet: bool,
        loop_time: float,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        self.out = out
        self.as_json = as_json
        self.quiet = quiet
        self._offset = datetime.now().timestamp() - loop_time
        self.on_gone = on_gone
        self.gone = False
        """The reader of ``out`` left (``| head``): nothing more is written."""

    def __call__(self, event: AgentEvent) -> None:
        if self.gone:
            return
        try:
            self._write(event)
        except BrokenPipeError:  # called from the agents' callbacks: stop the run, no traceback
            from emulator.cli import stdout_reader_gone

            stdout_reader_gone()
            self.gone = True
            if self.on_gone is not None:
                self.on_gone()

    def _write(self, event: AgentEvent) -> None:
        if self.quiet and isinstance(event, ClientNote):
            return
        wall = datetime.fromtimestamp(event.now + self._offset)
        if self.as_json:
            record: dict[str, Any] = {
                "time": wall.isoformat(timespec="milliseconds"),
                "client": event.client,
            }
            if isinstance(event, ClientStateChanged):
                record.update(
                    kind="state",
                    state=event.state,
                    registrar=event.registrar,
                    mode=event.mode,
                    primary=event.primary,
                    backup=event.backup,
                    cause=event.cause,
                    contacts=event.contacts,
                )
            elif isinstance(event, ClientActionDone):
                record.update(kind="action", action=event.action, ok=event.ok, detail=event.detail)
            else:
                record.update(kind="note", text=event.text)
            self.out.write(json.dumps(record) + "\n")
        else:
            stamp = wall.strftime("%H:%M:%S.%f")[:-3]
            self.out.write(f"{stamp} {event.line().lstrip().split(' ', 1)[1]}\n")
        self.out.flush()


# -- running ---------------------------------------------------------------------------------


async def _run_fleet(
    configs: Sequence[ClientConfig],
    *,
    dns: Address,
    cache_dir: Path | None,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    from emulator.wire import Capture
    from emulator.wire.options import open_sinks, summary

    name = "sipemu " + (f"clients run {args.file}" if hasattr(args, "file") else "client signin")
    taps = open_sinks(args, Capture(virtual=False, name=name))
    try:
        return await _run_fleet_captured(
            configs, dns=dns, cache_dir=cache_dir, args=args, out=out, taps=taps
        )
    finally:
        if taps is not None:
            taps.close()
            for line in summary(taps):
                print(line, file=sys.stderr)


async def _run_fleet_captured(
    configs: Sequence[ClientConfig],
    *,
    dns: Address,
    cache_dir: Path | None,
    args: argparse.Namespace,
    out: TextIO,
    taps: Taps | None = None,
) -> int:
    from clients.driver import Fleet, client_ssl_context
    from emulator.wire.live import WireRecorder

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    printer = Printer(
        out, as_json=args.json, quiet=args.quiet, loop_time=loop.time(), on_gone=stop.set
    )

    def caches(config: ClientConfig) -> FileCacheStore | MemoryCacheStore:
        return FileCacheStore(cache_dir) if cache_dir is not None else MemoryCacheStore()

    client_ssl = client_ssl_context(args.ca_file)
    if args.keylog is not None:
        client_ssl.keylog_filename = args.keylog
    fleet = Fleet(
        configs,
        dns_server=dns,
        seed=args.seed,
        caches=caches,
        client_ssl=client_ssl,
        on_event=printer,
        recorder=WireRecorder(taps) if taps is not None else None,
    )
    signalled: list[int] = []

    def stopping(signum: int) -> None:
        signalled.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping, signum)
    status = 0
    try:
        try:
            await fleet.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot open a socket for the clients: {exc.strerror or exc}"
            ) from None
        fleet.sign_in()
        if args.until:
            waiter = asyncio.ensure_future(fleet.wait_for_state(args.until, timeout=args.timeout))
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if waiter in done and waiter.result():
                status = 0
            elif printer.gone or signalled:
                waiter.cancel()
            else:
                waiter.cancel()
                missing = [
                    n for n, s in fleet.states().items() if s is None or s.state != args.until
                ]
                print(
                    f"sipemu: not {args.until} after {args.timeout:g} s: "
                    f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}",
                    file=sys.stderr,
                )
                status = 1
        else:
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await fleet.stop(unregister=True)
    if printer.gone:
        return EXIT_BROKEN_PIPE
    if signalled:  # Ctrl-C or SIGTERM: 128 + the signal's number, as a shell reports it
        return 128 + signalled[0]
    return status


def _signin(args: argparse.Namespace) -> int:
    from clients.driver import ClientConfig

    user = args.user if args.user.startswith(("sip:", "sips:")) else f"sip:{args.user}"
    if "@" not in user and not args.domain:
        raise ConfigError(
            f"{args.user}: expected a SIP URI with a domain, "
            "e.g. sip:clientuser1@contoso.test (or give --domain)"
        )
    name = user.split(":", 1)[1].split("@", 1)[0]
    config = ClientConfig(name, user, args.profile, args.local_ip, args.domain, args.password)
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    return asyncio.run(
        _run_fleet([config], dns=args.dns, cache_dir=cache_dir, args=args, out=sys.stdout)
    )


def _clients_run(args: argparse.Namespace) -> int:
    from emulator.examples import resolve

    configs, dns, cache_dir = load_clients_file(resolve("clients", args.file))
    dns = args.dns or dns
    if dns is None:
        raise ConfigError(
            f'{args.file}: no DNS server: give dns = "HOST:PORT" in the file or --dns'
        )
    return asyncio.run(_run_fleet(configs, dns=dns, cache_dir=cache_dir, args=args, out=sys.stdout))


_FILE_KEYS = {"dns", "cache_dir", "client"}
_CLIENT_KEYS = {
    "name",
    "user",
    "template",
    "count",
    "start",
    "profile",
    "local_ip",
    "domain",
    "password",
}


def load_clients_file(path: Path) -> tuple[list[ClientConfig], Address | None, Path | None]:
    """Read a clients file (docs/clients.md, "Clients files"); errors are sentences."""
    from clients.driver import ClientConfig

    # Size, kind of file, nesting, nan/inf and huge numbers: the checks of every user file.
    text = read_text(path, "clients", ClientsFileError)
    data = parse_toml(text, str(path), ClientsFileError)
    ctx = TomlContext(str(path), text, error=ClientsFileError)
    ctx.unknown(data, _FILE_KEYS, None, None)
    dns: Address | None = None
    if "dns" in data:
        try:
            dns = _address(ctx.string(data, "dns", None, None))
        except argparse.ArgumentTypeError as exc:
            ctx.fail(None, None, "dns", str(exc).removeprefix("expected "))
    cache_dir = None
    if "cache_dir" in data:
        cache_dir = path.parent / ctx.string(data, "cache_dir", None, None)
    configs: list[ClientConfig] = []
    names: set[str] = set()
    for i, table in enumerate(ctx.tables(data, "client")):
        ctx.unknown(table, _CLIENT_KEYS, "client", i)
        profile = ctx.string(
            table, "profile", "client", i, default="lync2010", choices=sorted(PROFILES)
        )
        local_ip = ctx.string(table, "local_ip", "client", i, default="127.0.0.1")
        domain = table.get("domain")
        password = (
            ctx.string(table, "password", "client", i) if "password" in table else None
        )  # one password for the client (or every client of a template)
        if "template" in table:
            template = ctx.string(table, "template", "client", i)
            count = ctx.integer(table, "count", "client", i, low=1, high=100_000)
            start = ctx.integer(table, "start", "client", i, default=1, low=0)
            try:
                users = [template.format(n=n) for n in range(start, start + count)]
            except (KeyError, IndexError, ValueError) as exc:
                ctx.fail("client", i, "template", f"a format with only {{n}} ({exc})")
        else:
            users = [ctx.string(table, "user", "client", i, required=True)]
        for user in users:
            uri = user if user.startswith(("sip:", "sips:")) else f"sip:{user}"
            if len(users) == 1 and "name" in table:
                name = ctx.string(table, "name", "client", i)
            else:
                name = uri.split(":", 1)[1].split("@", 1)[0]
            if name in names:
                ctx.fail("client", i, "name", f"unique client names ({name!r} is used twice)")
            names.add(name)
            configs.append(ClientConfig(name, uri, profile, local_ip, domain, password))
    if not configs:
        ctx.fail(None, None, "client", "at least one [[client]] table")
    return configs, dns, cache_dir


# -- cache -----------------------------------------------------------------------------------


def _cache_show(args: argparse.Namespace) -> int:
    store = FileCacheStore(args.cache_dir)
    entries = [store.load(args.user)] if args.user else store.entries()
    found = [e for e in entries if e is not None]
    if not found:
        print(
            f"no endpoint cache entries in {args.cache_dir}"
            + (f" for {args.user}" if args.user else "")
        )
        return 0 if not args.user else 1
    for entry in found:
        where = f" ({entry.address})" if entry.address else ""
        print(
            f"{entry.user}: {entry.home_server}:{entry.port} {entry.transport.upper()}{where}"
            f"  [{store.path_for(entry.user)}]"
        )
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    FileCacheStore(args.cache_dir).clear(_uri(args.user))
    print(f"cleared the endpoint cache of {_uri(args.user)}")
    return 0


def _cache_seed(args: argparse.Namespace) -> int:
    store = FileCacheStore(args.cache_dir)
    try:
        entry = CacheEntry(
            _uri(args.user), args.server, args.port, args.transport, 0.0, args.address
        )
    except ValueError as exc:
        raise CacheError(str(exc)) from None
    store.save(entry)
    print(f"seeded {store.path_for(entry.user)}")
    return 0


def _uri(user: str) -> str:
    return user if user.startswith(("sip:", "sips:")) else f"sip:{user}"
