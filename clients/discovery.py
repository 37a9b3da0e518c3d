"""Registrar discovery by DNS: the profile's names in order, one query at a time.

:class:`Discovery` holds the names left to try in the current round, the query in flight (it
owns its deadline: a query is sent :data:`DNS_TRIES` times, :data:`DNS_TIMEOUT` apart) and the
first SRV answer's targets; it turns answers into :class:`~clients.plan.Target` lists
(RFC 2782-ordered).  What the agent does with them (the plan) is clients/agent.py's.

A profile with ``naptr`` asks NAPTR for the domain first (RFC 3263 §4.1);
:func:`choose_naptr` picks the record it follows, for the agent and for the fuzz analysis.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from clients.dns import DnsAnswer, QueryType, build_query, parse_answer
from clients.dnscache import DnsCache
from clients.plan import Target
from clients.profile import Profile
from clients.srv import order_srv, service_unavailable
from emulator.net import Address, Flow, Send, TransportName
from fakedns.records import AddressRecord, NaptrRecord, SrvRecord

__all__ = [
    "DNS_TIMEOUT",
    "DNS_TRIES",
    "NAPTR_TRANSPORTS",
    "Discovery",
    "Query",
    "Step",
    "choose_naptr",
    "naptr_transports",
]

DNS_TIMEOUT = 2.0
DNS_TRIES = 2
"""Emulator choice: a DNS query is sent twice, 2 s apart, before it counts as timed out."""

Step = tuple[str, QueryType, TransportName, int]
"""A discovery name: (name, query type, transport and default port of what it finds)."""

Purpose = Literal["naptr", "srv", "a", "resolve", "address"]
"""Why a query was asked; "address": an A/AAAA asked beside the others, its answer only
collected (``Profile.parallel_lookups``)."""

NAPTR_TRANSPORTS: Mapping[str, TransportName] = {
    "SIPS+D2T": "tls",
    "SIP+D2T": "tcp",
    "SIP+D2U": "udp",
}
"""RFC 3263 §4.1 services of the transports the emulator has (SCTP and WebSocket it has not)."""

_NO_PORTS: Mapping[TransportName, int] = {}
"""The NAPTR transports of a client that has not made a NAPTR round (never written)."""


def naptr_transports(profile: Profile) -> dict[TransportName, int]:
    """The transports a profile can take from NAPTR, with their default ports: those of its SRV
    steps (libre's ``rr_naptr_handler`` takes only enabled transports, the same ones its SRV
    fallback walks)."""
    ports: dict[TransportName, int] = {}
    for step in profile.discovery:
        if step.kind == "srv":
            ports.setdefault(step.transport, step.default_port)
    return ports


def choose_naptr(
    records: Iterable[object], transports: Mapping[TransportName, int]
) -> tuple[NaptrRecord, TransportName] | None:
    """The NAPTR record a client follows, with its transport; None when there is none.

    RFC 3263 §4.1: by order, then preference (a stable sort: ties keep the server's order, as
    libre's list sort does); the first whose service is a SIP service of a transport in
    ``transports`` [3P libre ``naptr_handler``: only that one record is used].  Flags are not
    checked (libre does not).  CHOICE: a record whose replacement is ``.`` is skipped (there is
    no SRV name to ask).
    """
    naptrs = sorted(
        (r for r in records if isinstance(r, NaptrRecord)), key=lambda r: (r.order, r.preference)
    )
    for record in naptrs:
        transport = NAPTR_TRANSPORTS.get(record.service.upper())
        if transport is not None and transport in transports and record.replacement != ".":
            return record, transport
    return None


@dataclass(slots=True)
class Query:
    """The DNS query in flight: what it asks, why, and when it times out (``deadline``)."""

    query_id: int
    name: str
    qtype: QueryType
    purpose: Purpose
    step_transport: TransportName
    step_port: int
    deadline: float
    tries: int
    target: Target | None = None


class Discovery:
    """One agent's discovery state (see the module docstring)."""

    __slots__ = (
        "addresses",
        "awaiting",
        "cache",
        "cached",
        "first_srv_targets",
        "flow",
        "naptr_ports",
        "prefetched",
        "query",
        "side",
        "steps",
    )

    def __init__(
        self, local_ip: str, dns_port: int, dns_server: Address, cache: DnsCache | None = None
    ) -> None:
        self.flow = Flow("udp", (local_ip, dns_port), dns_server)
        self.cache = cache if cache is not None else DnsCache(0.0, 0.0)
        """The client's DNS cache (clients/dnscache.py); off unless the agent gives one."""
        self.cached: DnsAnswer | None = None
        """The answer the cache gave to the query just started (:meth:`take_cached`)."""
        self.steps: tuple[Step, ...] = ()
        """The names still to ask this round, in order (a tuple: the empty one, which most
        agents hold between rounds, is shared; memory, issue 20)."""
        self.query: Query | None = None
        self.first_srv_targets: list[Target] = []
        """The targets of the round's SRV answer (baresip goes back to the first)."""
        self.naptr_ports: Mapping[TransportName, int] = _NO_PORTS
        """The transports (and default ports) a NAPTR answer may choose this round (read only:
        one empty mapping shared until a NAPTR round, memory, issue 20)."""
        self.side: list[Query] = []
        """A/AAAA queries in flight beside ``query`` (``Profile.parallel_lookups``)."""
        self.addresses: dict[str, list[str]] | None = None
        """Addresses the side queries found this round, by name: A records first, then
        AAAA (None: none yet; memory, issue 20: most profiles make no side query, and an
        empty dict per client is 64 bytes)."""
        self.prefetched: set[str] | None = None
        """Names whose A and AAAA were asked beside the SRV query this round (None: none;
        an empty set is 216 bytes)."""
        self.awaiting: list[Target] | Step | None = None
        """What the round waits for the side queries to finish for: the SRV answer's targets
        (their addresses), or an A step whose name was prefetched."""

    def begin(self, profile: Profile, domain: str) -> None:
        """A new discovery round: NAPTR of the domain if the profile asks it, then every name
        of the profile, in order."""
        steps: list[Step] = []
        if profile.naptr:
            self.naptr_ports = naptr_transports(profile)
            if self.naptr_ports:
                # The transport and port are unused: the chosen record gives them.
                steps.append((domain, "NAPTR", "udp", 0))
        steps += [
            (
                step.name_template.format(domain=domain),
                step.kind.upper(),  # type: ignore[misc]
                step.transport,
                step.default_port,
            )
            for step in profile.discovery
        ]
        self.steps = tuple(steps)
        self.first_srv_targets = []
        self.side = []
        self.addresses = None
        self.prefetched = None
        self.awaiting = None

    def start_side(
        self, now: float, rng: random.Random, name: str, qtype: QueryType
    ) -> Send | None:
        """Ask ``name``/``qtype`` beside the query in flight, for its addresses only: the Send,
        or None when the DNS cache answered it (the addresses are collected at once)."""
        hit = self.cache.get(name, qtype, now) if self.cache.enabled else None
        if hit is not None:
            self.collect(name, hit)
            return None
        query = Query(rng.getrandbits(16), name, qtype, "address", "udp", 0, now, 0)
        self.side.append(query)
        return self.resend(now, query)

    def collect(self, name: str, answer: DnsAnswer) -> None:
        """Keep the addresses of a side query's answer (A before AAAA, as asked)."""
        found = self.found_addresses().setdefault(name.lower().rstrip("."), [])
        if answer.ok:
            records = [r.address for r in answer.records if isinstance(r, AddressRecord)]
            if answer.qtype == "A":
                found[:0] = records
            else:
                found.extend(records)

    @property
    def busy(self) -> bool:
        """A query is still in flight (the main one or a side one)."""
        return self.query is not None or bool(self.side)

    def found_addresses(self) -> dict[str, list[str]]:
        """:attr:`addresses`, made at its first use in a round."""
        if self.addresses is None:
            self.addresses = {}
        return self.addresses

    def address_of(self, name: str) -> str | None:
        """The first address the side queries found for ``name``."""
        if self.addresses is None:
            return None
        found = self.addresses.get(name.lower().rstrip("."))
        return found[0] if found else None

    def was_prefetched(self, name: str) -> bool:
        """Whether ``name``'s A and AAAA were asked beside the SRV query this round."""
        return self.prefetched is not None and name in self.prefetched

    def mark_prefetched(self, name: str) -> None:
        if self.prefetched is None:
            self.prefetched = set()
        self.prefetched.add(name)

    def next_step(self) -> Step | None:
        steps = self.steps
        if not steps:
            return None
        self.steps = steps[1:]
        return steps[0]

    def start_query(
        self,
        now: float,
        rng: random.Random,
        name: str,
        qtype: QueryType,
        purpose: Purpose,
        transport: TransportName,
        port: int,
        target: Target | None = None,
    ) -> Send | None:
        """Ask ``name``/``qtype``: the Send of the query, or None when the DNS cache answers
        it (then :meth:`take_cached` gives the query and the answer, at once)."""
        hit = self.cache.get(name, qtype, now) if self.cache.enabled else None
        query = Query(rng.getrandbits(16), name, qtype, purpose, transport, port, now, 0, target)
        self.query = query
        if hit is not None:
            self.cached = hit
            return None
        return self.resend(now, query)

    def take_cached(self) -> tuple[Query, DnsAnswer] | None:
        """The query just started and the cache's answer to it, which ends it."""
        query, answer = self.query, self.cached
        self.cached = None
        if query is None or answer is None:
            return None
        self.query = None
        return query, answer

    def resend(self, now: float, query: Query) -> Send:
        """Send ``query`` (again): its next try, with a new deadline."""
        query.tries += 1
        query.deadline = now + DNS_TIMEOUT
        return Send(self.flow, build_query(query.query_id, query.name, query.qtype))

    def answered(self, data: bytes, now: float | None = None) -> tuple[Query, DnsAnswer] | None:
        """The query in flight and its answer, which ends it; None for a stray or late answer
        (RFC 5452: match the ID and the question).  With ``now``, the answer goes into the
        DNS cache as its kind allows (clients/dnscache.py)."""
        answer = parse_answer(data)
        if answer is None:
            return None
        query = self.query
        if query is None or answer.query_id != query.query_id:
            for side in self.side:
                if answer.query_id == side.query_id and answer.name == side.name.lower().rstrip(
                    "."
                ):
                    self.side.remove(side)
                    if now is not None and self.cache.enabled and answer.qtype == side.qtype:
                        self.cache.store(answer, now)
                    self.collect(side.name, answer)
                    return side, answer
            return None
        if answer.name != query.name.lower().rstrip("."):
            return None
        self.query = None
        if now is not None and self.cache.enabled and answer.qtype == query.qtype:
            self.cache.store(answer, now)
        return query, answer

    def srv_targets(
        self, query: Query, answer: DnsAnswer, rng: random.Random
    ) -> list[Target] | None:
        """An SRV answer's targets in RFC 2782 order (None for "service not available", RFC
        2782's lone ``.`` target); the round stops at the first name that answers (Lync,
        TN-OCSDNS)."""
        srv = [r for r in answer.records if isinstance(r, SrvRecord)]
        if service_unavailable(srv):
            return None
        addresses = {r.name: r.address for r in answer.additional if r.rtype == "A"}
        targets = [
            Target(r.target, r.port, query.step_transport, addresses.get(r.target), "srv")
            for r in order_srv(srv, rng)
        ]
        self.first_srv_targets = targets
        self.steps = ()
        return targets

    def naptr_chosen(self, query: Query, answer: DnsAnswer) -> bool:
        """Follow a NAPTR answer: its chosen record's SRV name, then the domain's A record on
        that transport, replace the round's names (libre: ``tp_selected``, so no other SRV
        name is tried).  False when no record is usable: the names stay as they were."""
        chosen = choose_naptr(answer.records, self.naptr_ports)
        if chosen is None:
            return False
        record, transport = chosen
        port = self.naptr_ports[transport]
        self.steps = (
            (record.replacement, "SRV", transport, port),
            (query.name, "A", transport, port),
        )
        return True


def first_address(answer: DnsAnswer) -> str:
    """The first A record's address of an answer that is ``ok``."""
    addresses = [r.address for r in answer.records if isinstance(r, AddressRecord)]
    return addresses[0]
