"""A Front End or Director registrar pool, sans-IO (the registrar core of sipemu).

The pool is a facade over its parts, one job each:

* :mod:`.register`: the REGISTER rules and the bindings (RFC 3261 §10.3, MS-SIPREGE);
* :mod:`.reply`: the 200 to a REGISTER, written straight as bytes (the fast path);
* :mod:`.heartbeats`: the heartbeats to the pools this one backs up (a
  :class:`emulator.coasting.Cycle`), and :mod:`.monitor`, the failover/failback machine;
* :mod:`.contacts`: roaming contact lists;
* :mod:`.services`: a front end's sign-in services (provisioning, roaming-self, presence
  subscriptions, PUBLISH), on the users' presence in :mod:`.presence`, shared by the pools;
* :mod:`.outgoing`: the requests the pool sends itself (NOTIFY, OPTIONS), their transactions
  and every identifier the pool draws.

What stays here: the driving contract (emulator/net.py), the dispatch of requests by method,
and what the deployment's operations do to a pool (its back end changed, users moved, the
failback consequence of the monitor: users sent home the ``registrar.failback`` way, an
emulator choice, by default the MS-SIPREGE §4.1.3-style NOTIFY
``deregistered;event=preferred-registrar-change`` with ``P-Preferred-Registrar``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from emulator.admin import ContactStore, Directory
from emulator.backend import BackEnd
from emulator.coasting import Cycle
from emulator.net import CloseFlow, Flow, Send
from emulator.operations import contact_store
from emulator.pairing import FailoverPhase, Pairings
from emulator.registrar.admission import Admission, Decision
from emulator.registrar.auth import Authenticator, Refused
from emulator.registrar.bindings import Binding, BindingStore
from emulator.registrar.contacts import CONTACTS_EVENT, CONTACTS_TYPE, RoamingContacts
from emulator.registrar.endpoints import PoolEndpoints
from emulator.registrar.events import (
    AdminEvent,
    AuthRefused,
    BadMessage,
    BindingExpired,
    BindingRemoved,
    ClientSentHome,
    Exchanged,
    LoadShed,
    PoolEvent,
    UserServicesChanged,
)
from emulator.registrar.heartbeats import Heartbeater
from emulator.registrar.monitor import PeerMonitor, PeerState
from emulator.registrar.outgoing import Outbox, Outgoing
from emulator.registrar.presence import PresenceStore
from emulator.registrar.register import RegisterRules
from emulator.registrar.reply import ALLOW, ALLOW_PLAIN, SERVER
from emulator.registrar.services import FrontEndServices
from emulator.sip.errors import SipError
from emulator.sip.headers import Diagnostics, make_response, split_commas, stamp_via
from emulator.sip.message import Request, Response, check_address, parse_message
from emulator.sip.transaction import ServerTransactionTable
from emulator.topology import PoolSpec, Topology

__all__ = [
    "ALLOW",
    "CONTACTS_EVENT",
    "CONTACTS_TYPE",
    "SERVER",
    "Binding",
    "Pool",
    "PoolEndpoints",
    "PoolStatus",
]

# Methods a Lync front end knows but this emulator does not serve: 405, others 501 (§21.4.6).
_KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "MESSAGE",
        "INFO",
        "PRACK",
        "UPDATE",
        "REFER",
        "PUBLISH",
        "SUBSCRIBE",
        "NOTIFY",
        "SERVICE",
        "BENOTIFY",
    }
)


# Methods the pool serves: they go on to header inspection (RFC 3261 §8.2.2).
_SERVED_METHODS = frozenset({"REGISTER", "OPTIONS", "SUBSCRIBE", "SERVICE", "PUBLISH"})

# Request-URI (and REGISTER To) schemes served; any other gets 416 (§8.2.2.1).
_URI_SCHEMES = frozenset({"sip", "sips", "tel"})

# Require option tags the registrar understands (§8.2.2.3): the Lync survivable-mode option it
# acts on (MS-SIPREGE §2.2.1.5), and those of a batched presence SUBSCRIBE (MS-PRES:
# ``Require: adhoclist, categoryList``; emulator/registrar/services.py).  Any other gets 420.
_SUPPORTED_OPTIONS = frozenset({"ms-userservices-state-notification", "adhoclist", "categorylist"})


_DISPLAY_QUOTED = re.compile(r'[ \t]*"(?:[^"\\]|\\.)*"')


_INSPECTED_LIMIT = 200_000
"""REGISTER To values remembered as inspected (bounded: they come from the network;
a full set stops learning, what it holds stays true)."""


def _uri_scheme(address: str) -> str:
    """The lower-case scheme of the URI in a To/From value (name-addr or addr-spec)."""
    quoted = _DISPLAY_QUOTED.match(address)  # a "<" inside a quoted display name is text
    start = quoted.end() if quoted is not None else 0
    lt = address.find("<", start)
    uri = address[lt + 1 :] if lt >= 0 else address
    return uri.lstrip(" \t").partition(":")[0].lower()


@dataclass(frozen=True, slots=True)
class PoolStatus:
    fqdn: str
    role: str
    bindings: int
    peers: Mapping[str, str] = field(default_factory=dict)
    """Monitored primary pool -> ``up`` | ``heartbeat-lost`` | ``failed-over`` | ``recovering``."""


class Pool:
    """The registrar core of one pool.  See :mod:`emulator.net` for the driving contract."""

    def __init__(
        self,
        spec: PoolSpec,
        topology: Topology,
        endpoints: Mapping[str, PoolEndpoints],
        rng: random.Random,
        *,
        now: float,
        trace: bool = True,
        directory: Directory | None = None,
        backend: BackEnd | None = None,
        contacts: ContactStore | None = None,
        presence: PresenceStore | None = None,
    ) -> None:
        self.spec = spec
        self.fqdn = spec.fqdn
        self.topology = topology
        self.settings = topology.registrar
        self.endpoints = endpoints
        self.rng = rng
        self.trace = trace
        # Shared with the other pools of the deployment (the CMS replicates them): who is homed
        # where (force-move changes it) and the contact lists; this pool's back end survives
        # a restart of the pool, so the deployment owns it.
        self.directory = directory if directory is not None else Directory(topology.users)
        if self.directory.pairings is None:
            self.directory.pairings = Pairings(topology)
        self.pairings: Pairings = self.directory.pairings
        """Backup pairings, resiliency timers, pool failovers (emulator/pairing.py), shared."""
        self.resiliency = self.pairings.resiliency
        self.backend = (
            backend if backend is not None else BackEnd(spec.backend, topology.profile, now=now)
        )
        self.contacts = contacts if contacts is not None else contact_store(topology)
        self._seen_version = self.pairings.version
        self._seen_phases = self._phases(now)
        self._phase_deadline = self.pairings.deadline(spec.fqdn, now)
        self._services = self._mode(now)
        self._peer_addresses = frozenset(
            ep.address for name, ep in endpoints.items() if name != spec.fqdn
        )
        self._box = Outbox()
        self._bindings = BindingStore()
        settings = self.settings
        self._server_tx = ServerTransactionTable(
            max_entries=settings.transaction_limit, max_bytes=settings.transaction_bytes
        )
        # Issue 21: load shedding under overload (emulator/registrar/admission.py).
        self._admission = Admission(
            overload_rate=settings.overload_rate,
            source_rate=settings.source_rate,
            retry_after=settings.shed_retry_after,
            exempt=self._peer_addresses,
            now=now,
        )
        self._inspected: set[str] = set()  # REGISTER To values that passed
        self._now = now
        monitors: dict[str, PeerMonitor] = {}
        if not spec.is_director:
            for primary in self.pairings.backed_up_by(spec.fqdn):
                monitors[primary] = self._new_monitor(primary, now)
        self._monitors = monitors
        self._outgoing = Outgoing(spec.fqdn, rng, self._box)
        self._rules = RegisterRules(
            spec,
            topology,
            endpoints,
            rng,
            directory=self.directory,
            bindings=self._bindings,
            monitors=monitors,
            box=self._box,
        )
        self._roaming = RoamingContacts(
            spec.fqdn,
            directory=self.directory,
            backend=self.backend,
            contacts=self.contacts,
            bindings=self._bindings,
            rules=self._rules,
            outgoing=self._outgoing,
        )
        # Issue 16: a front end's sign-in services (SUBSCRIBE/PUBLISH/SERVICE, their NOTIFYs),
        # on the users' presence the deployment's pools share through the directory.
        if presence is None:
            if self.directory.presence is None:
                self.directory.presence = PresenceStore()
            presence = self.directory.presence
        self._frontend = FrontEndServices(
            spec.fqdn,
            directory=self.directory,
            backend=self.backend,
            rules=self._rules,
            outgoing=self._outgoing,
            store=presence,
            poll_interval=settings.presence_poll_interval,
            now=now,
        )
        self._server = spec.server
        self._allow = ALLOW if settings.services else ALLOW_PLAIN
        self.heartbeater = Heartbeater(
            monitors,
            endpoints[spec.fqdn],
            endpoints,
            self.resiliency,
            self._outgoing,
            self._box,
            self._send_home,
            trace=trace,
        )
        self._cycles: tuple[Cycle, ...] = (self.heartbeater,) if monitors else ()
        # Issue 16: optional authentication (emulator/registrar/auth.py), off by default.
        self._auth = (
            Authenticator(
                topology.auth,
                lambda aor: topology.password(aor) if aor in topology.users else None,
                domain=topology.domain,
                targetname=spec.fqdn,
                rng=rng,
            )
            if topology.auth.enabled
            else None
        )
        if self._auth is not None and self._auth.ntlm:
            self._outgoing.signer = self._auth.sign_request

    # -- driving contract -------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin heartbeating the pools this pool backs up."""
        self._now = now
        self.heartbeater.start(now)

    def actions(self) -> list[Send | CloseFlow]:
        box = self._box
        out, box.actions = box.actions, []
        return out

    def events(self) -> list[PoolEvent]:
        box = self._box
        out, box.events = box.events, []
        return out

    @property
    def cycles(self) -> Sequence[Cycle]:
        """The pool's periodic behaviours a simulator may coast: its heartbeats, if it backs
        up another pool (emulator/coasting.py)."""
        return self._cycles

    def next_deadline(self) -> float | None:
        best = self.deadline_besides_cycles()
        if not self._cycles:
            return best
        at = self.heartbeater.deadline()
        if at is not None and (best is None or at < best):
            best = at
        return best

    def deadline_besides_cycles(self) -> float | None:
        """The next deadline of everything but the heartbeats and their transactions (what a
        simulator compares a round with before it coasts: emulator/coasting.py)."""
        # Called by the driver after every datagram: written out, no list (speed).
        best = self._server_tx.next_deadline()
        bound = self._bindings.expiry_bound()
        if bound is not None and (best is None or bound < best):
            expiry = self._bindings.next_expiry()  # exact, and only when it can matter
            if expiry is not None and (best is None or expiry < best):
                best = expiry
        backend = self.backend
        at = self._phase_deadline  # a pool failover or failback completes
        if at is not None and (best is None or at < best):
            best = at
        for at in (backend.next_deadline(), backend.mode_changes_at()):
            # The end of the grace period is a deadline only until it has passed (and
            # handle_timer has told the endpoints).
            if at is not None and at > self._now and (best is None or at < best):
                best = at
        outgoing = self._outgoing
        if outgoing.pending:
            at = outgoing.deadline(heartbeats=False)
            if at is not None and (best is None or at < best):
                best = at
        at = self._frontend.deadline()  # presence published on another pool
        if at is not None and (best is None or at < best):
            best = at
        return best

    def handle_timer(self, now: float) -> None:
        self._now = now
        self._server_tx.handle_timer(now)
        self.backend.handle_timer(now)
        if self._phase_deadline is not None and now >= self._phase_deadline:
            self._reconcile(now)
        self.backend_changed(now)
        for binding in self._bindings.expire(now):
            self._box.events.append(BindingExpired(now, self.fqdn, binding.aor, binding.contact))
        self._outgoing.handle_timer(now)
        self._frontend.handle_timer(now)
        if self._cycles:
            self.heartbeater.handle_timer(now)

    def flow_failed(self, flow: Flow, now: float) -> None:
        """The driver could not deliver on ``flow`` (refused, reset, unreachable)."""
        self._now = now
        self._outgoing.flow_failed(flow, now)
        self._frontend.flow_failed(flow)
        if self._cycles:
            self.heartbeater.flow_failed(flow, now)

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self._now = now
        if data[:1] in b"\r" and not data.strip(b"\r\n"):  # empty, or starting with CR
            # A keep-alive datagram (CRLFs only, linphone's; RFC 5626 §3.5.1): not a message,
            # neither answered nor a bad input.  The live driver drops these before the core;
            # this keeps the core right under any driver (the simulator's delivers them).
            return
        if self._admission.enabled:
            decision = self._admission.admit(flow.remote[0], now)
            if decision is not Decision.ADMIT:
                self._shed(data, flow, now, decision)
                return
        try:
            message = parse_message(data, stream=flow.reliable)
        except SipError as exc:
            self._bad_message(exc, flow, now)
            return
        if isinstance(message, Response):
            tx = self._outgoing.receive_response(message, now)
            if tx is not None:
                self.heartbeater.answered(tx, now)
            return
        if message.method == "ACK":
            return  # ACK to a non-2xx final response is absorbed by the transaction (§17.2.1)
        top = message.headers.get("via") or ""
        key = (top, message.method)  # the Via as received: a retransmission matches it
        cached = self._server_tx.retransmitted(key)
        if cached is not None:  # retransmission: same final response again (§17.2.2)
            self._box.actions.append(Send(flow, cached))
            return
        _stamp(message, top, flow)
        try:
            answer = self._dispatch(message, flow, now)
        except SipError as exc:
            answer = make_response(message, exc.status, exc.reason, to_tag=self._rules.tag())
            answer.headers.add("ms-diagnostics", str(Diagnostics(1, str(exc))))
            if self.trace:
                self._box.events.append(BadMessage(now, self.fqdn, flow, exc.status, str(exc)))
        if isinstance(answer, bytes):
            wire = answer  # a 200 to REGISTER, serialized by reply.ok_bytes
        else:
            answer.headers.add("Server", self._server)
            wire = answer.to_bytes()
        self._server_tx.completed(key, wire, now, flow.reliable)
        self._box.actions.append(Send(flow, wire))
        if self.trace:
            self._box.events.append(
                Exchanged(
                    now,
                    self.fqdn,
                    flow,
                    message.method,
                    wire_status(answer),
                    self._rules.aor_quiet(message),
                    message,
                    answer,
                    message.method == "OPTIONS" and flow.remote[0] in self._peer_addresses,
                )
            )

    # -- queries ----------------------------------------------------------------------------

    def bindings(self) -> list[Binding]:
        return [b for b in self._bindings if b.expires_at > self._now]

    def status(self) -> PoolStatus:
        return PoolStatus(
            self.fqdn,
            self.spec.role,
            len(self._bindings),
            {peer: m.state.value for peer, m in self._monitors.items()},
        )

    @property
    def frontend(self) -> FrontEndServices:
        """The pool's sign-in services: subscriptions and the users' presence."""
        return self._frontend

    def peer_state(self, peer: str) -> PeerState:
        return self._monitors[peer].state

    # -- requests ---------------------------------------------------------------------------

    def _dispatch(self, request: Request, flow: Flow, now: float) -> Response | bytes:
        """The answer: a Response to finish (Server header) and serialize, or wire bytes."""
        if self._auth is None:
            return self._serve(request, flow, now)
        # The authentication gate (issue 16): a request that does not pass is answered by it
        # (401 challenge or 403) and logged with why; one that passes is served and its
        # answer signed when it came through an NTLM security association.
        verdict = self._auth.check(request, now, flow)
        if isinstance(verdict, Refused):
            self._box.events.append(
                AuthRefused(
                    now,
                    self.fqdn,
                    flow,
                    request.method,
                    verdict.aor or "?",
                    verdict.response.status,
                    verdict.reason,
                )
            )
            return verdict.response
        return self._auth.sign(verdict, self._serve(request, flow, now))

    def _serve(self, request: Request, flow: Flow, now: float) -> Response | bytes:
        method = request.method
        if method in _SERVED_METHODS:
            refusal = self._inspect(request)
            if refusal is not None:
                return refusal
        if method == "REGISTER":
            return self._rules.register(request, flow, now, self._services)
        if method == "OPTIONS":
            response = make_response(request, 200, to_tag=self._rules.tag())
            response.headers.add("Allow", self._allow)
            return response
        if self.settings.services:
            self._frontend.catch_up(now)  # what other pools' users published meanwhile
            if FrontEndServices.serves(request):
                return self._frontend.answer(request, flow, now)
        if method == "SUBSCRIBE" and "roaming-contacts" in (request.headers.get("event") or ""):
            return self._roaming.subscribe(request, now)
        if method == "SERVICE" and b"<setContact" in request.body:
            return self._roaming.set_contact(request, now)
        status = 405 if method in _KNOWN_METHODS else 501
        response = make_response(request, status, to_tag=self._rules.tag())
        if status == 405:
            response.headers.add("Allow", self._allow)
        return response

    def _inspect(self, request: Request) -> Response | None:
        """RFC 3261 §8.2.2 header inspection of a request whose method is served (§8.2.1
        method inspection, 405/501, comes first): 416 for a URI scheme the registrar does not
        serve, 400 (SipError) for a malformed Contact of a REGISTER, 420 for an extension it
        does not support; None to go on."""
        headers = request.headers
        if request.uri.partition(":")[0].lower() not in _URI_SCHEMES:
            # §8.2.2.1 (RFC 4475 §3.3.2 unkscm, §3.3.3 novelsc).
            return make_response(request, 416, to_tag=self._rules.tag())
        if request.method == "REGISTER":
            # The To values that passed are remembered, and Contact values the binding rules
            # have parsed (and cached) passed too (speed: a client refreshes with the same
            # ones); the checks are pure functions of each value.  Not a set of (To,
            # Contacts) tuples: that kept a tuple and the Contact text per client and pool,
            # the Director's too (memory, issue 20).
            to = headers.get("to") or ""
            if to not in self._inspected:
                if _uri_scheme(to) not in _URI_SCHEMES:
                    # For REGISTER the To URI is the address-of-record (§10.3 step 3; RFC 4475
                    # §3.3.4 unksm2).
                    return make_response(request, 416, to_tag=self._rules.tag())
                if len(self._inspected) < _INSPECTED_LIMIT:
                    self._inspected.add(to)
            contacts = headers.get_all("contact")
            if contacts and not self._rules.contacts_parsed(contacts):
                # §20.10: a Contact URI with ",", "?" or ";" must be in <> (RFC 4475
                # §3.1.2.13 regbadct): 400 before any binding rule reads it.
                for value in contacts:
                    for part in split_commas(value):
                        if part != "*":
                            check_address(part, "Contact")
        if headers.get("require") is not None:
            # §8.2.2.3: a Require option tag this UAS does not understand -> 420 listing it
            # in Unsupported (RFC 4475 §3.3.5 bext01; Proxy-Require is for proxies).
            unsupported = [
                tag
                for value in request.headers.get_all("require")
                for tag in split_commas(value)
                if tag.lower() not in _SUPPORTED_OPTIONS
            ]
            if unsupported:
                response = make_response(request, 420, to_tag=self._rules.tag())
                response.headers.add("Unsupported", ", ".join(unsupported))
                return response
        return None

    # -- failback (what the monitor's FAIL_BACK triggers) -----------------------------------

    def _send_home(self, home: str, now: float) -> None:
        """Failback: every binding this pool holds for ``home``'s users goes home (§6 choice)."""
        if self.pairings.phase(home, now) in ("failing-over", "failed-over"):
            # The administrator failed the pool over: only Invoke-CsPoolFailBack sends its
            # users home (DOC: "disaster recovery procedures, both failover and failback, are
            # manual"), not the heartbeats' automatic failback.
            self._box.events.append(
                AdminEvent(
                    now,
                    self.fqdn,
                    f"automatic failback of {home} held: the pool is failed over by the "
                    "administrator (pool-failback sends its users home)",
                )
            )
            return
        how = self.settings.failback
        events = self._box.events
        for binding in [b for b in self._bindings if b.home == home]:
            if how == "redirect-on-refresh":
                # Nothing on the wire now: the binding stays until the next REGISTER, which the
                # normal rules answer with a 301 home (the peer is up again).
                events.append(ClientSentHome(now, self.fqdn, binding.aor, home, how))
                continue
            self._bindings.remove(binding.aor, binding.instance)
            events.append(BindingRemoved(now, self.fqdn, binding.aor, binding.contact, "failback"))
            if how == "notify":
                # MS-SIPREGE §2.2.1.13 / §4.1.3: deregister NOTIFY naming the preferred registrar.
                uri = self._rules.registrar_uri(home, binding.flow.transport)
                self._outgoing.registration_notify(
                    binding,
                    "deregistered;event=preferred-registrar-change",
                    self.settings.failback_error_id,
                    "Preferred registrar changed",
                    now,
                    f"<{uri}>",
                )
            events.append(ClientSentHome(now, self.fqdn, binding.aor, home, how))

    # -- back end: user services, contact lists ---------------------------------------------

    def backend_changed(self, now: float) -> None:
        """Call after the back end changed (a server down or up, an administrative failover):
        when the users' mode changes, their endpoints are told (docs/backends.md)."""
        self._now = now
        events = self._box.events
        for transition in self.backend.transitions():
            events.append(AdminEvent(transition.now, self.fqdn, transition.text))
        mode = self._mode(now)
        if mode == self._services or self.spec.is_director:
            self._services = mode
            return
        self._services = mode
        available = mode == "full"
        if self.backend.mode(now) != "full":
            detail = "back end unavailable: no contact list, no presence, no changes"
        elif available:
            detail = "user services available again"
        else:
            detail = "pool failback under way: resiliency mode until it completes"
        events.append(UserServicesChanged(now, self.fqdn, mode, detail))
        if not self.settings.user_services_notify:
            return
        notify = self._outgoing.registration_notify
        for binding in [b for b in self._bindings if b.home is None]:
            if available:
                # CHOICE: the sources give no "available again" NOTIFY value; this one mirrors
                # the unavailable one, so that endpoints need not wait for their next refresh.
                notify(binding, "registered;event=userservices-available", None, "", now)
            elif binding.survivable:
                # MS-SIPREGE §3.5.1.4 (SHOULD notify when Presence-Service-Available goes false);
                # the body value of §2.2.1.12 is not confirmed by the sources: a CHOICE.
                notify(binding, "registered;event=userservices-unavailable", None, "", now)
            else:
                # MS-SIPREGE §2.2.1.13: endpoints without survivable mode are deregistered.
                self._bindings.remove(binding.aor, binding.instance)
                events.append(
                    BindingRemoved(
                        now, self.fqdn, binding.aor, binding.contact, "userservices-unavailable"
                    )
                )
                notify(
                    binding,
                    "deregistered;event=userservices-unavailable",
                    4165,
                    "User services unavailable",
                    now,
                )

    # -- the pools' configuration: pairings, timers, pool failovers (emulator/pairing.py) ----

    def _new_monitor(self, primary: str, now: float) -> PeerMonitor:
        resiliency = self.pairings.resiliency
        return PeerMonitor(
            primary,
            failover_interval=resiliency.failover_detection_interval,
            failback_interval=resiliency.failback_detection_interval,
            now=now,
            pool=self.fqdn,
        )

    def _mode(self, now: float) -> str:
        """What this pool's own users get: its back end's mode, or resiliency mode while an
        administrator's failback of this pool is under way (DOC: users sign in to the home
        pool in resiliency mode until the failback completes)."""
        mode = self.backend.mode(now)
        if mode == "full" and self.pairings.failovers:
            if self.pairings.phase(self.fqdn, now) == "failing-back":
                return "resiliency"
        return mode

    def _phases(self, now: float) -> dict[str, FailoverPhase]:
        """The phase of every failover that concerns this pool (as failed pool or backup)."""
        return {
            pool: found.phase(now)
            for pool, found in self.pairings.failovers.items()
            if self.fqdn in (found.pool, found.backup)
        }

    def configuration_changed(self, now: float) -> None:
        """Call after the pools' configuration changed (a pool failover or failback, a backup
        pairing, the resiliency timers; emulator/pairing.py): the pool follows it."""
        self._now = now
        self._reconcile(now)
        self.backend_changed(now)

    def _reconcile(self, now: float) -> None:
        """Act on what changed in :attr:`pairings` since last time: the monitors and timers
        (new pairings, new timers), and each failover's new phase."""
        pairings = self.pairings
        if pairings.version != self._seen_version:
            self._seen_version = pairings.version
            self.resiliency = pairings.resiliency
            wanted = [] if self.spec.is_director else pairings.backed_up_by(self.fqdn)
            monitors = self._monitors  # shared with the REGISTER rules: changed in place
            for peer in [peer for peer in monitors if peer not in wanted]:
                del monitors[peer]
            for peer in wanted:
                if peer not in monitors:
                    monitors[peer] = self._new_monitor(peer, now)
            for monitor in monitors.values():
                monitor.failover_interval = pairings.resiliency.failover_detection_interval
                monitor.failback_interval = pairings.resiliency.failback_detection_interval
            self.heartbeater.reconfigure(
                monitors, self.endpoints[self.fqdn], self.endpoints, pairings.resiliency, now
            )
            self._cycles = (self.heartbeater,) if monitors else ()
        phases = self._phases(now)
        for pool, phase in phases.items():
            before = self._seen_phases.get(pool)
            if phase != before:
                self._failover_moved(pairings.failovers[pool].backup, pool, before, phase, now)
        self._seen_phases = phases
        self._phase_deadline = pairings.deadline(self.fqdn, now)

    def _failover_moved(
        self,
        backup: str,
        pool: str,
        before: FailoverPhase | None,
        phase: FailoverPhase,
        now: float,
    ) -> None:
        """Failover of ``pool`` to ``backup`` went from ``before`` to ``phase``: what this pool
        (one of the two) does about it."""
        events = self._box.events
        fresh = before is None or before == "failed-back"
        if pool == self.fqdn:
            if fresh and phase in ("failing-over", "failed-over"):
                self._sign_out_own_users(backup, now)
            elif phase == "failing-back":
                events.append(AdminEvent(now, self.fqdn, f"pool failback from {backup} started"))
            elif phase == "failed-back":
                events.append(AdminEvent(now, self.fqdn, f"pool failback from {backup} complete"))
            return
        if fresh and phase in ("failing-over", "failed-over"):
            events.append(
                AdminEvent(
                    now, self.fqdn, f"pool failover of {pool}: serving its users (resiliency)"
                )
            )
        if phase == "failed-over" and before != "failed-over":
            events.append(
                AdminEvent(
                    now, self.fqdn, f"pool failover of {pool} complete: full function for its users"
                )
            )
            if self.settings.user_services_notify:
                for binding in [b for b in self._bindings if b.home == pool]:
                    # CHOICE, as for a back end available again (docs/backends.md): the users
                    # leave resiliency mode without signing in again.
                    self._outgoing.registration_notify(
                        binding, "registered;event=userservices-available", None, "", now
                    )
        elif phase == "failing-back" and before in ("failing-over", "failed-over"):
            events.append(AdminEvent(now, self.fqdn, f"pool failback of {pool}: users sent home"))
            self._send_home(pool, now)

    def _sign_out_own_users(self, backup: str, now: float) -> None:
        """This pool was failed over while it runs (a planned failover, or a silent host whose
        NOTIFYs vanish): DOC, "all users in the affected pool are forced to sign out and then
        sign into the backup pool".  How: a ``deregistered;event=preferred-registrar-change``
        NOTIFY naming the backup (CHOICE, as the failback's; ``registrar.failback_error_id``)."""
        self._box.events.append(
            AdminEvent(now, self.fqdn, f"pool failed over to {backup}: signing its users out")
        )
        for binding in [b for b in self._bindings if b.home is None]:
            self._bindings.remove(binding.aor, binding.instance)
            self._box.events.append(
                BindingRemoved(now, self.fqdn, binding.aor, binding.contact, "pool failover")
            )
            uri = self._rules.registrar_uri(backup, binding.flow.transport)
            self._outgoing.registration_notify(
                binding,
                "deregistered;event=preferred-registrar-change",
                self.settings.failback_error_id,
                "Pool failed over",
                now,
                f"<{uri}>",
            )

    def users_moved(self, aors: Iterable[str], now: float) -> None:
        """Call after ``force-move`` rehomed ``aors``: the endpoints this pool holds for them are
        deregistered with ``deregistered;event=deactivated`` (MS-SIPREGE §2.2.1.12, error 4142,
        "user being moved between servers"), so they sign in again and find the new home."""
        self._now = now
        moved = set(aors)
        for binding in [b for b in self._bindings if b.aor in moved]:
            self._bindings.remove(binding.aor, binding.instance)
            self._box.events.append(
                BindingRemoved(now, self.fqdn, binding.aor, binding.contact, "user moved")
            )
            self._outgoing.registration_notify(
                binding, "deregistered;event=deactivated", 4142, "User moved", now
            )

    def contacts_changed(self, aors: Iterable[str], now: float) -> None:
        """Call after the contact lists of ``aors`` changed (import, a contact added): their
        endpoints registered here, on their home pool, are sent the new list in a NOTIFY
        ``Event: vnd-microsoft-roaming-contacts`` (an emulator choice: a registered endpoint
        counts as subscribed; docs/backends.md)."""
        self._now = now
        self._roaming.changed(aors, now)

    # -- helpers ----------------------------------------------------------------------------

    def _shed(self, data: bytes, flow: Flow, now: float, decision: Decision) -> None:
        """A message admission control sheds (overload): reported per source, answered 503 +
        Retry-After or dropped, never processed (emulator/registrar/admission.py)."""
        admission = self._admission
        if admission.reports:
            for report in admission.reports:
                self._box.events.append(
                    LoadShed(
                        now, self.fqdn, report.source, report.until, report.shed, report.answered
                    )
                )
            admission.reports.clear()
        if decision is Decision.DROP:
            return
        try:
            message = parse_message(data, stream=flow.reliable)
            if isinstance(message, Response) or message.method == "ACK":
                return
            _stamp(message, message.headers.get("via") or "", flow)
            response = make_response(message, 503, to_tag=self._rules.tag())
            response.headers.add("Retry-After", str(admission.retry_after))
            response.headers.add("Server", self._server)
            wire = response.to_bytes()
        except SipError:
            return  # shed and unreadable: nothing to answer
        self._box.actions.append(Send(flow, wire))

    @property
    def admission(self) -> Admission:
        """The pool's admission control (counts of what it shed)."""
        return self._admission

    @property
    def transactions(self) -> ServerTransactionTable:
        """The pool's Completed server transactions (Timer J store)."""
        return self._server_tx

    def _bad_message(self, exc: SipError, flow: Flow, now: float) -> None:
        headers = exc.headers
        status = 0
        # A response is never answered, however broken (RFC 3261 §17.1.3; RFC 4475 bigcode).
        if not exc.response and headers is not None and headers.get("via") and headers.get("cseq"):
            # Answer what can be answered (RFC 3261 §8.2: 400 to a malformed request).
            fake = Request("X", "sip:x", headers)
            try:
                _stamp(fake, headers.get("via") or "", flow)
                response = make_response(fake, exc.status, exc.reason, to_tag=self._rules.tag())
                response.headers.add("ms-diagnostics", str(Diagnostics(1, str(exc)[:200])))
                response.headers.add("Server", self._server)
                self._box.actions.append(Send(flow, response.to_bytes()))
                status = exc.status
            except SipError:
                status = 0
        self._box.events.append(BadMessage(now, self.fqdn, flow, status, str(exc)[:200]))
        if flow.reliable and status == 0:
            self._box.actions.append(CloseFlow(flow))


def wire_status(answer: Response | bytes) -> int:
    """The status of an answer: a Response's, or 200 for the 200 to a REGISTER sent as bytes."""
    return answer.status if isinstance(answer, Response) else 200


def _stamp(request: Request, top: str, flow: Flow) -> None:
    """What the server transport adds to the top Via of a request on receipt, so that every
    response copies it: ``received`` and ``rport`` (RFC 3261 §18.2.1, RFC 3581 §4;
    :func:`emulator.sip.headers.stamp_via`).  A Via that does not parse is left as it is (the
    request is answered 400 for it, or not at all)."""
    if not top:
        return
    try:
        stamped = stamp_via(top, flow.remote[0], flow.remote[1])
    except SipError:
        return
    if stamped is not None:
        request.headers.replace_first("via", stamped)
