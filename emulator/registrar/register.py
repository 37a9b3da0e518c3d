"""The REGISTER rules of a registrar pool (RFC 3261 §10.3, MS-SIPREGE), sans-IO.

REGISTER handling, in order (protocol-notes §5):

1. user unknown -> ``registrar.unknown_user`` (404);
2. a Director -> 301 naming the home pool (q=0.7) and its backup (q=0.3) [DD-BLOG, TN-CSVR];
3. the user's home pool -> 200 with ``presence-state`` (MS-SIPREGE §2.2.1.4, §4);
4. the home pool's backup -> while the home pool is failed over: 200 in resiliency mode
   (``is-connected-to-primary="no";user-services-state=unavailable``); before that the
   ``registrar.before_failover`` answer (emulator choice; default 301 home);
5. any other pool -> the same 301 as a Director.

An administrator's pool failover (emulator/pairing.py, docs/backends.md) comes before 3 and 4:
the failed pool, if it answers, sends its users to its backup (301); the backup serves them,
in resiliency mode until the failover completes and with full function after.

The 200 itself is written by :func:`.reply.ok_bytes`.  The parse caches below are the speed
of this path: a client refreshes with the same To, Contact and, but for the tag, From as
before, so each is parsed once per client, not per request (benchmarks/sip_bench.py,
docs/benchmarks.md).
"""

from __future__ import annotations

import random
import string
import sys
from collections.abc import Mapping, Sequence

from emulator.admin import Directory
from emulator.net import Flow, TransportName
from emulator.registrar.bindings import Binding, BindingStore
from emulator.registrar.endpoints import PoolEndpoints, registrar_uri
from emulator.registrar.events import (
    AnswerTrimmed,
    BindingAdded,
    BindingLimitReached,
    BindingRefreshed,
    BindingRemoved,
    BindingReplaced,
)
from emulator.registrar.monitor import PeerMonitor, PeerState
from emulator.registrar.outgoing import Outbox
from emulator.registrar.reply import UDP_MAX_PAYLOAD, ok_bytes
from emulator.sip.errors import SipError
from emulator.sip.headers import (
    Diagnostics,
    KeepAlive,
    NameAddr,
    PresenceState,
    make_response,
    parse_contacts,
)
from emulator.sip.message import Headers, Request, Response
from emulator.sip.numbers import MAX_DELTA_SECONDS, parse_number
from emulator.sip.uri import normalize_aor
from emulator.topology import PoolSpec, Topology
from emulator.values import static_frozen

__all__ = ["RegisterRules"]

LIMIT_REPORT_INTERVAL = 60.0
"""Seconds between two ``BindingLimitReached`` reports of one user (the others are counted)."""

_CACHE_LIMIT = 100_000
"""Entries per parse cache below (bounded: the keys come from the network).  A full cache is
emptied and learns again, so that a flood of values seen once (a new Contact every time) is
not kept for good, and the clients that come after it are cached again (issue 21).  Every
cached value is a pure function of its key, so emptying a cache changes nothing but speed."""

_CONTACT_CACHE_LIMIT = 50_000
"""The Contact cache's bound: its entries are the largest (about 600 bytes each)."""


@static_frozen
class _Contact:
    """One Contact of a REGISTER, reduced to what ``_accept`` uses (cached per header value)."""

    uri: str
    """The Contact URI; ``""`` when :attr:`instance` is set and the URI is not ``*``: then it
    is never read (an endpoint is its instance before its URI), and not keeping it saves a
    string per client and pool (memory, issue 20)."""
    expires: int | None
    """Its ``expires`` parameter (RFC 3261 §10.2.1.1)."""
    instance: str | None
    """``+sip.instance``, unquoted (MS-SIPREGE §3.1.1.1)."""
    binding_contact: str
    """The contact as a binding stores and reports it: without ``expires`` and ``q``."""


class RegisterRules:
    """What a pool answers to a REGISTER, and the bindings it keeps (RFC 3261 §10.3)."""

    __slots__ = (
        "_aor_cache",
        "_bindings",
        "_box",
        "_contact_cache",
        "_epid_cache",
        "_keep_alive_line",
        "_limit_reports",
        "_monitors",
        "_presence_cache",
        "_server_line",
        "directory",
        "endpoints",
        "fqdn",
        "is_director",
        "rng",
        "settings",
        "topology",
    )

    def __init__(
        self,
        spec: PoolSpec,
        topology: Topology,
        endpoints: Mapping[str, PoolEndpoints],
        rng: random.Random,
        *,
        directory: Directory,
        bindings: BindingStore,
        monitors: Mapping[str, PeerMonitor],
        box: Outbox,
    ) -> None:
        self.fqdn = spec.fqdn
        self.is_director = spec.is_director
        self.topology = topology
        self.settings = topology.registrar
        self.endpoints = endpoints
        self.rng = rng
        self.directory = directory
        self._bindings = bindings
        bindings.on_dropped = self._forget_contact
        self._monitors = monitors
        self._box = box
        self._aor_cache: dict[str, str] = {}
        self._contact_cache: dict[str | tuple[str, ...], tuple[_Contact, ...]] = {}
        self._epid_cache: dict[str, str | None] = {}
        self._presence_cache: dict[tuple[str, bool, bool], str] = {}
        # AOR -> (when its limit was last reported, how many times since): bounded by the
        # directory's users, the only AORs that have bindings.
        self._limit_reports: dict[str, tuple[float, int]] = {}
        self._server_line = f"Server: {spec.server}"
        self._keep_alive_line = "ms-keep-alive: " + str(
            KeepAlive(
                "UAS",
                (("tcp", False), ("hop-hop", True), ("end-end", False)),
                self.settings.keep_alive_timeout,
            )
        )

    def tag(self) -> str:
        """A To tag for a response: 48 random bits as 12 hex digits."""
        # "%" formatting: the same 12 hex digits as f"{n:012x}" in half the time (a tag per
        # request; speed).
        return "%012x" % self.rng.getrandbits(48)  # noqa: UP031

    def aor(self, request: Request) -> str:
        to = request.headers.get("to") or ""
        aor = self._aor_cache.get(to)
        if aor is None:
            # Interned: the pools' caches, the bindings and the directory's generated users
            # (emulator/topology/loading.py) then share one string per user (memory: a
            # simulated client costs one address, not one per pool and table).
            aor = sys.intern(normalize_aor(NameAddr.parse(to).uri))
            if len(self._aor_cache) >= _CACHE_LIMIT:
                self._aor_cache.clear()
            self._aor_cache[to] = aor
        return aor

    def aor_quiet(self, request: Request) -> str:
        try:
            return self.aor(request)
        except SipError:
            return "?"

    def register(self, request: Request, flow: Flow, now: float, services: str) -> Response | bytes:
        """The answer to a REGISTER: a Response to finish, or the 200 as wire bytes.
        ``services``: the pool's user services mode (its back end: full, limited...)."""
        settings = self.settings
        aor = self.aor(request)
        home = self.directory.get(aor)
        if home is None:
            return make_response(request, settings.unknown_user, to_tag=self.tag())
        if settings.deregister == "accept" and not (home == self.fqdn and services == "full"):
            removal = self._removal(request)
            if removal is not None:
                return self._deregister(request, flow, now, aor, removal)
        pairings = self.directory.pairings
        if pairings is not None and pairings.failovers:
            found = pairings.failovers.get(home)
            phase = None if found is None else found.phase(now)
            if found is not None and phase in ("failing-over", "failed-over"):
                if home == self.fqdn and not self.is_director:
                    # CHOICE: the failed-over pool, if it still answers, sends its users to
                    # the backup (only the backup: they are served there now).
                    return self._redirect_to(request, (found.backup,))
                if found.backup == self.fqdn:
                    return self._accept(
                        request, flow, now, aor, home, services, full=phase == "failed-over"
                    )
        if home == self.fqdn and not self.is_director:
            return self._accept(request, flow, now, aor, None, services)
        monitor = self._monitors.get(home)
        if monitor is None:
            return self.redirect(request, home)
        if monitor.serving_users:
            return self._accept(request, flow, now, aor, home, services)
        for binding in self._bindings.of(aor):
            # Left by failback = "redirect-on-refresh": this refresh is the one sent home.
            if binding.home == home:
                self._bindings.remove(aor, binding.instance)
                self._box.events.append(
                    BindingRemoved(now, self.fqdn, aor, binding.contact, "failback")
                )
        if monitor.state is PeerState.HEARTBEAT_LOST:
            return self._before_failover(request, home)
        return self.redirect(request, home)

    def _accept(
        self,
        request: Request,
        flow: Flow,
        now: float,
        aor: str,
        resiliency_for: str | None,
        mode: str,
        *,
        full: bool = False,
    ) -> Response | bytes:
        """RFC 3261 §10.3 steps 6-8 for a user this pool serves (home, or failed over here).
        ``full``: a user of ``resiliency_for`` whose pool failover has completed: served as at
        home (DOC: full function at the backup; ``is-connected-to-primary="yes"``, a CHOICE)."""
        settings = self.settings
        headers = request.headers
        contacts = self._contacts(headers)
        if settings.require_endpoint_id:
            epid = self._epid(headers.get("from") or "")
            if not epid and not any(c.instance for c in contacts):
                response = make_response(request, 400, to_tag=self.tag())
                response.headers.add(
                    "ms-diagnostics", str(Diagnostics(4010, "Missing epid and sip.instance"))
                )
                return response
        header_expires = headers.get("expires")
        default = (
            parse_number(header_expires, "Expires", MAX_DELTA_SECONDS)
            if header_expires is not None
            else settings.default_expires
        )
        call_id = request.call_id
        survivable = _survivable(headers)
        at_home = resiliency_for is None or full
        services = mode == "full" if at_home else False
        if resiliency_for is None and not services and not survivable:
            # MS-SIPREGE §2.2.1.13 (4165): user services are down and this endpoint cannot
            # register without them.  Answering 480 is an emulator choice (docs/backends.md).
            response = make_response(request, 480, to_tag=self.tag())
            response.headers.add(
                "ms-diagnostics-public",
                str(
                    Diagnostics(
                        4165,
                        "User services unavailable and the endpoint does not "
                        "support survivable mode",
                    )
                ),
            )
            return response
        # parse_message has checked the CSeq of every request (parse_cseq): the number is the
        # digits before the first space; reading it so is cheaper than parsing it again.
        cseq = int((headers.get("cseq") or "").strip().partition(" ")[0])
        to_tag = self.tag()
        events = self._box.events
        bindings = self._bindings

        if len(contacts) == 1 and contacts[0].uri == "*":
            if default != 0:
                raise SipError("Contact: * is allowed only with Expires: 0 (§10.2.2)")
            for binding in bindings.remove_all(aor):
                events.append(BindingRemoved(now, self.fqdn, aor, binding.contact, "unregistered"))
            return self._ok(request, flow, aor, to_tag, None, call_id, now, ())

        limit = settings.max_bindings_per_user
        if settings.binding_limit == "refuse" and bindings.count(aor) + len(contacts) > limit:
            refused = self._over_limit(request, aor, contacts, default, now)
            if refused is not None:
                return refused

        action: str | None = None
        epid = None
        own: list[str] = []
        for contact in contacts:
            expires = contact.expires
            if expires is None:
                expires = default
            if 0 < expires < settings.min_expires and expires < 3600:  # §10.3 step 7
                response = make_response(request, 423, to_tag=to_tag)
                response.headers.add("Min-Expires", str(settings.min_expires))
                return response
            expires = min(expires, settings.max_expires)
            if epid is None:
                epid = self._epid(headers.get("from") or "") or ""
            instance = contact.instance or epid or contact.uri
            existing = bindings.get(aor, instance)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise SipError(
                    "CSeq not higher than the binding's (§10.3 step 7)",
                    500,
                    "Server Internal Error",
                )
            if expires == 0:
                if existing is not None:
                    bindings.remove(aor, instance)
                    events.append(
                        BindingRemoved(now, self.fqdn, aor, existing.contact, "unregistered")
                    )
                continue
            if existing is None and bindings.count(aor) >= limit:
                # The per-user limit, ``evict-oldest`` ("refuse" was settled above): the
                # binding nearest its expiry makes room (a CHOICE, docs/protocol.md).
                victim = bindings.oldest(aor)
                if victim is not None:
                    bindings.remove(aor, victim.instance)
                    events.append(BindingRemoved(now, self.fqdn, aor, victim.contact, "limit"))
                    self._limit_reached(now, aor, "evicted", victim.contact)
            expires_at = now + expires
            own.append(instance)
            binding = Binding(
                aor,
                instance,
                contact.binding_contact,
                flow,
                call_id,
                cseq,
                expires_at,
                existing.registered_at if existing else now,
                not at_home,
                resiliency_for,
                survivable,
            )
            bindings.put(binding)
            if existing is None:
                action = "added"
                events.append(
                    BindingAdded(now, self.fqdn, aor, binding.contact, expires_at, not at_home)
                )
            else:
                action = action or "refreshed"
                if existing.flow is not flow and existing.flow != flow:
                    # Issue 21: the same endpoint from another source (a hijack, or a client
                    # that moved or reconnected): said so, not "refreshed".
                    events.append(
                        BindingReplaced(
                            now,
                            self.fqdn,
                            aor,
                            binding.contact,
                            expires_at,
                            _source(existing.flow),
                            _source(flow),
                            existing.contact,
                        )
                    )
                else:
                    events.append(
                        BindingRefreshed(now, self.fqdn, aor, binding.contact, expires_at)
                    )
        if action is None:  # a query (§10.3 step 6 with no Contact) or only removals
            return self._ok(request, flow, aor, to_tag, None, call_id, now, own)
        presence = self._presence(action, at_home, services)
        return self._ok(request, flow, aor, to_tag, presence, call_id, now, own)

    def _removal(self, request: Request) -> tuple[_Contact, ...] | None:
        """The Contacts of a REGISTER that only removes bindings (each with expiry 0, or
        ``*`` with ``Expires: 0``; RFC 3261 §10.2.2), else None (a registration or a query)."""
        headers = request.headers
        header_expires = headers.get("expires")
        if header_expires is None and not headers.get("contact"):
            return None
        # Not kept in the parse cache when not there yet: a REGISTER this pool redirects
        # (a Director's every one) makes no binding, so nothing would ever forget its entry
        # (memory, issue 20: one entry per client at the Director); _accept keeps it.
        contacts = self._contacts(headers, keep=False)
        if not contacts:
            return None
        default = (
            parse_number(header_expires, "Expires", MAX_DELTA_SECONDS)
            if header_expires is not None
            else self.settings.default_expires
        )
        for contact in contacts:
            expires = contact.expires if contact.expires is not None else default
            if expires != 0:
                return None
        return contacts

    def _deregister(
        self,
        request: Request,
        flow: Flow,
        now: float,
        aor: str,
        contacts: tuple[_Contact, ...],
    ) -> Response | bytes:
        """``registrar.deregister = "accept"``: a de-REGISTER where the rules would redirect or
        refuse it gets 200 (RFC 3261 §10.3 steps 6-8), after the pool removes the bindings it
        holds for those Contacts (none, usually: the endpoint registered elsewhere)."""
        events = self._box.events
        bindings = self._bindings
        if len(contacts) == 1 and contacts[0].uri == "*":
            for binding in bindings.remove_all(aor):
                events.append(BindingRemoved(now, self.fqdn, aor, binding.contact, "unregistered"))
        else:
            epid = self._epid(request.headers.get("from") or "") or ""
            for contact in contacts:
                instance = contact.instance or epid or contact.uri
                existing = bindings.get(aor, instance)
                if existing is not None:
                    bindings.remove(aor, instance)
                    events.append(
                        BindingRemoved(now, self.fqdn, aor, existing.contact, "unregistered")
                    )
        return self._ok(request, flow, aor, self.tag(), None, request.call_id, now, ())

    def _over_limit(
        self,
        request: Request,
        aor: str,
        contacts: tuple[_Contact, ...],
        default: int,
        now: float,
    ) -> Response | None:
        """``binding_limit = "refuse"``: the 403 if this REGISTER would take ``aor`` past
        ``max_bindings_per_user`` new endpoints, before anything changes (None: within it)."""
        bindings = self._bindings
        epid = self._epid(request.headers.get("from") or "") or ""
        new: list[_Contact] = []
        seen: set[str] = set()
        for contact in contacts:
            instance = contact.instance or epid or contact.uri
            expires = contact.expires if contact.expires is not None else default
            if expires != 0 and instance not in seen and bindings.get(aor, instance) is None:
                seen.add(instance)
                new.append(contact)
        limit = self.settings.max_bindings_per_user
        if not new or bindings.count(aor) + len(new) <= limit:
            return None
        # CHOICE (docs/protocol.md): 403, so that a Lync client does not take it for an
        # overloaded server and try its backup registrar (as it would a 503).
        response = make_response(request, 403, "Too Many Registered Endpoints", to_tag=self.tag())
        response.headers.add(
            "Warning", f'399 {self.fqdn} "at most {limit} endpoints per user may be registered"'
        )
        self._limit_reached(now, aor, "refused", new[0].binding_contact)
        return response

    def _limit_reached(self, now: float, aor: str, action: str, contact: str) -> None:
        """Report the per-user limit: once a minute per user, with the count in between."""
        last, unreported = self._limit_reports.get(aor, (float("-inf"), 0))
        if now - last < LIMIT_REPORT_INTERVAL:
            self._limit_reports[aor] = (last, unreported + 1)
            return
        self._limit_reports[aor] = (now, 0)
        limit = self.settings.max_bindings_per_user
        self._box.events.append(
            BindingLimitReached(now, self.fqdn, aor, limit, action, contact, unreported)
        )

    def _ok(
        self,
        request: Request,
        flow: Flow,
        aor: str,
        to_tag: str,
        presence: str | None,
        call_id: str,
        now: float,
        own: Sequence[str],
    ) -> Response | bytes:
        """The 200, serialized (:func:`.reply.ok_bytes`).  ``own``: the endpoints (instances)
        this request registered."""
        current = self._bindings.of(aor)
        lync = self.settings.services
        gruu = lync and _wants_gruu(request.headers)
        wire = ok_bytes(
            request.headers,
            to_tag,
            current,
            now,
            keep_alive_line=self._keep_alive_line,
            presence=presence,
            call_id=call_id,
            server_line=self._server_line,
            lync=lync,
            gruu=gruu,
        )
        if flow.reliable or len(wire) <= UDP_MAX_PAYLOAD:
            return wire
        # Too large for one UDP datagram (RFC 3261 §18.1.1: 65,535 bytes with the IP and UDP
        # headers), and a response cannot move to TCP (§18.2.2 sends it back the way the
        # request came).  §10.3 step 8 asks for every binding; the request's own are what its
        # client needs (its expiry), so the 200 lists only those: a CHOICE, never silence.
        mine = [b for b in current if b.instance in own]
        trimmed = b""
        if mine:
            trimmed = ok_bytes(
                request.headers,
                to_tag,
                mine,
                now,
                keep_alive_line=self._keep_alive_line,
                presence=presence,
                call_id=call_id,
                server_line=self._server_line,
                lync=lync,
                gruu=gruu,
            )
        fits = 0 < len(trimmed) <= UDP_MAX_PAYLOAD
        self._box.events.append(
            AnswerTrimmed(now, self.fqdn, aor, len(wire), len(mine) if fits else 0, len(current))
        )
        if fits:
            return trimmed
        # Even the request's own bindings do not fit (or it was a query): 513, the nearest
        # status RFC 3261 has (§21.5.14), rather than a datagram that cannot be sent.
        response = make_response(request, 513, to_tag=to_tag)
        response.headers.add(
            "Warning", f'399 {self.fqdn} "the bindings of {aor} do not fit a UDP datagram"'
        )
        return response

    def _presence(self, action: str, home: bool, services: bool) -> str:
        """MS-SIPREGE §2.2.1.4 presence-state of a 200: on the home pool or not (a backup in
        resiliency mode), and whether user services (the back end) are available."""
        key = (action, home, services)
        text = self._presence_cache.get(key)
        if text is None:  # a handful of possible values: formatted once each
            text = self._presence_cache[key] = str(
                PresenceState(
                    action,
                    "central",
                    is_connected_to_primary=home,
                    user_services_available=services,
                )
            )
        return text

    def _contacts(self, headers: Headers, *, keep: bool = True) -> tuple[_Contact, ...]:
        """The Contacts of a REGISTER (RFC 3261 §10.3 step 7), parsed once per distinct value
        (``keep=False``: a value not in the cache yet is parsed and not kept)."""
        values = headers.get_all("contact")
        # One Contact line is the rule: its text is the key (a tuple would cost memory).
        key = values[0] if len(values) == 1 else tuple(values)
        contacts = self._contact_cache.get(key)
        if contacts is None:
            contacts = tuple(
                _Contact(
                    _uri_kept(address),
                    address.expires,
                    address.param("+sip.instance"),
                    _same(
                        str(NameAddr(address.uri, address.display, _binding_params(address))), key
                    ),
                )
                for address in parse_contacts(headers)  # raises SipError: nothing cached
            )
            if not keep:
                return contacts
            if len(self._contact_cache) >= _CONTACT_CACHE_LIMIT:
                self._contact_cache.clear()
            self._contact_cache[key] = contacts
        return contacts

    def _forget_contact(self, contact: str) -> None:
        """A binding with this contact text is gone: so is its Contact value's cache entry,
        when the two are the same text (the usual case).  Speed only: the entry is a pure
        function of its key, made again if the value comes back."""
        self._contact_cache.pop(contact, None)

    def contacts_parsed(self, values: Sequence[str]) -> bool:
        """Whether the Contact values of a REGISTER are in the parse cache.  Only REGISTERs
        that passed the pool's header inspection (``Pool._inspect``, RFC 3261 §20.10) reach
        the rules that fill it, so the pool skips checking these values again."""
        key = values[0] if len(values) == 1 else tuple(values)
        return key in self._contact_cache

    def _epid(self, from_value: str) -> str | None:
        """The ``epid`` parameter of a From value (MS-SIPREGE §3.1.1.1); raises SipError.

        Cached on the value without its trailing ``;tag=TOKEN``: a client sends a new tag with
        every REGISTER (SIPp does), and a plain token at the very end of the value can change
        neither how the rest parses nor the epid, so every value with the same rest parses the
        same.  Values of any other shape are cached whole.
        """
        key = from_value
        at = from_value.rfind(";tag=")
        if at >= 0:
            tag = from_value[at + 5 :]
            if tag and not tag.strip(_TOKEN_CHARACTERS):  # nothing but token characters
                key = from_value[:at]
        try:
            return self._epid_cache[key]
        except KeyError:
            pass
        epid = NameAddr.parse(from_value).param("epid")  # raises SipError: nothing cached
        if len(self._epid_cache) >= _CACHE_LIMIT:
            self._epid_cache.clear()
        self._epid_cache[key] = epid
        return epid

    def redirect(self, request: Request, home: str) -> Response:
        """``301 Redirect request to Home Server``: home q=0.7, its backup q=0.3 [DD-BLOG]
        (the backup as paired now: emulator/pairing.py)."""
        pairings = self.directory.pairings
        backup = (
            pairings.backup_of(home) if pairings is not None else self.topology.pool(home).backup
        )
        return self._redirect_to(request, (home,) if backup is None else (home, backup))

    def _redirect_to(self, request: Request, pools: Sequence[str]) -> Response:
        """A 301 naming ``pools``: the first with q=0.7, the second (if any) with q=0.3."""
        settings = self.settings
        response = make_response(request, 301, settings.redirect_reason, to_tag=self.tag())
        came_over = _transport_of(request)
        for pool, q in zip(pools, (settings.primary_q, settings.backup_q), strict=False):
            response.headers.add("Contact", f"<{self.registrar_uri(pool, came_over)}>;q={q}")
        if settings.redirect_expires:
            response.headers.add("Expires", str(settings.redirect_expires))
        return response

    def _before_failover(self, request: Request, home: str) -> Response:
        """A failed-looking primary's user before failover: an emulator choice (§6)."""
        behaviour = self.settings.before_failover
        if behaviour == "redirect":
            return self.redirect(request, home)
        if behaviour == "service-unavailable":
            response = make_response(request, 503, to_tag=self.tag())
            response.headers.add("Retry-After", str(self.settings.retry_after))
            return response
        return make_response(request, 480, to_tag=self.tag())

    def registrar_uri(self, fqdn: str, came_over: TransportName) -> str:
        """A pool's SIP URI for a 301 Contact or P-Preferred-Registrar."""
        return registrar_uri(self.settings, self.endpoints[fqdn], fqdn, came_over)


# RFC 3261 §25.1 token: no quote, bracket, comma, semicolon, equals sign or white space.
_TOKEN_CHARACTERS = string.ascii_letters + string.digits + ".!%*_+`'~-"


def _survivable(headers: Headers) -> bool:
    """``Supported: ms-userservices-state-notification`` (MS-SIPREGE §2.2.1.5)."""
    return any(
        "ms-userservices-state-notification" in value.lower()
        for value in headers.get_all("supported")
    )


def _wants_gruu(headers: Headers) -> bool:
    """``Supported: gruu-10`` (MS-SIPREGE §2.2.1.5: the UAC asks for a GRUU)."""
    return any("gruu-10" in value.lower() for value in headers.get_all("supported"))


def _source(flow: Flow) -> str:
    """A flow's far end as the events write it: ``UDP 127.0.0.1:5060``."""
    return f"{flow.transport.upper()} {flow.remote[0]}:{flow.remote[1]}"


def _uri_kept(address: NameAddr) -> str:
    """What :attr:`_Contact.uri` keeps of a Contact's URI (see there)."""
    uri = address.uri
    return uri if uri == "*" or not address.param("+sip.instance") else ""


def _same(text: str, key: str | tuple[str, ...]) -> str:
    """``text``, or the equal cache key: a binding's contact is most often the Contact value
    as sent, and then the cache entry, the binding and the key share one string (memory)."""
    return key if isinstance(key, str) and text == key else text


def _binding_params(contact: NameAddr) -> tuple[tuple[str, str | None], ...]:
    # The registrar reports expiry itself; q and expires in the request are not echoed twice.
    return tuple(p for p in contact.params if p[0] not in ("expires", "q"))


def _transport_of(request: Request) -> TransportName:
    via = request.headers.get("via") or ""
    proto = via.split(" ", 1)[0].rsplit("/", 1)[-1].lower()
    return proto if proto in ("udp", "tcp", "tls") else "udp"  # type: ignore[return-value]
