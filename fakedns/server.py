"""The asyncio driver of the fake DNS: UDP and TCP on one address and port.

A thin driver (house style, principle 2): every byte it receives goes to
:meth:`fakedns.authority.Authority.answer` with ``loop.time()`` as ``now``, and whatever comes
back is sent.  It makes no protocol decision apart from framing: TCP messages carry a 2-byte
length prefix (RFC 1035 §4.2.2), and idle TCP connections are closed (RFC 7766 §6.2.3).

Bad input never costs more than a log line: the core answers FORMERR or drops it (and never
raises), and the driver writes one line per bad query through a token bucket (at most
``bad_input_rate`` lines a second, then one "... K more bad queries suppressed" line, the
bucket of emulator/live/ratelimit.py), so a flood of garbage
cannot flood the log.  A TCP connection carrying a bad query stays open.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

from emulator.live.ratelimit import RateLimitedLog
from fakedns.authority import Authority, DnsQueried, Transport

if TYPE_CHECKING:
    from emulator.wire.live import WireRecorder

__all__ = ["BAD_INPUT_RATE", "DnsServer"]

Log = Callable[[str], None]

_TCP_BIND_ATTEMPTS = 8
"""With port 0, UDP picks the port; TCP may find it taken and we try another UDP port."""
_STOP_TIMEOUT = 5.0
"""Seconds ``stop()`` waits for the TCP listener to finish closing."""
BAD_INPUT_RATE = 10.0
"""Default lines a second written about bad queries (the bucket holds as many)."""


class DnsServer:
    """Serves ``authority`` on ``address``:``port`` over UDP and TCP (port 0: ephemeral).

    ``log`` gets one line per query (:meth:`DnsQueried.line`) and ``on_event`` the
    :class:`~fakedns.authority.DnsQueried` events themselves (for metrics and the control
    API); without either, events are still drained so they do not pile up.
    ``tcp_idle_timeout`` closes TCP connections that sent nothing for that many seconds;
    RFC 7766 §6.2.3 asks for seconds, not minutes (emulator knob; BIND uses 30 s).
    ``bad_input_log`` gets one line per malformed query (default: ``log``), at most
    ``bad_input_rate`` a second; pass it without ``log`` to hear of bad input only.
    """

    def __init__(
        self,
        authority: Authority,
        address: str,
        port: int,
        *,
        log: Log | None = None,
        tcp_idle_timeout: float = 10.0,
        on_event: Callable[[DnsQueried], None] | None = None,
        bad_input_log: Log | None = None,
        bad_input_rate: float = BAD_INPUT_RATE,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port}")
        if tcp_idle_timeout <= 0:
            raise ValueError(f"tcp_idle_timeout must be positive, got {tcp_idle_timeout}")
        if not bad_input_rate > 0:  # also refuses nan
            raise ValueError(f"bad_input_rate must be positive, got {bad_input_rate}")
        self.authority = authority
        self._host = address
        self._port = port
        self._log = log
        self._on_event = on_event
        bad_log = bad_input_log if bad_input_log is not None else log
        self._bad = (
            None
            if bad_log is None
            else RateLimitedLog(
                bad_log,
                label="bad queries",
                rate=bad_input_rate,
                burst=max(1, round(bad_input_rate)),
            )
        )
        self.tcp_idle_timeout = tcp_idle_timeout
        self._time: Callable[[], float] = time.monotonic
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _UdpProtocol | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[_TcpProtocol] = set()
        self._bound: tuple[str, int] | None = None
        self.recorder: WireRecorder | None = None
        """Told of every query and answer (emulator/wire/live.py); None: no cost."""

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound, the same for UDP and TCP."""
        if self._bound is None:
            raise RuntimeError("the DNS server is not started")
        return self._bound

    async def start(self) -> None:
        """Bind UDP, then TCP on the UDP port.  Raises OSError when either cannot be bound."""
        if self._udp is not None:
            raise RuntimeError("the DNS server is already started")
        loop = asyncio.get_running_loop()
        self._time = loop.time
        attempts = _TCP_BIND_ATTEMPTS if self._port == 0 else 1
        for attempt in range(attempts):
            udp, udp_protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self._host, self._port)
            )
            sockname = udp.get_extra_info("sockname")
            host, port = str(sockname[0]), int(sockname[1])
            try:
                # The UDP socket's host, not self._host: a name such as "localhost" could
                # resolve to more addresses for TCP than the one UDP took.
                tcp = await loop.create_server(lambda: _TcpProtocol(self), host, port)
            except OSError as exc:
                await _close_udp(udp, udp_protocol)
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                continue
            self._udp, self._udp_protocol = udp, udp_protocol
            self._tcp, self._bound = tcp, (host, port)
            return

    async def stop(self) -> None:
        """Close both sockets and every TCP connection.  Safe to call twice, or unstarted."""
        udp, self._udp = self._udp, None
        tcp, self._tcp = self._tcp, None
        if udp is not None and self._udp_protocol is not None:
            await _close_udp(udp, self._udp_protocol)
        if tcp is not None:
            tcp.close()
            for connection in list(self._connections):
                connection.abort()
            try:
                await asyncio.wait_for(tcp.wait_closed(), _STOP_TIMEOUT)
            except TimeoutError:
                pass  # a connection that will not die must not hang shutdown
        self._connections.clear()
        self._udp_protocol = None
        if self._bad is not None:
            self._bad.flush()

    # -- shared by the protocols ----------------------------------------------------------------

    def _answer(
        self, data: bytes, transport: Transport, client: tuple[str, int] | None
    ) -> bytes | None:
        """The core's answer.  The core never raises (fakedns/authority.py); should a bug make
        it, the query goes unanswered with one line in the log, not a traceback, and a TCP
        connection stays open."""
        try:
            return self.authority.answer(data, transport, self._time(), client=client)
        except Exception as exc:  # a bug in the core must not take the server down
            if self._bad is not None:
                self._bad(f"{transport} internal error answering a query: {exc!r}"[:300])
            return None

    def _drain(self) -> None:
        """Hand the events of the last answer to the log, or drop them."""
        log = self._log
        on_event = self._on_event
        bad = self._bad
        if log is None and on_event is None and bad is None:
            self.authority.discard_events()
            return
        for event in self.authority.events():
            if event.problem is not None:
                if bad is not None:
                    bad(event.line())
            elif log is not None:
                log(event.line())
            if on_event is not None:
                on_event(event)


def _record(
    recorder: WireRecorder,
    transport: Literal["udp", "tcp"],
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    query: bytes,
    reply: bytes | None,
) -> None:
    """Tell the recorder of a query and its answer (DNS over TCP without the length prefix)."""
    if client is None or server is None:
        return
    recorder.received(transport, client, server, query, "dns")
    if reply is not None:
        recorder.sent(transport, server, client, reply, "dns")


async def _close_udp(transport: asyncio.DatagramTransport, protocol: _UdpProtocol) -> None:
    """Close, and wait until the socket is really closed (asyncio closes it a loop turn later),
    so that the port is free again when start() fails or stop() returns."""
    transport.close()
    try:
        await asyncio.wait_for(asyncio.shield(protocol.closed), _STOP_TIMEOUT)
    except TimeoutError:
        pass


class _UdpProtocol(asyncio.DatagramProtocol):
    """One datagram in, at most one datagram out, to the sender (RFC 1035 §4.2.1)."""

    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._answer = server._answer
        self._transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport: no isinstance.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        # The hot path of the benchmark: keep it to one call into the core and one send.
        reply = self._answer(data, "udp", addr[:2])
        recorder = self._server.recorder
        if recorder is not None:
            _record(recorder, "udp", (addr[0], addr[1]), self._server._bound, data, reply)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)
        self._server._drain()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that left: nothing to do, the socket lives on.
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.closed.done():
            self.closed.set_result(None)


class _TcpProtocol(asyncio.Protocol):
    """Length-prefixed messages on one connection, answered in order (RFC 7766 §6.2.1)."""

    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._client: tuple[str, int] | None = None
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._client = (str(peer[0]), int(peer[1])) if peer else None
        self._server._connections.add(self)
        self._last_activity = self._loop.time()
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        buffer = self._buffer
        buffer += data
        # RFC 1035 §4.2.2: each message is preceded by its length in two bytes; a client may
        # send several queries without waiting (RFC 7766 §6.2.1.1).
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            reply = self._server._answer(message, "tcp", self._client)
            recorder = self._server.recorder
            if recorder is not None and self._transport is not None:
                here = self._transport.get_extra_info("sockname")
                _record(recorder, "tcp", self._client, (here[0], here[1]), message, reply)
            if reply is not None and self._transport is not None:
                self._transport.write(len(reply).to_bytes(2, "big") + reply)
            self._server._drain()

    def eof_received(self) -> bool:
        return False  # the client is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._server._connections.discard(self)
        self._transport = None

    # Flow control: a client that does not read its answers stops being read.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _arm_idle_timer(self) -> None:
        deadline = self._last_activity + self._server.tcp_idle_timeout
        self._idle_timer = self._loop.call_at(deadline, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        # One timer per connection, re-armed from the last activity rather than reset on every
        # message (cheaper on a busy connection).
        self._idle_timer = None
        if self._transport is None:
            return
        if self._loop.time() - self._last_activity >= self._server.tcp_idle_timeout:
            self._transport.close()
        else:
            self._arm_idle_timer()
