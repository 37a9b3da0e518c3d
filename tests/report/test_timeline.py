"""The timeline's data: client bands, counts per state, pools' peer states, expectations."""

from __future__ import annotations

import math
from pathlib import Path

from clients.events import Registered, RoundReason, SignedOut, SignInStarted, SignOutReason
from emulator.registrar import events as pool_events
from emulator.report.timeline import (
    CLIENT_STATES,
    HOST_STATES,
    PEER_STATES,
    Strings,
    aggregate,
    client_bands,
    expectations,
    pool_rows,
)
from emulator.scenario.model import load_scenario
from emulator.scenario.runner import run_scenario
from emulator.sim.trace import TraceEntry

FE1, FE2 = "fe1.contoso.test", "fe2.contoso.test"
SCENARIO = Path(__file__).parent / "scenarios" / "two-clients-failover.toml"


def starting(now: float, client: str = "a") -> SignInStarted:
    return SignInStarted(
        now, client, "discovering", None, None, None, None, None, RoundReason.SIGN_IN
    )


def registered(now: float, where: str, mode: str = "full", client: str = "a") -> Registered:
    return Registered(now, client, "registered", where, mode, where, None, None, where, "cache")  # type: ignore[arg-type]


def signed_out(now: float, client: str = "a") -> SignedOut:
    return SignedOut(now, client, "signed-out", None, None, None, None, None, SignOutReason.BY_USER)


def test_a_band_holds_the_changes_of_state_and_registrar_only() -> None:
    places, causes = Strings(), Strings()
    timeline = {
        "a": [
            starting(1.0),
            registered(2.0, FE1),
            registered(300.0, FE1),  # a refresh: the band does not change
            registered(400.0, FE2, "limited"),
            signed_out(500.0),
        ]
    }
    [band] = client_bands(timeline, places, causes)
    changes = [band[i : i + 4] for i in range(0, len(band), 4)]
    assert [(t, CLIENT_STATES[code]) for t, code, _, _ in changes] == [
        (1.0, "signing-in"),
        (2.0, "registered-full"),
        (400.0, "registered-limited"),
        (500.0, "signed-out"),
    ]
    assert [places.items[p] if p >= 0 else None for _, _, p, _ in changes] == [
        None,
        FE1,
        FE2,
        None,
    ]
    assert causes.items[int(changes[1][3])] == f"200 from {FE1} (cache)"


def test_counts_per_state_add_up_to_every_client_at_every_moment() -> None:
    timeline = {
        "a": [starting(0.0, "a"), registered(1.0, FE1, client="a")],
        "b": [starting(5.0, "b"), registered(6.0, FE2, "limited", "b"), signed_out(9.0, "b")],
        "c": [],
    }
    counts = aggregate(timeline, 10.0, samples=11)
    assert counts["times"] == [float(t) for t in range(11)]
    assert counts["series"] == [
        "signed-out",
        "signing-in",
        f"full@{FE1}",
        f"limited@{FE2}",
    ]
    values = dict(zip(counts["series"], counts["values"], strict=True))
    assert values["signed-out"] == [2, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2]
    assert values["signing-in"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert values[f"full@{FE1}"] == [0] + [1] * 10
    assert values[f"limited@{FE2}"] == [0] * 6 + [1, 1, 1, 0, 0]
    for i in range(11):
        assert sum(v[i] for v in counts["values"]) == 3


def test_pool_rows_read_what_the_pool_events_say() -> None:
    # The trace's pool lines are emulator.registrar.events.describe(): pinned here.
    said = [
        pool_events.PeerHeartbeatLost(10.0, FE1, FE2, 5.0),
        pool_events.FailedOver(40.0, FE1, FE2),
        pool_events.PeerHeartbeatRestored(100.0, FE1, FE2),
        pool_events.FailbackStarted(140.0, FE1, FE2),
        pool_events.FailedBack(141.0, FE1, FE2),
        pool_events.PeerHeartbeatLost(200.0, FE1, FE2, 195.0),
        pool_events.PeerHeartbeatRestored(205.0, FE1, FE2),
    ]
    trace = [TraceEntry(e.now, FE1, *pool_events.describe(e)) for e in said]
    trace += [
        TraceEntry(9.0, FE2, "fault", "network interface disabled (silent)"),
        TraceEntry(99.0, FE2, "fault", "network interface enabled"),
        TraceEntry(150.0, "dns", "fault", "network interface disabled (silent)"),
        TraceEntry(160.0, FE2, "fault", "pool stopped (connections refused)"),
        TraceEntry(170.0, FE2, "fault", "pool started"),
    ]
    trace.sort(key=lambda e: e.now)
    rows = {row["name"]: row for row in pool_rows(trace, [FE1, FE2])}
    assert list(rows) == [FE1, FE2, "dns"]
    peer = rows[FE1]["peers"][FE2]
    assert [(peer[i], PEER_STATES[peer[i + 1]]) for i in range(0, len(peer), 2)] == [
        (10.0, "heartbeat-lost"),
        (40.0, "failed-over"),
        (100.0, "peer-back"),
        (140.0, "failing-back"),
        (141.0, "normal"),
        (200.0, "heartbeat-lost"),
        (205.0, "normal"),  # restored before failing over: back to normal
    ]
    host = rows[FE2]["host"]
    assert [(host[i], HOST_STATES[host[i + 1]]) for i in range(0, len(host), 2)] == [
        (9.0, "silent"),
        (99.0, "up"),
        (160.0, "stopped"),
        (170.0, "up"),
    ]
    assert rows["dns"]["host"] == [150.0, 1]
    assert rows[FE2]["peers"] == {}


def test_each_expectation_has_its_moment_and_verdict() -> None:
    result = run_scenario(load_scenario(SCENARIO))
    rows = expectations(result, result.scenario.duration)
    assert [(r["start"], r["end"], r["passed"]) for r in rows] == [
        (10.0, 420.0, True),  # always [10, 420]
        (220.0, 220.0, True),  # by 220
        (400.0, 400.0, True),  # by 400
        (200.0, 200.0, False),  # at 200, wrong on purpose
    ]
    assert rows[3]["detail"].startswith("was registered at fe1.contoso.test (limited)")
    assert not any(math.isinf(r["end"]) for r in rows)
