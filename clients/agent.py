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

This module is the facade and the glue; each job has its module:

* :mod:`clients.states`: the visible state, its transition table, the waiting states' data;
* :mod:`clients.plan`: targets, the round's plan, what redirects add to it;
* :mod:`clients.discovery`: the DNS steps;
* :mod:`clients.requests`: building REGISTER, OPTIONS, SUBSCRIBE, SERVICE;
* :mod:`clients.keepalive` and :mod:`clients.failback`: the two periodic cycles, which a
  simulator may coast (``cycles``, :mod:`emulator.coasting`).

The endpoint cache is the driver's: the entry it read is handed in at :meth:`Agent.sign_in`,
and a save is a :class:`~clients.cache.SaveCache` action.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from clients.cache import CacheEntry, CacheUnreadable, SaveCache
from clients.discovery import DNS_TIMEOUT, DNS_TRIES, Discovery, Query, first_address
from clients.events import (
    AgentEvent,
    BindingLost,
    CacheIgnored,
    ClientActionDone,
    ClientNote,
    ClientState,
    ClientStateChanged,
    ContactsChanged,
    ContactsFailed,
    ContactsReason,
    ContactsRefused,
    DeregistrationNotified,
    DiscoveryStarted,
    DnsAnswered,
    DnsTimedOut,
    ExpiresRaised,
    FailbackReason,
    FailbackStarted,
    FailedBack,
    FailedOver,
    Failure,
    FailureKind,
    LookupSent,
    Loss,
    LossKind,
    LossNoticed,
    MessageIgnored,
    Mode,
    Redirected,
    RedirectReceived,
    RefreshFoundNew,
    Registered,
    RegisterSent,
    RegistrarLost,
    RoundFailed,
    RoundReason,
    ServicesChanged,
    SignedOut,
    SignInStarted,
    SignOutReason,
    StepTaken,
    TargetFailed,
    TargetRetried,
)
from clients.failback import FailbackCycle
from clients.keepalive import KeepAliveCycle
from clients.plan import (
    DISCOVER,
    Discover,
    PlanItem,
    Target,
    endpoint,
    host_of,
    is_ip,
    preferred_target,
    redirect_targets,
    remembered,
)
from clients.profile import Profile
from clients.requests import CONTACTS_EVENT, RequestBuilder
from clients.states import TRANSITIONS, Backoff, LossTimer, StateMachine
from emulator.coasting import Cycle
from emulator.net import Action, Address, CloseFlow, Flow, Send, TransportName
from emulator.sip.errors import LocalProtocolError, SipError
from emulator.sip.framing import PONG
from emulator.sip.headers import KeepAlive, NameAddr, PresenceState, make_response, parse_contacts
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.transaction import ClientTransaction, TimerSettings
from emulator.sip.uri import SipUri

__all__ = ["DNS_TIMEOUT", "DNS_TRIES", "Agent", "Target"]


class _Purpose(Enum):
    REGISTER = "register"
    REFRESH = "refresh"
    UNREGISTER = "unregister"
    KEEPALIVE = "keepalive"
    PROBE = "probe"
    CONTACTS = "contacts"
    ADD_CONTACT = "add-contact"


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
        "_actions",
        "_backoff",
        "_cached",
        "_events",
        "_expires",
        "_failures",
        "_homeward",
        "_leaving",
        "_loss",
        "_lost_by",
        "_loud",
        "_machine",
        "_now",
        "_plan",
        "_probe_flow",
        "_redirect_depth",
        "_refresh_at",
        "_register_tx",
        "_timers",
        "_txs",
        "backup",
        "contacts",
        "cycles",
        "discovery",
        "dns_port",
        "dns_server",
        "domain",
        "failback",
        "keepalive",
        "local_ip",
        "mode",
        "name",
        "notes",
        "primary",
        "profile",
        "registrar",
        "registrar_was_primary",
        "requests",
        "rng",
        "sip_port",
        "stuck_retrying",
        "user",
        "wanted",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        user: str,
        *,
        profile: Profile,
        rng: random.Random,
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
        self.dns_server = dns_server
        self.local_ip = local_ip
        self.sip_port = sip_port
        self.dns_port = dns_port
        self.notes = notes
        self._timers = TimerSettings(t1=profile.transaction_timeout / 64)
        self.requests = RequestBuilder(self.user, self.domain, profile, rng, local_ip, sip_port)
        self.discovery = Discovery(local_ip, dns_port, dns_server)
        self.keepalive = KeepAliveCycle(profile.keepalive_interval, profile.pong_timeout)
        self.failback = FailbackCycle(self, profile.failback_probe_interval, self._timers.timer_f)
        self.cycles: tuple[Cycle, ...] = (self.failback, self.keepalive)
        """The periodic behaviours a simulator may coast (emulator/coasting.py); the probes
        first, so that the keep-alives' "next other deadline" leaves skipped probes out."""
        self._actions: list[Action] = []
        self._events: list[AgentEvent] = []
        self._now = 0.0
        self._machine = StateMachine()
        self._cached: CacheEntry | CacheUnreadable | None = None
        self._reset_session()
        self.mode: Mode | None = None
        self.contacts: int | None = None
        """Size of the contact list as last fetched (None: not fetched, or unavailable)."""
        self.wanted = False
        self.registrar_was_primary = True
        """Whether the registrar last lost was the primary (set on registration)."""

    def _reset_session(self) -> None:
        self.registrar: Target | None = None
        self.primary: Target | None = None
        self.backup: Target | None = None
        self._plan: list[PlanItem] = []
        self.discovery.steps = []
        self.discovery.query = None
        self.discovery.first_srv_targets = []
        self._txs: dict[str, _Tx] = {}
        self._register_tx: _Tx | None = None
        self._redirect_depth = 0
        self._failures = 0
        self._backoff: Backoff | None = None
        # The server this client keeps retrying instead of moving on, as some profiles do:
        # baresip after a 301 it refuses, linphone after a redirect target that does not
        # answer.  None once registered.  Read by the fuzzer's analysis.
        self.stuck_retrying: str | None = None
        self._refresh_at: float | None = None
        """When the registration is refreshed (the registered state's own deadline)."""
        keepalive = self.keepalive
        keepalive.stop()
        keepalive.flow = None
        keepalive.interval = self.profile.keepalive_interval
        self.failback.stop()
        self.failback.ok_since = None
        self._loss: LossTimer | None = None
        self._lost_by: Loss | None = None
        """The loss the agent has not registered again since (its rounds try the registrars
        remembered from a 301 first)."""
        self._expires = self.profile.register_expires
        self._leaving: tuple[Target, Flow] | None = None
        # The user watches this round (sign-in until it registers or gives up): its steps are
        # state changes; later rounds are notes (_progress).
        self._loud = False
        self._probe_flow: tuple[Target, Flow] | None = None
        self._homeward: Target | None = None
        """The registrar a failback is heading for (its 200 is a FailedBack)."""

    @property
    def state(self) -> ClientState:
        """What the user sees (clients/states.py)."""
        return self._machine.state

    @property
    def registrar_flow(self) -> Flow | None:
        """The flow the agent is registered on (None: none)."""
        return self.keepalive.flow

    @registrar_flow.setter
    def registrar_flow(self, flow: Flow | None) -> None:
        self.keepalive.flow = flow

    # -- commands ---------------------------------------------------------------------------

    def sign_in(self, now: float, *, cached: CacheEntry | CacheUnreadable | None = None) -> None:
        """Sign in; ``cached``: the endpoint cache's entry for the user as the driver read it
        (:func:`clients.cache.read_entry`).  The agent keeps it, and what it saves, until
        :meth:`cache_cleared`."""
        if self.wanted:
            raise LocalProtocolError(f"{self.name} is already signing in or signed in")
        self._now = now
        self._cached = cached
        self.wanted = True
        self._loud = True
        self._begin(now, RoundReason.SIGN_IN, after_loss=False)

    def cache_cleared(self) -> None:
        """The driver emptied the user's endpoint cache: later rounds find it empty."""
        self._cached = None

    def sign_out(self, now: float, *, unregister: bool = True) -> None:
        """Sign out; ``unregister=False`` models a crash (the binding is left to expire)."""
        self._now = now
        if unregister and self.registrar is not None and self.keepalive.flow is not None:
            self._send_register(
                now, self.registrar, _Purpose.UNREGISTER, expires=0, flow=self.keepalive.flow
            )
        for entry in self._txs.values():
            if entry.purpose is not _Purpose.UNREGISTER:
                self._close(entry.flow)
        self._txs = {k: v for k, v in self._txs.items() if v.purpose is _Purpose.UNREGISTER}
        if self.keepalive.flow is not None and not unregister:
            # _close spares the registrar's flow: forget it first, or it is never closed.
            flow, self.keepalive.flow = self.keepalive.flow, None
            self._close(flow)
        self.wanted = False
        keep = self._txs
        self._reset_session()
        self._txs = keep
        self._change(now, SignedOut, SignOutReason.BY_USER)

    def add_contact(self, now: float, uri: str) -> None:
        """Add ``uri`` to the user's contact list (a SERVICE ``<setContact/>``, a persistent
        change): the outcome comes as a :class:`ClientActionDone` event."""
        self._now = now
        if not self.profile.contact_list:
            self._action_done(now, "add-contact", False, f"{self.profile.name} has no contact list")
            return
        if (
            self._machine.state != "registered"
            or self.registrar is None
            or self.keepalive.flow is None
        ):
            self._action_done(now, "add-contact", False, "not signed in")
            return
        flow = self.keepalive.flow
        request = self.requests.set_contact(flow, uri)
        entry = self._start_tx(now, request, flow, _Purpose.ADD_CONTACT, self.registrar)
        entry.detail = uri

    def _fetch_contacts(self, now: float) -> None:
        """SUBSCRIBE to the contact list (Lync does after every sign-in); the 200 carries it."""
        if not self.profile.contact_list or self.registrar is None or self.keepalive.flow is None:
            return
        flow = self.keepalive.flow
        request = self.requests.subscribe_contacts(flow)
        self._start_tx(now, request, flow, _Purpose.CONTACTS, self.registrar)

    def _contacts_answered(self, now: float, response: Response) -> None:
        if response.status == 200:
            self._set_contacts(now, _count_contacts(response.body), ContactsReason.FETCHED)
        else:
            why = _diagnostic(response)
            if self.notes:
                self._note(ContactsRefused(now, self.name, response.status, why))
            self._set_contacts(now, None, ContactsReason.UNAVAILABLE, response.status)

    def _set_contacts(
        self, now: float, count: int | None, reason: ContactsReason, status: int = 0
    ) -> None:
        if count == self.contacts:
            return
        self.contacts = count
        if self._machine.state == "registered":
            self._change(now, ContactsChanged, reason, status)

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

    def actions(self) -> list[Action]:
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
        best = self.deadline_besides_cycles()
        # The cycles' deadline(), inlined (this runs after every input).
        keepalive = self.keepalive
        if not keepalive.coasting:
            value = keepalive.at
            if value is not None and (best is None or value < best):
                best = value
            value = keepalive.pong_at
            if value is not None and (best is None or value < best):
                best = value
        failback = self.failback
        value = failback.at
        if value is not None and not failback.coasting and (best is None or value < best):
            best = value
        return best

    def deadline_besides_cycles(self) -> float | None:
        """The next deadline leaving out the keep-alive and failback cycles' (for a simulator
        that coasts them, emulator/coasting.py)."""
        # Written out field by field, testing each attribute before copying it (most are
        # None), rather than as a loop over a tuple of them, which costs twice as much.
        best = self._refresh_at
        backoff = self._backoff
        if backoff is not None and (best is None or backoff.at < best):
            best = backoff.at
        loss = self._loss
        if loss is not None and (best is None or loss.at < best):
            best = loss.at
        query = self.discovery.query
        if query is not None and (best is None or query.deadline < best):
            best = query.deadline
        if self._txs:
            for entry in self._txs.values():
                value = entry.tx.next_deadline()
                if value is not None and (best is None or value < best):
                    best = value
        return best

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
                    self._tx_failed(entry, now, Failure(FailureKind.TIMEOUT))
        query = self.discovery.query
        if query is not None and now >= query.deadline:
            if query.tries < DNS_TRIES:
                self._actions.append(self.discovery.resend(now, query))
            else:
                self.discovery.query = None
                if self.notes:
                    self._note(DnsTimedOut(now, self.name, query.qtype, query.name))
                self._dns_failed(now, query)
        keepalive = self.keepalive
        if keepalive.pong_at is not None and now >= keepalive.pong_at:
            keepalive.pong_at = None
            self._registrar_lost(now, Loss(LossKind.PONG_MISSING))
        if keepalive.at is not None and now >= keepalive.at:
            keepalive.at = None
            self._send_keepalive(now)
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            self._refresh(now)
        loss = self._loss
        if loss is not None and now >= loss.at:
            self._loss = None
            self._after_loss(now, loss.loss)
        failback = self.failback
        if failback.at is not None and now >= failback.at:
            failback.at = None
            self.send_probe(now)
        backoff = self._backoff
        if backoff is not None and now >= backoff.at:
            self._backoff = None
            if backoff.target is not None:
                self._plan = [backoff.target, *self._plan]
                self._next(now)
            else:
                # Still recovering from a lost registrar: the backup stays first in the plan.
                self._begin(now, RoundReason.RETRY, after_loss=self._lost)

    def flow_failed(self, flow: Flow, now: float) -> None:
        """A connection could not be opened or broke (RFC 3261 §8.1.3.1: like a 503)."""
        self._now = now
        for key, entry in list(self._txs.items()):
            if entry.flow == flow:
                entry.tx.transport_error(now)
                del self._txs[key]
                self._tx_failed(entry, now, Failure(FailureKind.CONNECTION))
        if flow == self.keepalive.flow and self._machine.state == "registered":
            self._registrar_lost(now, Loss(LossKind.CONNECTION_LOST))

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self._now = now
        if data == PONG and flow.transport != "udp":
            # RFC 5626 §4.4.1 pong, tested first and handled inline: it is most of what
            # arrives (a pong never comes from the DNS server, which speaks UDP only).  ``is``
            # first: the pong comes back on the very Flow the ping went out on.
            keepalive = self.keepalive
            registrar_flow = keepalive.flow
            if (flow is registrar_flow or flow == registrar_flow) and keepalive.pong_at is not None:
                keepalive.answered(now)
            return
        if flow.remote == self.dns_server and flow.transport == "udp":
            self._receive_dns(data, now)
            return
        if data == PONG:
            keepalive = self.keepalive
            if flow == keepalive.flow and keepalive.pong_at is not None:
                keepalive.answered(now)
            return
        try:
            message = parse_message(data, stream=flow.reliable)
        except SipError as exc:
            if self.notes:
                self._note(MessageIgnored(now, self.name, str(exc)))
            return
        if isinstance(message, Response):
            self._receive_response(message, now)
        else:
            self._receive_request(message, flow, now)

    # -- sign-in plan -----------------------------------------------------------------------

    @property
    def _lost(self) -> bool:
        """Whether the registrar was lost and the agent has not registered since."""
        return self._lost_by is not None

    def remembered_targets(self) -> list[Target]:
        """The registrars learned from a 301 that this client tries first from memory: in its
        next round if it is signed out after losing a registration, or once it loses the one
        it has.  None before its first registration (a round then starts from the cache or
        DNS).  Read by the fuzzer's analysis."""
        return self._remembered(self._machine.state == "registered" or self._lost)

    def _remembered(self, after_loss: bool) -> list[Target]:
        if not after_loss:
            return []
        return remembered(self.primary, self.backup, lost_primary=self.registrar_was_primary)

    def _begin(self, now: float, reason: RoundReason, *, after_loss: bool) -> None:
        plan: list[PlanItem] = list(self._remembered(after_loss))
        trust_cache = False
        if self.profile.uses_endpoint_cache:
            cached = self._cached
            if isinstance(cached, CacheUnreadable):
                if self.notes:
                    self._note(CacheIgnored(now, self.name, cached.reason))
            elif cached is not None:
                plan.append(
                    Target(
                        cached.home_server, cached.port, cached.transport, cached.address, "cache"
                    )
                )
                # The first cache_only_rounds rounds trust the cache: no discovery.
                trust_cache = self._failures < self.profile.cache_only_rounds
        if not trust_cache:
            plan.append(DISCOVER)
        self._plan = plan
        self._redirect_depth = 0
        self._homeward = None
        self.registrar = None
        self.keepalive.flow = None
        self.mode = None
        if isinstance(plan[0], Target):
            self._progress(now, SignInStarted, reason)
        else:
            self._progress(now, DiscoveryStarted, reason)
        self._next(now)

    def _next(self, now: float) -> None:
        while self._plan:
            item = self._plan.pop(0)
            if isinstance(item, Discover):
                # A new discovery round: a Director it finds may redirect again.
                self._redirect_depth = 0
                self.discovery.begin(self.profile, self.domain)
                if self._next_step(now):
                    return
                continue
            self._try_target(now, item)
            return
        self._give_up(now)

    def _next_step(self, now: float) -> bool:
        """Query the next discovery name; False when none is left."""
        step = self.discovery.next_step()
        if step is None:
            return False
        name, qtype, transport, port = step
        self._progress(now, LookupSent, qtype, name)
        purpose: Literal["srv", "a"] = "srv" if qtype == "SRV" else "a"
        send = self.discovery.start_query(now, self.rng, name, qtype, purpose, transport, port)
        self._actions.append(send)
        return True

    def _give_up(self, now: float) -> None:
        # RFC 5626 §4.5 counts the failure that just happened: the first retry waits
        # base-time * 2^1 * [0.5, 1], i.e. 30-60 s with the defaults.
        self._failures += 1
        delay = self.profile.backoff.delay(self._failures, self.rng)
        self._backoff = Backoff(now + delay)
        if self._machine.state != "signed-out":
            self._change(now, SignedOut, SignOutReason.NO_REGISTRAR, delay)
        elif self.notes:
            self._note(RoundFailed(now, self.name, delay))
        self._loud = False

    def _try_target(self, now: float, target: Target) -> None:
        if target.address is None:
            try:
                SipUri.parse(f"sip:{target.host}")
            except SipError:
                self._next(now)
                return
            if is_ip(target.host):
                self._try_target(now, target.with_address(target.host))
                return
            send = self.discovery.start_query(
                now, self.rng, target.host, "A", "resolve", target.transport, target.port, target
            )
            self._actions.append(send)
            return
        self._send_register(now, target, _Purpose.REGISTER, expires=self._expires)

    # -- DNS --------------------------------------------------------------------------------

    def _receive_dns(self, data: bytes, now: float) -> None:
        found = self.discovery.answered(data)
        if found is None:
            return
        query, answer = found
        if self.notes:
            records = tuple(r.rdata_text() for r in answer.records)
            self._note(DnsAnswered(now, self.name, query.qtype, query.name, answer.rcode, records))
        if not answer.ok:
            self._dns_failed(now, query)
            return
        if query.purpose == "srv":
            targets = self.discovery.srv_targets(query, answer, self.rng)
            if targets is None:
                self._dns_failed(now, query)
                return
            self._plan = [*targets, *self._plan]
            self._next(now)
        elif query.purpose == "a":
            self.discovery.steps = []
            address = first_address(answer)
            target = Target(query.name, query.step_port, query.step_transport, address, "a")
            self._plan = [target, *self._plan]
            self._next(now)
        else:
            assert query.target is not None
            resolved = query.target.with_address(first_address(answer))
            self._remember_address(resolved)
            self._send_register(now, resolved, _Purpose.REGISTER, expires=self._expires)

    def _dns_failed(self, now: float, query: Query) -> None:
        if query.purpose == "resolve":
            self._next(now)
        elif not self._next_step(now):
            self._next(now)

    def _remember_address(self, target: Target) -> None:
        primary, backup = self.primary, self.backup
        if primary is not None and primary.host == target.host and primary.address is None:
            self.primary = primary.with_address(target.address)
        if backup is not None and backup.host == target.host and backup.address is None:
            self.backup = backup.with_address(target.address)

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
        request = self.requests.register(target, flow, expires)
        entry = self._start_tx(now, request, flow, purpose, target)
        entry.expires = expires
        if purpose is _Purpose.REGISTER:
            self._register_tx = entry
            if self._machine.state != "registered":
                self._progress(now, RegisterSent, target.host, target.source)

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
            if entry.flow == self.keepalive.flow:
                self.keepalive.at = now + self.keepalive.interval
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
                self._tx_failed(entry, now, Failure(FailureKind.MIN_EXPIRES, 423, minimum))
                return
            self._expires = wanted
            if self.notes:
                self._note(ExpiresRaised(now, self.name, entry.target.host, self._expires))
            self._send_register(now, entry.target, purpose, expires=self._expires, flow=entry.flow)
        elif 300 <= status < 400 and purpose is _Purpose.REGISTER:
            self._redirected(now, entry, response)
        elif 300 <= status < 400 and self.profile.follows_redirect:
            # A refresh redirected (failback = redirect-on-refresh): the registrar dropped the
            # binding and names where to go; RFC 3261 §10.2.4: refreshes go where redirected.
            targets = self._redirect_targets(response, entry.target.transport)
            if not targets:
                self._tx_failed(entry, now, Failure(FailureKind.NO_CONTACTS, status))
                return
            self._close(entry.flow)
            self.keepalive.flow = None
            self._go_home(now, targets[0], FailbackReason.REFRESH_REDIRECTED, by=entry.target.host)
        else:
            self._tx_failed(entry, now, Failure(FailureKind.STATUS, status, response.reason))

    def _redirected(self, now: float, entry: _Tx, response: Response) -> None:
        profile = self.profile
        try:
            contacts = parse_contacts(response.headers)
        except SipError:
            contacts = []  # a malformed Contact list: nothing usable, as if empty
        if self.notes:
            listed = tuple((host_of(c.uri), c.q) for c in contacts)
            self._note(RedirectReceived(now, self.name, response.status, entry.target.host, listed))
        if not profile.follows_redirect:
            self._close(entry.flow)
            self._tx_failed(
                entry,
                now,
                Failure(FailureKind.NOT_FOLLOWED, response.status, profile.name),
                redirect_refused=True,
            )
            return
        if self._redirect_depth >= 1:
            # Emulator choice: a redirect target that redirects again counts as failed, so a
            # backup answering 301 before failover cannot loop the client.
            self._close(entry.flow)
            self._tx_failed(entry, now, Failure(FailureKind.REDIRECTED_AGAIN))
            return
        targets = self._redirect_targets(response, entry.target.transport, contacts)
        if not targets:
            # The text says 301 whatever the 3xx was (as it always has: traces keep it).
            self._tx_failed(entry, now, Failure(FailureKind.NO_CONTACTS, 301))
            return
        # Memory only, until sign-out (DD-BLOG; protocol-notes §5 item 9).
        self.primary = targets[0]
        self.backup = targets[1] if len(targets) > 1 else None
        self._change(now, Redirected, entry.target.host)
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
        q_descending = self.profile.redirect_order == "q-descending"
        return redirect_targets(response, transport, q_descending, contacts)

    def _tx_failed(
        self, entry: _Tx, now: float, failure: Failure, *, redirect_refused: bool = False
    ) -> None:
        purpose = entry.purpose
        if purpose is _Purpose.UNREGISTER:
            return
        if purpose is _Purpose.KEEPALIVE:
            if entry.flow == self.keepalive.flow:
                self._registrar_lost(now, Loss(LossKind.KEEPALIVE_FAILED, failure))
            return
        if purpose is _Purpose.CONTACTS:
            if self.notes:
                self._note(ContactsFailed(now, self.name, failure))
            return
        if purpose is _Purpose.ADD_CONTACT:
            self._action_done(now, "add-contact", False, f"{entry.detail}: {failure}")
            return
        if purpose is _Purpose.PROBE:
            self._close(entry.flow)
            self.failback.failed(now)
            return
        if purpose is _Purpose.REFRESH:
            self._registrar_lost(now, Loss(LossKind.REFRESH_FAILED, failure))
            return
        if self.notes:
            self._note(TargetFailed(now, self.name, entry.target.host, failure))
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
            delay = profile.backoff.delay(self._failures, self.rng)
            self._backoff = Backoff(now + delay, entry.target)
            self.stuck_retrying = entry.target.host
            self._progress(now, TargetRetried, failure, entry.target.host)
            return
        if redirect_refused and profile.redirect_as_failure_retry is not None:
            # baresip 1.0 retries the same server about 57 s after a 301 it does not follow.
            self._backoff = Backoff(now + profile.redirect_as_failure_retry, entry.target)
            self.stuck_retrying = entry.target.host
            if self._machine.state != "signed-out":
                self._change(
                    now,
                    SignedOut,
                    SignOutReason.REFUSED_REDIRECT,
                    0.0,
                    failure,
                    entry.target.host,
                )
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
            if self.notes:
                action = presence.register_action  # type: ignore[union-attr]
                self._note(RefreshFoundNew(now, self.name, action))
        was_registered = self._machine.state == "registered" and self.registrar == target
        # Which kind of registration this is, for the event: after a loss, after a failback.
        failed_over = self._lost
        homeward = self._homeward
        failed_back = homeward is not None and homeward.host == target.host
        self.registrar = target
        self.keepalive.flow = entry.flow
        self._register_tx = None
        self._loud = False
        self._failures = 0
        self._backoff = None
        self.stuck_retrying = None
        self._redirect_depth = 0
        self._loss = None
        self._lost_by = None
        self._homeward = None
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
        interval = self.profile.keepalive_interval
        if keep_alive and self.profile.use_server_keepalive_timeout:
            try:
                timeout = KeepAlive.parse(keep_alive).timeout
            except SipError:
                timeout = None
            if timeout:
                # The server's idle timeout bounds how long the flow may stay silent.
                interval = min(interval, float(timeout))
        self.keepalive.start(now, interval)
        if self._leaving is not None:
            old_target, old_flow = self._leaving
            self._leaving = None
            if old_flow != entry.flow:
                self._send_register(now, old_target, _Purpose.UNREGISTER, expires=0, flow=old_flow)
        if not on_primary and self.primary is not None and self.primary.host != target.host:
            self.failback.start(now)
        else:
            self.failback.stop()
        if not (refreshing and was_registered):
            kind = FailedBack if failed_back else FailedOver if failed_over else Registered
            self._change(now, kind, target.host, target.source)
            self._fetch_contacts(now)
        elif lost_binding:
            self._change(now, BindingLost)
            self._refresh_at = None
            self._send_register(
                now, target, _Purpose.REGISTER, expires=self._expires, flow=entry.flow
            )
        elif self.mode != old_mode:
            self._change(now, ServicesChanged, self.mode == "full", target.host)
            self._fetch_contacts(now)

    def _save_cache(self, now: float, target: Target, on_primary: bool) -> None:
        if not self.profile.uses_endpoint_cache:
            return
        # The cache holds the primary registrar (home server), never the backup [DD-BLOG].
        home = target if on_primary else self.primary
        if home is None or home.address is None:
            return
        entry = CacheEntry(self.user, home.host, home.port, home.transport, now, home.address)
        self._cached = entry  # what a later round of this agent reads back
        self._actions.append(SaveCache(entry))

    def _refresh(self, now: float) -> None:
        if self.registrar is None or self.keepalive.flow is None:
            return
        first = self.discovery.first_srv_targets
        if (
            not self.profile.sticky_after_failover
            and first
            and (endpoint(self.registrar) != endpoint(first[0]))
        ):
            # baresip 1.0: the next request goes back to the first SRV target.
            self._plan = list(first)
            self._register_tx = None
            self._next(now)
            return
        self._send_register(
            now, self.registrar, _Purpose.REFRESH, expires=self._expires, flow=self.keepalive.flow
        )

    def _send_keepalive(self, now: float) -> None:
        flow = self.keepalive.flow
        if flow is None or self.registrar is None:
            return
        if flow.reliable:  # RFC 5626 §3.5.1 CRLF ping
            self._actions.append(self.keepalive.ping(now, flow))
        else:
            request = self.requests.options(self.registrar, flow)
            self._start_tx(now, request, flow, _Purpose.KEEPALIVE, self.registrar)

    # -- failure and failback ---------------------------------------------------------------

    def _registrar_lost(self, now: float, loss: Loss) -> None:
        if self._machine.state != "registered" or self._loss is not None:
            return
        if self.notes:
            host = self.registrar.host if self.registrar else "?"
            self._note(LossNoticed(now, self.name, host, loss))
        self._lost_by = loss
        self._refresh_at = None
        self.keepalive.stop()
        self.failback.stop()
        self._loss = LossTimer(now + self.profile.failover_detection_timeout, loss)

    def _after_loss(self, now: float, loss: Loss) -> None:
        # _close spares the registrar's flow: forget it first, or the dead one stays open.
        flow, self.keepalive.flow = self.keepalive.flow, None
        if flow is not None:
            self._close(flow)
        self._change(now, RegistrarLost, loss)
        self._begin(now, RoundReason.FAILOVER, after_loss=True)

    # ProbeHost (clients/failback.py): what the failback cycle asks of the agent.

    def probe_flow(self) -> Flow | None:
        if self._txs or self._machine.state != "registered":
            return None
        primary = self.primary
        if primary is None or primary.address is None:
            return None
        known = self._probe_flow
        if known is not None and known[0] is primary:
            return known[1]  # speed: asked after every input while probing
        flow = self._flow_for(primary)
        self._probe_flow = (primary, flow)
        return flow

    def send_probe(self, now: float) -> Send | None:
        primary = self.primary
        if primary is None or primary.address is None or self._machine.state != "registered":
            return None
        flow = self._flow_for(primary)
        request = self.requests.options(primary, flow)
        self._start_tx(now, request, flow, _Purpose.PROBE, primary)
        last = self._actions[-1]
        assert isinstance(last, Send)
        return last

    def skip_probe(self) -> None:
        # What the probe's OPTIONS draws and counts (requests.options takes its identifiers
        # from the same function), without building the message.
        self.requests.outside_identifiers()

    def _probe_answered(self, now: float) -> None:
        if self.primary is None or self.registrar is None:
            return
        detection = self.profile.failback_detection_timeout
        if self.failback.answered(now, detection):
            self._go_home(
                now,
                self.primary.with_source("primary"),
                FailbackReason.PROBES_ANSWERED,
                seconds=detection,
                fallback=self.registrar,
            )

    def _go_home(
        self,
        now: float,
        target: Target,
        reason: FailbackReason,
        *,
        by: str = "",
        seconds: float = 0.0,
        fallback: Target | None = None,
    ) -> None:
        """Register at ``target``; should that fail, at ``fallback`` (the registrar the client
        is still registered with, when nothing removed that binding), then discovery."""
        if self.registrar is not None and self.keepalive.flow is not None:
            self._leaving = (self.registrar, self.keepalive.flow)
        self._refresh_at = None
        self.keepalive.stop()
        self.failback.stop()
        if self.notes:
            self._note(FailbackStarted(now, self.name, target.host, reason, by, seconds))
        self._plan = [target, fallback, DISCOVER] if fallback else [target, DISCOVER]
        self._redirect_depth = 0
        self._homeward = target
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
        response = make_response(request, status, to_tag=self.requests.tag)
        self._actions.append(Send(flow, response.to_bytes()))
        if status != 200 or method == "OPTIONS":
            return
        if CONTACTS_EVENT in (request.headers.get("event") or ""):
            if self._machine.state == "registered" and flow == self.keepalive.flow:
                self._set_contacts(now, _count_contacts(request.body), ContactsReason.CHANGED)
            return
        body = request.body.decode("utf-8", "replace").strip()
        if body.startswith("registered;event=userservices-"):
            self._user_services(now, flow, available=body.endswith("-available"))
            return
        if not body.startswith("deregistered"):
            return
        preferred = request.headers.get("p-preferred-registrar")
        if self.notes:
            self._note(DeregistrationNotified(now, self.name, body, preferred or ""))
        if self.registrar is None:
            return
        self._refresh_at = None
        self.keepalive.stop()
        self.failback.stop()
        if preferred:
            home = preferred_target(preferred, self.registrar.transport, self.primary)
            if home is not None:
                self.keepalive.flow = None
                self._go_home(now, home, FailbackReason.PREFERRED_REGISTRAR)
                return
        self._close(flow)
        self.keepalive.flow = None
        self._change(now, SignedOut, SignOutReason.DEREGISTERED, 0.0, None, "", body)
        self._begin(now, RoundReason.AGAIN, after_loss=False)

    def _user_services(self, now: float, flow: Flow, *, available: bool) -> None:
        """``registered;event=userservices-(un)available``: the registrar's back end went down or
        came back while this endpoint stays registered (survivable mode, MS-SIPREGE)."""
        if self._machine.state != "registered" or flow != self.keepalive.flow:
            return
        mode: Mode = "full" if available else "limited"
        if mode == self.mode:
            return
        self.mode = mode
        if not available:
            self.contacts = None
        self._change(now, ServicesChanged, available)
        if available:
            self._fetch_contacts(now)

    # -- helpers ----------------------------------------------------------------------------

    def _close(self, flow: Flow) -> None:
        if flow.reliable and flow != self.keepalive.flow:
            self._actions.append(CloseFlow(flow))

    def _progress(self, now: float, kind: type[ClientStateChanged], *detail: object) -> None:
        """A step of a round: a state change during a user's sign-in, else a note.

        Emulator choice: background attempts (retries after a failed sign-in, failover,
        failback) do not change what the user sees: a client that lost its registrar shows
        signed-out until it registers again, as R1's observers report it.
        """
        if self._loud:
            self._change(now, kind, *detail)
        elif self.notes:
            self._note(
                StepTaken(now, self.name, self._event(now, kind, self._machine.state, detail))
            )

    def _change(self, now: float, kind: type[ClientStateChanged], *detail: object) -> None:
        """The one way the visible state changes: ``kind``'s transition (clients/states.py)
        and its event."""
        state = self._machine.apply(kind)
        if TRANSITIONS[kind][1] is not None and state != "registered":
            self.mode = None if state == "signed-out" else self.mode
            self.contacts = None
        self._events.append(self._event(now, kind, state, detail))

    def _event(
        self,
        now: float,
        kind: type[ClientStateChanged],
        state: ClientState,
        detail: tuple[object, ...],
    ) -> ClientStateChanged:
        registered = state == "registered"
        registrar = self.registrar
        primary, backup = self.primary, self.backup
        return kind(
            now,
            self.name,
            state,
            registrar.host if registrar and registered else None,
            self.mode if registered else None,
            primary.host if primary else None,
            backup.host if backup else None,
            self.contacts if registered else None,
            *detail,
        )

    def _note(self, note: ClientNote) -> None:
        """A detail line (the caller tests ``self.notes`` first: no note is built without)."""
        self._events.append(note)


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
