"""Stream framing (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626 §3.5.1), sans-IO.

One :class:`StreamFramer` per TCP/TLS connection.  Its public API:

* :meth:`StreamFramer.feed` takes the bytes as they arrive and returns what they completed, in
  order: whole messages (``bytes``, to hand to :func:`~emulator.sip.message.parse_message` with
  ``stream=True``), :class:`KeepAlivePing` (answer with :data:`PONG`) and
  :class:`KeepAlivePong` markers;
* when the stream cannot be framed (status 400: no Content-Length; 413: a message larger than
  ``max_size``) the connection is out of sync: :attr:`StreamFramer.error` holds the
  :class:`~emulator.sip.errors.SipError`, and :meth:`StreamFramer.unframed` gives the bytes that
  could not be framed, so that the core can still answer 400/413 if it can read a Via (RFC 3261
  §8.2) before the driver closes.  What was framed before the bad bytes is returned first, in
  the same call (the error is raised by the next call; by this one when it framed nothing), so
  one read holding a valid message and then garbage loses nothing that could be framed;
* :attr:`StreamFramer.buffered` is the number of bytes held for an incomplete message.

The live drivers' stream connections use it (emulator/live/stream.py); the simulator delivers
whole messages and needs no framing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulator.sip.errors import SipError, SipSyntaxError
from emulator.sip.message import MAX_DATAGRAM

__all__ = ["PING", "PONG", "KeepAlivePing", "KeepAlivePong", "StreamFramer"]

PING = b"\r\n\r\n"
"""A CRLF keep-alive ping (RFC 5626 §3.5.1), sent by the client."""
PONG = b"\r\n"
"""The answer to :data:`PING`."""


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """The peer sent a CRLFCRLF ping: answer with :data:`PONG` (RFC 5626 §3.5.1)."""


@dataclass(frozen=True, slots=True)
class KeepAlivePong:
    """The peer answered our ping with a single CRLF."""


_CONTENT_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([0-9]+)", re.IGNORECASE)


class StreamFramer:
    """Splits one connection's byte stream into SIP messages and keep-alives.

    ``max_size``: the largest message accepted (413 beyond).  ``expect_pongs``: this side sends
    pings (a client), so a lone CRLF is a pong at once; a server (the default) holds a trailing
    CRLF until the next bytes tell whether it is half of a ping.

    When :attr:`error` is set after :meth:`feed` the stream is out of sync: the driver first
    hands the items :meth:`feed` returned to its core, then :meth:`unframed` (the core answers
    400/413 if it can), then closes the connection.
    """

    def __init__(self, max_size: int = MAX_DATAGRAM, *, expect_pongs: bool = False) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        # Pings and pongs travel in opposite directions (RFC 5626 §3.5.1), and a lone CRLF may be
        # the first half of a CRLFCRLF ping split across reads.  The side that receives pings (a
        # server, the default) holds a trailing CRLF until the next bytes tell; the side that
        # sends pings (``expect_pongs=True``) reports a CRLF as a pong at once.
        self._expect_pongs = expect_pongs
        self.error: SipError | None = None
        """Why the stream could not be framed (400, 413), or None while it can."""

    def feed(self, data: bytes) -> list[bytes | KeepAlivePing | KeepAlivePong]:
        """Take ``data`` as read; return the messages and keep-alives it completed, in order.

        When the stream cannot be framed, :attr:`error` is set (the bad bytes stay in
        :meth:`unframed`) and the :class:`SipError` (400, 413) is raised, unless items were
        framed before the bad bytes in this call: they are returned, and the error is raised
        by the next call (nothing that could be framed is lost to the bytes after it).
        """
        if self.error is not None:
            raise self.error
        self._buffer += data
        out: list[bytes | KeepAlivePing | KeepAlivePong] = []
        try:
            self._frame(out)
        except SipError as exc:
            self.error = exc
            if not out:
                raise
        return out

    def _frame(self, out: list[bytes | KeepAlivePing | KeepAlivePong]) -> None:
        buf = self._buffer
        while buf:
            if buf.startswith(b"\r\n"):
                # Leading CRLFs between messages are keep-alives, never part of a message.
                if buf.startswith(PING):
                    del buf[:4]
                    out.append(KeepAlivePing())
                elif (len(buf) == 2 and not self._expect_pongs) or buf == b"\r\n\r":
                    break  # maybe a ping split across reads: wait for more
                else:
                    del buf[:2]
                    out.append(KeepAlivePong())
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self._max_size:
                    raise SipError("message head too large", 413, "Request Entity Too Large")
                break
            match = _CONTENT_LENGTH.search(buf, 0, end + 2)
            if match is None:
                raise SipSyntaxError("Content-Length is mandatory on stream transports (§18.3)")
            digits = match.group(1).lstrip(b"0")
            # int() refuses over 4300 digits; any length past 10 digits is oversize anyway.
            length = int(digits or b"0") if len(digits) <= 10 else self._max_size + 1
            total = end + 4 + length
            if total > self._max_size:
                raise SipError(
                    f"message of {total} bytes exceeds {self._max_size}",
                    413,
                    "Request Entity Too Large",
                )
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]

    def unframed(self) -> bytes:
        """The bytes received but not framed: once :attr:`error` is set, the offending message
        (with whatever followed it in the same reads)."""
        return bytes(self._buffer)

    @property
    def buffered(self) -> int:
        """How many bytes are held for a message not yet complete."""
        return len(self._buffer)
