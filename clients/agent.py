"""The client agent: Lync-style sign-in, registration, failure detection and failback, sans-IO.

One agent is one signed-in endpoint.  It follows the driving contract of
:mod:`emulator.net`: it puts SIP and DNS bytes on flows (``actions()``), takes what comes back
(``receive``), is told of dead flows (``flow_failed``) and of time (``handle_timer``), and reports
state changes (``events()``).  Everything the profile (:mod:`clients.profile`) does not fix is an
emulator choice documented in docs/clients.md.

Sign-in plan (lync2010): the backup registrar if one is known and the registrar was lost, then
the endpoint-cache server (no DNS query), then discovery (the profile's DNS names in order; the
first name that answers gives the target list, RFC 2782-ordered).  Each target is tried with a
REGISTER; a connection failure, a transaction timeout (Timer F) or a 503 moves on to the next
target (RFC 3263 §4.3); a 301 inserts its Contacts, in decreasing q (MS-SIPREGE
``ms-cluster-failover``), before the rest.  When the plan is exhausted the agent waits a backoff
and starts over.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from clients.cache import CacheEntry, CacheStore
from clients.dns import QueryType, build_query, parse_answer
from clients.events import (
    AgentEvent,
    ClientActionDone,
    ClientNote,
    ClientState,
    ClientStateChanged,
    Mode,
)
from clients.profile import Profile
from clients.srv import order_srv, service_unavailable
from emulator.net import Address, CloseFlow, Flow, Send, TransportName
from emulator.sip.errors import LocalProtocolError, SipError
from emulator.sip.framing import PING, PONG
from emulator.sip.headers import KeepAlive, NameAddr, PresenceState, make_response, parse_contacts
from emulator.sip.message import Headers, Request, Response, parse_message
from emulator.sip.transaction import ClientTransaction, TimerSettings
from emulator.sip.uri import SipUri
from emulator.values import immutable
from fakedns.records import AddressRecord, SrvRecord

__all__ = ["Agent", "Target"]

DNS_TIMEOUT = 2.0
DNS_TRIES = 2
"""Emulator choice: a DNS query is sent twice, 2 s apart, before it counts as timed out."""


@immutable
class Target:
    """A registrar to try: where it is and how the agent learned of it."""

    host: str
    port: int
    transport: TransportName
    address: str | None = None
    source: str = "srv"
    """``cache``, ``srv``, ``a``, ``redirect``, ``backup``, ``primary``, ``preferred``."""

    @property
    def name(self) -> str:
        return self.host

    def with_address(self, address: str | None) -> Target:
        """A copy with ``address`` set (dataclasses.replace, without its introspection: every
        client resolves its registrars)."""
        return Target(self.host, self.port, self.transport, address, self.source)

    def with_source(self, source: str) -> Target:
        """A copy with ``source`` set (likewise)."""
        return Target(self.host, self.port, self.transport, self.address, source)


class _Discover:
    """Plan marker: run discovery here."""


_DISCOVER = _Discover()
PlanItem = Target | _Discover


class _Purpose(Enum):
    REGISTER = "register"
    REFRESH = "refresh"
    UNREGISTER = "unregister"
    KEEPALIVE = "keepalive"
    PROBE = "probe"
    CONTACTS = "contacts"
    ADD_CONTACT = "add-contact"


@dataclass(slots=True)
class _Query:
    query_id: int
    name: str
    qtype: QueryType
    purpose: Literal["srv", "a", "resolve"]
    step_transport: TransportName
    step_port: int
    deadline: float
    tries: int
    target: Target | None = None


@dataclass(slots=True)
class _Tx:
    tx: ClientTransaction
    flow: Flow
    purpose: _Purpose
    target: Target
    expires: int = 0
    detail: str = ""


class Agent:
    """A sans-IO SIP client agent.  See the module docstring for the sign-in plan."""

    # Slots: a live fleet runs 10,000 agents in one process, and an instance dict of this
    # many attributes is about 1.6 KB (benchmarks/agents_bench.py, docs/benchmarks.md).
    __slots__ = (
        "_actions", "_call_ids", "_cseq", "_epid", "_events", "_expires", "_failures",
        "_first_srv_targets", "_instance", "_keepalive_at", "_keepalive_interval", "_leaving",
        "_lost_cause", "_loud", "_now", "_ping", "_plan", "_pong_deadline", "_probe_at",
        "_probe_ok_since", "_query", "_redirect_depth", "_refresh_at", "_register_cseqs",
        "_register_tx", "_retry_at", "_retry_target", "_signout_at", "_steps", "_tag",
        "_timers", "_txs", "backup", "cache", "contacts", "dns_port", "dns_server", "domain",
        "local_ip", "mode", "name", "notes", "primary", "profile", "registrar",
        "registrar_flow", "registrar_was_primary", "rng", "sip_port", "state", "stuck_retrying",
        "user", "wanted",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        user: str,
        *,
        profile: Profile,
        rng: random.Random,
        cache: CacheStore,
        dns_server: Address,
        local_ip: str,
        sip_port: int,
        dns_port: int,
        domain: str | None = None,
        notes: bool = True,
    ) -> None:
        """``notes=False``: emit only :class:`ClientStateChanged`, no :class:`ClientNote` detail
        lines (a driver that records no detail, such as a simulation that is not verbose,
        saves building their text)."""
        self.name = name
        self.user = user if user.startswith("sip:") else f"sip:{user}"
        self.domain = domain or SipUri.parse(self.user).host
        self.profile = profile
        self.rng = rng
        self.cache = cache
        self.dns_server = dns_server
        self.local_ip = local_ip
        self.sip_port = sip_port
        self.dns_port = dns_port
        self.notes = notes
        self._timers = TimerSettings(t1=profile.transaction_timeout / 64)
        self._epid = f"{rng.getrandbits(40):010x}"
        self._instance = _uuid(rng)
        self._tag = f"{rng.getrandbits(40):010x}"
        self._actions: list[Send | CloseFlow] = []
        self._ping: Send | None = None
        self._events: list[AgentEvent] = []
        self._call_ids: dict[tuple[str, int], str] = {}
        self._cseq = 0
        self._register_cseqs: dict[str, int] = {}
        self._now = 0.0
        self._reset_session()
        self.state: ClientState = "signed-out"
        self.mode: Mode | None = None
        self.contacts: int | None = None
        """Size of the contact list as last fetched (None: not fetched, or unavailable)."""
        self.wanted = False
        self.registrar_was_primary = True
        """Whether the registrar last lost was the primary (set on registration)."""

    def _reset_session(self) -> None:
        self.registrar: Target | None = None
        self.registrar_flow: Flow | None = None
        self.primary: Target | None = None
        self.backup: Target | None = None
        self._plan: list[PlanItem] = []
        self._steps: list[tuple[str, QueryType, TransportName, int]] = []
        self._query: _Query | None = None
        self._txs: dict[str, _Tx] = {}
        self._register_tx: _Tx | None = None
        self._redirect_depth = 0
        self._failures = 0
        self._retry_at: float | None = None
        self._retry_target: Target | None = None
        # The server this client keeps retrying instead of moving on, as some profiles do:
        # baresip after a 301 it refuses, linphone after a redirect target that does not
        # answer.  None once registered.  Read by the fuzzer's analysis.
        self.stuck_retrying: str | None = None
        self._refresh_at: float | None = None
        self._keepalive_at: float | None = None
        self._keepalive_interval = self.profile.keepalive_interval
        self._pong_deadline: float | None = None
        self._signout_at: float | None = None
        self._lost_cause = ""
        self._expires = self.profile.register_expires
        self._probe_at: float | None = None
        self._probe_ok_since: float | None = None
        self._first_srv_targets: list[Target] = []
        self._leaving: tuple[Target, Flow] | None = None
        self._loud = False

    # -- commands ---------------------------------------------------------------------------

    def sign_in(self, now: float) -> None:
        if self.wanted:
            raise LocalProtocolError(f"{self.name} is already signing in or signed in")
        self._now = now
        self.wanted = True
        self._loud = True
        self._begin(now, "sign-in", after_loss=False)

    def sign_out(self, now: float, *, unregister: bool = True) -> None:
        """Sign out; ``unregister=False`` models a crash (the binding is left to expire)."""
        self._now = now
        if unregister and self.registrar is not None and self.registrar_flow is not None:
            self._send_register(
                now, self.registrar, _Purpose.UNREGISTER, expires=0, flow=self.registrar_flow
            )
        for entry in self._txs.values():
            if entry.purpose is not _Purpose.UNREGISTER:
                self._close(entry.flow)
        self._txs = {k: v for k, v in self._txs.items() if v.purpose is _Purpose.UNREGISTER}
        if self.registrar_flow is not None and not unregister:
            # _close spares the registrar's flow: forget it first, or it is never closed.
            flow, self.registrar_flow = self.registrar_flow, None
            self._close(flow)
        self.wanted = False
        keep = self._txs
        self._reset_session()
        self._txs = keep
        self._set_state(now, "signed-out", "signed out by the user")

    def add_contact(self, now: float, uri: str) -> None:
        """Add ``uri`` to the user's contact list (a SERVICE ``<setContact/>``, a persistent
        change): the outcome comes as a :class:`ClientActionDone` event."""
        self._now = now
        if not self.profile.contact_list:
            self._action_done(now, "add-contact", False, f"{self.profile.name} has no contact list")
            return
        if self.state != "registered" or self.registrar is None or self.registrar_flow is None:
            self._action_done(now, "add-contact", False, "not signed in")
            return
        flow = self.registrar_flow
        headers = self._request_headers(flow, f"<{self.user}>", "SERVICE")
        headers.add("Content-Type", CONTACTS_TYPE)
        request = Request("SERVICE", self.user, headers, f'<setContact uri="{uri}"/>'.encode())
        entry = self._start_tx(now, request, flow, _Purpose.ADD_CONTACT, self.registrar)
        entry.detail = uri

    def _fetch_contacts(self, now: float) -> None:
        """SUBSCRIBE to the contact list (Lync does after every sign-in); the 200 carries it."""
        if not self.profile.contact_list or self.registrar is None or self.registrar_flow is None:
            return
        flow = self.registrar_flow
        headers = self._request_headers(flow, f"<{self.user}>", "SUBSCRIBE")
        local_port = flow.local[1] or self.sip_port
        headers.add("Contact", f"<sip:{self.local_ip}:{local_port};transport={flow.transport}>")
        headers.add("Event", CONTACTS_EVENT)
        headers.add("Accept", CONTACTS_TYPE)
        headers.add("Supported", "ms-piggyback-first-notify")
        headers.add("Expires", str(self.profile.register_expires))
        request = Request("SUBSCRIBE", self.user, headers)
        self._start_tx(now, request, flow, _Purpose.CONTACTS, self.registrar)

    def _contacts_answered(self, now: float, response: Response) -> None:
        if response.status == 200:
            self._set_contacts(now, _count_contacts(response.body), "contact list fetched")
        else:
            why = _diagnostic(response)
            self._note(now, f"contact list refused: {response.status} {why}")
            self._set_contacts(now, None, f"contact list unavailable ({response.status})")

    def _set_contacts(self, now: float, count: int | None, cause: str) -> None:
        if count == self.contacts:
            return
        self.contacts = count
        if self.state == "registered":
            self._emit(now, cause)

    def _action_done(self, now: float, action: str, ok: bool, detail: str) -> None:
        self._events.append(ClientActionDone(now, self.name, action, ok, detail))

    @property
    def pending_unregister(self) -> bool:
        """An unregistering REGISTER (Expires: 0) is still waiting for its answer."""
        return any(e.purpose is _Purpose.UNREGISTER and not e.tx.done for e in self._txs.values())

    # -- driving contract -------------------------------------------------------------------

    # actions() and events() hand out a fresh list and keep their own: swapping in a new list
    # at every call (after every ping and pong) would leave one long-lived list per call for
    # the cyclic garbage collector to promote and sweep, which dominated simulations of
    # thousands of clients.  The caller may keep or change what it gets.

    def actions(self) -> list[Send | CloseFlow]:
        pending = self._actions
        if not pending:
            return []
        out = pending.copy()
        pending.clear()
        return out

    def events(self) -> list[AgentEvent]:
        pending = self._events
        if not pending:
            return []
        out = pending.copy()
        pending.clear()
        return out

    def next_deadline(self) -> float | None:
        best = self._deadline_besides_keepalive()
        if self._keepalive_at is not None and (best is None or self._keepalive_at < best):
            best = self._keepalive_at
        if self._pong_deadline is not None and (best is None or self._pong_deadline < best):
            best = self._pong_deadline
        return best

    def _deadline_besides_keepalive(self, probes: bool = True) -> float | None:
        # Written out field by field, testing each attribute before copying it (most are
        # None), rather than as a loop over a tuple of them, which costs twice as much.
        best = self._refresh_at
        if self._retry_at is not None and (best is None or self._retry_at < best):
            best = self._retry_at
        if self._signout_at is not None and (best is None or self._signout_at < best):
            best = self._signout_at
        if probes and self._probe_at is not None and (best is None or self._probe_at < best):
            best = self._probe_at
        if self._query is not None and (best is None or self._query.deadline < best):
            best = self._query.deadline
        if self._txs:
            for entry in self._txs.values():
                value = entry.tx.next_deadline()
                if value is not None and (best is None or value < best):
                    best = value
        return best

    # -- keep-alive coasting (for a simulator) -----------------------------------------------

    def keepalive_coast(self) -> tuple[Flow, float, float | None] | None:
        """``(flow, ping_at, other)`` while the agent waits for nothing but its next CRLF
        keep-alive ping on its registrar ``flow`` at ``ping_at`` (``other``: its next other
        deadline, or None); None otherwise.

        A driver that knows every ping on ``flow`` will be answered after a fixed round trip
        (the simulator, while its network does not change) may then skip the pings and pongs
        and call :meth:`coast` when anything else happens: the agent ends in the state the
        pings would have left it in.  Live drivers never call it.
        """
        at = self._keepalive_at
        flow = self.registrar_flow
        if at is None or self._pong_deadline is not None or flow is None or not flow.reliable:
            return None
        return flow, at, self._deadline_besides_keepalive()

    def coast(
        self, now: float, flow: Flow, out: float, back: float, *, inclusive: bool = True
    ) -> tuple[float | None, int]:
        """Advance the keep-alive cycle on ``flow`` to ``now``, as if every ping since
        :meth:`keepalive_coast` had been sent on time and its pong had come back ``out +
        back`` later (``(ping + out) + back``, the simulator's own arithmetic).

        Returns ``(pong_at, pings)``: the arrival time of the pong of a ping still in flight at
        ``now`` (the caller delivers it then; None when idle) and how many round trips were
        skipped.  Does nothing if the agent left that cycle meanwhile.  ``inclusive``: a ping
        due exactly at ``now`` went out already (False: it is still to be sent, the caller
        acts first).
        """
        at = self._keepalive_at
        if (
            at is None
            or self._pong_deadline is not None
            or not (flow is self.registrar_flow or flow == self.registrar_flow)
        ):
            return None, 0
        interval = self._keepalive_interval
        pings = 0
        while at < now or (inclusive and at == now):
            pong = at + out + back
            if pong > now:
                self._keepalive_at = None
                self._pong_deadline = at + self.profile.pong_timeout
                return pong, pings
            pings += 1
            at = pong + interval
        self._keepalive_at = at
        return None, pings

    def coast_deadline(self, *, keepalive: bool = True, probes: bool = True) -> float | None:
        """The next deadline besides what a driver is coasting: the keep-alive cycle
        (``keepalive``, :meth:`keepalive_coast`) and the failback probes (``probes``,
        :meth:`probe_coast`)."""
        best = self._deadline_besides_keepalive(probes=not probes)
        if not keepalive:
            for value in (self._keepalive_at, self._pong_deadline):
                if value is not None and (best is None or value < best):
                    best = value
        return best

    # -- failback probe coasting (for a simulator) -------------------------------------------

    def probe_coast(self) -> tuple[Flow, float, float | None] | None:
        """``(flow, probe_at, other)`` while the agent, registered away from its primary, waits
        for its next failback probe of the primary over a stream transport at ``probe_at``,
        with no transaction in flight (``other``: its next deadline besides the probes and
        the keep-alive, or None); None otherwise.

        A driver that knows every connection attempt to the primary will vanish (the
        simulator, while its network does not change and the primary is cut off from the
        client) may then skip the probes and call :meth:`coast_probes` when anything else
        happens.  Live drivers never call it.
        """
        primary = self._waiting_to_probe()
        if primary is None or primary.transport == "udp":
            return None
        at = self._probe_at
        assert at is not None
        return self._flow_for(primary), at, self._deadline_besides_keepalive(probes=False)

    def _waiting_to_probe(self) -> Target | None:
        """The primary, while the agent waits for its next failback probe of it with no
        transaction in flight (:meth:`probe_coast`, :meth:`coast_probes`); else None."""
        if self._probe_at is None or self._txs or self.state != "registered":
            return None
        primary = self.primary
        if primary is None or primary.address is None:
            return None
        return primary

    def coast_probes(self, now: float, *, inclusive: bool = True) -> tuple[Flow | None, int]:
        """Advance the failback probes to ``now`` as if each had been sent on time and its
        connection attempt had vanished (no SYN answered: the OPTIONS transaction ends at
        Timer F, and the next probe follows ``failback_probe_interval`` later).  Each skipped
        probe draws from :attr:`rng` and counts its CSeq as the OPTIONS would have.

        Returns ``(flow, probes)``: the flow of a probe still in flight at ``now``, which is
        sent for real as of when it went out (its Send is among :meth:`actions`, and the
        caller makes its connection one that vanished), or None; and how many probes were
        skipped.  Does nothing if the agent left that cycle meanwhile.  ``inclusive``: what is
        due exactly at ``now`` happened already (False: it is left due, the caller acts
        first).
        """
        if self._waiting_to_probe() is None:
            return None, 0
        at = self._probe_at
        assert at is not None
        timeout = self._timers.timer_f
        interval = self.profile.failback_probe_interval
        probes = 0
        while at < now or (inclusive and at == now):
            failed = at + timeout
            if failed > now or (failed == now and not inclusive):
                self._probe_at = None
                self._send_probe(at)  # its transaction started then: Timer F at ``failed``
                entry = next(iter(self._txs.values()), None)
                return (None if entry is None else entry.flow), probes
            # What _send_probe draws (_request_headers, _common_headers), without the message.
            self._cseq += 1
            self.rng.getrandbits(64)  # the Call-ID
            self.rng.getrandbits(64)  # the Via branch
            self._probe_ok_since = None
            probes += 1
            at = failed + interval
        self._probe_at = at
        return None, probes

    def handle_timer(self, now: float) -> None:
        self._now = now
        for key, entry in list(self._txs.items()) if self._txs else ():
            deadline = entry.tx.next_deadline()
            if deadline is None or now < deadline:
                continue
            entry.tx.handle_timer(now)
            for data in entry.tx.take_outgoing():
                self._actions.append(Send(entry.flow, data))
            if entry.tx.done:
                del self._txs[key]
                if entry.tx.outcome is not None and entry.tx.final_status is None:
                    self._tx_failed(entry, now, "no answer (Timer F)")
        query = self._query
        if query is not None and now >= query.deadline:
            if query.tries < DNS_TRIES:
                self._send_query(now, query)
            else:
                self._query = None
                self._note(now, f"DNS {query.qtype} {query.name}: no answer")
                self._dns_failed(now, query)
        if self._pong_deadline is not None and now >= self._pong_deadline:
            self._pong_deadline = None
            self._registrar_lost(now, "keep-alive unanswered")
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._keepalive_at = None
            self._send_keepalive(now)
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            self._refresh(now)
        if self._signout_at is not None and now >= self._signout_at:
            self._signout_at = None
            self._after_loss(now)
        if self._probe_at is not None and now >= self._probe_at:
            self._probe_at = None
            self._send_probe(now)
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            target, self._retry_target = self._retry_target, None
            if target is not None:
                self._plan = [target, *self._plan]
                self._next(now)
            else:
                # Still recovering from a lost registrar: the backup stays first in the plan.
                self._begin(now, "retrying sign-in", after_loss=bool(self._lost_cause))

    def flow_failed(self, flow: Flow, now: float) -> None:
        """A connection could not be opened or broke (RFC 3261 §8.1.3.1: like a 503)."""
        self._now = now
        for key, entry in list(self._txs.items()):
            if entry.flow == flow:
                entry.tx.transport_error(now)
                del self._txs[key]
                self._tx_failed(entry, now, "connection failed")
        if flow == self.registrar_flow and self.state == "registered":
            self._registrar_lost(now, "connection to the registrar lost")

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self._now = now
        if data == PONG and flow.transport != "udp":
            # RFC 5626 §4.4.1 pong, tested first and handled inline: it is most of what
            # arrives (a pong never comes from the DNS server, which speaks UDP only).  ``is``
            # first: the pong comes back on the very Flow the ping went out on.
            registrar_flow = self.registrar_flow
            if (
                flow is registrar_flow or flow == registrar_flow
            ) and self._pong_deadline is not None:
                self._pong_deadline = None
                self._keepalive_at = now + self._keepalive_interval
            return
        if flow.remote == self.dns_server and flow.transport == "udp":
            self._receive_dns(data, now)
            return
        if data == PONG:
            self._receive_pong(flow, now)
            return
        try:
            message = parse_message(data, stream=flow.reliable)
        except SipError as exc:
            self._note(now, f"ignored a malformed message: {exc}")
            return
        if isinstance(message, Response):
            self._receive_response(message, now)
        else:
            self._receive_request(message, flow, now)

    def _receive_pong(self, flow: Flow, now: float) -> None:
        registrar_flow = self.registrar_flow
        if (flow is registrar_flow or flow == registrar_flow) and self._pong_deadline is not None:
            self._pong_deadline = None
            self._keepalive_at = now + self._keepalive_interval

    # -- sign-in plan -----------------------------------------------------------------------

    def remembered_targets(self) -> list[Target]:
        """The registrars learned from a 301 that this client tries first from memory: in its
        next round if it is signed out after losing a registration, or once it loses the one
        it has.  None before its first registration (a round then starts from the cache or
        DNS).  Read by the fuzzer's analysis."""
        return self._remembered(self.state == "registered" or bool(self._lost_cause))

    def _remembered(self, after_loss: bool) -> list[Target]:
        if not after_loss:
            return []
        if self.registrar_was_primary:
            return [] if self.backup is None else [self.backup.with_source("backup")]
        if self.primary is None:
            return []
        # Lost the backup: the primary first, then the backup again (it keeps both in memory
        # and "tries primary; if unavailable tries backup", docs/protocol.md).
        out = [self.primary.with_source("primary")]
        if self.backup is not None:
            out.append(self.backup.with_source("backup"))
        return out

    def _begin(self, now: float, cause: str, *, after_loss: bool) -> None:
        plan: list[PlanItem] = list(self._remembered(after_loss))
        trust_cache = False
        if self.profile.uses_endpoint_cache:
            try:
                entry = self.cache.load(self.user)
            except Exception as exc:  # a corrupt cache file must not stop sign-in
                self._note(now, f"endpoint cache unreadable: {exc}")
                entry = None
            if entry is not None:
                plan.append(
                    Target(entry.home_server, entry.port, entry.transport, entry.address, "cache")
                )
                # The first cache_only_rounds rounds trust the cache: no discovery.
                trust_cache = self._failures < self.profile.cache_only_rounds
        if not trust_cache:
            plan.append(_DISCOVER)
        self._plan = plan
        self._redirect_depth = 0
        self.registrar = None
        self.registrar_flow = None
        self.mode = None
        self._progress(now, "registering" if isinstance(plan[0], Target) else "discovering", cause)
        self._next(now)

    def _next(self, now: float) -> None:
        while self._plan:
            item = self._plan.pop(0)
            if isinstance(item, _Discover):
                # A new discovery round: a Director it finds may redirect again.
                self._redirect_depth = 0
                self._steps = [
                    (
                        step.name_template.format(domain=self.domain),
                        step.kind.upper(),  # type: ignore[misc]
                        step.transport,
                        step.default_port,
                    )
                    for step in self.profile.discovery
                ]
                self._first_srv_targets = []
                if self._next_step(now):
                    return
                continue
            self._try_target(now, item)
            return
        self._give_up(now)

    def _next_step(self, now: float) -> bool:
        """Query the next discovery name; False when none is left."""
        if not self._steps:
            return False
        name, qtype, transport, port = self._steps.pop(0)
        purpose: Literal["srv", "a"] = "srv" if qtype == "SRV" else "a"
        self._progress(now, "discovering", f"looking up {qtype} {name}")
        self._start_query(now, name, qtype, purpose, transport, port)
        return True

    def _give_up(self, now: float) -> None:
        # RFC 5626 §4.5 counts the failure that just happened: the first retry waits
        # base-time * 2^1 * [0.5, 1], i.e. 30-60 s with the defaults.
        self._failures += 1
        delay = self.profile.backoff.delay(self._failures, self.rng)
        self._retry_at = now + delay
        text = f"no registrar reachable; retry in {delay:.1f} s"
        if self.state != "signed-out":
            self._set_state(now, "signed-out", text)
        else:
            self._note(now, text)
        self._loud = False

    def _try_target(self, now: float, target: Target) -> None:
        if target.address is None:
            try:
                SipUri.parse(f"sip:{target.host}")
            except SipError:
                self._next(now)
                return
            if _is_ip(target.host):
                self._try_target(now, target.with_address(target.host))
                return
            self._start_query(
                now, target.host, "A", "resolve", target.transport, target.port, target=target
            )
            return
        self._send_register(now, target, _Purpose.REGISTER, expires=self._expires)

    # -- DNS --------------------------------------------------------------------------------

    def _start_query(
        self,
        now: float,
        name: str,
        qtype: QueryType,
        purpose: Literal["srv", "a", "resolve"],
        transport: TransportName,
        port: int,
        *,
        target: Target | None = None,
    ) -> None:
        query = _Query(
            self.rng.getrandbits(16), name, qtype, purpose, transport, port, now, 0, target
        )
        self._query = query
        self._send_query(now, query)

    def _send_query(self, now: float, query: _Query) -> None:
        query.tries += 1
        query.deadline = now + DNS_TIMEOUT
        flow = Flow("udp", (self.local_ip, self.dns_port), self.dns_server)
        self._actions.append(Send(flow, build_query(query.query_id, query.name, query.qtype)))

    def _receive_dns(self, data: bytes, now: float) -> None:
        answer = parse_answer(data)
        query = self._query
        if answer is None or query is None or answer.query_id != query.query_id:
            return  # stray or late answer (RFC 5452: match the ID and the question)
        if answer.name != query.name.lower().rstrip("."):
            return
        self._query = None
        if self.notes:
            detail = ", ".join(r.rdata_text() for r in answer.records) or "no records"
            self._note(now, f"DNS {query.qtype} {query.name}: {answer.rcode}, {detail}")
        if not answer.ok:
            self._dns_failed(now, query)
            return
        if query.purpose == "srv":
            srv = [r for r in answer.records if isinstance(r, SrvRecord)]
            if service_unavailable(srv):
                self._dns_failed(now, query)
                return
            addresses = {r.name: r.address for r in answer.additional if r.rtype == "A"}
            targets = [
                Target(r.target, r.port, query.step_transport, addresses.get(r.target), "srv")
                for r in order_srv(srv, self.rng)
            ]
            self._first_srv_targets = targets
            self._steps = []  # Lync stops at the first name that answers (TN-OCSDNS)
            self._plan = [*targets, *self._plan]
            self._next(now)
        elif query.purpose == "a":
            a = [r for r in answer.records if isinstance(r, AddressRecord)]
            self._steps = []
            target = Target(query.name, query.step_port, query.step_transport, a[0].address, "a")
            self._plan = [target, *self._plan]
            self._next(now)
        else:
            assert query.target is not None
            a = [r for r in answer.records if isinstance(r, AddressRecord)]
            resolved = query.target.with_address(a[0].address)
            self._remember_address(resolved)
            self._send_register(now, resolved, _Purpose.REGISTER, expires=self._expires)

    def _dns_failed(self, now: float, query: _Query) -> None:
        if query.purpose == "resolve":
            self._next(now)
        elif not self._next_step(now):
            self._next(now)

    def _remember_address(self, target: Target) -> None:
        for attr in ("primary", "backup"):
            known: Target | None = getattr(self, attr)
            if known is not None and known.host == target.host and known.address is None:
                setattr(self, attr, known.with_address(target.address))

    # -- REGISTER ---------------------------------------------------------------------------

    def _flow_for(self, target: Target) -> Flow:
        assert target.address is not None
        if target.transport == "udp":
            return Flow("udp", (self.local_ip, self.sip_port), (target.address, target.port))
        # Stream flows of a client are named by their remote end; the local port is the
        # kernel's business (convention shared with the drivers: local port 0).
        return Flow(target.transport, (self.local_ip, 0), (target.address, target.port))

    def _send_register(
        self,
        now: float,
        target: Target,
        purpose: _Purpose,
        *,
        expires: int,
        flow: Flow | None = None,
    ) -> None:
        flow = flow or self._flow_for(target)
        request = self._build_register(target, flow, expires)
        entry = self._start_tx(now, request, flow, purpose, target)
        entry.expires = expires
        if purpose is _Purpose.REGISTER:
            self._register_tx = entry
            if self.state != "registered":
                self._progress(now, "registering", f"REGISTER to {target.host} ({target.source})")

    def _build_register(self, target: Target, flow: Flow, expires: int) -> Request:
        key = (target.address or target.host, target.port)
        call_id = self._call_ids.get(key)
        if call_id is None:  # RFC 3261 §10.2: one Call-ID per registrar
            call_id = f"{self.rng.getrandbits(64):016x}@{self.local_ip}"
            self._call_ids[key] = call_id
        # RFC 3261 §10.2: CSeq +1 per REGISTER with the same Call-ID (other requests in
        # between, such as OPTIONS keep-alives and probes, must not make it jump).
        cseq = self._register_cseqs.get(call_id, 0) + 1
        self._register_cseqs[call_id] = cseq
        headers = self._common_headers(flow, f"<{self.user}>", call_id, "REGISTER", cseq)
        local_port = flow.local[1] or self.sip_port
        contact = f"<sip:{self.local_ip}:{local_port};transport={flow.transport}>"
        if self.profile.lync_headers:  # endpoint identity, MS-SIPREGE §3.1.1.1
            contact += f';+sip.instance="<urn:uuid:{self._instance}>"'
        headers.add("Contact", contact)
        headers.add("Expires", str(expires))
        if self.profile.supported:
            headers.add("Supported", ", ".join(self.profile.supported))
        if self.profile.lync_headers:
            headers.add("ms-keep-alive", "UAC;hop-hop=yes")
            headers.add("Event", "registration")
        return Request("REGISTER", f"sip:{self.domain}", headers)

    def _common_headers(self, flow: Flow, to: str, call_id: str, method: str, cseq: int) -> Headers:
        headers = Headers()
        branch = f"z9hG4bK{self.rng.getrandbits(64):016x}"
        port = flow.local[1] or self.sip_port
        headers.add(
            "Via", f"SIP/2.0/{flow.transport.upper()} {self.local_ip}:{port};branch={branch};rport"
        )
        headers.add("Max-Forwards", "70")
        epid = f";epid={self._epid}" if self.profile.lync_headers else ""
        headers.add("From", f"<{self.user}>;tag={self._tag}{epid}")
        headers.add("To", to)
        headers.add("Call-ID", call_id)
        headers.add("CSeq", f"{cseq} {method}")
        headers.add("User-Agent", f"sipemu-agent ({self.profile.name})")
        return headers

    def _request_headers(self, flow: Flow, to: str, method: str) -> Headers:
        """Headers of a new request outside any registration (its own Call-ID, the agent's
        CSeq counter): keep-alive and probe OPTIONS, the contact-list SUBSCRIBE, SERVICE."""
        self._cseq += 1
        call_id = f"{self.rng.getrandbits(64):016x}@{self.local_ip}"
        return self._common_headers(flow, to, call_id, method, self._cseq)

    def _start_tx(
        self, now: float, request: Request, flow: Flow, purpose: _Purpose, target: Target
    ) -> _Tx:
        branch = request.branch or ""
        tx = ClientTransaction(
            branch, request.to_bytes(), reliable=flow.reliable, timers=self._timers
        )
        tx.start(now)
        for data in tx.take_outgoing():
            self._actions.append(Send(flow, data))
        entry = _Tx(tx, flow, purpose, target)
        self._txs[branch] = entry
        return entry

    def _receive_response(self, response: Response, now: float) -> None:
        branch = response.branch
        entry = self._txs.get(branch or "")
        if entry is None:
            return
        if not entry.tx.receive_response(response.status, now) or response.status < 200:
            return
        if entry.tx.done:
            del self._txs[branch or ""]
        purpose = entry.purpose
        if purpose is _Purpose.UNREGISTER:
            return
        if purpose is _Purpose.KEEPALIVE:
            if entry.flow == self.registrar_flow:
                self._keepalive_at = now + self._keepalive_interval
            return
        if purpose is _Purpose.CONTACTS:
            self._contacts_answered(now, response)
            return
        if purpose is _Purpose.ADD_CONTACT:
            ok = response.status == 200
            why = "" if ok else f": {response.status} {_diagnostic(response)}"
            self._action_done(now, "add-contact", ok, f"{entry.detail}{why}")
            return
        if purpose is _Purpose.PROBE:
            self._probe_answered(now)
            return
        status = response.status
        if status == 200:
            self._registered(now, entry, response)
        elif status == 423 and entry.expires:
            minimum = response.headers.get("min-expires") or ""
            wanted = int(minimum) if minimum.isdigit() else entry.expires * 2
            if wanted <= entry.expires:
                # RFC 3261 §10.2.8 allows a retry with at least Min-Expires; one that asks for
                # no more than was refused would loop.
                self._tx_failed(entry, now, f"423 with Min-Expires {minimum or '?'}")
                return
            self._expires = wanted
            self._note(now, f"423 from {entry.target.host}: retrying with Expires {self._expires}")
            self._send_register(now, entry.target, purpose, expires=self._expires, flow=entry.flow)
        elif 300 <= status < 400 and purpose is _Purpose.REGISTER:
            self._redirected(now, entry, response)
        elif 300 <= status < 400 and self.profile.follows_redirect:
            # A refresh redirected (failback = redirect-on-refresh): the registrar dropped the
            # binding and names where to go; RFC 3261 §10.2.4: refreshes go where redirected.
            targets = self._redirect_targets(response, entry.target.transport)
            if not targets:
                self._tx_failed(entry, now, f"{status} without usable Contacts")
                return
            self._close(entry.flow)
            self.registrar_flow = None
            self._go_home(now, targets[0], f"refresh redirected by {entry.target.host}")
        else:
            self._tx_failed(entry, now, f"{status} {response.reason}")

    def _redirected(self, now: float, entry: _Tx, response: Response) -> None:
        profile = self.profile
        try:
            contacts = parse_contacts(response.headers)
        except SipError:
            contacts = []  # a malformed Contact list: nothing usable, as if empty
        if self.notes:
            listed = ", ".join(f"{_host_of(c.uri)} q={c.q:g}" for c in contacts)
            self._note(now, f"{response.status} from {entry.target.host}: {listed}")
        if not profile.follows_redirect:
            self._close(entry.flow)
            self._tx_failed(
                entry,
                now,
                f"{response.status} not followed ({profile.name})",
                redirect_refused=True,
            )
            return
        if self._redirect_depth >= 1:
            # Emulator choice: a redirect target that redirects again counts as failed, so a
            # backup answering 301 before failover cannot loop the client.
            self._close(entry.flow)
            self._tx_failed(entry, now, "redirected again by a redirect target")
            return
        targets = self._redirect_targets(response, entry.target.transport, contacts)
        if not targets:
            self._tx_failed(entry, now, "301 without usable Contacts")
            return
        # Memory only, until sign-out (DD-BLOG; protocol-notes §5 item 9).
        self.primary = targets[0]
        self.backup = targets[1] if len(targets) > 1 else None
        self._emit(now, f"redirected by {entry.target.host}")
        self._close(entry.flow)
        self._redirect_depth += 1
        # The Contacts first, then whatever was left (other SRV targets, and discovery when the
        # redirect came from a cached or backup server): RFC 3261 §8.1.3.4 target set.
        self._plan = [*targets, *self._plan]
        self._next(now)

    def _redirect_targets(
        self,
        response: Response,
        transport: TransportName,
        contacts: list[NameAddr] | None = None,
    ) -> list[Target]:
        """A 3xx's Contacts as targets, in the profile's order (decreasing q, or the first)."""
        if contacts is None:
            try:
                contacts = parse_contacts(response.headers)
            except SipError:
                return []
        ordered = (
            sorted(contacts, key=lambda c: -c.q)
            if self.profile.redirect_order == "q-descending"
            else contacts[:1]
        )
        targets: list[Target] = []
        for contact in ordered:
            try:
                uri = SipUri.parse(contact.uri)
            except SipError:
                continue
            wanted = uri.transport or transport
            if wanted not in ("udp", "tcp", "tls"):
                continue
            default = 5061 if wanted == "tls" else 5060
            targets.append(
                Target(
                    uri.host,
                    uri.port or default,
                    wanted,  # type: ignore[arg-type]
                    uri.host if _is_ip(uri.host) else None,
                    "redirect",
                )
            )
        return targets

    def _tx_failed(
        self, entry: _Tx, now: float, cause: str, *, redirect_refused: bool = False
    ) -> None:
        purpose = entry.purpose
        if purpose is _Purpose.UNREGISTER:
            return
        if purpose is _Purpose.KEEPALIVE:
            if entry.flow == self.registrar_flow:
                self._registrar_lost(now, f"keep-alive OPTIONS failed: {cause}")
            return
        if purpose is _Purpose.CONTACTS:
            self._note(now, f"contact list: {cause}")
            return
        if purpose is _Purpose.ADD_CONTACT:
            self._action_done(now, "add-contact", False, f"{entry.detail}: {cause}")
            return
        if purpose is _Purpose.PROBE:
            self._probe_ok_since = None
            self._close(entry.flow)
            self._probe_at = now + self.profile.failback_probe_interval
            return
        if purpose is _Purpose.REFRESH:
            self._registrar_lost(now, f"refresh failed: {cause}")
            return
        self._note(now, f"{entry.target.host} failed: {cause}")
        self._close(entry.flow)
        self._register_tx = None
        profile = self.profile
        if (
            entry.target.source == "redirect"
            and profile.retries_dead_redirect_target
            and not redirect_refused
        ):
            # linphone 5.1 keeps sending REGISTERs to the first Contact of a 301.
            self._failures += 1
            self._retry_at = now + profile.backoff.delay(self._failures, self.rng)
            self._retry_target = entry.target
            self.stuck_retrying = entry.target.host
            self._progress(now, "registering", f"{cause}; retrying {entry.target.host}")
            return
        if redirect_refused and profile.redirect_as_failure_retry is not None:
            # baresip 1.0 retries the same server about 57 s after a 301 it does not follow.
            self._retry_at = now + profile.redirect_as_failure_retry
            self._retry_target = entry.target
            self.stuck_retrying = entry.target.host
            if self.state != "signed-out":
                self._set_state(now, "signed-out", f"{cause}; retrying {entry.target.host}")
            self._loud = False
            return
        if not profile.srv_failover and entry.target.source == "srv":
            self._plan = [
                p for p in self._plan if not (isinstance(p, Target) and p.source == "srv")
            ]
        self._next(now)

    def _registered(self, now: float, entry: _Tx, response: Response) -> None:
        target = entry.target
        presence_text = response.headers.get("presence-state")
        presence: PresenceState | None = None
        if presence_text:
            try:
                presence = PresenceState.parse(presence_text)
            except SipError:
                presence = None
        expires = _granted_expires(response, entry.expires)
        refreshing = entry.purpose is _Purpose.REFRESH
        lost_binding = (
            refreshing
            and self.profile.lync_headers
            and presence is not None
            and presence.register_action != "refreshed"
        )
        if lost_binding:
            # MS-SIPREGE §3.1.1.5.1: "added" (or "fixed") on a refresh means the binding had
            # been lost: treat it as a registration failure and restart registration.
            self._note(
                now,
                f"refresh answered register-action={presence.register_action}: "  # type: ignore[union-attr]
                "binding lost, registering again",
            )
        was_registered = self.state == "registered" and self.registrar == target
        self.registrar = target
        self.registrar_flow = entry.flow
        self._register_tx = None
        self._loud = False
        self._failures = 0
        self._retry_at = None
        self.stuck_retrying = None
        self._redirect_depth = 0
        self._signout_at = None
        self._lost_cause = ""
        old_mode = self.mode
        self.mode = "limited" if presence is not None and presence.limited else "full"
        if self.mode == "limited":
            self.contacts = None
        on_primary = presence is None or presence.is_connected_to_primary is not False
        self.registrar_was_primary = on_primary
        if on_primary and self.primary is None:
            self.primary = target
        self._save_cache(now, target, on_primary)
        self._refresh_at = now + max(1.0, expires - min(self.profile.refresh_margin, expires / 2))
        keep_alive = response.headers.get("ms-keep-alive")
        self._keepalive_interval = self.profile.keepalive_interval
        if keep_alive and self.profile.use_server_keepalive_timeout:
            try:
                timeout = KeepAlive.parse(keep_alive).timeout
            except SipError:
                timeout = None
            if timeout:
                # The server's idle timeout bounds how long the flow may stay silent.
                self._keepalive_interval = min(self._keepalive_interval, float(timeout))
        self._keepalive_at = now + self._keepalive_interval
        self._pong_deadline = None
        if self._leaving is not None:
            old_target, old_flow = self._leaving
            self._leaving = None
            if old_flow != entry.flow:
                self._send_register(now, old_target, _Purpose.UNREGISTER, expires=0, flow=old_flow)
        if not on_primary and self.primary is not None and self.primary.host != target.host:
            self._probe_ok_since = None
            self._probe_at = now + self.profile.failback_probe_interval
        else:
            self._probe_at = None
        if not (refreshing and was_registered):
            self._set_state(now, "registered", f"200 from {target.host} ({target.source})")
            self._fetch_contacts(now)
        elif lost_binding:
            self._set_state(now, "registered", "binding was lost: registering again")
            self._refresh_at = None
            self._send_register(
                now, target, _Purpose.REGISTER, expires=self._expires, flow=entry.flow
            )
        elif self.mode != old_mode:
            available = "available" if self.mode == "full" else "unavailable"
            self._emit(now, f"user services {available} (refresh answered by {target.host})")
            self._fetch_contacts(now)

    def _save_cache(self, now: float, target: Target, on_primary: bool) -> None:
        if not self.profile.uses_endpoint_cache:
            return
        # The cache holds the primary registrar (home server), never the backup [DD-BLOG].
        home = target if on_primary else self.primary
        if home is None or home.address is None:
            return
        self.cache.save(
            CacheEntry(self.user, home.host, home.port, home.transport, now, home.address)
        )

    def _refresh(self, now: float) -> None:
        if self.registrar is None or self.registrar_flow is None:
            return
        if (
            not self.profile.sticky_after_failover
            and self._first_srv_targets
            and (_endpoint(self.registrar) != _endpoint(self._first_srv_targets[0]))
        ):
            # baresip 1.0: the next request goes back to the first SRV target.
            self._plan = list(self._first_srv_targets)
            self._register_tx = None
            self._next(now)
            return
        self._send_register(
            now, self.registrar, _Purpose.REFRESH, expires=self._expires, flow=self.registrar_flow
        )

    def _send_keepalive(self, now: float) -> None:
        flow = self.registrar_flow
        if flow is None or self.registrar is None:
            return
        if flow.reliable:  # RFC 5626 §3.5.1 CRLF ping
            ping = self._ping
            if ping is None or ping.flow is not flow:
                # One Send per registrar flow, reused (it is immutable): making a frozen
                # dataclass costs as much as the rest of a keep-alive.
                ping = self._ping = Send(flow, PING)
            self._actions.append(ping)
            self._pong_deadline = now + self.profile.pong_timeout
        else:
            self._send_options(now, self.registrar, flow, _Purpose.KEEPALIVE)

    def _send_options(self, now: float, target: Target, flow: Flow, purpose: _Purpose) -> None:
        headers = self._request_headers(flow, f"<sip:{target.host}>", "OPTIONS")
        request = Request("OPTIONS", f"sip:{target.host}", headers)
        self._start_tx(now, request, flow, purpose, target)

    # -- failure and failback ---------------------------------------------------------------

    def _registrar_lost(self, now: float, cause: str) -> None:
        if self.state != "registered" or self._signout_at is not None:
            return
        self._note(now, f"registrar {self.registrar.host if self.registrar else '?'} lost: {cause}")
        self._lost_cause = cause
        self._refresh_at = self._keepalive_at = self._pong_deadline = self._probe_at = None
        self._signout_at = now + self.profile.failover_detection_timeout

    def _after_loss(self, now: float) -> None:
        # _close spares the registrar's flow: forget it first, or the dead one stays open.
        flow, self.registrar_flow = self.registrar_flow, None
        if flow is not None:
            self._close(flow)
        self._set_state(now, "signed-out", f"registrar lost ({self._lost_cause})")
        self._begin(now, "failing over", after_loss=True)

    def _send_probe(self, now: float) -> None:
        primary = self.primary
        if primary is None or primary.address is None or self.state != "registered":
            return
        self._send_options(now, primary, self._flow_for(primary), _Purpose.PROBE)

    def _probe_answered(self, now: float) -> None:
        if self.primary is None or self.registrar is None:
            return
        if self._probe_ok_since is None:
            self._probe_ok_since = now
        if now - self._probe_ok_since >= self.profile.failback_detection_timeout:
            self._go_home(
                now,
                self.primary.with_source("primary"),
                f"primary answered probes for {self.profile.failback_detection_timeout:g} s",
                fallback=self.registrar,
            )
        else:
            self._probe_at = now + self.profile.failback_probe_interval

    def _go_home(
        self, now: float, target: Target, cause: str, *, fallback: Target | None = None
    ) -> None:
        """Register at ``target``; should that fail, at ``fallback`` (the registrar the client
        is still registered with, when nothing removed that binding), then discovery."""
        if self.registrar is not None and self.registrar_flow is not None:
            self._leaving = (self.registrar, self.registrar_flow)
        self._refresh_at = self._keepalive_at = self._pong_deadline = self._probe_at = None
        self._note(now, f"failing back to {target.host}: {cause}")
        self._plan = [target, fallback, _DISCOVER] if fallback else [target, _DISCOVER]
        self._redirect_depth = 0
        self._next(now)

    def _receive_request(self, request: Request, flow: Flow, now: float) -> None:
        method = request.method
        lync = self.profile.lync_headers
        if method == "OPTIONS" or (lync and method in ("NOTIFY", "BENOTIFY")):
            status = 200
        elif method in ("NOTIFY", "BENOTIFY"):
            # A generic UA knows no registration-notify event package: RFC 6665 §4.1.3.
            status = 489
        else:
            status = 501
        response = make_response(request, status, to_tag=self._tag)
        self._actions.append(Send(flow, response.to_bytes()))
        if status != 200 or method == "OPTIONS":
            return
        if CONTACTS_EVENT in (request.headers.get("event") or ""):
            if self.state == "registered" and flow == self.registrar_flow:
                self._set_contacts(now, _count_contacts(request.body), "contact list changed")
            return
        body = request.body.decode("utf-8", "replace").strip()
        if body.startswith("registered;event=userservices-"):
            self._user_services(now, flow, available=body.endswith("-available"))
            return
        if not body.startswith("deregistered"):
            return
        preferred = request.headers.get("p-preferred-registrar")
        self._note(
            now, f"NOTIFY {body}" + (f", P-Preferred-Registrar {preferred}" if preferred else "")
        )
        if self.registrar is None:
            return
        self._refresh_at = self._keepalive_at = self._pong_deadline = self._probe_at = None
        if preferred:
            try:
                uri = SipUri.parse(NameAddr.parse(preferred).uri)
            except SipError:
                uri = None
            if uri is not None:
                transport = uri.transport or self.registrar.transport
                if transport in ("udp", "tcp", "tls"):
                    home = Target(
                        uri.host,
                        uri.port or (5061 if transport == "tls" else 5060),
                        transport,  # type: ignore[arg-type]
                        uri.host if _is_ip(uri.host) else None,
                        "preferred",
                    )
                    if self.primary is not None and self.primary.host == home.host:
                        home = home.with_address(self.primary.address)
                    self.registrar_flow = None
                    self._go_home(now, home, "preferred-registrar-change")
                    return
        self._close(flow)
        self.registrar_flow = None
        self._set_state(now, "signed-out", f"deregistered by the registrar ({body})")
        self._begin(now, "signing in again", after_loss=False)

    def _user_services(self, now: float, flow: Flow, *, available: bool) -> None:
        """``registered;event=userservices-(un)available``: the registrar's back end went down or
        came back while this endpoint stays registered (survivable mode, MS-SIPREGE)."""
        if self.state != "registered" or flow != self.registrar_flow:
            return
        mode: Mode = "full" if available else "limited"
        if mode == self.mode:
            return
        self.mode = mode
        if not available:
            self.contacts = None
        self._emit(now, f"user services {'available' if available else 'unavailable'} (NOTIFY)")
        if available:
            self._fetch_contacts(now)

    # -- helpers ----------------------------------------------------------------------------

    def _close(self, flow: Flow) -> None:
        if flow.reliable and flow != self.registrar_flow:
            self._actions.append(CloseFlow(flow))

    def _progress(self, now: float, state: ClientState, cause: str) -> None:
        """Discovering/registering: a state change during a user's sign-in, else a note.

        Emulator choice: background attempts (retries after a failed sign-in, failover,
        failback) do not change what the user sees: a client that lost its registrar shows
        signed-out until it registers again, as R1's observers report it.
        """
        if self._loud:
            self._set_state(now, state, cause)
        else:
            self._note(now, cause)

    def _set_state(self, now: float, state: ClientState, cause: str) -> None:
        if state != "registered":
            self.mode = None if state == "signed-out" else self.mode
            self.contacts = None
        self.state = state
        self._emit(now, cause)

    def _emit(self, now: float, cause: str) -> None:
        self._events.append(
            ClientStateChanged(
                now,
                self.name,
                self.state,
                self.registrar.host if self.registrar and self.state == "registered" else None,
                self.mode if self.state == "registered" else None,
                self.primary.host if self.primary else None,
                self.backup.host if self.backup else None,
                cause,
                self.contacts if self.state == "registered" else None,
            )
        )

    def _note(self, now: float, text: str) -> None:
        if self.notes:
            self._events.append(ClientNote(now, self.name, text))


CONTACTS_EVENT = "vnd-microsoft-roaming-contacts"
CONTACTS_TYPE = "application/vnd-microsoft-roaming-contacts+xml"
_CONTACT_ITEM = re.compile(rb"<contact\b")


def _count_contacts(body: bytes) -> int:
    return len(_CONTACT_ITEM.findall(body))


def _diagnostic(response: Response) -> str:
    """The reason text of an ``ms-diagnostics(-public)`` header, or the reason phrase."""
    for name in ("ms-diagnostics", "ms-diagnostics-public"):
        value = response.headers.get(name)
        if value:
            found = re.search(r'reason="([^"]*)"', value)
            if found:
                return found.group(1)
    return response.reason


def _granted_expires(response: Response, asked: int) -> int:
    value = response.headers.get("expires")
    if value and value.strip().isdigit():
        return int(value)
    try:
        contacts = parse_contacts(response.headers)
    except SipError:
        return asked
    for contact in contacts:
        if contact.expires is not None:
            return contact.expires
    return asked


def _endpoint(target: Target) -> tuple[str, int, str]:
    """What makes two targets the same registrar (the address may or may not be resolved)."""
    return (target.host, target.port, target.transport)


def _host_of(uri: str) -> str:
    try:
        return SipUri.parse(uri).host
    except SipError:
        return uri


def _is_ip(host: str) -> bool:
    parts = host.split(".")
    return (len(parts) == 4 and all(p.isdigit() for p in parts)) or ":" in host


def _uuid(rng: random.Random) -> str:
    value = f"{rng.getrandbits(128):032x}"
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
