"""A live host's TCP and TLS side: listeners, one connection per flow, framing (RFC 3261
§18.3) and CRLF keep-alive answers (RFC 5626 §3.5.1).  emulator/live/driver.py drives it.

Framing and pongs are done here with :class:`~emulator.sip.framing.StreamFramer`, because they
are properties of the byte stream, not of SIP processing: the core gets whole messages (and, on
the side that pings, a pong as a bare CRLF).  TLS connections run through
:class:`~emulator.live.tls.TlsLayer`.

Defences (docs/live.md, "Limits and defences"), all in :class:`StreamLimits`:

* messages framed before bytes that cannot be framed are delivered (and answered) first; then
  the bad bytes go to the core (400/413 if it can read a Via), then the connection closes;
* an idle connection (nothing read or written, CRLF keep-alives included) is closed after
  :attr:`StreamLimits.idle_timeout`; a message not read whole within
  :attr:`StreamLimits.message_timeout` of its first byte (a slowloris sender), or a new inbound
  connection that brings no message within it, is closed too;
* listeners accept with their own reader (:class:`_Acceptor`), so that running out of file
  descriptors (EMFILE/ENFILE) is noticed, logged at most once per
  :data:`EXHAUSTION_LOG_INTERVAL`, and retried every :data:`ACCEPT_RETRY` seconds while the
  connections wait in the kernel's queue (asyncio logs every failed accept with a traceback;
  uvloop, through libuv, accepts and closes them silently).
"""

from __future__ import annotations

import asyncio
import errno
import resource
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from emulator.live.sockets import BindError, describe_os_error, family
from emulator.live.tls import TlsLayer
from emulator.net import Flow, TransportName
from emulator.sip.errors import SipError
from emulator.sip.framing import PING, PONG, KeepAlivePing, KeepAlivePong, StreamFramer

if TYPE_CHECKING:
    from emulator.wire.live import WireRecorder

__all__ = [
    "ACCEPT_RETRY",
    "CONNECT_TIMEOUT",
    "EXHAUSTION_LOG_INTERVAL",
    "LISTEN_BACKLOG",
    "MAX_HELD_WRITES",
    "StreamConnection",
    "StreamHost",
    "StreamLimits",
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

ACCEPT_BATCH = 64
"""Connections accepted per readiness of a listener before the loop runs anything else."""

ACCEPT_RETRY = 1.0
"""Seconds a listener stops accepting after running out of file descriptors (asyncio's own
retry delay); the connections wait in the kernel's accept queue meanwhile."""

EXHAUSTION_LOG_INTERVAL = 10.0
"""At most one log line per listener per this many seconds while descriptors are exhausted."""

_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Timeouts of a host's TCP/TLS connections (seconds; None: never).

    The defaults are a server's (``sipemu up``'s ``--idle-timeout``, ``--message-timeout``);
    :meth:`off` is a client's, which keeps its connection to its registrar whatever it does.
    """

    idle_timeout: float | None = 3605.0
    """Close a connection on which nothing was read or written (CRLF keep-alives count) for
    this long.  CHOICE, after Kamailio 5.6's shipped kamailio.cfg (``tcp_connection_lifetime
    =3605``, "a bit higher than registration expires"; Kamailio's built-in default is 120 s,
    src/core/tcp_init.h): it outlasts every shipped client profile's silence (Lync pings at
    least every ``keep_alive_timeout`` = 300 s; baresip over TCP sends nothing between
    refreshes, 3,240 s apart)."""

    message_timeout: float | None = 20.0
    """Close a connection whose message is not read whole (head and body) within this long of
    its first byte (slowloris), or a new inbound connection that brings no whole message within
    this long (CRLF keep-alives do not count).  CHOICE: 20 s; Kamailio 6 has the like
    ``tcp_msg_read_timeout`` and ``tcp_msg_data_timeout``."""

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "message_timeout"):
            value = getattr(self, name)
            if value is not None and not (0 < value < float("inf")):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")

    @classmethod
    def off(cls) -> StreamLimits:
        """No timeouts (a client's connections)."""
        return cls(idle_timeout=None, message_timeout=None)


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

    def notice(self, text: str) -> None:
        """One line for the log (rate-limited by the host): a connection closed by a limit,
        descriptors exhausted."""
        ...


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection, inbound (accepted) or outbound (opened for a Send)."""

    # Slots: one per connection, thousands of them (a pool's clients, a fleet's agents).
    __slots__ = (
        "active_at",
        "closed_here",
        "flow",
        "framer",
        "greeted",
        "held",
        "message_since",
        "owner",
        "reading",
        "timer",
        "timer_at",
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
        # The limits (StreamLimits): when something was last read or written, since when a
        # message (or, on a new inbound connection, the first message) is awaited, and the one
        # timer that checks them (re-armed lazily: a read only moves active_at).
        self.active_at = 0.0
        self.message_since: float | None = None
        self.greeted = True  # a whole message was read (an inbound connection: not yet)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast(asyncio.Transport, transport)
        if self.flow is None:
            local = transport.get_extra_info("sockname")
            peer = transport.get_extra_info("peername")
            self.flow = Flow(self.transport_name, (local[0], local[1]), (peer[0], peer[1]))
            self.owner.accepted(self)
        else:
            self.owner.connected(self)
        if self.owner.host.nic_enabled:
            self.release()
        else:
            self.pause()

    def data_received(self, data: bytes) -> None:
        self.owner.received(self, data)

    def eof_received(self) -> bool | None:
        return None  # the peer closed its side: close ours (SIP has no half-close use)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timer()
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
        self.owner.wrote(self)

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

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self, *, abort: bool = False) -> None:
        self.closed_here = True
        self.stop_timer()
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()  # after the buffered data (a 400, say) is written


class StreamTransports:
    """A host's TCP and TLS listeners and its connections, one per :class:`Flow`.

    ``server_ssl`` serves the TLS listener; ``client_ssl`` opens outbound TLS flows (without
    it they fail).  ``expect_pongs``: the core sends CRLF pings (a client), so a pong is
    handed to it as CRLF; otherwise pongs are dropped and pings answered here.  ``limits``:
    the connections' timeouts (default: none).
    """

    # Slots: one per host, and a fleet runs 10,000 agents in one process.
    __slots__ = (
        "_acceptors",
        "_client_ssl",
        "_connections",
        "_connects",
        "_loop",
        "_server_ssl",
        "expect_pongs",
        "host",
        "limits",
        "recorder",
    )

    def __init__(
        self,
        host: StreamHost,
        *,
        server_ssl: ssl.SSLContext | None,
        client_ssl: ssl.SSLContext | None,
        expect_pongs: bool,
        limits: StreamLimits | None = None,
    ) -> None:
        self.host = host
        self.expect_pongs = expect_pongs
        self.limits = limits if limits is not None else StreamLimits.off()
        self.recorder: WireRecorder | None = None
        """Told of every message written and read (emulator/wire/live.py); None: no cost."""
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acceptors: list[_Acceptor] = []
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
        try:
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise BindError(host.name, host.address, port, transport, exc) from None
        acceptor = _Acceptor(self, self._loop, sock, transport, f"{host.address}:{bound}")
        self._acceptors.append(acceptor)
        acceptor.start()
        return bound

    def adopt(self, sock: socket.socket, transport: TransportName) -> None:
        """Run a connection accepted by a listener (its protocol's connection_made comes
        later, from the loop)."""
        assert self._loop is not None
        protocol = self._accept(transport)
        task = self._loop.create_task(self._adopt(protocol, sock))
        self._connects[task] = None
        task.add_done_callback(self._connected)

    async def _adopt(self, protocol: asyncio.Protocol, sock: socket.socket) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, sock)
        except OSError as exc:  # reset before it could be set up: nothing to tell the core
            self.host.debug(f"accepted connection failed at once: {exc}")
            sock.close()
        except asyncio.CancelledError:
            sock.close()
            raise

    def exhausted(self, where: str, transport: TransportName, exc: OSError, refused: int) -> None:
        """A listener ran out of descriptors (already rate-limited by the listener)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        more = f"; {refused} more times since the last line" if refused else ""
        self.host.notice(
            f"cannot accept {transport.upper()} connections on {where}: "
            f"{describe_os_error(exc)} (open-files limit {soft}); they wait in the kernel's "
            f"queue, retried every {ACCEPT_RETRY:g} s{more}"
        )

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
        # A new inbound connection must bring a whole message within message_timeout.
        self._watch(connection, message_awaited=True)

    def connected(self, connection: StreamConnection) -> None:
        """An outbound connection is up: the idle timeout watches it from now on."""
        self._watch(connection, message_awaited=False)

    def wrote(self, connection: StreamConnection) -> None:
        if self._loop is not None:
            connection.active_at = self._loop.time()

    # -- the limits ----------------------------------------------------------------------------

    def _watch(self, connection: StreamConnection, *, message_awaited: bool) -> None:
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        connection.active_at = now
        if message_awaited:
            connection.greeted = False
            if self.limits.message_timeout is not None:
                connection.message_since = now
        self._arm(connection)

    def _deadline(self, connection: StreamConnection) -> tuple[float, str] | None:
        """When ``connection`` breaks a limit if nothing happens, and which limit."""
        limits = self.limits
        out: tuple[float, str] | None = None
        if limits.idle_timeout is not None:
            out = (connection.active_at + limits.idle_timeout, "idle")
        since = connection.message_since
        if limits.message_timeout is not None and since is not None:
            at = since + limits.message_timeout
            if out is None or at < out[0]:
                out = (at, "message")
        return out

    def _arm(self, connection: StreamConnection) -> None:
        """Arm the connection's timer on its deadline unless it is armed no later."""
        loop = self._loop
        deadline = self._deadline(connection)
        if loop is None or deadline is None:
            return
        at = deadline[0]
        if connection.timer is not None:
            if connection.timer_at <= at:
                return  # fires first and re-arms (a read only moved active_at)
            connection.timer.cancel()
        connection.timer_at = at
        connection.timer = loop.call_at(at, self._check, connection)

    def _check(self, connection: StreamConnection) -> None:
        connection.timer = None
        loop = self._loop
        flow = connection.flow
        deadline = self._deadline(connection)
        if loop is None or flow is None or deadline is None or connection.closed_here:
            return
        at, limit = deadline
        if not self.host.nic_enabled:
            return  # a silent host closes nothing: release() re-arms the timer
        if loop.time() < at:
            self._arm(connection)
            return
        limits = self.limits
        if limit == "idle":
            why = f"idle for {limits.idle_timeout:g} s (--idle-timeout)"
        elif connection.framer.buffered:
            why = (
                f"a message not read whole within {limits.message_timeout:g} s "
                f"(--message-timeout; {connection.framer.buffered} bytes held)"
            )
        else:
            why = f"no message within {limits.message_timeout:g} s of connecting"
            why += " (--message-timeout)"
        host = self.host
        host.notice(f"{flow.transport.upper()} {_where(flow)} closed: {why}")
        connection.close()
        if self._connections.get(flow) is connection:
            del self._connections[flow]
        # The core decides whether a closed flow matters (a binding's flow, a pending NOTIFY).
        if host.receiving:
            host.flow_failed(flow)

    def received(self, connection: StreamConnection, data: bytes) -> None:
        host = self.host
        flow = connection.flow
        if flow is None or not host.receiving:
            return  # not attached yet (the pool is being built): as if never read
        framer = connection.framer
        try:
            items = framer.feed(data)
        except SipError:
            self._unframeable(connection, flow, data)
            return
        if self.recorder is not None:
            self.record(connection, [_as_read(item) for item in items])
        messages: list[bytes] = []
        framed = False  # a whole message was read (keep-alives are not messages)
        for item in items:
            if type(item) is bytes:
                messages.append(item)
                framed = True
            elif isinstance(item, KeepAlivePing):
                connection.send(PONG)  # RFC 5626 §3.5.1: CRLFCRLF ping, CRLF pong
            elif self.expect_pongs:
                messages.append(PONG)  # the answer to the core's own ping
        loop = self._loop
        if loop is not None:
            now = connection.active_at = loop.time()
            if framed:
                connection.greeted = True
            if framer.buffered:
                # A message has begun: it must be whole within message_timeout of its first
                # byte (of the connection's start while the first message is awaited).
                if connection.message_since is None or (framed and connection.greeted):
                    if self.limits.message_timeout is not None:
                        connection.message_since = now
                        self._arm(connection)
            elif connection.greeted:
                connection.message_since = None
        if messages:
            # Answered before the bytes after them are judged (RFC 4475 dblreq over TCP).
            host.deliver(flow, messages)
        if framer.error is not None and not connection.closed_here:
            self._unframeable(connection, flow, data)

    def _unframeable(self, connection: StreamConnection, flow: Flow, data: bytes) -> None:
        # Framing is lost (no Content-Length, too large): the core gets the unframed bytes so
        # that it can answer 400/413 if a Via and CSeq can be read (RFC 3261 §8.2; a protocol
        # decision, so not ours; its BadMessage event is the log's line), then the connection
        # is closed after what was written on it.
        host = self.host
        host.debug(f"framing error on {flow}: {connection.framer.error}")
        host.deliver_unframed(flow, connection.framer.unframed() or data)
        connection.close()
        if self._connections.get(flow) is connection:
            del self._connections[flow]

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
        """Read every connection again and write what was held (the NIC is enabled).  The
        limits start again: a silent host closes nothing (its timers restart when it is back)."""
        now = self._loop.time() if self._loop is not None else 0.0
        for connection in list(self._connections.values()):
            connection.active_at = now
            if connection.message_since is not None:
                connection.message_since = now
            connection.release()
            if connection.timer is None:
                self._arm(connection)

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
        acceptors, self._acceptors = self._acceptors, []
        for acceptor in acceptors:
            acceptor.close()  # the port is free at once (the socket is closed, not lingering)
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


def _where(flow: Flow) -> str:
    host, port = flow.remote
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Acceptor:
    """A listening socket read by the loop: accepts, hands each connection to the owner, and
    stops for :data:`ACCEPT_RETRY` seconds when descriptors run out (no busy loop: the socket
    stays readable while connections wait), logging at most once per
    :data:`EXHAUSTION_LOG_INTERVAL`."""

    __slots__ = (
        "_exhausted_at",
        "_loop",
        "_owner",
        "_refused",
        "_retry",
        "_sock",
        "_transport",
        "where",
    )

    def __init__(
        self,
        owner: StreamTransports,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        transport: TransportName,
        where: str,
    ) -> None:
        self._owner = owner
        self._loop = loop
        self._sock: socket.socket | None = sock
        self._transport = transport
        self.where = where
        self._retry: asyncio.TimerHandle | None = None
        self._exhausted_at: float | None = None
        self._refused = 0

    def start(self) -> None:
        if self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self._ready)

    def _ready(self) -> None:
        sock = self._sock
        if sock is None:
            return
        adopt = self._owner.adopt
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._exhausted(exc)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that connection is gone (or refused by a firewall rule)
                # Anything else: say so and pause rather than spin on a readable socket.
                self._owner.host.debug(f"accept on {self.where} failed: {exc}")
                self._pause()
                return
            conn.setblocking(False)
            adopt(conn, self._transport)

    def _exhausted(self, exc: OSError) -> None:
        now = self._loop.time()
        if self._exhausted_at is None or now - self._exhausted_at >= EXHAUSTION_LOG_INTERVAL:
            self._owner.exhausted(self.where, self._transport, exc, self._refused)
            self._exhausted_at = now
            self._refused = 0
        else:
            self._refused += 1
        self._pause()

    def _pause(self) -> None:
        if self._sock is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(ACCEPT_RETRY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        self.start()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()


def _as_read(item: bytes | KeepAlivePing | KeepAlivePong) -> bytes:
    """What was on the wire for one framed item (for a recorder)."""
    if type(item) is bytes:
        return item
    return PING if isinstance(item, KeepAlivePing) else PONG
