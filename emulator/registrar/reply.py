"""The 200 to an accepted REGISTER, written straight as wire bytes (the registrar's fast path).

Every accepted REGISTER ends here, so the 200 is written as bytes at once instead of through
``make_response``, ``Headers`` and ``Response.to_bytes``, which took over a quarter of the
server's time under load (speed; docs/benchmarks.md).  The bytes are exactly what that general
path gives: ``make_response``'s copied headers (RFC 3261 §8.2.6.2), then the Contacts, then
(for a registration) ``ms-keep-alive``, ``Expires`` and ``presence-state``, then ``Server``,
then ``Content-Length``, as ``Response.to_bytes`` writes them.  tests/registrar/test_reply.py
pins that with a property test against the general serializer.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence

from emulator.registrar.bindings import Binding
from emulator.sip.message import Headers

__all__ = [
    "ALLOW",
    "ALLOW_EVENTS",
    "ALLOW_PLAIN",
    "SERVER",
    "UDP_MAX_PAYLOAD",
    "gruu_uri",
    "ok_bytes",
]

SERVER = "sipemu/0.1 (Lync registrar emulator)"
"""The ``User-Agent`` of the pool's own requests; a pool's responses carry its product's
``Server`` (:data:`emulator.topology.model.SERVER_VERSIONS`)."""
ALLOW = "REGISTER, OPTIONS, NOTIFY, SUBSCRIBE, SERVICE, BENOTIFY, PUBLISH"
"""The methods a front end serves (``Allow`` of OPTIONS and 405s); without its sign-in services
(``registrar.services = false``) :data:`ALLOW_PLAIN`."""
ALLOW_PLAIN = "REGISTER, OPTIONS, NOTIFY, SUBSCRIBE, SERVICE, BENOTIFY"

ALLOW_EVENTS = (
    "presence,vnd-microsoft-roaming-contacts,vnd-microsoft-roaming-self,"
    "vnd-microsoft-provisioning-v2"
)
"""The event packages a front end serves (RFC 3265 §3.3.7 ``Allow-Events``), in the 200 to a
registration: MS-SIPREGE §4.1.1's example lists these and three that only pre-2007 clients
use (``vnd-microsoft-provisioning``, ``vnd-microsoft-roaming-ACL``, ``presence.wpending``),
which sipemu does not serve, so does not list (CHOICE).  Comma-separated without spaces, as in
the example (pidgin-sipe splits the value on "," and compares the parts as they are)."""

_LYNC_LINES = (
    f"Allow-Events: {ALLOW_EVENTS}",
    # MS-SIPREGE §4.1.1's 200: one option tag per Supported header (pidgin-sipe compares each
    # whole value with "msrtc-event-categories", its sign of an OCS 2007+ server).
    "Supported: adhoclist",
    "Supported: msrtc-event-categories",
)

UDP_MAX_PAYLOAD = 65_507
"""The largest SIP message one UDP datagram carries over IPv4: 65,535 bytes with the IP and
UDP headers (RFC 3261 §18.1.1), less 20 and 8 (IPv6 allows 20 more; the smaller is taken)."""

# make_response's copied headers after the Vias, as (spelling on the wire, look-up key).
_COPIED = (("From", "from"), ("To", "to"), ("Call-ID", "call-id"), ("CSeq", "cseq"))
_SERVER_LINE = f"Server: {SERVER}"


@functools.lru_cache(maxsize=65_536)  # a digest per 200 otherwise (speed; bounded)
def gruu_uri(aor: str, instance: str) -> str:
    """The GRUU of an endpoint: ``sip:user@domain;opaque=user:epid:TOKEN;gruu``, the shape of
    MS-SIPREGE §4.1.1's example (MS-SIPREGE §3.1.2.5.1: a new endpoint gets a GRUU, as in
    MS-SIPRE §2.2.3).  TOKEN is 16 bytes of SHA-1 of the AOR and ``+sip.instance``, base64url
    (a CHOICE: stable across pools and restarts, so a refresh keeps its GRUU)."""
    digest = hashlib.sha1(f"{aor}\x00{instance}".encode(), usedforsecurity=False).digest()
    token = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")
    user = aor.partition(":")[2] or aor
    return f"sip:{user};opaque=user:epid:{token};gruu"


def ok_bytes(
    headers: Headers,
    to_tag: str,
    current: Sequence[Binding],
    now: float,
    *,
    keep_alive_line: str,
    presence: str | None,
    call_id: str,
    server_line: str = _SERVER_LINE,
    lync: bool = False,
    gruu: bool = False,
) -> bytes:
    """The 200 to a REGISTER with ``headers``, serialized.

    ``current``: the AOR's bindings after the request (RFC 3261 §10.3 step 8: all of them, with
    their remaining expiry at ``now``); ``presence``: the ``presence-state`` value (None: a
    query or only removals, which get no ``ms-keep-alive``, ``Expires`` or presence); the
    ``Expires`` is that of the binding made by ``call_id``; ``server_line``: the whole
    ``Server`` line; ``lync``: a registration's 200 also carries ``Allow-Events`` and the
    ``Supported`` option tags of a front end (MS-SIPREGE §4.1.1); ``gruu``: the REGISTER said
    ``Supported: gruu-10``, so each Contact with ``+sip.instance`` gets its ``gruu`` parameter
    (draft-ietf-sip-gruu-10, as MS-SIPREGE §2.2.1.5 cites it).
    """
    lines = ["SIP/2.0 200 OK"]
    for via in headers.get_all("via"):
        lines.append(f"Via: {via}")
    for name, key in _COPIED:
        value = headers.get(key)
        if value is None:
            continue
        if key == "to" and ";tag=" not in value.lower():
            value = f"{value};tag={to_tag}"
        lines.append(f"{name}: {value}")
    for binding in current:  # §10.3 step 8: all current bindings, with their expiry
        remaining = max(0, int(binding.expires_at - now + 0.5))
        if gruu and "+sip.instance" in binding.contact:
            uri = gruu_uri(binding.aor, binding.instance)
            lines.append(f'Contact: {binding.contact};expires={remaining};gruu="{uri}"')
        else:
            lines.append(f"Contact: {binding.contact};expires={remaining}")
    if presence is not None:
        lines.append(keep_alive_line)
        for binding in current:
            if binding.call_id == call_id:
                lines.append(f"Expires: {max(0, int(binding.expires_at - now + 0.5))}")
                break
        lines.append(f"presence-state: {presence}")
        if lync:
            lines.extend(_LYNC_LINES)
    lines.append(server_line)
    lines.append("Content-Length: 0\r\n\r\n")
    return "\r\n".join(lines).encode("utf-8")
