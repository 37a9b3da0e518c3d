"""Roaming contact lists: the SUBSCRIBE that fetches one, the SERVICE that adds a contact, and
the NOTIFYs that push a changed list to the registered endpoints (docs/backends.md).

The lists live in the deployment's :class:`~emulator.admin.ContactStore` (the CMS replicates
them); only a user's home pool, with its back end available, serves or changes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from emulator.admin import ContactStore, Directory
from emulator.backend import BackEnd
from emulator.registrar.bindings import BindingStore
from emulator.registrar.outgoing import Outgoing
from emulator.registrar.register import RegisterRules
from emulator.sip.errors import SipError
from emulator.sip.headers import Diagnostics, NameAddr, make_response
from emulator.sip.message import Request, Response

__all__ = ["CONTACTS_EVENT", "CONTACTS_TYPE", "RoamingContacts"]

CONTACTS_EVENT = "vnd-microsoft-roaming-contacts"
CONTACTS_TYPE = "application/vnd-microsoft-roaming-contacts+xml"

_SET_CONTACT = re.compile(rb'<setContact[^>]*\buri="([^"]+)"')


class RoamingContacts:
    """The contact-list requests of one pool."""

    __slots__ = (
        "_bindings",
        "_delta",
        "_outgoing",
        "_rules",
        "backend",
        "contacts",
        "directory",
        "fqdn",
    )

    def __init__(
        self,
        fqdn: str,
        *,
        directory: Directory,
        backend: BackEnd,
        contacts: ContactStore,
        bindings: BindingStore,
        rules: RegisterRules,
        outgoing: Outgoing,
    ) -> None:
        self.fqdn = fqdn
        self.directory = directory
        self.backend = backend
        self.contacts = contacts
        self._bindings = bindings
        self._rules = rules
        self._outgoing = outgoing
        self._delta: dict[str, int] = {}
        """AOR -> the delta number of its list (MS-SIP §3.7: one version number per user's
        list, raised by every change; CHOICE: kept per pool from 1, not in the back end)."""

    def delta(self, aor: str) -> int:
        """The delta number of ``aor``'s list (``deltaNum``, MS-SIP §2.2.4.1: non-zero)."""
        return self._delta.get(aor, 1)

    def changed(self, aors: Iterable[str], now: float) -> None:
        """The contact lists of ``aors`` changed (import, a contact added): their endpoints
        registered here, on their home pool, are sent the new list in a NOTIFY
        ``Event: vnd-microsoft-roaming-contacts`` (an emulator choice: a registered endpoint
        counts as subscribed; docs/backends.md)."""
        changed = set(aors)
        for aor in changed:
            self._delta[aor] = self.delta(aor) + 1
        for binding in [b for b in self._bindings if b.aor in changed and b.home is None]:
            if self.directory.get(binding.aor) != self.fqdn or not self.backend.available:
                continue
            target = NameAddr.parse(binding.contact).uri
            request = self._outgoing.new_request("NOTIFY", target, binding.aor, binding.flow)
            request.headers.add("Event", CONTACTS_EVENT)
            request.headers.add("Subscription-State", "active")
            request.headers.add("Content-Type", CONTACTS_TYPE)
            request.body = contact_list_body(
                self.contacts.of(self.fqdn, binding.aor) or [], self.delta(binding.aor)
            )
            self._outgoing.start(request, binding.flow, "notify", now)

    def subscribe(self, request: Request, now: float) -> Response:
        """SUBSCRIBE ``Event: vnd-microsoft-roaming-contacts``: the user's contact list in the
        200, Lync's piggy-backed first NOTIFY (MS-SIP §3.7.4.1, §3.7.5.2: ``Event``,
        ``ms-piggyback-cseq`` when the SUBSCRIBE says ``Supported: ms-piggyback-first-notify``,
        the subscription's ``Expires``); refused while user services are down or when this
        pool is not the user's home (a backup in resiliency mode has none)."""
        rules = self._rules
        aor = rules.aor(request)
        home = self.directory.get(aor)
        response = make_response(request, 200, to_tag=rules.tag())
        if home != self.fqdn or not self.backend.available:
            response = make_response(request, 503, to_tag=rules.tag())
            response.headers.add(
                "ms-diagnostics",
                str(Diagnostics(4165, "User services unavailable: no contact list")),
            )
            return response
        contacts = self.contacts.of(self.fqdn, aor) or []
        headers = request.headers
        asked = (headers.get("expires") or "").strip()
        # CHOICE: the asked expiry (a Lync client asks for none; then an hour, as RFC 6665
        # §4.2.1.1 lets the notifier choose), never 0, which would end the subscription.
        expires = min(int(asked), 86_400) if asked.isdigit() and len(asked) < 10 else 3600
        if expires == 0:
            expires = 3600
        response.headers.add("Event", CONTACTS_EVENT)
        response.headers.add("Expires", str(expires))
        if any("ms-piggyback-first-notify" in v.lower() for v in headers.get_all("supported")):
            cseq = (headers.get("cseq") or "1").strip().partition(" ")[0]
            response.headers.add("ms-piggyback-cseq", cseq)
            response.headers.add("Subscription-State", f"active;expires={expires}")
        response.headers.add("Content-Type", CONTACTS_TYPE)
        response.body = contact_list_body(contacts, self.delta(aor))
        return response

    def set_contact(self, request: Request, now: float) -> Response:
        """SERVICE with a ``<setContact uri="..."/>`` body: add a contact (a persistent
        change, refused in limited or resiliency mode: R3, SFB-UX)."""
        rules = self._rules
        aor = rules.aor(request)
        match = _SET_CONTACT.search(request.body)
        if match is None:
            raise SipError("setContact without a uri attribute")
        if self.directory.get(aor) != self.fqdn or not self.backend.available:
            response = make_response(request, 503, to_tag=rules.tag())
            response.headers.add(
                "ms-diagnostics",
                str(Diagnostics(4165, "User services unavailable: no persistent changes")),
            )
            return response
        self.contacts.add(self.fqdn, aor, match.group(1).decode("utf-8", "replace"))
        self.changed([aor], now)  # every endpoint of the user gets the new list
        return make_response(request, 200, to_tag=rules.tag())


def contact_list_body(contacts: Iterable[str], delta: int = 1) -> bytes:
    """A full contact list (MS-SIP §2.2.4.1, ``contactList``): ``deltaNum`` (required,
    non-zero), one group (contacts are in at least one group, MS-SIP §3.7; CHOICE: id 1,
    named "~", the name of Lync's default group as clients show it) and each contact in it,
    subscribed to.  A contact's ``uri`` is written without its ``sip:`` scheme, as in
    MS-SIP's examples of the list (``uri="bob@contoso.com"``): clients put the scheme back
    (pidgin-sipe 1.25 does, 3P: given ``sip:x``, it showed a buddy ``sip:sip:x``)."""
    items = "".join(
        f'<contact uri="{_attr(_bare(c))}" name="" groups="1" subscribed="true"/>' for c in contacts
    )
    return f'<contactList deltaNum="{delta}"><group id="1" name="~"/>{items}</contactList>'.encode()


def _bare(uri: str) -> str:
    return uri[4:] if uri[:4].lower() == "sip:" else uri


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
