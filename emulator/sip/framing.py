"""Stream framing (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626 §3.5.1), sans-IO.

Feed bytes as they arrive on a TCP/TLS connection; get whole messages (as bytes, to hand to
:func:`~emulator.sip.message.parse_message` with ``stream=True``) and keep-alive markers back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulator.sip.errors import SipError, SipSyntaxError
from emulator.sip.message import MAX_DATAGRAM

__all__ = ["KeepAlivePing", "KeepAlivePong", "StreamFramer"]

PING = b"\r\n\r\n"
PONG = b"\r\n"


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """The peer sent a CRLFCRLF ping: answer with :data:`PONG` (RFC 5626 §3.5.1)."""


@dataclass(frozen=True, slots=True)
class KeepAlivePong:
    """The peer answered our ping with a single CRLF."""


_CONTENT_LENGTH = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([0-9]+)", re.IGNORECASE)


class StreamFramer:
    """Splits a byte stream into SIP messages.

    After a :class:`SipError` the stream is out of sync: the driver answers 400 if it can and
    closes the connection.
    """

    def __init__(self, max_size: int = MAX_DATAGRAM, *, expect_pongs: bool = False) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        # Pings and pongs travel in opposite directions (RFC 5626 §3.5.1), and a lone CRLF may be
        # the first half of a CRLFCRLF ping split across reads.  The side that receives pings (a
        # server, the default) holds a trailing CRLF until the next bytes tell; the side that
        # sends pings (``expect_pongs=True``) reports a CRLF as a pong at once.
        self._expect_pongs = expect_pongs

    def feed(self, data: bytes) -> list[bytes | KeepAlivePing | KeepAlivePong]:
        self._buffer += data
        out: list[bytes | KeepAlivePing | KeepAlivePong] = []
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
        return out

    @property
    def buffered(self) -> int:
        return len(self._buffer)
