"""Where the agent tries to register: targets, the plan of a sign-in round, and what a 301 or
a ``P-Preferred-Registrar`` adds to it.

A round's plan is a list of :class:`Target` and :data:`DISCOVER` markers, tried in order
(clients/agent.py's docstring gives the lync2010 plan).  Pure functions of their inputs.
"""

from __future__ import annotations

import sys

from emulator.net import TransportName
from emulator.sip.errors import SipError
from emulator.sip.headers import NameAddr, parse_contacts
from emulator.sip.message import Response
from emulator.sip.uri import SipUri
from emulator.values import static_frozen

__all__ = [
    "DISCOVER",
    "Discover",
    "PlanItem",
    "Target",
    "endpoint",
    "host_of",
    "is_ip",
    "preferred_target",
    "redirect_targets",
]


@static_frozen
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


class Discover:
    """Plan marker: run discovery here."""


DISCOVER = Discover()
PlanItem = Target | Discover


def remembered(
    primary: Target | None, backup: Target | None, *, lost_primary: bool
) -> list[Target]:
    """The registrars learned from a 301 that a client tries first after losing the one it
    had (``lost_primary``: that one was the primary)."""
    if lost_primary:
        return [] if backup is None else [backup.with_source("backup")]
    if primary is None:
        return []
    # Lost the backup: the primary first, then the backup again (it keeps both in memory
    # and "tries primary; if unavailable tries backup", docs/protocol.md).
    out = [primary.with_source("primary")]
    if backup is not None:
        out.append(backup.with_source("backup"))
    return out


def redirect_targets(
    response: Response,
    transport: TransportName,
    q_descending: bool,
    contacts: list[NameAddr] | None = None,
) -> list[Target]:
    """A 3xx's Contacts as targets, in the profile's order (decreasing q, or the first)."""
    if contacts is None:
        try:
            contacts = parse_contacts(response.headers)
        except SipError:
            return []
    ordered = sorted(contacts, key=lambda c: -c.q) if q_descending else contacts[:1]
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
        host = sys.intern(uri.host)  # kept by every client redirected there (memory, issue 20)
        targets.append(
            Target(
                host,
                uri.port or default,
                sys.intern(wanted),  # type: ignore[arg-type]
                host if is_ip(host) else None,
                "redirect",
            )
        )
    return targets


def preferred_target(
    preferred: str, transport: TransportName, primary: Target | None
) -> Target | None:
    """The registrar a ``P-Preferred-Registrar`` header names (None: unusable); the primary's
    address when it is the primary."""
    try:
        uri = SipUri.parse(NameAddr.parse(preferred).uri)
    except SipError:
        return None
    wanted = uri.transport or transport
    if wanted not in ("udp", "tcp", "tls"):
        return None
    host = sys.intern(uri.host)  # as in redirect_targets (memory, issue 20)
    home = Target(
        host,
        uri.port or (5061 if wanted == "tls" else 5060),
        sys.intern(wanted),  # type: ignore[arg-type]
        host if is_ip(host) else None,
        "preferred",
    )
    if primary is not None and primary.host == home.host:
        home = home.with_address(primary.address)
    return home


def endpoint(target: Target) -> tuple[str, int, str]:
    """What makes two targets the same registrar (the address may or may not be resolved)."""
    return (target.host, target.port, target.transport)


def host_of(uri: str) -> str:
    try:
        return SipUri.parse(uri).host
    except SipError:
        return uri


def is_ip(host: str) -> bool:
    parts = host.split(".")
    return (len(parts) == 4 and all(p.isdigit() for p in parts)) or ":" in host
