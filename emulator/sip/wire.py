"""``Wire``: the bytes of a SIP message serialized here, with what parsing them gives.

In the simulator the bytes a core sends are the very object the receiving core gets, so the
serializer (:meth:`~emulator.sip.message.Request.to_bytes`) can hand the receiver's
:func:`~emulator.sip.message.parse_message` the header fields it would otherwise split out of
the text again (parse_message was about a sixth of a compiled fuzz example; skipping the split
saves about 5% of one, 8% compiled: docs/benchmarks.md).  On real sockets
the receiver gets plain ``bytes`` and parses them in full; a ``Wire`` is bytes for everyone
else (equal, hashed and written like them).

The serializer attaches ``parsed`` only when it can prove that the parser would read exactly
those fields back (see ``_serialize``); ``parse_message`` still checks the start line,
Content-Length and the mandatory headers.  With ``emulator.sip.message.VERIFY_WIRE`` set (the
test suite sets it, tests/conftest.py) every ``Wire`` is parsed in full as well and any
difference raises ``WireMismatch``.

Not compiled by the optional mypyc build (setup.py): a compiled class cannot subclass bytes.
"""

from __future__ import annotations

__all__ = ["Wire", "WireMismatch"]


class Wire(bytes):
    """Bytes with ``parsed = (start line, header fields, body)`` as parse_message reads them
    (fields as ``(canonical name, key, value)``, Content-Length included)."""

    parsed: tuple[str, list[tuple[str, str, str]], bytes]


class WireMismatch(AssertionError):
    """A ``Wire``'s fields differ from what parsing its bytes gives (an emulator bug)."""
