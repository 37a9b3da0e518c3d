"""Hypothesis strategies for fuzz cases: topologies, DNS, clients and fault schedules.

Everything is drawn from small ranges so that Hypothesis shrinks findings to readable cases:
1-6 pools (some Directors), backup pairings among front ends, users spread over them, 0-4 SRV
records with priorities and weights (some pointing at nothing, some targets without an A
record), clients with an empty, home or stale endpoint cache and a profile, and faults: pool
outages and stops (flaps shorter and longer than the detection intervals, or permanent),
partitions, DNS failures and edits; and back-end, DR and administrative actions (a back-end
server down, mirror failover, force-move, contact export and import, CMS move, pool failover
and failback: :class:`~emulator.fuzz.case.DrDraw`), whose outcomes, done or refused, are
predicted from the schedule (:func:`~emulator.fuzz.case.dr_plan`) and judged.  No known field
issue is encoded here: the stranded client
of field report R1 has to be *found* (tests/fuzz check that it is).

Each part is a list of independent elements whose cross references (a backup, a record's
target, a client's user) are indices taken modulo the list they point into: Hypothesis then
shrinks a finding by deleting elements, which is what makes the written scenarios minimal.
"""

from __future__ import annotations

from hypothesis import strategies as st

from emulator.fuzz.case import (
    DR_KINDS,
    ClientDraw,
    DrDraw,
    FaultDraw,
    FaultKind,
    FuzzCase,
    PoolDraw,
    SrvDraw,
)

__all__ = ["FAULTS", "TAKES", "cases", "dr_actions"]

PROFILES = ("lync2010", "lync2010", "lync2010", "lync2013", "baresip", "linphone")
"""Client profiles, weighted towards the product's own client."""
SERVICES = (
    "_sipinternaltls._tcp",
    "_sipinternaltls._tcp",
    "_sipinternaltls._tcp",
    "_sip._udp",
    "_sips._tcp",
)
"""SRV services: mostly Lync's first discovery name, some generic SIP phones'."""
TIMERS = ((30.0, 40.0), (120.0, 240.0), (60.0, 60.0))
"""(failover, failback) detection intervals: R1's lab, the Topology Builder defaults, equal."""
FAULTS: tuple[FaultKind, ...] = (
    "outage",
    "outage",
    "stop",
    "partition",
    "dns-fail",
    "dns-remove",
    "dns-down",
)

TAKES = (61.0, 181.0, 901.0)
"""``takes`` of a pool failover or failback: a minute, three, and the 15 minutes of Microsoft's
recovery time objective (emulator.operations.POOL_FAILOVER_TAKES); one second past the minute,
so that a phase never ends at the instant of another drawn step."""

_pool = st.tuples(
    st.booleans(),  # a director?
    st.none() | st.integers(0, 5),  # backup: an index, taken modulo the front ends
    st.just(True) | st.booleans(),  # an A record?
    st.integers(1, 3),  # users homed here
)
_srv = st.tuples(
    # Target pool (modulo); now and then a host that does not exist.
    st.sampled_from((0, 1, 2, 3, 4, 5, 0, 1, 2, None)),
    st.sampled_from((0, 10, 20)),
    st.sampled_from((0, 0, 10, 50)),
    st.sampled_from(SERVICES),
)
_client = st.tuples(
    st.integers(0, 11),  # user (modulo)
    st.sampled_from(("empty", "home", "stale")),
    st.integers(0, 5),
    st.sampled_from(PROFILES),
)
_fault = st.tuples(
    st.sampled_from(FAULTS),
    st.integers(6, 180),  # at, in tens of seconds
    st.none() | st.integers(1, 90),  # duration in tens of seconds (see _duration)
    st.integers(0, 5),  # a (modulo)
    st.integers(-4, 5),  # b: a pool (modulo) or a client (negative)
    st.booleans(),
    st.sampled_from(("servfail", "timeout", "nxdomain")),
)


_dr = st.tuples(
    st.sampled_from(DR_KINDS),
    st.integers(6, 180),  # at, in tens of seconds (plus 2.5 s: never at a fault's edge)
    st.integers(0, 5),  # a: a Front End pool (modulo)
    st.integers(0, 5),  # b: force-move's destination (modulo the others)
    st.none() | st.integers(1, 90),  # backend-down: duration in tens of seconds
    st.sampled_from(TAKES),
    st.booleans(),  # backend-down: the mirror?
)


def dr_actions(max_size: int = 3) -> st.SearchStrategy[tuple[DrDraw, ...]]:
    """Up to ``max_size`` back-end, DR and administrative actions (:class:`DrDraw`).  Any
    sequence is valid: :func:`~emulator.fuzz.case.dr_plan` predicts which are refused (a
    failback before its failover completed, an import before any export, a force-move while
    the CMS pool is down) and the run is judged against that."""
    return st.lists(_dr, max_size=max_size).map(
        lambda raw: tuple(
            DrDraw(
                kind=kind,
                at=at * 10.0 + 2.5,
                a=a,
                b=b,
                duration=(takes if kind in ("pool-failover", "pool-failback") else None)
                if kind != "backend-down"
                else (None if tens is None else tens * 10.0),
                mirror=mirror,
            )
            for kind, at, a, b, tens, takes, mirror in raw
        )
    )


@st.composite
def cases(draw: st.DrawFn, max_pools: int = 6, max_clients: int = 4, max_dr: int = 3) -> FuzzCase:
    """A whole fuzz case (see the module docstring)."""
    raw_pools = draw(st.lists(_pool, min_size=1, max_size=max_pools))
    count = len(raw_pools)
    directors = [d and i > 0 for i, (d, _, _, _) in enumerate(raw_pools)]  # pool 0: front end
    front = [i for i in range(count) if not directors[i]]
    pools = []
    for i, (_, backup, a_record, users) in enumerate(raw_pools):
        if directors[i]:
            pools.append(PoolDraw(director=True, a_record=a_record, users=0))
            continue
        others = [j for j in front if j != i]
        chosen = others[backup % len(others)] if backup is not None and others else None
        pools.append(PoolDraw(backup=chosen, a_record=a_record, users=users))
    failover, failback = draw(st.sampled_from(TIMERS))
    srv = tuple(
        SrvDraw(t % count if t is not None else None, priority, weight, service)
        # At least one record: no record at all is found at once and is dull; removing the
        # records is still drawn as a fault (dns-remove).
        for t, priority, weight, service in draw(st.lists(_srv, min_size=1, max_size=4))
    )
    clients = tuple(
        ClientDraw(user, cache, stale, profile)  # type: ignore[arg-type]
        for user, cache, stale, profile in draw(st.lists(_client, min_size=1, max_size=max_clients))
    )
    faults = tuple(
        FaultDraw(
            kind=kind,
            at=at * 10.0,
            duration=_duration(duration, failover),
            a=a % count,
            b=b % count if b >= 0 else -1 - ((-1 - b) % len(clients)),
            oneway=oneway,
            dns_kind=dns_kind,
        )
        for kind, at, duration, a, b, oneway, dns_kind in draw(st.lists(_fault, max_size=3))
    )
    return FuzzCase(
        pools=tuple(pools),
        srv=srv,
        clients=clients,
        faults=faults,
        failover=failover,
        failback=failback,
        seed=draw(st.integers(0, 2**16)),
        dr=draw(dr_actions(max_dr)) if max_dr else (),
    )


def _duration(tens: int | None, failover: float) -> float | None:
    """None: never undone.  Short values are flaps shorter than the failover interval (ending
    on a 5 s mark, between heartbeats); long ones outlast failover and failback."""
    if tens is None:
        return None
    if tens * 10.0 < failover:
        return tens * 10.0 - 5.0
    return tens * 10.0
