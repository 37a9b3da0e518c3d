"""A hand-stepped driver for unit tests of the sans-IO client agent (:mod:`clients.agent`).

The harness owns the clock (``now`` starts at 0.0 and moves only when a test says so), collects
what the agent puts on the wire into an outbox, and builds the answers by hand: DNS responses
with dnslib (or :class:`fakedns.authority.Authority`), SIP responses with
:func:`emulator.sip.headers.make_response`.  It makes no protocol decision of its own.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dnslib

from clients.agent import Agent
from clients.cache import CacheStore, MemoryCacheStore, SaveCache, read_entry
from clients.events import AgentEvent, ClientNote, ClientStateChanged
from clients.profile import LYNC2010, Profile
from emulator.net import Address, CloseFlow, Flow, Send
from emulator.sip.headers import make_response
from emulator.sip.message import Request, Response, parse_message
from fakedns.authority import Authority

DOMAIN = "contoso.test"
USER = f"sip:alice@{DOMAIN}"
DNS_SERVER: Address = ("10.0.0.53", 53)
CLIENT_IP = "10.0.0.100"
SIP_PORT = 5060
DNS_PORT = 5353


@dataclass(frozen=True)
class DnsQuery:
    """One DNS query the agent sent, parsed back."""

    flow: Flow
    data: bytes
    record: dnslib.DNSRecord

    @property
    def name(self) -> str:
        return str(self.record.q.qname).rstrip(".").lower()

    @property
    def qtype(self) -> str:
        return str(dnslib.QTYPE.get(self.record.q.qtype))

    @property
    def query_id(self) -> int:
        return int(self.record.header.id)


@dataclass(frozen=True)
class SipSent:
    """One SIP request the agent sent, parsed back, with the flow it went on."""

    flow: Flow
    data: bytes
    request: Request

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def remote(self) -> Address:
        return self.flow.remote

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    @property
    def cseq(self) -> int:
        return self.request.cseq[0]

    @property
    def expires(self) -> int | None:
        value = self.header("expires")
        return int(value) if value is not None else None


def srv_rr(
    name: str, target: str, priority: int = 0, weight: int = 0, port: int = 5061
) -> dnslib.RR:
    return dnslib.RR(
        name, dnslib.QTYPE.SRV, rdata=dnslib.SRV(priority, weight, port, target), ttl=300
    )


def a_rr(name: str, address: str) -> dnslib.RR:
    return dnslib.RR(name, dnslib.QTYPE.A, rdata=dnslib.A(address), ttl=300)


class Harness:
    """One agent, a hand-moved clock, an outbox of what the agent sent and a log of its events."""

    def __init__(
        self,
        profile: Profile = LYNC2010,
        *,
        seed: int = 1,
        cache: CacheStore | None = None,
        user: str = USER,
        contact_list: bool = False,
    ) -> None:
        """``contact_list=False`` (the default) keeps the agent from fetching the contact list
        after registering, so that tests of registration see only their own exchanges."""
        if profile.contact_list and not contact_list:
            profile = dataclasses.replace(profile, contact_list=False)
        self.cache: CacheStore = cache if cache is not None else MemoryCacheStore()
        self.agent = Agent(
            "alice",
            user,
            profile=profile,
            rng=random.Random(seed),
            dns_server=DNS_SERVER,
            local_ip=CLIENT_IP,
            sip_port=SIP_PORT,
            dns_port=DNS_PORT,
            domain=DOMAIN,
        )
        self.now = 0.0
        self.outbox: list[Send | CloseFlow] = []
        self.log: list[Send | CloseFlow] = []
        """Every action ever taken from the agent, in order (the outbox is consumed by tests)."""
        self.events: list[AgentEvent] = []

    # -- driving ------------------------------------------------------------------------------

    def _collect(self) -> None:
        actions: list[Send | CloseFlow] = []
        for action in self.agent.actions():
            if isinstance(action, SaveCache):
                self.cache.save(action.entry)  # the driver performs the agent's cache writes
            else:
                assert isinstance(action, Send | CloseFlow), action
                actions.append(action)
        self.outbox.extend(actions)
        self.log.extend(actions)
        self.events.extend(self.agent.events())

    def sign_in(self) -> None:
        """Sign in, handing in the cache's entry as a driver does."""
        self.agent.sign_in(self.now, cached=read_entry(self.cache, self.agent.user))
        self._collect()

    def sign_out(self, *, unregister: bool = True) -> None:
        self.agent.sign_out(self.now, unregister=unregister)
        self._collect()

    def receive(self, data: bytes, flow: Flow) -> None:
        self.agent.receive(data, flow, self.now)
        self._collect()

    def flow_failed(self, flow: Flow) -> None:
        self.agent.flow_failed(flow, self.now)
        self._collect()

    def fire(self) -> float:
        """Move the clock to ``next_deadline()`` and run ``handle_timer`` there; the new now."""
        deadline = self.agent.next_deadline()
        assert deadline is not None, "the agent has no timer armed"
        assert deadline >= self.now, f"deadline {deadline} is in the past (now {self.now})"
        self.now = deadline
        self.agent.handle_timer(self.now)
        self._collect()
        return self.now

    def run_until(self, until: float) -> None:
        """Fire every deadline up to ``until`` (inclusive), then leave the clock at ``until``."""
        while True:
            deadline = self.agent.next_deadline()
            if deadline is None or deadline > until:
                break
            self.fire()
        self.now = max(self.now, until)

    def advance(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    # -- the outbox -----------------------------------------------------------------------------

    def sends(self) -> list[Send]:
        return [a for a in self.outbox if isinstance(a, Send)]

    def closes(self) -> list[Flow]:
        return [a.flow for a in self.outbox if isinstance(a, CloseFlow)]

    def dns_queries(self) -> list[DnsQuery]:
        return [
            DnsQuery(s.flow, s.data, dnslib.DNSRecord.parse(s.data))
            for s in self.sends()
            if s.flow.remote == DNS_SERVER
        ]

    def sip_requests(self) -> list[SipSent]:
        """The SIP requests in the outbox, parsed back."""
        out: list[SipSent] = []
        for s in self.sends():
            if s.flow.remote == DNS_SERVER or s.data.strip(b"\r\n") == b"":
                continue
            message = parse_message(s.data, stream=s.flow.reliable)
            if isinstance(message, Request):  # responses (to NOTIFY, OPTIONS) are left out
                out.append(SipSent(s.flow, s.data, message))
        return out

    def clear(self) -> None:
        self.outbox.clear()

    def pop_query(self) -> DnsQuery:
        """The only DNS query in the outbox (and nothing else there), which is emptied."""
        queries = self.dns_queries()
        assert len(queries) == 1 and len(self.sends()) == 1, f"expected one query: {self.outbox}"
        self.clear()
        return queries[0]

    def pop_queries(self) -> list[DnsQuery]:
        """Every DNS query in the outbox, in the order sent (nothing else may be there); the
        outbox is emptied.  For a profile that asks several at once (``parallel_lookups``)."""
        queries = self.dns_queries()
        assert queries and len(queries) == len(self.sends()), f"expected queries: {self.outbox}"
        self.clear()
        return queries

    def pop_request(self, method: str = "REGISTER") -> SipSent:
        """The only SIP request in the outbox, which must be a ``method``; the outbox is emptied."""
        requests = self.sip_requests()
        assert len(requests) == 1, f"expected one {method}: {self.outbox}"
        assert not self.dns_queries(), f"unexpected DNS query: {self.dns_queries()}"
        assert requests[0].method == method, f"expected {method}, got {requests[0].method}"
        self.clear()
        return requests[0]

    # -- answering DNS --------------------------------------------------------------------------

    def answer(
        self,
        query: DnsQuery,
        answers: Iterable[dnslib.RR] = (),
        *,
        rcode: str = "NOERROR",
        query_id: int | None = None,
    ) -> None:
        """A hand-built DNS response to ``query`` (dnslib), delivered on the query's flow."""
        reply = query.record.reply()
        reply.header.rcode = getattr(dnslib.RCODE, rcode)
        if query_id is not None:
            reply.header.id = query_id
        for rr in answers:
            reply.add_answer(rr)
        self.receive(bytes(reply.pack()), query.flow)

    def answer_srv(self, query: DnsQuery, *targets: tuple[str, int]) -> None:
        """SRV records ``(target, priority)`` on port 5061, weight 0, in the given order."""
        assert query.qtype == "SRV", query
        self.answer(query, [srv_rr(query.name, t, priority=p) for t, p in targets])

    def answer_a(self, query: DnsQuery, address: str) -> None:
        assert query.qtype == "A", query
        self.answer(query, [a_rr(query.name, address)])

    def answer_with(self, authority: Authority, query: DnsQuery) -> None:
        """Let a fake DNS authority answer (it may stay silent: a "timeout" fault)."""
        wire = authority.answer(query.data, "udp", self.now)
        self.clear()
        if wire is not None:
            self.receive(wire, query.flow)

    # -- answering SIP --------------------------------------------------------------------------

    def response(
        self,
        sent: SipSent,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        *,
        reason: str | None = None,
    ) -> Response:
        response = make_response(sent.request, status, reason, to_tag="srvtag")
        for name, value in headers:
            response.headers.add(name, value)
        return response

    def reply(
        self,
        sent: SipSent,
        status: int,
        headers: Sequence[tuple[str, str]] = (),
        *,
        reason: str | None = None,
    ) -> None:
        """Answer ``sent`` on its flow with ``status`` and the extra ``headers``."""
        self.receive(self.response(sent, status, headers, reason=reason).to_bytes(), sent.flow)

    def ok(
        self,
        sent: SipSent,
        *,
        expires: int = 7200,
        action: str = "added",
        primary: bool = True,
        services: bool = True,
        keep_alive: int | None = 300,
    ) -> None:
        """A Lync-style 200 to a REGISTER (MS-SIPREGE §4): Expires, keep-alive, presence-state."""
        presence = (
            f'register-action="{action}";primary-cluster-type="central";'
            f'is-connected-to-primary="{"yes" if primary else "no"}"'
        )
        if not services:
            presence += ";user-services-state=unavailable"
        contact = sent.header("contact") or "<sip:x>"
        headers = [("Contact", f"{contact};expires={expires}"), ("Expires", str(expires))]
        if keep_alive is not None:
            headers.append(
                ("ms-keep-alive", f"UAS; tcp=no; hop-hop=yes; end-end=no; timeout={keep_alive}")
            )
        headers.append(("presence-state", presence))
        self.reply(sent, 200, headers)

    # -- events ---------------------------------------------------------------------------------

    def states(self) -> list[ClientStateChanged]:
        return [e for e in self.events if isinstance(e, ClientStateChanged)]

    def notes(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, ClientNote)]

    def last_state(self) -> ClientStateChanged:
        states = self.states()
        assert states, "no state change yet"
        return states[-1]
