"""A live host's TCP and TLS side: listeners, one connection per flow, framing (RFC 3261
§18.3) and CRLF keep-alive answers (RFC 5626 §3.5.1).  emulator/live/driver.py drives it.

Framing and pongs are done here with :class:`~emulator.sip.framing.StreamFramer`, because they
are properties of the byte stream, not of SIP processing: the core gets whole messages (and, on
the side that pings, a pong as a bare CRLF).  TLS connections run through
:class:`~emulator.live.tls.TlsLayer`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, cast

from emulator.live.sockets import BindError, family
from emulator.live.tls import TlsLayer
from emulator.net import Flow, TransportName
from emulator.sip.errors import SipError
from emulator.sip.framing import PING, PONG, KeepAlivePing, KeepAlivePong, StreamFramer

if TYPE_CHECKING:
    from emulator.wire.live import WireRecorder

__all__ = [
    "CONNECT_TIMEOUT",
    "LISTEN_BACKLOG",
    "MAX_HELD_WRITES",
    "StreamConnection",
    "StreamHost",
    "StreamTransports",
]

CONNECT_TIMEOUT = 32.0
"""Outbound TCP/TLS connect timeout (s): 64*T1, Timer F, so a flow to a host whose SYNs vanish
fails no later than the transaction that wanted it (RFC 3261 §17.1.2.2).  Also how long an
accepted TLS connection may take to finish its handshake."""

LISTEN_BACKLOG = 1024
"""Kernel accept queue of TCP/TLS listeners: thousands of clients may connect at once."""

MAX_HELD_WRITES = 1000
"""Messages held per connection while the NIC is disabled (beyond that they are dropped, as a
real TCP stack would eventually give up)."""


class StreamHost(Protocol):
    """What the stream side needs from its driver (:class:`~emulator.live.driver.CoreDriver`)."""

    name: str
    address: str
    nic_enabled: bool

    @property
    def receiving(self) -> bool:
        """A core is attached and the host is open: bytes read now are handed to it."""
        ...

    def deliver(self, flow: Flow, messages: list[bytes]) -> None:
        """Hand whole messages (or a pong, as CRLF) read on ``flow`` to the core."""
        ...

    def deliver_unframed(self, flow: Flow, data: bytes) -> None:
        """Hand bytes that could not be framed to the core (it may answer 400/413)."""
        ...

    def flow_failed(self, flow: Flow) -> None:
        """Tell the core that ``flow`` failed (refused, reset, closed by the peer)."""
        ...

    def debug(self, text: str) -> None: ...


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection, inbound (accepted) or outbound (opened for a Send)."""

    # Slots: one per connection, thousands of them (a pool's clients, a fleet's agents).
    __slots__ = (
        "closed_here",
        "flow",
        "framer",
        "held",
        "owner",
        "reading",
        "transport",
        "transport_name",
    )

    def __init__(
        self, owner: StreamTransports, transport_name: TransportName, flow: Flow | None
    ) -> None:
        self.owner = owner
        self.transport_name = transport_name
        # Outbound: the flow the core named (its local port is the listening one, the real
        # socket's is ephemeral: the core never needs to know).  Inbound: set on accept.
        self.flow = flow
        self.transport: asyncio.Transport | None = None
        self.framer = StreamFramer(expect_pongs=owner.expect_pongs)
        self.held: list[bytes] = []
        self.reading = True
        self.closed_here = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast(asyncio.Transport, transport)
        if self.flow is None:
            local = transport.get_extra_info("sockname")
            peer = transport.get_extra_info("peername")
            self.flow = Flow(self.transport_name, (local[0], local[1]), (peer[0], peer[1]))
            self.owner.accepted(self)
        if self.owner.host.nic_enabled:
            self.release()
        else:
            self.pause()

    def data_received(self, data: bytes) -> None:
        self.owner.received(self, data)

    def eof_received(self) -> bool | None:
        return None  # the peer closed its side: close ours (SIP has no half-close use)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(self)

    # -- driver side -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not self.owner.host.nic_enabled:
            if len(self.held) < MAX_HELD_WRITES:
                self.held.append(data)
            return
        transport.write(data)
        if self.owner.recorder is not None:
            self.owner.record(self, (data,), sent=True)

    def pause(self) -> None:
        if self.transport is not None and self.reading and not self.transport.is_closing():
            self.transport.pause_reading()
            self.reading = False

    def release(self) -> None:
        """Resume reading and write what was held while connecting or while the NIC was down."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not self.reading:
            transport.resume_reading()
            self.reading = True
        if self.held:
            held, self.held = self.held, []
            transport.writelines(held)
            if self.owner.recorder is not None:
                self.owner.record(self, held, sent=True)

    def close(self, *, abort: bool = False) -> None:
        self.closed_here = True
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()  # after the buffered data (a 400, say) is written


class StreamTransports:
    """A host's TCP and TLS listeners and its connections, one per :class:`Flow`.

    ``server_ssl`` serves the TLS listener; ``client_ssl`` opens outbound TLS flows (without
    it they fail).  ``expect_pongs``: the core sends CRLF pings (a client), so a pong is
    handed to it as CRLF; otherwise pongs are dropped and pings answered here.
    """

    # Slots: one per host, and a fleet runs 10,000 agents in one process.
    __slots__ = (
        "_client_ssl",
        "_connections",
        "_connects",
        "_loop",
        "_server_ssl",
        "_servers",
        "expect_pongs",
        "host",
        "recorder",
    )

    def __init__(
        self,
        host: StreamHost,
        *,
        server_ssl: ssl.SSLContext | None,
        client_ssl: ssl.SSLContext | None,
        expect_pongs: bool,
    ) -> None:
        self.host = host
        self.expect_pongs = expect_pongs
        self.recorder: WireRecorder | None = None
        """Told of every message written and read (emulator/wire/live.py); None: no cost."""
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: dict[Flow, StreamConnection] = {}
        # Connections being opened (a dict, not a set: an empty dict is 64 bytes once cleared,
        # an empty set 216, and a fleet keeps one per agent).
        self._connects: dict[asyncio.Task[None], None] = {}

    @property
    def connections(self) -> list[Flow]:
        """The open (or opening) flows."""
        return list(self._connections)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on ``loop`` (before any listener is opened or flow sent on)."""
        self._loop = loop

    async def listen(self, transport: TransportName, port: int) -> int:
        """Open a TCP or TLS listener on ``port`` (0: ephemeral); returns the bound port.
        Raises :class:`BindError`."""
        assert self._loop is not None
        host = self.host
        sock = socket.socket(family(host.address), socket.SOCK_STREAM)
        try:
            # A restarted pool must get its port back although old connections linger in
            # TIME_WAIT (what a restarted Windows service does too).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.address, port))
        except OSError as exc:
            sock.close()
            raise BindError(host.name, host.address, port, transport, exc) from None
        bound = int(sock.getsockname()[1])
        server = await self._loop.create_server(
            lambda: self._accept(transport), sock=sock, backlog=LISTEN_BACKLOG
        )
        self._servers.append(server)
        return bound

    def _accept(self, transport: TransportName) -> asyncio.Protocol:
        connection = StreamConnection(self, transport, None)
        if transport != "tls":
            return connection
        assert self._server_ssl is not None  # CoreDriver checks it
        # Our own TLS layer over TCP, not create_server(ssl=...): see TlsLayer for why.
        return TlsLayer(
            connection,
            self._server_ssl,
            server_side=True,
            handshake_timeout=CONNECT_TIMEOUT,
            debug=self.host.debug,
        )

    # -- from the connections ------------------------------------------------------------------

    def accepted(self, connection: StreamConnection) -> None:
        assert connection.flow is not None
        self._connections[connection.flow] = connection
        self.host.debug(f"accepted {connection.flow.transport} from {connection.flow.remote}")

    def received(self, connection: StreamConnection, data: bytes) -> None:
        host = self.host
        flow = connection.flow
        if flow is None or not host.receiving:
            return  # not attached yet (the pool is being built): as if never read
        try:
            items = connection.framer.feed(data)
        except SipError as exc:
            # Framing is lost (no Content-Length, too large): the core gets the unframed bytes
            # so that it can answer 400/413 if a Via and CSeq can be read (RFC 3261 §8.2; a
            # protocol decision, so not ours), then the connection is closed.
            host.debug(f"framing error on {flow}: {exc}")
            host.deliver_unframed(flow, connection.framer.unframed() or data)
            connection.close()
            self._connections.pop(flow, None)
            return
        if not items:
            return
        if self.recorder is not None:
            self.record(connection, [_as_read(item) for item in items])
        messages: list[bytes] = []
        for item in items:
            if type(item) is bytes:
                messages.append(item)
            elif isinstance(item, KeepAlivePing):
                connection.send(PONG)  # RFC 5626 §3.5.1: CRLFCRLF ping, CRLF pong
            elif self.expect_pongs:
                messages.append(PONG)  # the answer to the core's own ping
        host.deliver(flow, messages)

    def lost(self, connection: StreamConnection) -> None:
        flow = connection.flow
        if flow is None:
            return
        if self._connections.get(flow) is connection:
            del self._connections[flow]
        if connection.closed_here or not self.host.receiving:
            return
        self.host.debug(f"connection lost: {flow}")
        # The core decides whether a closed flow matters (a binding's flow, a pending NOTIFY).
        self.host.flow_failed(flow)

    def record(
        self, connection: StreamConnection, messages: Iterable[bytes], *, sent: bool = False
    ) -> None:
        """Tell the recorder of messages written or read, with the socket's real addresses."""
        recorder, transport = self.recorder, connection.transport
        if recorder is None or transport is None or connection.flow is None:
            return
        local, peer = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        if not local or not peer:
            return  # already closed: nothing to name it by
        here, there = (local[0], local[1]), (peer[0], peer[1])
        kind = connection.flow.transport
        for data in messages:
            if sent:
                recorder.sent(kind, here, there, data)
            else:
                recorder.received(kind, there, here, data)

    # -- from the driver -----------------------------------------------------------------------

    def send(self, flow: Flow, data: bytes) -> None:
        """Write ``data`` on ``flow``'s connection, opening one if there is none (held until
        it is connected; the core hears of a failure through ``flow_failed``)."""
        connection = self._connections.get(flow)
        if connection is None:
            loop = self._loop
            if not self.host.nic_enabled or loop is None:
                return  # the SYN is lost: the core's transaction timer will notice
            if flow.transport == "tls" and self._client_ssl is None:
                self.host.debug(f"no client TLS context for {flow}")
                loop.call_soon(self.host.flow_failed, flow)
                return
            connection = StreamConnection(self, flow.transport, flow)
            self._connections[flow] = connection
            task = loop.create_task(self._connect(connection, flow))
            self._connects[task] = None
            task.add_done_callback(self._connected)
        connection.send(data)

    def close_flow(self, flow: Flow) -> None:
        connection = self._connections.pop(flow, None)
        if connection is not None:
            connection.close()

    def pause(self) -> None:
        """Stop reading every connection (the NIC is disabled)."""
        for connection in self._connections.values():
            connection.pause()

    def release(self) -> None:
        """Read every connection again and write what was held (the NIC is enabled)."""
        for connection in list(self._connections.values()):
            connection.release()

    async def close(self) -> None:
        """Abort every connection and close every listener (a stopped process)."""
        for task in self._connects:
            task.cancel()
        self._connects.clear()
        for connection in list(self._connections.values()):
            # A killed process: no graceful SIP goodbye, the kernel sends FIN (RST if unread
            # data is pending).
            connection.close(abort=True)
        self._connections.clear()
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            await asyncio.wait_for(server.wait_closed(), 5.0)
        self._loop = None

    # -- opening a connection ------------------------------------------------------------------

    async def _connect(self, connection: StreamConnection, flow: Flow) -> None:
        loop = asyncio.get_running_loop()
        host, port = flow.remote
        layer: TlsLayer | None = None
        protocol: asyncio.Protocol = connection
        if flow.transport == "tls":
            assert self._client_ssl is not None  # send checked
            # Our own TLS layer, not create_connection(ssl=...): see TlsLayer for why.
            protocol = layer = TlsLayer(
                connection,
                self._client_ssl,
                server_hostname=host,
                handshake_timeout=CONNECT_TIMEOUT,
                debug=self.host.debug,
            )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.create_connection(
                    lambda: protocol,
                    host,
                    port,
                    # Leave from the host's own address, as the real host would.
                    local_addr=(self.host.address, 0),
                )
                if layer is not None:
                    await layer.handshake
        except asyncio.CancelledError:
            if layer is not None:
                layer.abort()  # the driver stopped during the handshake: no socket left open
            raise
        except (OSError, TimeoutError) as exc:
            if layer is not None:
                layer.abort()  # a handshake that timed out leaves no socket behind
            if self._connections.get(flow) is connection:
                del self._connections[flow]
            self.host.debug(f"connect {flow.transport} {host}:{port} failed: {exc}")
            if not connection.closed_here:
                self.host.flow_failed(flow)

    def _connected(self, task: asyncio.Task[None]) -> None:
        self._connects.pop(task, None)
        if not self._connects:
            self._connects.clear()  # frees the table the dict kept after its last entry left


def _as_read(item: bytes | KeepAlivePing | KeepAlivePong) -> bytes:
    """What was on the wire for one framed item (for a recorder)."""
    if type(item) is bytes:
        return item
    return PING if isinstance(item, KeepAlivePing) else PONG
