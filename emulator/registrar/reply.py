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

from collections.abc import Sequence

from emulator.registrar.bindings import Binding
from emulator.sip.message import Headers

__all__ = ["ALLOW", "SERVER", "UDP_MAX_PAYLOAD", "ok_bytes"]

SERVER = "sipemu/0.1 (Lync registrar emulator)"
ALLOW = "REGISTER, OPTIONS, NOTIFY, SUBSCRIBE, SERVICE, BENOTIFY"

UDP_MAX_PAYLOAD = 65_507
"""The largest SIP message one UDP datagram carries over IPv4: 65,535 bytes with the IP and
UDP headers (RFC 3261 §18.1.1), less 20 and 8 (IPv6 allows 20 more; the smaller is taken)."""

# make_response's copied headers after the Vias, as (spelling on the wire, look-up key).
_COPIED = (("From", "from"), ("To", "to"), ("Call-ID", "call-id"), ("CSeq", "cseq"))
_SERVER_LINE = f"Server: {SERVER}"


def ok_bytes(
    headers: Headers,
    to_tag: str,
    current: Sequence[Binding],
    now: float,
    *,
    keep_alive_line: str,
    presence: str | None,
    call_id: str,
) -> bytes:
    """The 200 to a REGISTER with ``headers``, serialized.

    ``current``: the AOR's bindings after the request (RFC 3261 §10.3 step 8: all of them, with
    their remaining expiry at ``now``); ``presence``: the ``presence-state`` value (None: a
    query or only removals, which get no ``ms-keep-alive``, ``Expires`` or presence); the
    ``Expires`` is that of the binding made by ``call_id``.
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
        lines.append(f"Contact: {binding.contact};expires={remaining}")
    if presence is not None:
        lines.append(keep_alive_line)
        for binding in current:
            if binding.call_id == call_id:
                lines.append(f"Expires: {max(0, int(binding.expires_at - now + 0.5))}")
                break
        lines.append(f"presence-state: {presence}")
    lines.append(_SERVER_LINE)
    lines.append("Content-Length: 0\r\n\r\n")
    return "\r\n".join(lines).encode("utf-8")
