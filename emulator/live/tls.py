"""TLS over a plain TCP transport: ``ssl.SSLObject`` with two memory BIOs (the TLS layer of
the live drivers' stream connections, emulator/live/stream.py).

Certificates are elsewhere (emulator/live/certs.py).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from typing import Any, cast

__all__ = ["TLS_READ_CHUNK", "TlsLayer"]

TLS_READ_CHUNK = 16 * 1024
"""Plaintext read from the TLS object per call: one TLS record at most (RFC 8446 §5.1)."""


class TlsLayer(asyncio.Protocol, asyncio.Transport):
    """TLS over a plain TCP transport, with ``ssl.SSLObject`` and two memory BIOs.

    It stands between the socket's transport and ``app`` (the connection's protocol,
    :class:`~emulator.live.stream.StreamConnection`), and is the app's transport once the
    handshake is done (only then is ``connection_made`` called on the app, as asyncio's TLS
    does).  Why not ``create_connection(ssl=...)``: asyncio's
    ``SSLProtocol`` (and uvloop's) keeps a 256 KiB read buffer per connection for its whole
    life, which is most of the memory of an idle TLS client or of a pool holding thousands of
    TLS connections (docs/benchmarks.md, many agents).  Here nothing outlives a read but the
    ``SSLObject`` itself (OpenSSL releases its own record buffers when idle).

    The handshake's outcome is :attr:`handshake`: a future set to None, or to the error
    (``ssl.SSLError``, ``ConnectionResetError`` when the peer closes first, ``TimeoutError``
    when a server side's ``handshake_timeout`` passes).  ``debug`` receives a line per TLS
    error after the handshake.
    """

    __slots__ = (
        "_closing",
        "_debug",
        "_handshake_timeout",
        "_handshake_timer",
        "_incoming",
        "_open",
        "_outgoing",
        "_server_side",
        "_tls",
        "app",
        "handshake",
        "raw",
    )

    def __init__(
        self,
        app: asyncio.Protocol,
        context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        handshake_timeout: float,
        debug: Callable[[str], None],
    ) -> None:
        asyncio.Transport.__init__(self)
        self.app = app
        self.raw: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._open = False  # handshake done, the stream is connected
        self._closing = False
        self._server_side = server_side
        self._handshake_timeout = handshake_timeout
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._debug = debug

    # -- asyncio.Protocol, towards the socket --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = cast(asyncio.Transport, transport)
        if self._server_side:
            # A client that connects and never finishes its handshake is dropped (the
            # connecting side has its own timeout around the whole connect).
            self._handshake_timer = asyncio.get_running_loop().call_later(
                self._handshake_timeout, self._handshake_timed_out
            )
        self._step_handshake()

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if not self._open:
            self._fail(TimeoutError("TLS handshake timed out"))
            self.abort()

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        if not self._open:
            self._step_handshake()
            if not self._open:
                return
        self._read_plaintext()

    def eof_received(self) -> bool | None:
        return None  # the peer closed TCP (with or without close_notify): close ours

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self._fail(exc or ConnectionResetError("connection closed during the TLS handshake"))
            return
        if self._open:
            self._open = False
            self.app.connection_lost(exc)

    # -- TLS -----------------------------------------------------------------------------------

    def _step_handshake(self) -> None:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            self._flush()  # the alert, if any
            self._fail(exc)
            if self.raw is not None:
                self.raw.close()
            return
        self._flush()
        self._open = True
        self._cancel_handshake_timer()
        if not self.handshake.done():
            self.handshake.set_result(None)
        self.app.connection_made(self)

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _fail(self, exc: BaseException) -> None:
        self._cancel_handshake_timer()
        if not self.handshake.done():
            self.handshake.set_exception(exc)
            self.handshake.exception()  # retrieved: an accepted connection has nobody waiting

    def _read_plaintext(self) -> None:
        read = self._tls.read
        while self._open:
            try:
                data = read(TLS_READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify
                self._flush()
                self.close()
                return
            except ssl.SSLError as exc:
                self._debug(f"TLS error: {exc}")
                self.abort()
                return
            if not data:
                break
            self.app.data_received(data)
        self._flush()  # what reading produced (a KeyUpdate answer, say)

    def _flush(self) -> None:
        if self._outgoing.pending and self.raw is not None and not self.raw.is_closing():
            self.raw.write(self._outgoing.read())

    # -- the stream's transport ----------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._open or self._closing:
            return
        self._tls.write(data)
        self._flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return self._closing or self.raw is None or self.raw.is_closing()

    def pause_reading(self) -> None:
        if self.raw is not None:
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.raw is not None:
            self.raw.resume_reading()

    def close(self) -> None:
        """close_notify, then close the socket after what is buffered is written."""
        if self._closing:
            return
        self._closing = True
        if self._open:
            try:
                self._tls.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the peer's close_notify is not awaited
            self._flush()
        if self.raw is not None:
            self.raw.close()

    def abort(self) -> None:
        self._closing = True
        if self.raw is not None:
            self.raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls
        if name == "peercert":
            return self._tls.getpeercert()
        if name == "cipher":
            return self._tls.cipher()
        return self.raw.get_extra_info(name, default) if self.raw is not None else default
