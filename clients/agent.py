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

This module is the facade: the agent's state, the driving contract, the commands, the
dispatch of answers and failures by the purpose of their request, and the one door to the
visible state (``_change``, ``_progress``).  Each job has its module, of plain functions
taking the agent:

* :mod:`clients.states`: the visible state, its transition table, the waiting states' data
  (the refresh, backoff and loss deadlines) and the round's (:class:`~clients.states.Round`);
* :mod:`clients.rounds`: a round's plan, its DNS steps, the next target, giving up;
* :mod:`clients.registration`: REGISTER sent, answered (200, 423), failed; refresh;
* :mod:`clients.redirects`: 3xx answers;
* :mod:`clients.failover`: a registrar lost, failover, failback (``go_home``);
* :mod:`clients.notify`: the requests a client receives (NOTIFY, BENOTIFY, OPTIONS);
* :mod:`clients.contacts`: the contact list;
* :mod:`clients.plan`: targets and what redirects add to a plan;
* :mod:`clients.discovery`: the DNS queries;
* :mod:`clients.requests`: building REGISTER, OPTIONS, SUBSCRIBE, SERVICE; a request in flight;
* :mod:`clients.keepalive` and :mod:`clients.failback`: the two periodic cycles, which a
  simulator may coast (``cycles``, :mod:`emulator.coasting`).

The endpoint cache is the driver's: the entry it read is handed in at :meth:`Agent.sign_in`,
and a save is a :class:`~clients.cache.SaveCache` action.
"""

from __future__ import annotations

import random
from functools import lru_cache

from clients import contacts, failover, notify, registration, rounds
from clients.cache import CacheEntry, CacheUnreadable
from clients.credentials import Credentials
from clients.discovery import DNS_TIMEOUT, DNS_TRIES, Discovery
from clients.dnscache import DnsCache
from clients.events import (
    AgentEvent,
    ClientActionDone,
    ClientNote,
    ClientState,
    ClientStateChanged,
    ContactsFailed,
    DnsTimedOut,
    Failure,
    FailureKind,
    Loss,
    LossKind,
    MessageIgnored,
    Mode,
    RoundReason,
    SignedOut,
    SignOutReason,
    StepTaken,
    TargetDeferred,
)
from clients.failback import FailbackCycle
from clients.keepalive import KeepAliveCycle
from clients.plan import Target, endpoint
from clients.profile import Profile
from clients.requests import Purpose, RequestBuilder, Tx
from clients.states import TRANSITIONS, Backoff, LossTimer, Refresh, Round, StateMachine
from emulator.coasting import Cycle
from emulator.net import Action, Address, CloseFlow, Flow, Send
from emulator.sip.errors import LocalProtocolError, SipError
from emulator.sip.framing import PONG
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.transaction import ClientTransaction, TimerSettings
from emulator.sip.uri import SipUri

__all__ = ["DNS_TIMEOUT", "DNS_TRIES", "Agent", "Target"]


@lru_cache(maxsize=64)
def _timer_settings(t1: float) -> TimerSettings:
    """One (immutable) TimerSettings per T1, shared by the agents (memory, issue 20)."""
    return TimerSettings(t1=t1)


class Agent:
    """A sans-IO SIP client agent.  See the module docstring for the sign-in plan."""

    # Slots: a live fleet runs 10,000 agents in one process, and an instance dict of this
    # many attributes is about 1.6 KB (benchmarks/agents_bench.py, docs/benchmarks.md).
    __slots__ = (
        "_account_expires",
        "_actions",
        "_backoff",
        "_cached",
        "_deferred",
        "_events",
        "_expires",
        "_failures",
        "_last_flow",
        "_loss",
        "_lost_by",
        "_machine",
        "_probe_flow",
        "_refresh",
        "_timers",
        "_txs",
        "backup",
        "contacts",
        "credentials",
        "cycles",
        "discovery",
        "dns_port",
        "dns_server",
        "domain",
        "failback",
        "heard",
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
        "round",
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
        password: str | None = None,
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
        self._timers = _timer_settings(profile.transaction_timeout / 64)
        self.requests = RequestBuilder(self.user, self.domain, profile, rng, local_ip, sip_port)
        self.discovery = Discovery(
            local_ip,
            dns_port,
            dns_server,
            DnsCache(profile.dns_cache_max_ttl, profile.dns_negative_cache_max_ttl),
        )
        self.keepalive = KeepAliveCycle(
            profile.keepalive_interval,
            profile.pong_timeout,
            expects_pong=profile.keepalive_detects_loss,
        )
        self.failback = FailbackCycle(self, profile.failback_probe_interval, self._timers.timer_f)
        self.cycles: tuple[Cycle, ...] = (self.failback, self.keepalive)
        """The periodic behaviours a simulator may coast (emulator/coasting.py); the probes
        first, so that the keep-alives' "next other deadline" leaves skipped probes out."""
        self._actions: list[Action] = []
        self._events: list[AgentEvent] = []
        self._machine = StateMachine()
        self._cached: CacheEntry | CacheUnreadable | None = None
        self._last_flow: Flow | None = None
        """The flow :meth:`_flow_for` made last (reused, memory)."""
        self._deferred: dict[tuple[str, int, str], float] | None = None
        """Servers that answered 503 with Retry-After -> when they may be asked again (RFC
        3261 §21.5.4; ``Profile.honours_retry_after``).  Kept across sessions: it is about
        the server, not the sign-in.  None until the first (no dict per agent in a fleet of
        thousands that never sees one)."""
        self.credentials = (
            Credentials(
                SipUri.parse(self.user).user or "",
                password,
                rng,
                profile.digest_algorithms,
                profile.auth_schemes,
            )
            if password is not None and profile.auth_schemes
            else None
        )
        """The user's password and the registrar's last challenge or NTLM security association
        (clients/credentials.py; None: the client answers no challenge, a 401 fails the
        target)."""
        self._account_expires = profile.account_expires(rng)
        """The Expires this client's account asks for: the profile's, plus its
        ``register_expires_jitter`` drawn once (baresip draws it when the account is made)."""
        self._reset_session()
        self.mode: Mode | None = None
        self.contacts: int | None = None
        """Size of the contact list as last fetched (None: not fetched, or unavailable)."""
        self.wanted = False
        """The user wants to be signed in: set by sign_in, cleared by sign_out.  Read by the
        drivers (clients/driver.py, emulator/sim/deployment.py, emulator/fuzz/case.py)."""
        self.registrar_was_primary = True
        """Whether the registrar the agent registered with last said it was the primary
        (``presence-state``'s is-connected-to-primary): set by registration.registered.  Read
        by rounds.from_memory (after a loss: the backup if the primary was lost, else the primary
        then the backup)."""

    def _reset_session(self) -> None:
        self.registrar: Target | None = None
        self.primary: Target | None = None
        self.backup: Target | None = None
        self.round = Round()
        self.discovery.steps = ()
        self.discovery.query = None
        self.discovery.first_srv_targets = []
        self.discovery.side = []
        self.discovery.awaiting = None
        self._txs: dict[str, Tx] = {}
        self._failures = 0
        """Rounds failed in a row (the backoff's exponent): counted by rounds.give_up and
        registration.failed, zeroed by registration.registered; read by rounds.begin (the
        cache-only rounds)."""
        self._backoff: Backoff | None = None
        self.stuck_retrying: str | None = None
        """The server this client keeps retrying instead of moving on, as some profiles do
        (baresip after a 301 it refuses, linphone after a redirect target that does not
        answer): set by registration.failed, None once registered (registration.registered).
        Read by the fuzzer (emulator/fuzz/case.py, analysis.py)."""
        self._refresh: Refresh | None = None
        self.heard: dict[Flow, float] | None = (
            {} if self.profile.flow_suspect_after is not None else None
        )
        """When something last came in on each flow (``Profile.flow_suspect_after``; None,
        and nothing kept, for the profiles without it).  Written by receive, read by
        failover.refresh_failed."""
        keepalive = self.keepalive
        keepalive.stop()
        keepalive.flow = None
        keepalive.interval = self.profile.keepalive_interval
        self.failback.stop()
        self.failback.ok_since = None
        self._loss: LossTimer | None = None
        self._lost_by: Loss | None = None
        """The loss the agent has not registered again since: set by failover.registrar_lost,
        cleared by registration.registered.  It outlives the rounds after the loss: they try
        the registrars remembered from a 301 first (``_lost``, rounds.from_memory), and the
        registration that ends them is a FailedOver."""
        self._expires = self._account_expires
        """The Expires the REGISTERs ask for: the account's, raised by a 423
        (registration.answered)."""
        self._probe_flow: tuple[Target, Flow] | None = None

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
        self._cached = cached
        self.wanted = True
        self.round.loud = True
        rounds.begin(self, now, RoundReason.SIGN_IN, after_loss=False)

    def cache_cleared(self) -> None:
        """The driver emptied the user's endpoint cache: later rounds find it empty."""
        self._cached = None

    def sign_out(self, now: float, *, unregister: bool = True) -> None:
        """Sign out; ``unregister=False`` models a crash (the binding is left to expire)."""
        if unregister and self.registrar is not None and self.keepalive.flow is not None:
            registration.send_register(
                self, now, self.registrar, Purpose.UNREGISTER, expires=0, flow=self.keepalive.flow
            )
        for entry in self._txs.values():
            if entry.purpose is not Purpose.UNREGISTER:
                self._close(entry.flow)
        self._txs = {k: v for k, v in self._txs.items() if v.purpose is Purpose.UNREGISTER}
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
        entry = self._start_tx(now, request, flow, Purpose.ADD_CONTACT, self.registrar)
        entry.detail = uri

    def _action_done(self, now: float, action: str, ok: bool, detail: str) -> None:
        self._events.append(ClientActionDone(now, self.name, action, ok, detail))

    @property
    def pending_unregister(self) -> bool:
        """An unregistering REGISTER (Expires: 0) is still waiting for its answer."""
        return any(e.purpose is Purpose.UNREGISTER and not e.tx.done for e in self._txs.values())

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
        refresh = self._refresh
        best = refresh.at if refresh is not None else None
        backoff = self._backoff
        if backoff is not None and (best is None or backoff.at < best):
            best = backoff.at
        loss = self._loss
        if loss is not None and (best is None or loss.at < best):
            best = loss.at
        query = self.discovery.query
        if query is not None and (best is None or query.deadline < best):
            best = query.deadline
        for side in self.discovery.side:
            if best is None or side.deadline < best:
                best = side.deadline
        if self._txs:
            for entry in self._txs.values():
                value = entry.tx.next_deadline()
                if value is not None and (best is None or value < best):
                    best = value
        return best

    def handle_timer(self, now: float) -> None:
        for key, entry in list(self._txs.items()) if self._txs else ():
            deadline = entry.tx.next_deadline()
            if deadline is None or now < deadline:
                continue
            entry.tx.handle_timer(now)
            for data in entry.tx.take_outgoing():
                self._actions.append(Send(entry.flow, data))
            if entry.tx.done:
                self._forget_tx(key)
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
                rounds.dns_failed(self, now, query)
        if self.discovery.side:
            self._side_timers(now)
        keepalive = self.keepalive
        if keepalive.pong_at is not None and now >= keepalive.pong_at:
            keepalive.pong_at = None
            failover.registrar_lost(self, now, Loss(LossKind.PONG_MISSING))
        if keepalive.at is not None and now >= keepalive.at:
            keepalive.at = None
            self._send_keepalive(now)
        refresh = self._refresh
        if refresh is not None and now >= refresh.at:
            self._refresh = None
            registration.refresh(self, now)
        loss = self._loss
        if loss is not None and now >= loss.at:
            self._loss = None
            failover.after_loss(self, now, loss.loss)
        failback = self.failback
        if failback.at is not None and now >= failback.at:
            failback.at = None
            self.send_probe(now)
        backoff = self._backoff
        if backoff is not None and now >= backoff.at:
            self._backoff = None
            rounds.backoff_over(self, now, backoff)

    def flow_failed(self, flow: Flow, now: float) -> None:
        """A connection could not be opened or broke (RFC 3261 §8.1.3.1: like a 503).  On UDP
        (ICMP port unreachable) a profile may ignore it: its requests wait for Timer F."""
        if flow.transport == "udp" and self.profile.ignores_icmp:
            return
        for key, entry in list(self._txs.items()):
            if entry.flow == flow:
                entry.tx.transport_error(now)
                self._forget_tx(key)
                self._tx_failed(entry, now, Failure(FailureKind.CONNECTION))
        if flow == self.keepalive.flow and self._machine.state == "registered":
            failover.registrar_lost(self, now, Loss(LossKind.CONNECTION_LOST))

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
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
            rounds.receive_dns(self, data, now)
            return
        heard = self.heard
        if heard is not None:
            heard[flow] = now
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
            notify.receive_request(self, message, flow, now)

    # -- memory of a lost registrar ----------------------------------------------------------

    @property
    def _lost(self) -> bool:
        """Whether the registrar was lost and the agent has not registered since."""
        return self._lost_by is not None

    def remembered_targets(self) -> list[Target]:
        """The registrars learned from a 301 that this client tries first from memory: in its
        next round if it is signed out after losing a registration, or once it loses the one
        it has.  None before its first registration (a round then starts from the cache or
        DNS).  Read by the fuzzer's analysis."""
        return rounds.from_memory(self, self._machine.state == "registered" or self._lost)

    # -- requests in flight: sent, answered, failed (dispatch by purpose) --------------------

    def _flow_for(self, target: Target) -> Flow:
        assert target.address is not None
        # The flow made last is reused for the same transport and remote end (memory, issue
        # 20: flows are immutable and compared by fields, so the keep-alive cycle, the probe,
        # the transactions and a simulator's connection table then hold one object, not one
        # per request).
        last = self._last_flow
        if (
            last is not None
            and last.transport == target.transport
            and last.remote[0] == target.address
            and last.remote[1] == target.port
        ):
            return last
        if target.transport == "udp":
            flow = Flow("udp", (self.local_ip, self.sip_port), (target.address, target.port))
        else:
            # Stream flows of a client are named by their remote end; the local port is the
            # kernel's business (convention shared with the drivers: local port 0).
            flow = Flow(target.transport, (self.local_ip, 0), (target.address, target.port))
        self._last_flow = flow
        return flow

    def _start_tx(
        self, now: float, request: Request, flow: Flow, purpose: Purpose, target: Target
    ) -> Tx:
        if self.credentials is not None:
            self.credentials.authorize(request)  # RFC 3261 §22.4: the last challenge's realm
        branch = request.branch or ""
        tx = ClientTransaction(
            branch, request.to_bytes(), reliable=flow.reliable, timers=self._timers
        )
        tx.start(now)
        for data in tx.take_outgoing():
            self._actions.append(Send(flow, data))
        entry = Tx(tx, flow, purpose, target)
        self._txs[branch] = entry
        return entry

    def _forget_tx(self, branch: str) -> None:
        txs = self._txs
        del txs[branch]
        if not txs:
            # A new empty dict: an emptied one keeps its table, 184 bytes rather than 64, in
            # every idle agent (memory, issue 20).
            self._txs = {}

    def _receive_response(self, response: Response, now: float) -> None:
        branch = response.branch
        entry = self._txs.get(branch or "")
        if entry is None:
            return
        if not entry.tx.receive_response(response.status, now) or response.status < 200:
            return
        if entry.tx.done:
            self._forget_tx(branch or "")
        purpose = entry.purpose
        if purpose is Purpose.UNREGISTER:
            return
        if purpose is Purpose.KEEPALIVE:
            if entry.flow == self.keepalive.flow:
                self.keepalive.at = now + self.keepalive.interval
            return
        if purpose is Purpose.CONTACTS:
            contacts.answered(self, now, response)
            return
        if purpose is Purpose.ADD_CONTACT:
            ok = response.status == 200
            why = "" if ok else f": {response.status} {contacts.diagnostic(response)}"
            self._action_done(now, "add-contact", ok, f"{entry.detail}{why}")
            return
        if purpose is Purpose.PROBE:
            failover.probe_answered(self, now)
            return
        registration.answered(self, now, entry, response)

    def _tx_failed(
        self, entry: Tx, now: float, failure: Failure, *, redirect_refused: bool = False
    ) -> None:
        purpose = entry.purpose
        if purpose is Purpose.UNREGISTER:
            return
        if purpose is Purpose.KEEPALIVE:
            if entry.flow == self.keepalive.flow and self.profile.keepalive_detects_loss:
                failover.registrar_lost(self, now, Loss(LossKind.KEEPALIVE_FAILED, failure))
            return
        if purpose is Purpose.CONTACTS:
            if self.notes:
                self._note(ContactsFailed(now, self.name, failure))
            return
        if purpose is Purpose.ADD_CONTACT:
            self._action_done(now, "add-contact", False, f"{entry.detail}: {failure}")
            return
        if purpose is Purpose.PROBE:
            self._close(entry.flow)
            self.failback.failed(now)
            return
        if purpose is Purpose.REFRESH:
            failover.refresh_failed(self, now, entry, failure)
            return
        registration.failed(self, entry, now, failure, redirect_refused)

    def _send_keepalive(self, now: float) -> None:
        flow = self.keepalive.flow
        if flow is None or self.registrar is None:
            return
        if flow.reliable or self.profile.keepalive_crlf_on_udp:  # RFC 5626 §3.5.1 CRLF ping
            self._actions.append(self.keepalive.ping(now, flow))
        else:
            request = self.requests.options(self.registrar, flow)
            self._start_tx(now, request, flow, Purpose.KEEPALIVE, self.registrar)

    # -- ProbeHost (clients/failback.py): what the failback cycle asks of the agent ---------

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
        self._start_tx(now, request, flow, Purpose.PROBE, primary)
        last = self._actions[-1]
        assert isinstance(last, Send)
        return last

    def skip_probe(self) -> None:
        # What the probe's OPTIONS draws and counts (requests.options takes its identifiers
        # from the same function), without building the message.
        self.requests.outside_identifiers()

    # -- Retry-After (RFC 3261 §21.5.4) -------------------------------------------------------

    def defer(self, now: float, target: Target, until: float) -> None:
        """``target`` answered 503 with Retry-After: nothing goes to it before ``until``."""
        if self._deferred is None:
            self._deferred = {}
        self._deferred[endpoint(target)] = until
        if self.notes:
            self._note(TargetDeferred(now, self.name, target.host, until))

    def deferred_until(self, target: Target, now: float) -> float | None:
        """When ``target`` may be asked again, if its Retry-After has not passed; else None."""
        deferred = self._deferred
        if not deferred:
            return None
        key = endpoint(target)
        until = deferred.get(key)
        if until is None:
            return None
        if until <= now:
            del deferred[key]
            return None
        return until

    def first_free(self, now: float) -> float | None:
        """When the first server still under a Retry-After is free again (None: none is)."""
        deferred = self._deferred
        if not deferred:
            return None
        for key in [k for k, until in deferred.items() if until <= now]:
            del deferred[key]
        return min(deferred.values(), default=None)

    # -- helpers ----------------------------------------------------------------------------

    def _close(self, flow: Flow) -> None:
        if flow.reliable and flow != self.keepalive.flow:
            self._actions.append(CloseFlow(flow))

    def _side_timers(self, now: float) -> None:
        """Resend or give up the A/AAAA queries asked beside the others
        (``Profile.parallel_lookups``); a given-up one counts as no address."""
        for side in list(self.discovery.side):
            if now < side.deadline:
                continue
            if side.tries < DNS_TRIES:
                self._actions.append(self.discovery.resend(now, side))
                continue
            self.discovery.side.remove(side)
            if self.notes:
                self._note(DnsTimedOut(now, self.name, side.qtype, side.name))
            rounds.settle(self, now)

    def _progress(self, now: float, kind: type[ClientStateChanged], *detail: object) -> None:
        """A step of a round: a state change during a user's sign-in, else a note.

        Emulator choice: background attempts (retries after a failed sign-in, failover,
        failback) do not change what the user sees: a client that lost its registrar shows
        signed-out until it registers again, as R1's observers report it.
        """
        if self.round.loud:
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
