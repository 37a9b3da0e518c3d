"""A front end's sign-in services, sans-IO: what a Lync client subscribes to and publishes
after its REGISTER's 200 (docs/protocol.md, "Sign-in").

* SUBSCRIBE ``vnd-microsoft-provisioning-v2``: in-band provisioning, a one-off subscription
  answered 200 with ``Expires: 0``, the provisioning document in it or in a NOTIFY
  (MS-SIPREGE §2.2.2.2, §2.2.2.4; example §4.2.2);
* SUBSCRIBE ``vnd-microsoft-roaming-self``: the user's own categories, containers and
  subscribers (MS-PRES, example §4.4.1);
* SUBSCRIBE ``presence``, batched (``Content-Type: application/msrtc-adrl-categorylist+xml``,
  ``Require: adhoclist, categoryList``; MS-PRES §2.2.2.4.1, MS-SIP §3.3.4.1) or for one
  presentity: 200, then a NOTIFY per presentity with its categories
  (``application/msrtc-event-categories+xml``, MS-PRES);
* SERVICE (or PUBLISH) ``application/msrtc-category-publish+xml`` (MS-PRES) and SERVICE
  ``setPresence``
  (MS-SIP §3.2.4.1, the OCS 2005 method): accepted, stored per user in the deployment's
  :class:`~emulator.registrar.presence.PresenceStore`, and NOTIFYed to the user's watchers and
  to the user's own roaming-self subscriptions, on this pool at once and on the others at
  their next input or within ``registrar.presence_poll_interval``.

The roaming contact list (``vnd-microsoft-roaming-contacts``) stays in :mod:`.contacts`.
The first NOTIFY of a subscription rides in its 200 (``ms-piggyback-cseq``, MS-SIP §3.4.4.1)
when the SUBSCRIBE says ``Supported: ms-piggyback-first-notify``; otherwise it is a NOTIFY.

Emulator choices (docs/protocol.md): every user of the deployment is a colleague of every
other (a watcher sees what a user published in container 300, else in the lowest container
that is neither self (2, 3) nor blocked (32000)); a watcher is served by the pool it
subscribed on, which learns of publications made on other pools from the shared store (a
front end would route the SUBSCRIBE to the presentity's home pool); subscriptions are not
refreshed by the pool and are forgotten at their expiry, when un-SUBSCRIBEd (``Expires: 0``)
or when their flow fails.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from emulator.admin import Directory
from emulator.backend import BackEnd
from emulator.net import Flow
from emulator.registrar.outgoing import Outgoing
from emulator.registrar.presence import WATCHER_CONTAINER, PresenceStore, Publication
from emulator.registrar.register import RegisterRules
from emulator.sip.errors import SipError
from emulator.sip.headers import Diagnostics, NameAddr, make_response
from emulator.sip.message import Headers, Request, Response
from emulator.sip.uri import normalize_aor

__all__ = [
    "CATEGORIES_TYPE",
    "PROVISIONING_EVENT",
    "PROVISIONING_TYPE",
    "PUBLISH_TYPE",
    "ROAMING_SELF_EVENT",
    "ROAMING_SELF_TYPE",
    "FrontEndServices",
]

PROVISIONING_EVENT = "vnd-microsoft-provisioning-v2"
PROVISIONING_TYPE = "application/vnd-microsoft-roaming-provisioning-v2+xml"
ROAMING_SELF_EVENT = "vnd-microsoft-roaming-self"
ROAMING_SELF_TYPE = "application/vnd-microsoft-roaming-self+xml"
CATEGORIES_TYPE = "application/msrtc-event-categories+xml"
BATCH_TYPE = "application/msrtc-adrl-categorylist+xml"
PUBLISH_TYPE = "application/msrtc-category-publish+xml"

_NS_CATEGORIES = "http://schemas.microsoft.com/2006/09/sip/categories"
_NS_ROAMING_SELF = "http://schemas.microsoft.com/2006/09/sip/roaming-self"
_NS_CONTAINERS = "http://schemas.microsoft.com/2006/09/sip/container-management"
_NS_SUBSCRIBERS = "http://schemas.microsoft.com/2006/09/sip/presence-subscribers"
_NS_PROVISIONING = "http://schemas.microsoft.com/2006/09/sip/provisiongrouplist-notification"

DEFAULT_EXPIRES = 3600
"""Expires of a subscription whose SUBSCRIBE names none (CHOICE; RFC 6665 §4.2.1.1 lets the
notifier choose)."""
MAX_EXPIRES = 86_400
"""The longest subscription granted (CHOICE: a day; a longer ask is shortened)."""
MAX_SUBSCRIPTIONS = 100_000
"""Subscriptions a pool holds at most (bounded: they come from the network); past it a new
SUBSCRIBE gets 503."""
MAX_PUBLICATIONS = 64
"""Category instances one user may have published at once (past it: 403, CHOICE)."""
MAX_BODY = 65_536
"""The largest XML body read (past it: 413)."""


_PUBLICATION = re.compile(rb"<publication\b([^>]*?)(?:/>|>(.*?)</publication\s*>)", re.DOTALL)
_ATTRIBUTE = re.compile(rb'([\w:.-]+)\s*=\s*"([^"]*)"')
_SET_PRESENCE = re.compile(rb"<(?:\w+:)?setPresence\b")
_ACL_SERVICE = re.compile(rb"<(?:\w+:)?(?:setContainerMembers|setSubscribers)\b")
_AVAILABILITY = re.compile(rb'<(?:\w+:)?availability\b[^>]*\baggregate="(\d{1,5})"')


@dataclass(slots=True)
class Subscription:
    """One subscription dialog the pool is the notifier of (RFC 6665)."""

    event: str
    watcher: str
    """The subscriber's AOR (its From)."""
    targets: tuple[str, ...]
    """Presentities (presence), or the watcher itself (roaming-self)."""
    categories: frozenset[str]
    """Category names asked for (empty: all)."""
    flow: Flow
    remote_target: str
    """The subscriber's Contact URI: the Request-URI of NOTIFYs (RFC 6665 §4.2.2)."""
    call_id: str
    local_tag: str
    """The pool's tag (the To tag of the 200): with the Call-ID, the dialog's key here."""
    local: str
    """From of NOTIFYs: the SUBSCRIBE's To, with the pool's tag."""
    remote: str
    """To of NOTIFYs: the SUBSCRIBE's From (with the subscriber's tag)."""
    cseq: int
    expires_at: float


class FrontEndServices:
    """The sign-in subscriptions, publications and their NOTIFYs of one pool."""

    __slots__ = (
        "_outgoing",
        "_polled_at",
        "_remote",
        "_rules",
        "_seen",
        "_subscriptions",
        "backend",
        "directory",
        "fqdn",
        "poll_interval",
        "store",
    )

    def __init__(
        self,
        fqdn: str,
        *,
        directory: Directory,
        backend: BackEnd,
        rules: RegisterRules,
        outgoing: Outgoing,
        store: PresenceStore | None = None,
        poll_interval: float = 1.0,
        now: float = 0.0,
    ) -> None:
        self.fqdn = fqdn
        self.directory = directory
        self.backend = backend
        self.store = store if store is not None else PresenceStore()
        self.poll_interval = poll_interval
        """How often the pool looks at the shared store while it serves a watcher of a user
        homed on another pool (``registrar.presence_poll_interval``)."""
        self._rules = rules
        self._outgoing = outgoing
        self._subscriptions: dict[tuple[str, str], Subscription] = {}
        self._seen = self.store.version
        self._polled_at = now
        self._remote = False
        """Whether a subscription here watches a user homed on another pool (kept by
        :meth:`_recount`: the driver asks for the deadline after every message)."""

    # -- dispatch ---------------------------------------------------------------------------

    @staticmethod
    def serves(request: Request) -> bool:
        """Whether ``request`` is one of the services of this module."""
        method = request.method
        if method == "SUBSCRIBE":
            event = _event(request.headers)
            return event in (PROVISIONING_EVENT, ROAMING_SELF_EVENT, "presence")
        if method == "PUBLISH":
            return True
        if method == "SERVICE":
            body = request.body
            return (
                _is_category_publish(request)
                or _SET_PRESENCE.search(body) is not None
                or _ACL_SERVICE.search(body) is not None
            )
        return False

    def answer(self, request: Request, flow: Flow, now: float) -> Response:
        """The answer to a request :meth:`serves`; NOTIFYs go out through the pool's
        :class:`~emulator.registrar.outgoing.Outgoing`."""
        if len(request.body) > MAX_BODY:
            raise SipError("body too large for a front-end service", 413)
        method = request.method
        if method == "PUBLISH" or (method == "SERVICE" and _is_category_publish(request)):
            return self._publish(request, now)
        if method == "SERVICE":
            if _SET_PRESENCE.search(request.body) is None:
                return self._acl(request)
            return self._set_presence(request, now)
        event = _event(request.headers)
        if event == PROVISIONING_EVENT:
            return self._provisioning(request, flow, now)
        return self._subscribe(request, flow, event, now)

    # -- provisioning -----------------------------------------------------------------------

    def _provisioning(self, request: Request, flow: Flow, now: float) -> Response:
        """MS-SIPREGE §2.2.2.2: a one-off subscription (no dialog, ``Expires: 0``): the
        provisioning document in the 200 when the SUBSCRIBE says
        ``Supported: ms-piggyback-first-notify`` (example §4.2.2), else in a NOTIFY.  An
        ``Accept`` without the provisioning type gets 406 (§2.2.2.1: SHOULD; a SUBSCRIBE
        without ``Accept`` is served, CHOICE)."""
        rules = self._rules
        headers = request.headers
        accept = headers.get("accept")
        if accept is not None and PROVISIONING_TYPE not in accept.lower():
            response = make_response(request, 406, to_tag=rules.tag())
            response.headers.add("Accept", PROVISIONING_TYPE)
            return response
        aor = rules.aor(request)
        tag = rules.tag()
        response = make_response(request, 200, to_tag=tag)
        response.headers.add("Event", PROVISIONING_EVENT)
        response.headers.add("Expires", "0")
        body = provisioning_body(aor, self.fqdn)
        if _piggyback(headers):
            response.headers.add("ms-piggyback-cseq", _cseq_number(headers))
            response.headers.add("Subscription-State", "terminated;expires=0")
            response.headers.add("Content-Type", PROVISIONING_TYPE)
            response.body = body.encode()
            return response
        contact = headers.get("contact")
        if not contact:
            raise SipError("SUBSCRIBE without a Contact (RFC 6665 §4.1.2)")
        to_value = headers.get("to") or ""
        once = Subscription(
            PROVISIONING_EVENT,
            aor,
            (aor,),
            frozenset(),
            flow,
            NameAddr.parse(contact).uri,
            request.call_id,
            tag,
            to_value if ";tag=" in to_value.lower() else f"{to_value};tag={tag}",
            headers.get("from") or "",
            0,
            now + 1.0,
        )
        self._notify(once, PROVISIONING_TYPE, body, now, state="terminated;expires=0")
        return response

    # -- subscriptions ----------------------------------------------------------------------

    def _subscribe(self, request: Request, flow: Flow, event: str, now: float) -> Response:
        rules = self._rules
        headers = request.headers
        watcher = normalize_aor(NameAddr.parse(headers.get("from") or "").uri)
        asked = _expires(headers)
        key_tag = NameAddr.parse(headers.get("to") or "").tag
        call_id = request.call_id
        existing = self._subscriptions.get((call_id, key_tag)) if key_tag else None
        if event == ROAMING_SELF_EVENT:
            targets: tuple[str, ...] = (watcher,)
            categories: frozenset[str] = frozenset()
            if self.directory.get(watcher) != self.fqdn or not self.backend.available:
                return _unavailable(request, rules.tag(), "no roaming data")
        else:
            targets, categories = _presence_targets(request, watcher)
        if asked == 0:
            if existing is not None:
                del self._subscriptions[(call_id, existing.local_tag)]
                self._recount()
            response = make_response(request, 200, to_tag=rules.tag())
            response.headers.add("Event", event)
            response.headers.add("Expires", "0")
            return response
        expires = min(asked if asked is not None else DEFAULT_EXPIRES, MAX_EXPIRES)
        if existing is None and len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            response = make_response(request, 503, to_tag=rules.tag())
            response.headers.add("Retry-After", "60")
            return response
        contact = headers.get("contact")
        if not contact:
            raise SipError("SUBSCRIBE without a Contact (RFC 6665 §4.1.2)")
        target = NameAddr.parse(contact).uri
        if existing is not None:
            local_tag = existing.local_tag
        else:
            local_tag = rules.tag()
        to_value = headers.get("to") or ""
        local = to_value if key_tag else f"{to_value};tag={local_tag}"
        subscription = Subscription(
            event,
            watcher,
            targets,
            categories,
            flow,
            target,
            call_id,
            local_tag,
            local,
            headers.get("from") or "",
            existing.cseq if existing is not None else 0,
            now + expires,
        )
        self._subscriptions[(call_id, local_tag)] = subscription
        self._recount()
        response = make_response(request, 200, to_tag=local_tag)
        response.headers.add("Event", event)
        response.headers.add("Expires", str(expires))
        if event == ROAMING_SELF_EVENT:
            body = self._roaming_self_body(watcher)
            if _piggyback(headers):
                response.headers.add("ms-piggyback-cseq", _cseq_number(headers))
                response.headers.add("Subscription-State", f"active;expires={expires}")
                response.headers.add("Content-Type", ROAMING_SELF_TYPE)
                response.body = body.encode()
            else:
                self._notify(subscription, ROAMING_SELF_TYPE, body, now)
            return response
        for presentity in targets:
            self._notify(
                subscription,
                CATEGORIES_TYPE,
                self._categories_body(presentity, subscription.categories),
                now,
            )
        return response

    def _notify(
        self,
        subscription: Subscription,
        content_type: str,
        body: str,
        now: float,
        *,
        state: str | None = None,
    ) -> None:
        """A NOTIFY in the subscription's dialog (RFC 6665 §4.2.2; MS-PRES for the bodies);
        ``state``: its ``Subscription-State`` (default: active, with the time left)."""
        if now >= subscription.expires_at:
            return
        branch, _, _ = self._outgoing.identifiers()
        flow = subscription.flow
        subscription.cseq += 1
        headers = Headers()
        local = flow.local
        headers.add(
            "Via",
            f"SIP/2.0/{flow.transport.upper()} {local[0]}:{local[1]};branch=z9hG4bK{branch:016x}",
        )
        headers.add("Max-Forwards", "70")
        headers.add("From", subscription.local)
        headers.add("To", subscription.remote)
        headers.add("Call-ID", subscription.call_id)
        headers.add("CSeq", f"{subscription.cseq} NOTIFY")
        headers.add("Event", subscription.event)
        remaining = max(1, int(subscription.expires_at - now))
        headers.add("Subscription-State", state or f"active;expires={remaining}")
        headers.add("Content-Type", content_type)
        request = Request("NOTIFY", subscription.remote_target, headers, body.encode())
        self._outgoing.start(request, flow, "notify", now)

    def flow_failed(self, flow: Flow) -> None:
        """The subscriptions on a flow that failed are gone (their NOTIFYs cannot reach)."""
        for key in [k for k, s in self._subscriptions.items() if s.flow == flow]:
            del self._subscriptions[key]
        self._recount()

    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    # -- publications -----------------------------------------------------------------------

    def _publish(self, request: Request, now: float) -> Response:
        """PUBLISH of categories (MS-PRES ``msrtc-category-publish``): each ``<publication>``
        stored (``expires="0"``: removed), then watchers and the user's endpoints told."""
        rules = self._rules
        content_type = (request.headers.get("content-type") or "").lower()
        if PUBLISH_TYPE not in content_type:
            response = make_response(request, 415, to_tag=rules.tag())
            response.headers.add("Accept", PUBLISH_TYPE)
            return response
        aor = rules.aor(request)
        if self.directory.get(aor) != self.fqdn or not self.backend.available:
            return _unavailable(request, rules.tag(), "no presence")
        _well_formed(request.body)
        published = self.store.users.setdefault(aor, {})
        changed = False
        for match in _PUBLICATION.finditer(request.body):
            attributes = {
                k.decode(): v.decode("utf-8", "replace")
                for k, v in _ATTRIBUTE.findall(match.group(1))
            }
            name = attributes.get("categoryName")
            if not name:
                raise SipError("publication without categoryName")
            instance = _int(attributes.get("instance", "0"), "instance")
            container = _int(attributes.get("container", "0"), "container")
            key = (name, instance, container)
            if attributes.get("expires") == "0":
                changed |= published.pop(key, None) is not None
                continue
            if key not in published and len(published) >= MAX_PUBLICATIONS:
                return make_response(request, 403, "Too Many Publications", to_tag=rules.tag())
            before = published.get(key)
            version = (before.version + 1) if before is not None else 1
            data = (match.group(2) or b"").decode("utf-8", "replace").strip()
            published[key] = Publication(
                name, instance, container, version, attributes.get("expireType", "static"), data
            )
            changed = True
        changed |= self.store.aggregate(aor)
        if changed:
            self.published(aor, now)
        return make_response(request, 200, to_tag=rules.tag())

    def _set_presence(self, request: Request, now: float) -> Response:
        """SERVICE ``setPresence`` (MS-SIP §3.6, OCS 2005): stored as a ``state`` category in
        container 300 and the self container 2, its ``availability`` the ``aggregate`` given
        (CHOICE: the legacy value carried as it is)."""
        rules = self._rules
        aor = rules.aor(request)
        if self.directory.get(aor) != self.fqdn or not self.backend.available:
            return _unavailable(request, rules.tag(), "no presence")
        _well_formed(request.body)
        found = _AVAILABILITY.search(request.body)
        if found is None:
            raise SipError("setPresence without an availability aggregate")
        value = int(found.group(1))
        data = (
            '<state xmlns="http://schemas.microsoft.com/2006/09/sip/state" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" manual="true" '
            f'xsi:type="userState"><availability>{value}</availability></state>'
        )
        published = self.store.users.setdefault(aor, {})
        for container in (2, WATCHER_CONTAINER):
            key = ("state", 0, container)
            before = published.get(key)
            version = before.version + 1 if before is not None else 1
            published[key] = Publication("state", 0, container, version, "user", data)
        self.published(aor, now)
        return make_response(request, 200, to_tag=rules.tag())

    def _acl(self, request: Request) -> Response:
        """SERVICE ``setContainerMembers`` / ``setSubscribers`` (MS-PRES container membership,
        the subscribers' acknowledgement): 200 if well-formed, nothing stored (CHOICE:
        containers' membership is not emulated, every user sees container 300)."""
        _well_formed(request.body)
        return make_response(request, 200, to_tag=self._rules.tag())

    def published(self, aor: str, now: float) -> None:
        """``aor``'s publications changed here: the store's version moves, and this pool's
        subscriptions hear of it at once (:meth:`catch_up`)."""
        self.store.changed(aor)
        self.catch_up(now)

    def catch_up(self, now: float) -> None:
        """NOTIFY this pool's subscriptions of every user whose publications changed since
        the pool last looked (here or on another pool: the store is shared)."""
        store = self.store
        if store.version == self._seen:
            return
        changed = store.changed_since(self._seen)
        self._seen = store.version
        for aor in changed:
            self._tell(aor, now)

    def deadline(self) -> float | None:
        """When to look at the shared store again: only while a subscription here watches a
        user homed on another pool (whose publications arrive there)."""
        return self._polled_at + self.poll_interval if self._remote else None

    def _recount(self) -> None:
        directory, fqdn = self.directory, self.fqdn
        self._remote = any(
            directory.get(target) != fqdn
            for subscription in self._subscriptions.values()
            for target in subscription.targets
        )

    def handle_timer(self, now: float) -> None:
        """The poll: subscriptions past their expiry are forgotten; changes are NOTIFYed."""
        if now < self._polled_at + self.poll_interval:
            return
        self._polled_at = now
        for key in [k for k, s in self._subscriptions.items() if now >= s.expires_at]:
            del self._subscriptions[key]
        self._recount()
        self.catch_up(now)

    def _tell(self, aor: str, now: float) -> None:
        """NOTIFY ``aor``'s watchers and roaming-self subscriptions here (MS-PRES: the server
        notifies subscribers when a category changes)."""
        for key, subscription in list(self._subscriptions.items()):
            if now >= subscription.expires_at:
                del self._subscriptions[key]
                continue
            if aor not in subscription.targets:
                continue
            if subscription.event == ROAMING_SELF_EVENT:
                self._notify(subscription, ROAMING_SELF_TYPE, self._roaming_self_body(aor), now)
            else:
                body = self._categories_body(aor, subscription.categories)
                self._notify(subscription, CATEGORIES_TYPE, body, now)

    # -- bodies -----------------------------------------------------------------------------

    def _categories_body(self, aor: str, names: Iterable[str]) -> str:
        """``application/msrtc-event-categories+xml``: what a watcher sees of ``aor``."""
        wanted = frozenset(names)
        items = "".join(
            p.xml() for p in self.store.seen_by_watchers(aor) if not wanted or p.name in wanted
        )
        return f'<categories xmlns="{_NS_CATEGORIES}" uri="{_attr(aor)}">{items}</categories>'

    def _roaming_self_body(self, aor: str) -> str:
        """``application/vnd-microsoft-roaming-self+xml`` (MS-PRES, roamingData): the user's
        own publications in every container, the containers, no subscribers."""
        publications = self.store.of(aor)
        items = "".join(p.xml() for p in publications)
        containers = sorted({p.container for p in publications} | {WATCHER_CONTAINER})
        listed = "".join(f'<container id="{c}" version="0"/>' for c in containers)
        return (
            f'<roamingData xmlns="{_NS_ROAMING_SELF}">'
            f'<categories xmlns="{_NS_CATEGORIES}" uri="{_attr(aor)}">{items}</categories>'
            f'<containers xmlns="{_NS_CONTAINERS}">{listed}</containers>'
            f'<subscribers xmlns="{_NS_SUBSCRIBERS}"/>'
            "</roamingData>"
        )


def provisioning_body(aor: str, fqdn: str) -> str:
    """The in-band provisioning document (MS-SIPREGE §2.2.2.4, ``provisionGroupList``): the
    groups a client needs to go on (CHOICE: ``ServerConfiguration`` naming the pool, an
    empty ``meetingPolicy`` and ``ucPolicy``; no Exchange, address book or conferencing
    URLs, which sipemu does not serve)."""
    return (
        f'<provisionGroupList xmlns="{_NS_PROVISIONING}">'
        '<provisionGroup name="ServerConfiguration">'
        f"<ServerConfiguration><focusFactoryUri>{_text(aor)};gruu;opaque=app:conf:"
        f"focusfactory</focusFactoryUri><mrasUri>sip:{_text(fqdn)}@{_text(fqdn)};gruu;"
        "opaque=srvr:MRAS:0</mrasUri></ServerConfiguration>"
        "</provisionGroup>"
        '<provisionGroup name="meetingPolicy"><meetingPolicy/></provisionGroup>'
        '<provisionGroup name="ucPolicy"><ucPolicy/></provisionGroup>'
        "</provisionGroupList>"
    )


# -- helpers --------------------------------------------------------------------------------


def _is_category_publish(request: Request) -> bool:
    """A SERVICE that publishes categories: MS-PRES has the client publish category instances
    with a SERVICE request carrying a ``<publish>`` document of type
    ``application/msrtc-category-publish+xml``; pidgin-sipe 1.25 publishes this way in its
    OCS 2007+ mode (3P, 2026-12-03: before this, its publication got 405)."""
    return PUBLISH_TYPE in (request.headers.get("content-type") or "").lower()


def _event(headers: Headers) -> str:
    """The event package of an ``Event`` header, without parameters, lower case."""
    return (headers.get("event") or "").partition(";")[0].strip().lower()


def _expires(headers: Headers) -> int | None:
    value = (headers.get("expires") or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 10:
        raise SipError("Expires is not a number of seconds")
    return int(value)


def _piggyback(headers: Headers) -> bool:
    """``Supported: ms-piggyback-first-notify`` (MS-SIP §3.4.4.1)."""
    return any("ms-piggyback-first-notify" in v.lower() for v in headers.get_all("supported"))


def _cseq_number(headers: Headers) -> str:
    return (headers.get("cseq") or "1").strip().partition(" ")[0]


def _presence_targets(request: Request, watcher: str) -> tuple[tuple[str, ...], frozenset[str]]:
    """The presentities and category names of a presence SUBSCRIBE: a batched one's
    ``adhocList`` resources and ``categoryList`` (MS-PRES), or the To URI alone."""
    content_type = (request.headers.get("content-type") or "").lower()
    if BATCH_TYPE not in content_type:
        aor = normalize_aor(NameAddr.parse(request.headers.get("to") or "").uri)
        return (aor,), frozenset()
    root = _well_formed(request.body)
    resources: list[str] = []
    for element in root.iterfind(".//{*}resource"):
        uri = element.get("uri")
        if uri:
            try:
                aor = normalize_aor(uri)
            except SipError:
                continue
            if aor not in resources:
                resources.append(aor)
    names = frozenset(e.get("name") or "" for e in root.iterfind(".//{*}category")) - {""}
    if not resources:
        raise SipError("batched SUBSCRIBE without a resource")
    return tuple(resources), names


def _well_formed(body: bytes) -> ET.Element:
    """The parsed XML body, or SipError 400.  A DOCTYPE is refused before parsing (no entity
    expansion from the network)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise SipError("XML body with a DOCTYPE")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise SipError(f"XML body not well-formed: {exc}") from None


def _int(value: str, name: str) -> int:
    if not value.isdigit() or len(value) > 10:
        raise SipError(f"publication {name} is not a number")
    return int(value)


def _unavailable(request: Request, tag: str, what: str) -> Response:
    """Not the user's home pool, or its back end is down: 503 with MS-SIPREGE's user services
    ErrorId 4165 (as for the contact list, docs/backends.md)."""
    response = make_response(request, 503, to_tag=tag)
    response.headers.add(
        "ms-diagnostics", str(Diagnostics(4165, f"User services unavailable: {what}"))
    )
    return response


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")
