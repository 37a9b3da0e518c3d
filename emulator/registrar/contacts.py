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

    __slots__ = ("_bindings", "_outgoing", "_rules", "backend", "contacts", "directory", "fqdn")

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

    def changed(self, aors: Iterable[str], now: float) -> None:
        """The contact lists of ``aors`` changed (import, a contact added): their endpoints
        registered here, on their home pool, are sent the new list in a NOTIFY
        ``Event: vnd-microsoft-roaming-contacts`` (an emulator choice: a registered endpoint
        counts as subscribed; docs/backends.md)."""
        changed = set(aors)
        for binding in [b for b in self._bindings if b.aor in changed and b.home is None]:
            if self.directory.get(binding.aor) != self.fqdn or not self.backend.available:
                continue
            target = NameAddr.parse(binding.contact).uri
            request = self._outgoing.new_request("NOTIFY", target, binding.aor, binding.flow)
            request.headers.add("Event", CONTACTS_EVENT)
            request.headers.add("Subscription-State", "active")
            request.headers.add("Content-Type", CONTACTS_TYPE)
            request.body = contact_list_body(self.contacts.of(self.fqdn, binding.aor) or [])
            self._outgoing.start(request, binding.flow, "notify", now)

    def subscribe(self, request: Request, now: float) -> Response:
        """SUBSCRIBE ``Event: vnd-microsoft-roaming-contacts``: the user's contact list in the
        200 (as Lync's piggy-backed first NOTIFY); refused while user services are down or
        when this pool is not the user's home (a backup in resiliency mode has none)."""
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
        asked = (request.headers.get("expires") or "").strip()
        response.headers.add("Expires", asked if asked.isdigit() else "0")
        response.headers.add("Content-Type", CONTACTS_TYPE)
        response.body = contact_list_body(contacts)
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


def contact_list_body(contacts: Iterable[str]) -> bytes:
    items = "".join(f'<contact uri="{c}"/>' for c in contacts)
    return f"<contactList>{items}</contactList>".encode()
