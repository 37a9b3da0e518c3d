"""Errors of the SIP layer, split as in h11: the peer's fault vs. the local caller's fault."""

from __future__ import annotations

from typing import Any

__all__ = ["LocalProtocolError", "SipError", "SipSyntaxError"]


class SipError(Exception):
    """A message from the peer cannot be handled; ``status`` is the SIP response to answer with.

    (h11's RemoteProtocolError.)  Any other exception escaping a core is a bug.
    """

    def __init__(self, message: str, status: int = 400, reason: str = "Bad Request") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        # The headers the parser had read before failing (an ``emulator.sip.message.Headers``),
        # so a core can still answer a broken request that carried a Via.
        self.headers: Any = None
        # True when the bytes were a response (their start line begins "SIP/"): a response
        # is never answered, however broken (RFC 3261 §17.1.3, RFC 4475 §3.1.2.19).
        self.response = False


class SipSyntaxError(SipError):
    """The bytes are not a well-formed SIP message or header value (answered with 400)."""


class LocalProtocolError(Exception):
    """The caller asked a core to do something the protocol forbids (a bug in the caller)."""
