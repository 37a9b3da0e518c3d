"""``sipemu ctl``: the control API of a running ``sipemu up``, from a shell.

Plain HTTP/JSON with the standard library (``urllib``): anything ``ctl`` does, ``curl`` can do
(docs/live.md).  Output is a table for people by default and the API's JSON with ``--json``.

Exit statuses:

- 0: done;
- 1: the deployment answered with a problem: an action refused, a pool or record it does not
  have, a bad value (the sentence is printed);
- 2: a usage mistake (unknown command, missing argument, ``KEY=VALUE`` expected);
- 3: the control API cannot be reached (nothing listens, a timeout, not a sipemu control API);
- 4: the bearer token is missing or wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from emulator.control.server import ADDRESS_ENV, DEFAULT_CONTROL, TOKEN_ENV, parse_control_address

if TYPE_CHECKING:
    from typing import TypeAlias

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "EXIT_PROBLEM",
    "EXIT_UNAUTHORIZED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CtlError",
    "register_ctl",
]

EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNAUTHORIZED = 4


class CtlError(Exception):
    """A sentence to print on stderr and the exit status that goes with it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# -- the HTTP client -----------------------------------------------------------------------------


class Client:
    """Requests to one control API; raises :class:`CtlError` with the right exit status."""

    def __init__(self, address: str, token: str, timeout: float) -> None:
        try:
            host, port = parse_control_address(address)
        except ValueError as exc:
            raise CtlError(f"--control: {exc}", EXIT_USAGE) from None
        shown = f"[{host}]" if ":" in host else host
        self.base = f"http://{shown}:{port}"
        self.address = f"{shown}:{port}"
        self.token = token
        self.timeout = timeout

    def _request(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> urllib.request.Request:
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items()})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        return request

    def _open(self, request: urllib.request.Request, timeout: float | None) -> Any:
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise self._problem(exc) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            why = getattr(reason, "strerror", None) or str(reason)
            raise CtlError(
                f"cannot reach the sipemu control API at {self.address}: {why} (is `sipemu up` "
                f"running? its first lines print the address; --control or ${ADDRESS_ENV} "
                "choose another)",
                EXIT_UNREACHABLE,
            ) from None
        except (TimeoutError, OSError) as exc:
            raise CtlError(
                f"the sipemu control API at {self.address} did not answer ({exc})",
                EXIT_UNREACHABLE,
            ) from None

    def _problem(self, exc: urllib.error.HTTPError) -> CtlError:
        try:
            body = json.loads(exc.read() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        detail = body.get("detail") if isinstance(body, dict) else None
        if exc.code == 401:
            return CtlError(str(detail or "the control API needs a token"), EXIT_UNAUTHORIZED)
        if not detail:
            return CtlError(
                f"{self.address} answered HTTP {exc.code} without a problem document: is it "
                "a sipemu control API?",
                EXIT_UNREACHABLE,
            )
        return CtlError(str(detail), EXIT_PROBLEM)

    def call(
        self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> Any:
        with self._open(self._request(method, path, body, query), self.timeout) as response:
            raw = response.read()
        try:
            return json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CtlError(
                f"{self.address} did not answer JSON: is it a sipemu control API?",
                EXIT_UNREACHABLE,
            ) from None

    def text(self, path: str) -> str:
        with self._open(self._request("GET", path), self.timeout) as response:
            return str(response.read().decode())

    def stream(self, path: str, query: dict[str, str]) -> Iterator[tuple[str, str]]:
        """(event, data) per Server-Sent Event; blocks without a timeout between events."""
        response = self._open(self._request("GET", path, query=query), None)
        with response:
            event, data = "message", list[str]()
            for raw in response:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        yield event, "\n".join(data)
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)


# -- output --------------------------------------------------------------------------------------


def table(head: Sequence[str], rows: Sequence[Sequence[object]], out: TextIO) -> None:
    cells = [[str(c) for c in head], *[["-" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _peers(peers: dict[str, str]) -> str:
    return ", ".join(f"{peer} {state}" for peer, state in peers.items()) or "-"


def _pools_table(pools: list[dict[str, Any]], out: TextIO) -> None:
    rows = [
        (
            p["fqdn"],
            p["role"],
            p["address"],
            ", ".join(f"{t.upper()} {port}" for t, port in p["ports"].items()),
            "running" if p["running"] else "stopped",
            "up" if p["nic_enabled"] else "disabled",
            p["bindings"],
            _peers(p["peers"]),
        )
        for p in pools
    ]
    table(("POOL", "ROLE", "ADDRESS", "PORTS", "STATE", "NIC", "BINDINGS", "PEERS"), rows, out)


def _records_table(records: list[dict[str, Any]], out: TextIO) -> None:
    rows = [(r["name"], r["ttl"], r["type"], r["data"]) for r in records]
    table(("NAME", "TTL", "TYPE", "DATA"), rows, out)


def _pairs(items: Sequence[str], *, typed: bool) -> dict[str, Any]:
    """``KEY=VALUE`` arguments; with ``typed``, a value that reads as JSON (a number, true)
    is that value (a scenario step's ``port=5061``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CtlError(f"{item!r}: expected KEY=VALUE (e.g. target=fe1.contoso.test)", 2)
        parsed: Any = value
        if typed:
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
            if isinstance(parsed, dict | list):
                parsed = value
        out[key] = parsed
    return out


# -- commands ------------------------------------------------------------------------------------


def _status(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    data = client.call("GET", "/status")
    if args.json:
        return data
    dns = data["dns"]
    out.write(f"topology {data['topology']} (domain {data['domain']}, profile {data['profile']})\n")
    out.write(f"seed {data['seed']}; CA certificate {data['ca_certificate']}\n")
    updates = "refused" if not dns["updates"] else "TSIG only" if dns["tsig_required"] else "any"
    faults = dns["faults"]
    broken = [f"server {faults['server']}"] if faults["server"] else []
    broken += [f"{name} {kind}" for name, kind in faults["names"].items()]
    out.write(
        f"dns {dns['address']}:{dns['port']} zones {', '.join(dns['zones'])} serial "
        f"{dns['serial']}; updates {updates}; faults {', '.join(broken) or 'none'}\n"
    )
    _pools_table(data["pools"], out)
    clients = data.get("clients") or []
    if clients:
        counts: dict[str, int] = {}
        for agent in clients:
            counts[agent["state"]] = counts.get(agent["state"], 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        out.write(f"clients: {len(clients)} ({summary})\n")
        table(("CLIENT", "STATE"), [(c["name"], c["state"]) for c in clients], out)
    return None


def _peers_cmd(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    data = client.call("GET", "/peers")
    if args.json:
        return data
    table(("POOL", "MONITORS", "STATE"), [(p["pool"], p["peer"], p["state"]) for p in data], out)
    return None


def _bindings(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    query = {}
    if args.pool:
        query["pool"] = args.pool
    if args.aor:
        query["aor"] = args.aor
    if args.resiliency:
        query["resiliency"] = "true"
    data = client.call("GET", "/bindings", query=query)
    if args.json:
        return data
    rows = [
        (
            b["pool"],
            b["aor"],
            b["contact"],
            b["transport"].upper(),
            f"{b['expires_in']:.0f}",
            "yes" if b["resiliency"] else "no",
        )
        for b in data
    ]
    table(("POOL", "AOR", "CONTACT", "TRANSPORT", "EXPIRES", "RESILIENCY"), rows, out)
    return None


_POOL_FAULTS = {
    "stop-pool": "stop",
    "start-pool": "start",
    "disable-nic": "disable-nic",
    "enable-nic": "enable-nic",
}


def _fault(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    kind = args.fault
    if kind in _POOL_FAULTS:
        pool = urllib.parse.quote(args.pool, safe="")
        data = client.call("POST", f"/pools/{pool}/{_POOL_FAULTS[kind]}")
        if args.json:
            return data
        _pools_table([data], out)
        return None
    if kind == "dns":
        body = {"kind": args.kind}
        if args.name:
            body["name"] = args.name
        data = client.call("POST", "/dns/faults", body)
    else:  # dns-clear
        query = {"name": args.name} if args.name else {}
        data = client.call("DELETE", "/dns/faults", query=query)
    if args.json:
        return data
    rows = [("(server)", data["server"])] if data["server"] else []
    rows += list(data["names"].items())
    if rows:
        table(("NAME", "FAULT"), rows, out)
    else:
        out.write("no DNS faults\n")
    return None


def _dns(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    action = args.dns_action
    if action == "list":
        query = {}
        if args.name:
            query["name"] = args.name
        if args.type:
            query["type"] = args.type
        data = client.call("GET", "/dns/records", query=query)
        if args.json:
            return data
        _records_table(data, out)
        return None
    if action == "add":
        body = {
            "name": args.name,
            "type": args.type,
            "data": " ".join(_quote(args.data)),
            "ttl": args.ttl,
        }
        data = client.call("POST", "/dns/records", body)
        if args.json:
            return data
        _records_table([data], out)
        return None
    if action == "remove":
        query = {"name": args.name}
        if args.type:
            query["type"] = args.type
        if args.data:
            query["data"] = " ".join(_quote(args.data))
        data = client.call("DELETE", "/dns/records", query=query)
        if args.json:
            return data
        out.write(f"removed {data['removed']} record(s); serial {data['serial']}\n")
        return None
    if action == "set":
        records = [{"data": d, "ttl": args.ttl} for d in args.records]
        name = urllib.parse.quote(args.name, safe="")
        data = client.call("PUT", f"/dns/records/{name}/{args.type}", {"records": records})
        if args.json:
            return data
        _records_table(data, out)
        return None
    data = client.call("GET", "/dns/updates")  # updates
    if args.json:
        return data
    if not data["accepted"]:
        out.write("RFC 2136 updates: refused\n")
    else:
        keys = ", ".join(f"{k['name']} ({k['algorithm']})" for k in data["keys"])
        out.write(f"RFC 2136 updates: {'TSIG-signed with ' + keys if keys else 'any'}\n")
    return None


def _quote(fields: Sequence[str]) -> list[str]:
    """Re-quote the character-strings of NAPTR data the shell unquoted (``""``, ``s``)."""
    if len(fields) == 6:
        return [f'"{f}"' if i in (2, 3, 4) else f for i, f in enumerate(fields)]
    return list(fields)


def _admin(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    if not args.action:
        data = client.call("GET", "/admin")
        if args.json:
            return data
        rows = [(a, " ".join(f"{k}=..." for k in keys) or "-") for a, keys in data.items()]
        table(("ACTION", "PARAMETERS"), rows, out)
        return None
    action = urllib.parse.quote(args.action, safe="")
    data = client.call("POST", f"/admin/{action}", _pairs(args.params, typed=False))
    if args.json:
        return data
    out.write(data["text"] + "\n")
    return None


def _step(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    body = {"action": args.action, **_pairs(args.params, typed=True)}
    data = client.call("POST", "/steps", body)
    if args.json:
        return data
    out.write(f"{data['step']}: {data['text']}\n")
    return None


def _events(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    query = {}
    if args.kinds:
        query["kinds"] = args.kinds
    if args.count:
        query["limit"] = str(args.count)
    for _event, data in client.stream("/events", query):
        if args.json:
            out.write(data + "\n")
        else:
            item = json.loads(data)
            out.write(f"{item['source']} {item['kind']}: {item['text']}\n")
        out.flush()
    return None


def _metrics(client: Client, args: argparse.Namespace, out: TextIO) -> Any:
    out.write(client.text("/metrics"))
    return None


# -- the parser ----------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The connection options, accepted before and after the command (``ctl status --json``)."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--control",
        metavar="ADDR:PORT",
        default=default(os.environ.get(ADDRESS_ENV) or DEFAULT_CONTROL),
        help=f"the control API (default ${ADDRESS_ENV} or {DEFAULT_CONTROL})",
    )
    parser.add_argument(
        "--token",
        default=default(os.environ.get(TOKEN_ENV, "")),
        help=f"bearer token (default ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the API's JSON"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(10.0),
        metavar="SECONDS",
        help="per request (default 10; the event stream waits forever)",
    )


def register_ctl(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "ctl",
        help="control a running `sipemu up` through its HTTP/JSON API",
        description=(
            "Status, bindings, live faults, DNS records and faults, administrative and DR "
            "actions, scenario steps and the event stream of a running `sipemu up`. Exit "
            "status: 0 done, 1 the deployment refused or lacks what was named, 2 usage, "
            "3 the API cannot be reached, 4 the token is missing or wrong."
        ),
    )
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="ctl_command", metavar="COMMAND", required=True)

    def sub(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        _common(command, suppress=True)
        command.set_defaults(ctl=handler)
        return command

    sub("status", "the deployment: DNS, then one line per pool", _status)
    sub("peers", "each backup registrar's view of the primaries it monitors", _peers_cmd)
    bindings = sub("bindings", "current registrations", _bindings)
    bindings.add_argument("pool", nargs="?", help="only this pool's")
    bindings.add_argument("--aor", help="only this user's")
    bindings.add_argument("--resiliency", action="store_true", help="only failed-over users'")

    fault = sub("fault", "live faults: pools and the fake DNS", _fault)
    faults = fault.add_subparsers(dest="fault", metavar="FAULT", required=True)
    for name, text in (
        ("stop-pool", "stop the pool (refused: sockets closed, bindings lost)"),
        ("start-pool", "start it again (a fresh core, same ports)"),
        ("disable-nic", "make the pool silent"),
        ("enable-nic", "make it heard again"),
    ):
        one = faults.add_parser(name, help=text, description=text)
        _common(one, suppress=True)
        one.add_argument("pool", help="the pool's FQDN")
    dns_fault = faults.add_parser("dns", help="break the fake DNS: servfail, timeout, nxdomain")
    _common(dns_fault, suppress=True)
    dns_fault.add_argument("kind", choices=("servfail", "timeout", "nxdomain"))
    dns_fault.add_argument("name", nargs="?", help="only this name (default: every query)")
    dns_clear = faults.add_parser("dns-clear", help="clear DNS faults (all, or one name's)")
    _common(dns_clear, suppress=True)
    dns_clear.add_argument("name", nargs="?")

    dns = sub("dns", "the fake DNS's records", _dns)
    actions = dns.add_subparsers(dest="dns_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the records served")
    _common(listing, suppress=True)
    listing.add_argument("name", nargs="?")
    listing.add_argument("--type")
    add = actions.add_parser(
        "add",
        help="serve a record: add TYPE NAME DATA..., e.g. add SRV _sip._tls.contoso.test "
        "0 0 5061 fe1.contoso.test",
    )
    _common(add, suppress=True)
    add.add_argument("type", type=str.upper, choices=("A", "AAAA", "SRV", "NAPTR"))
    add.add_argument("name")
    add.add_argument("data", nargs="+", help="the record's data, as in a zone file")
    add.add_argument("--ttl", type=int, default=300)
    remove = actions.add_parser("remove", help="stop serving NAME's records [of TYPE]")
    _common(remove, suppress=True)
    remove.add_argument("name")
    remove.add_argument("type", nargs="?", type=str.upper)
    remove.add_argument("data", nargs="*", help="only the record with this data")
    replace = actions.add_parser(
        "set", help="replace NAME's TYPE records: set TYPE NAME 'DATA' ['DATA' ...] (none: remove)"
    )
    _common(replace, suppress=True)
    replace.add_argument("type", type=str.upper, choices=("A", "AAAA", "SRV", "NAPTR"))
    replace.add_argument("name")
    replace.add_argument("records", nargs="*", help="one quoted argument per record's data")
    replace.add_argument("--ttl", type=int, default=300)
    updates = actions.add_parser("updates", help="whether RFC 2136 updates are accepted")
    _common(updates, suppress=True)

    admin = sub("admin", "administrative / DR actions (none: list them)", _admin)
    admin.add_argument("action", nargs="?", help="e.g. force-move, backend-down, chat-step")
    admin.add_argument("params", nargs="*", metavar="KEY=VALUE", help="e.g. from=fe1.contoso.test")
    step = sub("step", "one scenario step now (docs/scenarios.md), e.g. step dns-down", _step)
    step.add_argument("action")
    step.add_argument("params", nargs="*", metavar="KEY=VALUE")
    events = sub("events", "follow the event stream (what sipemu up logs)", _events)
    events.add_argument("--kinds", help="comma-separated: sip, pool, binding, dns, notice, ...")
    events.add_argument("--count", type=int, help="stop after this many events")
    sub("metrics", "the Prometheus metrics, as text", _metrics)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The handler of ``sipemu ctl``: the exit status (see the module docstring)."""
    out = out if out is not None else sys.stdout
    try:
        client = Client(args.control, args.token, args.timeout)
        data = args.ctl(client, args, out)
        if data is not None:
            out.write(json.dumps(data, indent=1) + "\n")
    except CtlError as exc:
        print(f"sipemu ctl: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:  # Ctrl-C while following events
        return 0
    return 0
