"""Registrar discovery by DNS: the profile's names in order, one query at a time.

:class:`Discovery` holds the names left to try in the current round, the query in flight (it
owns its deadline: a query is sent :data:`DNS_TRIES` times, :data:`DNS_TIMEOUT` apart) and the
first SRV answer's targets; it turns answers into :class:`~clients.plan.Target` lists
(RFC 2782-ordered).  What the agent does with them (the plan) is clients/agent.py's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from clients.dns import DnsAnswer, QueryType, build_query, parse_answer
from clients.plan import Target
from clients.profile import Profile
from clients.srv import order_srv, service_unavailable
from emulator.net import Address, Flow, Send, TransportName
from fakedns.records import AddressRecord, SrvRecord

__all__ = ["DNS_TIMEOUT", "DNS_TRIES", "Discovery", "Query", "Step"]

DNS_TIMEOUT = 2.0
DNS_TRIES = 2
"""Emulator choice: a DNS query is sent twice, 2 s apart, before it counts as timed out."""

Step = tuple[str, QueryType, TransportName, int]
"""A discovery name: (name, query type, transport and default port of what it finds)."""

Purpose = Literal["srv", "a", "resolve"]


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

    __slots__ = ("first_srv_targets", "flow", "query", "steps")

    def __init__(self, local_ip: str, dns_port: int, dns_server: Address) -> None:
        self.flow = Flow("udp", (local_ip, dns_port), dns_server)
        self.steps: list[Step] = []
        self.query: Query | None = None
        self.first_srv_targets: list[Target] = []
        """The targets of the round's SRV answer (baresip goes back to the first)."""

    def begin(self, profile: Profile, domain: str) -> None:
        """A new discovery round: every name of the profile, in order."""
        self.steps = [
            (
                step.name_template.format(domain=domain),
                step.kind.upper(),  # type: ignore[misc]
                step.transport,
                step.default_port,
            )
            for step in profile.discovery
        ]
        self.first_srv_targets = []

    def next_step(self) -> Step | None:
        return self.steps.pop(0) if self.steps else None

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
    ) -> Send:
        query = Query(rng.getrandbits(16), name, qtype, purpose, transport, port, now, 0, target)
        self.query = query
        return self.resend(now, query)

    def resend(self, now: float, query: Query) -> Send:
        """Send ``query`` (again): its next try, with a new deadline."""
        query.tries += 1
        query.deadline = now + DNS_TIMEOUT
        return Send(self.flow, build_query(query.query_id, query.name, query.qtype))

    def answered(self, data: bytes) -> tuple[Query, DnsAnswer] | None:
        """The query in flight and its answer, which ends it; None for a stray or late answer
        (RFC 5452: match the ID and the question)."""
        answer = parse_answer(data)
        query = self.query
        if answer is None or query is None or answer.query_id != query.query_id:
            return None
        if answer.name != query.name.lower().rstrip("."):
            return None
        self.query = None
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
        self.steps = []
        return targets


def first_address(answer: DnsAnswer) -> str:
    """The first A record's address of an answer that is ``ok``."""
    addresses = [r.address for r in answer.records if isinstance(r, AddressRecord)]
    return addresses[0]
