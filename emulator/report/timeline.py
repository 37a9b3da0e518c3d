"""The timeline of a run as the report draws it, from the run's own records.

* A band per client from its ``ClientStateChanged`` events (``RunResult.timeline``): signed
  out, signing in (discovering or registering), registered with full functionality,
  registered with limited functionality, and at which registrar.
* Counts of clients per state over time (the aggregate bands a run of thousands of clients
  shows instead of one band each).
* Per pool, its host's state (up, silent, stopped: the faults of the trace) and its peer
  states towards each pool it backs up (heartbeats lost and restored, failed over, failback
  started, failed back: the pool lines of the trace).
* Steps, faults, administrative and DNS changes at their moment; each expectation at its
  moment (or over its interval) with its verdict; each invariant violation.

The pool lines are read from the trace's text, which ``emulator.registrar.events.describe``
writes for the simulator and the real-time runner alike; tests/report/test_timeline.py pins
the two together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from clients.events import ClientStateChanged
from emulator.scenario.runner import RunResult
from emulator.sim.trace import TraceEntry

__all__ = [
    "CLIENT_STATES",
    "EVENT_KINDS",
    "HOST_STATES",
    "PEER_STATES",
    "aggregate",
    "client_bands",
    "client_code",
    "events",
    "expectations",
    "pool_rows",
]

CLIENT_STATES = ("signed-out", "signing-in", "registered-full", "registered-limited")
"""Band codes 0-3 (``discovering`` and ``registering`` are both *signing in*)."""

HOST_STATES = ("up", "silent", "stopped")
PEER_STATES = ("normal", "heartbeat-lost", "failed-over", "peer-back", "failing-back")
"""A pool's view of a pool it backs up: normal; heartbeats lost (counting to the failover
detection interval); failed over (serving its users); heartbeats back (counting to the
failback detection interval); sending the users home."""

EVENT_KINDS = frozenset(
    {"step", "fault", "admin", "dns-change", "chat", "action", "bad-message", "invariant"}
)
"""Trace kinds the timeline marks at their moment."""

AGGREGATE_SAMPLES = 480

_PEER_LINES = (
    (re.compile(r"^heartbeat lost: (\S+)"), "heartbeat-lost"),
    (re.compile(r"^heartbeat restored: (\S+)"), "restored"),
    (re.compile(r"^FAILED OVER: now serving the users of (\S+)"), "failed-over"),
    (re.compile(r"^failback started: sending the users of (\S+) home"), "failing-back"),
    (re.compile(r"^FAILED BACK to (\S+)"), "normal"),
)
_HOST_LINES = {
    "network interface disabled (silent)": "silent",
    "network interface enabled": "up",
    "pool stopped (connections refused)": "stopped",
    "pool started": "up",
}


def client_code(event: ClientStateChanged | None) -> int:
    """The band code (index in :data:`CLIENT_STATES`) of the state an event leads to."""
    if event is None or event.state == "signed-out":
        return 0
    if event.state != "registered":
        return 1
    return 3 if event.mode == "limited" else 2


class Strings:
    """A table of strings, each stored once; rows hold indexes into it."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, text: str | None) -> int:
        if text is None:
            return -1
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.items)
            self.items.append(text)
        return found


def client_bands(
    timeline: Mapping[str, Sequence[ClientStateChanged]], places: Strings, causes: Strings
) -> list[list[float | int]]:
    """Per client, flat ``[t, code, registrar, cause, ...]`` (indexes into ``places`` and
    ``causes``): a client is signed out from 0 until its first change; a change that leaves
    the band as it was (a refresh, a contact count) is kept only when the registrar changes."""
    bands: list[list[float | int]] = []
    for events in timeline.values():
        flat: list[float | int] = []
        last: tuple[int, int] = (0, -1)
        for event in events:
            code = client_code(event)
            place = places(event.registrar if code else None)
            if (code, place) == last:
                continue
            last = (code, place)
            flat.extend((round(event.now, 6), code, place, causes(event.cause)))
        bands.append(flat)
    return bands


def aggregate(
    timeline: Mapping[str, Sequence[ClientStateChanged]],
    end: float,
    samples: int = AGGREGATE_SAMPLES,
) -> dict[str, Any]:
    """How many clients were in each state at ``samples`` evenly spaced moments from 0 to
    ``end``: series ``signed-out``, ``signing-in``, then ``full@POOL`` and ``limited@POOL``
    per registrar, in order of first appearance."""
    changes: list[tuple[float, int, str]] = []
    for client, events in enumerate(timeline.values()):
        changes.extend((event.now, client, _series(event)) for event in events)
    changes.sort(key=lambda change: (change[0], change[1]))
    series: dict[str, int] = {"signed-out": 0, "signing-in": 1}
    for _, _, key in changes:
        series.setdefault(key, len(series))
    counts = [0] * len(series)
    counts[0] = len(timeline)
    state = [0] * len(timeline)
    times = [end * i / max(1, samples - 1) for i in range(samples)]
    values: list[list[int]] = [[] for _ in series]
    position = 0
    for t in times:
        while position < len(changes) and changes[position][0] <= t:
            _, client, key = changes[position]
            counts[state[client]] -= 1
            state[client] = series[key]
            counts[state[client]] += 1
            position += 1
        for index, count in enumerate(counts):
            values[index].append(count)
    return {"times": [round(t, 6) for t in times], "series": list(series), "values": values}


def _series(event: ClientStateChanged) -> str:
    code = client_code(event)
    if code < 2:
        return CLIENT_STATES[code]
    return f"{'full' if code == 2 else 'limited'}@{event.registrar or '?'}"


def pool_rows(trace: Sequence[TraceEntry], pools: Sequence[str]) -> list[dict[str, Any]]:
    """Per pool (and the fake DNS, ``dns``): its host state segments ``[t, code, ...]`` and,
    per peer it watches, its peer state segments, both starting at 0 in the first state."""
    hosts: dict[str, list[float | int]] = {name: [] for name in (*pools, "dns")}
    peers: dict[str, dict[str, list[float | int]]] = {name: {} for name in pools}
    peer_state: dict[tuple[str, str], str] = {}
    for entry in trace:
        if entry.kind == "fault" and entry.source in hosts:
            host_state = _HOST_LINES.get(entry.text)
            if host_state is not None:
                hosts[entry.source].extend((round(entry.now, 6), HOST_STATES.index(host_state)))
        elif entry.kind == "pool" and entry.source in peers:
            for pattern, meaning in _PEER_LINES:
                match = pattern.match(entry.text)
                if match is None:
                    continue
                peer = match.group(1)
                before = peer_state.get((entry.source, peer), "normal")
                if meaning == "restored":
                    now = "peer-back" if before in ("failed-over", "peer-back") else "normal"
                else:
                    now = meaning
                peer_state[(entry.source, peer)] = now
                segments = peers[entry.source].setdefault(peer, [])
                segments.extend((round(entry.now, 6), PEER_STATES.index(now)))
                break
    return [
        {"name": name, "host": hosts[name], "peers": peers.get(name, {})}
        for name in (*pools, "dns")
    ]


def events(trace: Sequence[TraceEntry]) -> list[list[Any]]:
    """``[t, kind, source, text]`` for each step, fault, admin or DNS change of the trace."""
    return [
        [round(entry.now, 6), entry.kind, entry.source, entry.text]
        for entry in trace
        if entry.kind in EVENT_KINDS
    ]


def expectations(result: RunResult, end: float) -> list[dict[str, Any]]:
    """Each expectation with its moment (``start`` = ``end`` for a moment, an interval for
    ``always``/``never`` and invariants) and its verdict."""
    rows: list[dict[str, Any]] = []
    for verdict in result.results:
        e = verdict.expectation
        if e.step is not None:
            start = stop = e.step.at
        elif e.invariant is not None:
            start, stop = 0.0, end
        elif e.kind == "at":
            start = stop = e.start
        elif e.kind == "by":
            start = stop = e.end
        else:
            start, stop = e.start, e.end
        rows.append(
            {
                "start": round(start, 6),
                "end": round(min(stop, end) if math.isinf(stop) else stop, 6),
                "passed": verdict.passed,
                "text": e.describe(),
                "detail": verdict.detail,
                "client": e.client,
                "line": e.line,
            }
        )
    return rows


def violations(result: RunResult) -> list[dict[str, Any]]:
    return [
        {"t": round(v.now, 6), "invariant": v.invariant, "subject": v.subject, "detail": v.detail}
        for v in result.violations
    ]
