"""Expectations about what went on the wire, what the registrars hold, and what a client knows
(issue 19, items 3, 4, 6 and 8; docs/scenarios.md, "Facts").

A scenario's ``[[expect]]`` table is a *fact* when it names one of :data:`FACT_KEYS`:

* ``message``: SIP requests or responses between two hosts, with a method, a status, a header
  value or a body (judged from the run's packets, emulator/wire: the same bytes a capture
  holds, not a side channel in the cores);
* ``pool`` with ``bindings``, ``bound``, ``monitor`` (with ``peer``) or ``pool_event`` (with
  ``peer``): a pool's bindings, the state in which a backup's monitor sees a peer, and the
  moments it failed over, started failback, failed back (judged from the pools' events);
* ``client`` with ``primary``, ``backup``, ``first_target`` or ``cached``: the primary and
  backup registrar it learned (its state changes), the first registrar it sent a REGISTER to
  (its packets), its endpoint cache entry (read at the moment named).

Rules of this file:

* Parsing (:func:`parse_fact`, :func:`check_facts`) raises the scenario's error with the
  file, the line, the key, the bad value and what is expected.
* A :class:`FactRecorder` is fed by the driver (the simulator or the realtime run) with
  packets, pool events, steps and samples, each on the scenario's clock; judging
  (:func:`judge`) reads only the recorder.  Nothing here knows sockets or clocks.
* A state fact (bindings, bound, monitor, primary, backup) is piecewise constant between the
  events that change it, and takes the time forms of a client's state (at, by, always,
  never).  An occurrence (a message, a pool event, a first target) takes ``by`` (it happened
  at or before) and ``never`` (it did not happen in the window).  ``cached`` is read at one
  moment and takes ``at`` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from emulator.config import MAX_SECONDS, TomlContext, number_text
from emulator.registrar import events as ev
from emulator.sip.errors import SipError
from emulator.sip.framing import PING, PONG
from emulator.sip.message import Request, parse_message
from emulator.wire import Packet

if TYPE_CHECKING:
    from emulator.scenario.model import Expectation, Scenario
    from emulator.scenario.runner import ExpectationResult
    from emulator.sim.deployment import ClientSpec
    from emulator.topology import Topology

__all__ = [
    "FACT_KEYS",
    "MONITOR_STATES",
    "OCCURRENCES",
    "POOL_EVENTS",
    "Fact",
    "FactRecorder",
    "check_facts",
    "invariant_window",
    "is_fact",
    "judge",
    "parse_fact",
]

MONITOR_STATES = ("up", "heartbeat-lost", "failed-over", "recovering")
"""A backup's view of its primary (emulator/registrar/monitor.py, PeerState)."""

POOL_EVENTS: dict[str, type] = {
    "heartbeat-lost": ev.PeerHeartbeatLost,
    "failed-over": ev.FailedOver,
    "heartbeat-restored": ev.PeerHeartbeatRestored,
    "failback-started": ev.FailbackStarted,
    "failed-back": ev.FailedBack,
}
"""``pool_event`` names and the pool events they match."""

OCCURRENCES = frozenset({"message", "pool-event", "first-target"})
"""Facts that are things happening (``by``: it happened; ``never``: it did not), not states."""

FACT_KEYS = frozenset(
    {
        "message",
        "pool",
        "primary",
        "backup",
        "first_target",
        "cached",
    }
)
"""A ``[[expect]]`` table naming one of these is a fact (parsed here, judged here)."""

_TIME_KEYS = ("at", "by", "always", "never")
_MESSAGE_KEYS = {"message", "sender", "receiver", "method", "status", "header", "contains", "body"}
_POOL_KEYS = {"pool", "bindings", "bound", "monitor", "peer", "pool_event"}
_CLIENT_KEYS = {"client", "primary", "backup", "first_target", "since", "cached"}
V = TypeVar("V")
_NONE = "none"
"""What ``primary``, ``backup`` and ``cached`` say for "knows none" / "empty"."""


@dataclass(frozen=True, slots=True)
class Fact:
    """What a fact expectation looks at (``what``) and the values it expects."""

    what: str
    """message | bindings | bound | monitor | pool-event | knows | first-target | cached."""
    subject: str = ""
    """The pool (registrar facts) or the client (client facts)."""
    peer: str | None = None
    count: int | None = None
    value: str | None = None
    """bound: the AOR; monitor: the state; pool-event: the event; first-target, cached: the
    pool (or "none")."""
    primary: str | None = None
    backup: str | None = None
    since: float = 0.0
    message: str = ""
    """request | response (message facts)."""
    sender: str | None = None
    receiver: str | None = None
    method: str | None = None
    status: int | None = None
    header: str | None = None
    contains: str | None = None
    body: str | None = None

    def describe(self) -> str:
        if self.what == "message":
            parts = [self.message]
            if self.method:
                parts.append(self.method)
            if self.status is not None:
                parts.append(str(self.status))
            if self.sender:
                parts.append(f"from {self.sender}")
            if self.receiver:
                parts.append(f"to {self.receiver}")
            if self.header:
                has = f" containing {self.contains!r}" if self.contains else ""
                parts.append(f"with {self.header}{has}")
            if self.body:
                parts.append(f"with body containing {self.body!r}")
            return " ".join(parts)
        if self.what == "bindings":
            return f"{self.subject} bindings={self.count}"
        if self.what == "bound":
            return f"{self.subject} bound={self.value}"
        if self.what == "monitor":
            return f"{self.subject} monitor of {self.peer}={self.value}"
        if self.what == "pool-event":
            return f"{self.subject} {self.value} {self.peer}"
        if self.what == "knows":
            shown = [
                f"{k}={v}" for k, v in (("primary", self.primary), ("backup", self.backup)) if v
            ]
            return f"{self.subject} {', '.join(shown)}"
        if self.what == "first-target":
            since = f" (since {self.since:g})" if self.since else ""
            return f"{self.subject} first_target={self.value}{since}"
        return f"{self.subject} cached={self.value}"


def is_fact(table: Mapping[str, Any]) -> bool:
    return any(key in table for key in FACT_KEYS)


# -- parsing -------------------------------------------------------------------------------


def _bad(ctx: TomlContext, index: int, key: str, expected: str, value: object) -> None:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    ctx.fail("expect", index, key, f"{expected}, not {shown}")


def _text(ctx: TomlContext, index: int, table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        _bad(ctx, index, key, "a non-empty string", value)
    return str(value)


def _host(value: str | None, clients: Collection[str] = ()) -> str | None:
    """A pool FQDN as the topology writes it (lower case, no final dot); a client's name, or
    a word such as ``none``, as given."""
    if value is None or value in clients or "." not in value:
        return value
    return value.lower().rstrip(".")


def _time_form(
    ctx: TomlContext, index: int, table: Mapping[str, Any], allowed: Sequence[str], what: str
) -> tuple[str, float, float]:
    kinds = [k for k in _TIME_KEYS if k in table]
    if len(kinds) != 1 or kinds[0] not in allowed:
        forms = ", ".join(allowed)
        key = kinds[0] if kinds else allowed[0]
        given = f"{', '.join(kinds)} given" if kinds else "none given"
        ctx.fail("expect", index, key, f"exactly one of {forms} for {what} ({given})")
    kind = kinds[0]
    value = table[kind]
    if kind in ("at", "by"):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0 <= value <= MAX_SECONDS
        ):
            _bad(
                ctx, index, kind, f"a number of seconds from 0 to {number_text(MAX_SECONDS)}", value
            )
        moment = float(value)
        return kind, (moment if kind == "at" else 0.0), moment
    if kind == "never" and value is True:
        return kind, 0.0, math.inf
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1] <= MAX_SECONDS
    ):
        return kind, float(value[0]), float(value[1])
    shape = f"[start, end] with 0 <= start <= end <= {number_text(MAX_SECONDS)}"
    _bad(ctx, index, kind, shape + (" or true" if kind == "never" else ""), value)
    raise AssertionError("unreachable")


def parse_fact(
    ctx: TomlContext, index: int, table: Mapping[str, Any], clients: set[str]
) -> Expectation:
    """The ``index``-th ``[[expect]]`` table, a fact (:func:`is_fact`).  Pool and host names
    are checked against the topology later (:func:`check_facts`)."""
    from emulator.scenario.model import Expectation

    note = str(table.get("note", ""))
    if "message" in table:
        ctx.unknown(table, {*_MESSAGE_KEYS, "note", *_TIME_KEYS}, "expect", index)
        fact = _message(ctx, index, table, clients)
        kind, start, end = _time_form(ctx, index, table, ("by", "never"), "a message")
        line = ctx.line_of("expect", index, "message")
    elif "pool" in table:
        ctx.unknown(table, {*_POOL_KEYS, "note", *_TIME_KEYS}, "expect", index)
        fact = _pool(ctx, index, table)
        events = fact.what == "pool-event"
        kind, start, end = _time_form(
            ctx, index, table, ("by", "never") if events else _TIME_KEYS, fact.what
        )
        line = ctx.line_of("expect", index, "pool")
    else:
        ctx.unknown(table, {*_CLIENT_KEYS, "note", *_TIME_KEYS}, "expect", index)
        fact = _client_fact(ctx, index, table, clients)
        forms: tuple[str, ...] = _TIME_KEYS
        if fact.what == "first-target":
            forms = ("by",)
        elif fact.what == "cached":
            forms = ("at",)
        kind, start, end = _time_form(ctx, index, table, forms, fact.what)
        line = ctx.line_of("expect", index, "client")
    if fact.what == "first-target" and fact.since > end:
        _bad(ctx, index, "since", f"a time at or before by ({end:g})", table.get("since"))
    return Expectation(fact.subject, kind, start, end, line=line, note=note, fact=fact)


def _message(ctx: TomlContext, index: int, table: Mapping[str, Any], clients: set[str]) -> Fact:
    message = table["message"]
    if message not in ("request", "response"):
        _bad(ctx, index, "message", '"request" or "response"', message)
    method = _text(ctx, index, table, "method")
    if method is not None:
        method = method.upper() if method.lower() != "keep-alive" else "keep-alive"
    status = table.get("status")
    if status is not None:
        if message != "response":
            _bad(ctx, index, "status", 'nothing here: status is for message = "response"', status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 699:
            _bad(ctx, index, "status", "a SIP status code from 100 to 699", status)
    if method == "keep-alive" and message != "request":
        _bad(
            ctx, index, "method", 'a SIP method (keep-alive pings are message = "request")', method
        )
    header = _text(ctx, index, table, "header")
    contains = _text(ctx, index, table, "contains")
    if contains is not None and header is None:
        ctx.fail("expect", index, "contains", "a header = NAME beside it (contains looks in it)")
    return Fact(
        "message",
        message=message,
        sender=_host(_text(ctx, index, table, "sender"), clients),
        receiver=_host(_text(ctx, index, table, "receiver"), clients),
        method=method,
        status=status,
        header=header,
        contains=contains,
        body=_text(ctx, index, table, "body"),
    )


def _pool(ctx: TomlContext, index: int, table: Mapping[str, Any]) -> Fact:
    pool = _host(_text(ctx, index, table, "pool")) or ""
    given = [k for k in ("bindings", "bound", "monitor", "pool_event") if k in table]
    if len(given) != 1:
        ctx.fail(
            "expect",
            index,
            given[1] if len(given) > 1 else "pool",
            "exactly one of bindings, bound, monitor, pool_event beside pool "
            f"({', '.join(given) or 'none'} given)",
        )
    what = given[0]
    peer = _host(_text(ctx, index, table, "peer"))
    if what in ("monitor", "pool_event") and peer is None:
        ctx.fail("expect", index, "peer", f"the FQDN of the pool whose {what} this is (required)")
    if what in ("bindings", "bound") and peer is not None:
        _bad(ctx, index, "peer", "nothing here: peer goes with monitor or pool_event", peer)
    value = table[what]
    if what == "bindings":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 2**31:
            _bad(ctx, index, "bindings", "a number of bindings from 0 to 2147483648", value)
        return Fact("bindings", pool, count=value)
    if what == "bound":
        text = _text(ctx, index, table, "bound")
        return Fact("bound", pool, value=text)
    if what == "monitor":
        if value not in MONITOR_STATES:
            _bad(ctx, index, "monitor", f"one of {', '.join(MONITOR_STATES)}", value)
        return Fact("monitor", pool, peer=peer, value=value)
    if value not in POOL_EVENTS:
        _bad(ctx, index, "pool_event", f"one of {', '.join(POOL_EVENTS)}", value)
    return Fact("pool-event", pool, peer=peer, value=value)


def _client_fact(ctx: TomlContext, index: int, table: Mapping[str, Any], clients: set[str]) -> Fact:
    client = table.get("client")
    if not isinstance(client, str) or client not in clients:
        shown = ", ".join(sorted(clients)[:10]) or "none defined"
        _bad(ctx, index, "client", f"the name of a [[client]] ({shown})", client)
    given = [k for k in ("first_target", "cached") if k in table]
    knows = [k for k in ("primary", "backup") if k in table]
    if len(given) + (1 if knows else 0) != 1:
        ctx.fail(
            "expect",
            index,
            (given + knows)[-1],
            "one of primary/backup, first_target, cached (they are judged differently)",
        )
    if "since" in table and given != ["first_target"]:
        _bad(ctx, index, "since", "nothing here: since goes with first_target", table["since"])
    if knows:
        return Fact(
            "knows",
            str(client),
            primary=_host(_text(ctx, index, table, "primary")),
            backup=_host(_text(ctx, index, table, "backup")),
        )
    key = given[0]
    value = _host(_text(ctx, index, table, key))
    since = 0.0
    if "since" in table:
        raw = table["since"]
        if not isinstance(raw, int | float) or isinstance(raw, bool) or not 0 <= raw <= MAX_SECONDS:
            _bad(ctx, index, "since", f"a time from 0 to {number_text(MAX_SECONDS)}", raw)
        since = float(raw)
    return Fact(key.replace("_", "-"), str(client), value=value, since=since)


def invariant_window(ctx: TomlContext, index: int, table: Mapping[str, Any]) -> tuple[float, float]:
    """``from`` and ``until`` of an invariant expectation (default: the whole run)."""
    bounds = []
    for key, default in (("from", 0.0), ("until", math.inf)):
        value = table.get(key, default)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0 <= value <= (MAX_SECONDS if key == "from" or value != math.inf else math.inf)
        ):
            _bad(ctx, index, key, f"a time from 0 to {number_text(MAX_SECONDS)}", value)
        bounds.append(float(value))
    start, end = bounds
    if start > end:
        _bad(ctx, index, "until", f"a time at or after from ({start:g})", table.get("until"))
    return start, end


def check_facts(
    ctx: TomlContext,
    expects: Sequence[Expectation],
    topology: Topology,
    clients: Sequence[ClientSpec],
    *,
    first: int = 0,
) -> None:
    """Pools, peers and hosts named by facts exist in the topology (or are clients)."""
    pools = {p.fqdn for p in topology.pools}
    names = {c.name for c in clients}
    users = {c.user for c in clients} | set(topology.users)
    listed = ", ".join(sorted(pools))
    for i, e in enumerate(expects):
        fact = e.fact
        if fact is None:
            continue
        index = first + i
        checks: list[tuple[str, str | None, set[str], str]] = []
        if fact.what in ("bindings", "bound", "monitor", "pool-event"):
            checks.append(("pool", fact.subject, pools, f"a pool FQDN of the topology ({listed})"))
        if fact.peer is not None:
            checks.append(("peer", fact.peer, pools, f"a pool FQDN of the topology ({listed})"))
        if fact.what == "message":
            hosts = pools | names  # DNS messages are not SIP: no fact names the DNS server
            expected = f"a pool FQDN ({listed}) or a client name"
            checks.append(("sender", fact.sender, hosts, expected))
            checks.append(("receiver", fact.receiver, hosts, expected))
        if fact.what == "knows":
            choice = pools | {_NONE}
            expected = f"a pool FQDN ({listed}) or none"
            checks.append(("primary", fact.primary, choice, expected))
            checks.append(("backup", fact.backup, choice, expected))
        if fact.what in ("first-target", "cached"):
            key = fact.what.replace("-", "_")
            checks.append((key, fact.value, pools | {_NONE}, f"a pool FQDN ({listed}) or none"))
        if fact.what == "bound":
            aor = fact.value or ""
            if aor not in names and _aor(aor) not in users:
                ctx.fail(
                    "expect",
                    index,
                    "bound",
                    f"a client name or a user of the topology, not {aor[:80]!r}",
                )
        for key, value, allowed, expected in checks:
            if value is not None and value not in allowed:
                ctx.fail("expect", index, key, f"{expected}, not {value[:80]!r}")
        if fact.what == "monitor" or fact.what == "pool-event":
            backup = topology.pool(fact.peer or "").backup if fact.peer in pools else None
            if backup != fact.subject:
                ctx.fail(
                    "expect",
                    index,
                    "peer",
                    f"a pool that {fact.subject} backs up (only a backup watches a peer), "
                    f"not {fact.peer!r}",
                )


def _aor(text: str) -> str:
    return text if text.startswith("sip:") else f"sip:{text}"


# -- recording -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Message:
    time: float
    src: str
    dst: str
    request: bool
    method: str
    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: str


class FactRecorder:
    """What the facts of a run are judged on, fed by its driver on the scenario's clock.

    ``packet`` is a :class:`~emulator.wire.Tap` method (``time_of`` maps a packet's time to
    the scenario's clock: the identity in a simulation, :func:`scenario_time` live)."""

    def __init__(
        self,
        scenario: Scenario,
        client_addresses: Mapping[str, str],
        *,
        time_of: Callable[[float], float] = float,
    ) -> None:
        topology = scenario.topology
        self.time_of = time_of
        self.host_of: dict[str, str] = {a: n for n, a in client_addresses.items()}
        for pool in topology.pools:
            self.host_of.setdefault(pool.address, pool.fqdn)
        self.host_of.setdefault(topology.dns.address, "dns")
        self.pools = {p.fqdn for p in topology.pools}
        self.users = {c.name: c.user for c in scenario.clients}
        self.messages: list[_Message] = []
        self.pool_events: list[tuple[float, str, object]] = []
        """(time, pool, event) in order."""
        self.restarts: list[tuple[float, str]] = []
        """(time, pool) a pool lost its in-memory bindings (stopped)."""
        self._senders: dict[str, list[_Message]] = {}
        self._indexed = 0
        self.samples: dict[int, str] = {}
        """Expectation id -> what was read at its moment (cached)."""
        self.wants_packets = any(
            e.fact is not None and e.fact.what in ("message", "first-target")
            for e in scenario.expectations
        )

    # a Tap
    def packet(self, packet: Packet) -> None:
        if packet.protocol != "sip" or packet.data in (PING, PONG):
            if packet.data == PING:
                self.messages.append(
                    _Message(
                        self.time_of(packet.time),
                        self.host_of.get(packet.src[0], packet.src[0]),
                        self.host_of.get(packet.dst[0], packet.dst[0]),
                        True,
                        "keep-alive",
                        None,
                        (),
                        "",
                    )
                )
            return
        try:
            message = parse_message(packet.data, stream=packet.transport != "udp")
        except SipError:
            return
        is_request = isinstance(message, Request)
        self.messages.append(
            _Message(
                self.time_of(packet.time),
                self.host_of.get(packet.src[0], packet.src[0]),
                self.host_of.get(packet.dst[0], packet.dst[0]),
                is_request,
                message.method if isinstance(message, Request) else message.cseq[1],
                None if isinstance(message, Request) else message.status,
                tuple((name.lower(), value) for name, value in message.headers),
                message.body.decode("utf-8", "replace"),
            )
        )

    def close(self) -> None:
        pass

    def sent_by(self, sender: str | None) -> list[_Message]:
        """The messages ``sender`` sent (every message for None), in order: facts about one
        client's messages each read its own (a scenario may have one per client)."""
        if sender is None:
            return self.messages
        if self._indexed < len(self.messages):
            for m in self.messages[self._indexed :]:
                self._senders.setdefault(m.src, []).append(m)
            self._indexed = len(self.messages)
        return self._senders.get(sender, [])

    def pool_event(self, now: float, pool: str, event: object) -> None:
        if isinstance(event, _RECORDED):
            self.pool_events.append((now, pool, event))

    def pool_stopped(self, now: float, pool: str) -> None:
        self.restarts.append((now, pool))

    def sample(self, expectation: Expectation, value: str) -> None:
        self.samples[id(expectation)] = value


_RECORDED = (
    ev.BindingAdded,
    ev.BindingRefreshed,
    ev.BindingReplaced,
    ev.BindingRemoved,
    ev.BindingExpired,
    *POOL_EVENTS.values(),
)


def cached_value(entry: object) -> str:
    """What ``cached`` compares: the home server of a cache entry, or none."""
    home = getattr(entry, "home_server", None)
    return str(home).lower().rstrip(".") if home else _NONE


# -- judging -------------------------------------------------------------------------------


def judge(
    e: Expectation,
    recorder: FactRecorder,
    timeline: Sequence[Any],
) -> ExpectationResult:
    """The verdict on fact ``e`` (``timeline``: the client's state changes, for ``knows``)."""
    from emulator.scenario.runner import ExpectationResult

    fact = e.fact
    assert fact is not None
    if fact.what == "message":
        times = [m.time for m in recorder.sent_by(fact.sender) if _matches(fact, m)]
        return _occurrences(e, times, "such message")
    if fact.what == "pool-event":
        kind = POOL_EVENTS[fact.value or ""]
        times = [
            t
            for t, pool, event in recorder.pool_events
            if pool == fact.subject
            and isinstance(event, kind)
            and getattr(event, "peer", None) == fact.peer
        ]
        return _occurrences(e, times, f"{fact.value}")
    if fact.what == "first-target":
        first = next(
            (
                m
                for m in recorder.sent_by(fact.subject)
                if m.request and m.method == "REGISTER" and m.time >= fact.since and m.time <= e.end
            ),
            None,
        )
        if first is None:
            found = _NONE
            detail = f"sent no REGISTER in [{fact.since:g}, {e.end:g}]"
        else:
            found = first.dst
            detail = f"first REGISTER went to {first.dst} at {first.time:.3f}"
        return ExpectationResult(e, found == fact.value, detail)
    if fact.what == "cached":
        seen = recorder.samples.get(id(e))
        if seen is None:
            return ExpectationResult(e, False, "the cache was not read (the run ended first)")
        return ExpectationResult(e, seen == fact.value, f"the cache held {seen} at {e.start:g}")
    if fact.what == "knows":
        return _judge_knows(e, fact, timeline)
    if fact.what == "monitor":
        monitor = _monitor_series(recorder, fact.subject, fact.peer or "")
        return _states(e, monitor, "up", lambda v: v == fact.value, lambda v: f"{fact.peer} {v}")
    return _judge_bindings(e, fact, recorder)


def _judge_knows(e: Expectation, fact: Fact, timeline: Sequence[Any]) -> ExpectationResult:
    Known = tuple[str | None, str | None]
    series: list[tuple[float, Known]] = [(c.now, (c.primary, c.backup)) for c in timeline]

    def holds(v: Known) -> bool:
        primary, backup = v
        return (fact.primary is None or (primary or _NONE) == fact.primary) and (
            fact.backup is None or (backup or _NONE) == fact.backup
        )

    def show(v: Known) -> str:
        return f"primary {v[0] or _NONE}, backup {v[1] or _NONE}"

    return _states(e, series, (None, None), holds, show)


def _judge_bindings(e: Expectation, fact: Fact, recorder: FactRecorder) -> ExpectationResult:
    series = _binding_series(recorder, fact.subject)
    aor = _aor(recorder.users.get(fact.value or "", fact.value or ""))

    def holds(held: frozenset[tuple[str, str]]) -> bool:
        if fact.what == "bindings":
            return len(held) == fact.count
        return any(a == aor for a, _ in held)

    def show(held: frozenset[tuple[str, str]]) -> str:
        users = sorted({a for a, _ in held})
        more = f" and {len(users) - 5} more" if len(users) > 5 else ""
        listed = ", ".join(users[:5]) + more
        return f"{len(held)} binding(s)" + (f" ({listed})" if users else "")

    return _states(e, series, frozenset(), holds, show)


def _matches(fact: Fact, m: _Message) -> bool:
    if m.request != (fact.message == "request"):
        return False
    if fact.method is not None and m.method != fact.method:
        return False
    if fact.method is None and m.method == "keep-alive":
        return False
    if fact.status is not None and m.status != fact.status:
        return False
    if fact.sender is not None and m.src != fact.sender:
        return False
    if fact.receiver is not None and m.dst != fact.receiver:
        return False
    if fact.header is not None:
        key = fact.header.lower()
        values = [v for k, v in m.headers if k == key]
        if not values:
            return False
        if fact.contains is not None:
            needle = fact.contains.lower()
            if not any(needle in v.lower() for v in values):
                return False
    return fact.body is None or fact.body.lower() in m.body.lower()


def _monitor_series(recorder: FactRecorder, pool: str, peer: str) -> list[tuple[float, str]]:
    """A backup's view of ``peer`` from its events: lost -> heartbeat-lost; failed over ->
    failed-over; restored -> up, or recovering when failed over; failed back -> up."""
    state = "up"
    series: list[tuple[float, str]] = []
    for t, name, event in recorder.pool_events:
        if name != pool or getattr(event, "peer", None) != peer:
            continue
        if isinstance(event, ev.PeerHeartbeatLost):
            state = "heartbeat-lost"
        elif isinstance(event, ev.FailedOver):
            state = "failed-over"
        elif isinstance(event, ev.PeerHeartbeatRestored):
            state = "recovering" if state in ("failed-over", "recovering") else "up"
        elif isinstance(event, ev.FailedBack):
            state = "up"
        else:
            continue
        series.append((t, state))
    for t, name in recorder.restarts:  # a restarted pool's monitor starts up (monitor.py)
        if name == pool:
            series.append((t, "up"))
    series.sort(key=lambda item: item[0])
    return series


def _binding_series(
    recorder: FactRecorder, pool: str
) -> list[tuple[float, frozenset[tuple[str, str]]]]:
    held: set[tuple[str, str]] = set()
    series: list[tuple[float, frozenset[tuple[str, str]]]] = []
    changes: list[tuple[float, int, object]] = [
        (t, 0, event) for t, name, event in recorder.pool_events if name == pool
    ]
    changes += [(t, 1, None) for t, name in recorder.restarts if name == pool]
    changes.sort(key=lambda item: (item[0], item[1]))
    for t, _, event in changes:
        if event is None:
            held.clear()
        elif isinstance(event, ev.BindingAdded | ev.BindingRefreshed):
            held.add((event.aor, event.contact))
        elif isinstance(event, ev.BindingReplaced):
            held.discard((event.aor, event.previous_contact))
            held.add((event.aor, event.contact))
        elif isinstance(event, ev.BindingRemoved | ev.BindingExpired):
            held.discard((event.aor, event.contact))
        else:
            continue
        series.append((t, frozenset(held)))
    return series


def _occurrences(e: Expectation, times: Sequence[float], what: str) -> ExpectationResult:
    from emulator.scenario.runner import ExpectationResult

    inside = [t for t in times if e.start <= t <= e.end]
    if e.kind == "by":
        if not inside:
            later = [t for t in times if t > e.end]
            after = f" (first at {later[0]:.3f})" if later else ""
            return ExpectationResult(e, False, f"no {what} by {e.end:g}{after}")
        return ExpectationResult(e, True, f"first at {inside[0]:.3f} ({len(inside)} by {e.end:g})")
    end = "the end" if math.isinf(e.end) else f"{e.end:g}"
    if inside:
        more = f" ({len(inside)} in all)" if len(inside) > 1 else ""
        return ExpectationResult(e, False, f"happened at {inside[0]:.3f}{more}")
    return ExpectationResult(e, True, f"none from {e.start:g} to {end}")


def _states(
    e: Expectation,
    series: Sequence[tuple[float, V]],
    initial: V,
    holds: Callable[[V], bool],
    show: Callable[[V], str],
) -> ExpectationResult:
    """``e``'s time form over a piecewise-constant series (as runner.check for clients)."""
    from emulator.scenario.runner import ExpectationResult

    def at(t: float) -> tuple[float, V]:
        current: tuple[float, V] = (0.0, initial)
        for item in series:
            if item[0] > t:
                break
            current = item
        return current

    if e.kind == "at":
        since, value = at(e.start)
        return ExpectationResult(e, holds(value), f"was {show(value)} since {since:.3f}")
    if e.kind == "by":
        since, value = at(e.end)
        if not holds(value):
            return ExpectationResult(e, False, f"at {e.end:g} it was {show(value)}")
        for t, v in reversed([item for item in series if item[0] <= e.end]):
            if not holds(v):
                break
            since = t
        else:
            since = 0.0 if holds(initial) else since
        return ExpectationResult(e, True, f"reached at {since:.3f}")
    first = at(e.start)
    inside = [first, *(item for item in series if e.start < item[0] <= e.end)]
    if e.kind == "always":
        for t, value in inside:
            if not holds(value):
                return ExpectationResult(
                    e, False, f"broken at {max(t, e.start):.3f}: {show(value)}"
                )
        return ExpectationResult(e, True, f"held through {len(inside) - 1} change(s)")
    for t, value in inside:
        if holds(value):
            return ExpectationResult(e, False, f"happened at {max(t, e.start):.3f}: {show(value)}")
    end = "the end" if math.isinf(e.end) else f"{e.end:g}"
    return ExpectationResult(e, True, f"did not happen up to {end}")
