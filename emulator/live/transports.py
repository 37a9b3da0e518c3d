"""asyncio drivers that put ONE sans-IO core on real sockets: UDP, TCP and TLS.

The driver is thin (house style, principles 1-2): it never looks inside a SIP message.  After
every input (a datagram, a framed stream message, a connection failure, a timer) it

1. hands the input to the core with ``now = loop.time() * time_scale`` (1 unless a scenario
   runs faster than real time: the cores only ever see ``now``, so a scaled clock is a
   faithful fast-forward),
2. drains ``core.actions()`` and puts each :class:`~emulator.net.Send` on its flow (opening a
   TCP/TLS connection when the flow has none; UDP datagrams leave together at the end of the
   loop iteration) or closes the flow (:class:`CloseFlow`),
3. drains ``core.events()`` to the ``on_events`` callback,
4. re-arms ONE ``loop.call_at`` on ``core.next_deadline()`` (aioquic's ``transmit()``).

Stream framing (RFC 3261 §18.3) and CRLF keep-alive answers (RFC 5626 §3.5.1) are done here with
:class:`~emulator.sip.framing.StreamFramer`, because they are properties of the byte stream, not
of SIP processing.

Two fault modes are provided (see docs/live.md for what they can and cannot emulate):

* NIC disabled (:meth:`CoreDriver.disable_nic`): silent.  Datagrams to and from the host vanish;
  established connections stop being read and what the core writes on them is held (TCP would
  retransmit it) until the NIC is enabled again; new connections are still accepted by the
  kernel but never read; no new outbound connection is attempted (the SYN is "lost").
* Stopped (:meth:`CoreDriver.close`): every socket is closed, so the kernel refuses (ICMP port
  unreachable for UDP, RST for TCP).  :meth:`CoreDriver.open` binds the same ports again.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

from emulator.net import Action, Address, CloseFlow, Effect, Flow, Send, TransportName
from emulator.sip.errors import SipError
from emulator.sip.framing import PONG, KeepAlivePing, StreamFramer

__all__ = [
    "CONNECT_TIMEOUT",
    "SOCKET_BUFFER",
    "BindError",
    "Core",
    "CoreDriver",
    "describe_os_error",
]

SOCKET_BUFFER = 4 * 1024 * 1024
"""SO_RCVBUF / SO_SNDBUF asked for on UDP sockets: a 10,000 REGISTER/s burst must not overflow
the kernel queue while the loop is busy (Linux caps it at net.core.rmem_max unless root)."""

CONNECT_TIMEOUT = 32.0
"""Outbound TCP/TLS connect timeout (s): 64*T1, Timer F, so a flow to a host whose SYNs vanish
fails no later than the transaction that wanted it (RFC 3261 §17.1.2.2)."""

LISTEN_BACKLOG = 1024
"""Kernel accept queue of TCP/TLS listeners: thousands of clients may connect at once."""

MAX_HELD_WRITES = 1000
"""Messages held per connection while the NIC is disabled (beyond that they are dropped, as a
real TCP stack would eventually give up)."""

_FLOW_CACHE = 200_000
"""UDP flows remembered per socket, so the hot path does not build a Flow per datagram."""


class Core(Protocol):
    """The driving contract of every sans-IO core (see :mod:`emulator.net`)."""

    def receive(self, data: bytes, flow: Flow, now: float) -> None: ...

    def flow_failed(self, flow: Flow, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def actions(self) -> Sequence[Action]: ...

    def events(self) -> Sequence[object]: ...


class BindError(Exception):
    """A listening socket could not be bound; ``str()`` is a sentence naming who, where, why."""

    def __init__(
        self, name: str, address: str, port: int, transport: TransportName, cause: OSError
    ) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.transport = transport
        self.errno = cause.errno
        super().__init__(
            f"cannot listen on {address}:{port} ({transport.upper()}) for {name}: "
            f"{describe_os_error(cause)}"
        )


def describe_os_error(exc: OSError) -> str:
    """The end of a sentence saying why a bind failed, in words a user can act on."""
    if exc.errno == errno.EADDRINUSE:
        return "the port is already in use (is another sipemu or SIP server running?)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not assigned to any interface of this machine"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return exc.strerror or str(exc)


class _DatagramProtocol(asyncio.DatagramProtocol):
    __slots__ = ("_driver", "closed")

    def __init__(self, driver: CoreDriver) -> None:
        self._driver = driver
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._driver._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # Linux reports ICMP errors on unconnected UDP sockets only with IP_RECVERR, and then
        # without the offending address: nothing the core could use.  Heartbeat and
        # transaction timers detect a dead UDP peer instead.
        self._driver._debug(f"udp error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Stream(asyncio.Protocol):
    """One TCP or TLS connection, inbound (accepted) or outbound (opened for a Send)."""

    # Slots: one per connection, thousands of them (a pool's clients, a fleet's agents).
    __slots__ = (
        "closed_here",
        "driver",
        "flow",
        "framer",
        "held",
        "reading",
        "transport",
        "transport_name",
    )

    def __init__(
        self, driver: CoreDriver, transport_name: TransportName, flow: Flow | None
    ) -> None:
        self.driver = driver
        self.transport_name = transport_name
        # Outbound: the flow the core named (its local port is the listening one, the real
        # socket's is ephemeral: the core never needs to know).  Inbound: set on accept.
        self.flow = flow
        self.transport: asyncio.Transport | None = None
        self.framer = StreamFramer(expect_pongs=driver.expect_pongs)
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
            self.driver._accepted(self)
        if self.driver.nic_enabled:
            self.release()
        else:
            self.pause()

    def data_received(self, data: bytes) -> None:
        self.driver._stream_data(self, data)

    def eof_received(self) -> bool | None:
        return None  # the peer closed its side: close ours (SIP has no half-close use)

    def connection_lost(self, exc: Exception | None) -> None:
        self.driver._stream_lost(self)

    # -- driver side -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not self.driver.nic_enabled:
            if len(self.held) < MAX_HELD_WRITES:
                self.held.append(data)
            return
        transport.write(data)

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

    def close(self, *, abort: bool = False) -> None:
        self.closed_here = True
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()  # after the buffered data (a 400, say) is written


TLS_READ_CHUNK = 16 * 1024
"""Plaintext read from the TLS object per call: one TLS record at most (RFC 8446 §5.1)."""


class _Tls(asyncio.Protocol, asyncio.Transport):
    """TLS over a plain TCP transport, with ``ssl.SSLObject`` and two memory BIOs.

    It stands between the socket's transport and a :class:`_Stream`, and is the stream's
    transport once the handshake is done (only then is ``connection_made`` called on the
    stream, as asyncio's TLS does).  Why not ``create_connection(ssl=...)``: asyncio's
    ``SSLProtocol`` (and uvloop's) keeps a 256 KiB read buffer per connection for its whole
    life, which is most of the memory of an idle TLS client or of a pool holding thousands of
    TLS connections (docs/benchmarks.md, many agents).  Here nothing outlives a read but the
    ``SSLObject`` itself (OpenSSL releases its own record buffers when idle).

    The handshake's outcome is :attr:`handshake`: a future set to None, or to the error
    (``ssl.SSLError``, or ``ConnectionResetError`` when the peer closes first).
    """

    __slots__ = (
        "_closing",
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
        app: _Stream,
        context: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
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
        self._handshake_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol, towards the socket --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = cast(asyncio.Transport, transport)
        if self._server_side:
            # A client that connects and never finishes its handshake is dropped (the
            # connecting side has its own CONNECT_TIMEOUT around the whole connect).
            self._handshake_timer = asyncio.get_running_loop().call_later(
                CONNECT_TIMEOUT, self._handshake_timed_out
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
                self.app.driver._debug(f"TLS error: {exc}")
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


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


class CoreDriver:
    """Puts one core on a host's sockets: one UDP socket, one TCP and one TLS listener.

    ``ports`` maps each transport to serve to its port (0: ephemeral).  After :meth:`open`,
    :attr:`bound` holds the ports actually bound, and a later :meth:`open` (after
    :meth:`close`) binds those same ports again.  The core is attached after binding
    (:meth:`attach`), because a pool core must know every pool's real ports.

    ``on_events`` receives each non-empty batch of ``core.events()``; ``on_effect`` performs
    each :class:`~emulator.net.Effect` action (a client's cache write), after the input.
    ``debug`` receives one line per datagram, connection and socket error; it is off on the
    hot path unless given.
    """

    def __init__(
        self,
        name: str,
        address: str,
        ports: Mapping[TransportName, int],
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        on_events: Callable[[Sequence[object]], None] | None = None,
        on_effect: Callable[[Effect], None] | None = None,
        debug: Callable[[str], None] | None = None,
        expect_pongs: bool = False,
        time_scale: float = 1.0,
    ) -> None:
        if "tls" in ports and server_ssl is None:
            raise ValueError(f"{name}: a TLS port needs a server SSL context")
        self.name = name
        self.address = address
        self.ports: dict[TransportName, int] = dict(ports)
        self.bound: dict[TransportName, int] = {}
        self.nic_enabled = True
        self.dropped = 0
        """Datagrams dropped in or out because the NIC was disabled (or no core attached)."""
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._on_events = on_events
        self._on_effect = on_effect
        self._debug_log = debug
        self.expect_pongs = expect_pongs
        self.time_scale = time_scale
        """The core's clock runs this many times faster than the loop's (``--time-scale``)."""
        """The core sends CRLF keep-alive pings (a client): pongs are handed to it as CRLF."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._core: Core | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _DatagramProtocol | None = None
        self._udp_local: Address = (address, 0)
        self._udp_flows: dict[Any, Flow] = {}
        # UDP datagrams the core sent while handling the current loop iteration's input, put
        # on the socket together at its end (_send_udp_pending): see _send.
        self._udp_pending: list[tuple[bytes, Address]] = []
        # suspend_udp(): the socket is closed until the core sends a datagram again, which
        # reopens it on the same port (_reopen_udp, one task at a time).
        self._udp_suspended = False
        self._udp_reopen: asyncio.Task[None] | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._streams: dict[Flow, _Stream] = {}
        # Connections being opened (a dict, not a set: an empty dict is 64 bytes once cleared,
        # an empty set 216, and a fleet keeps one per agent).
        self._connects: dict[asyncio.Task[None], None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # -- life cycle --------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._loop is not None

    @property
    def core(self) -> Core | None:
        return self._core

    async def open(self) -> dict[TransportName, int]:
        """Bind every transport; returns the bound ports.  Raises :class:`BindError`."""
        if self._loop is not None:
            return dict(self.bound)
        loop = asyncio.get_running_loop()
        self._loop = loop
        try:
            for transport, port in self.ports.items():
                if transport == "udp":
                    self.bound["udp"] = await self._open_udp(loop, port)
                else:
                    self.bound[transport] = await self._open_stream_server(loop, transport, port)
        except BaseException:
            await self.close()
            raise
        self.ports = dict(self.bound)  # a restart binds the same ports (SO_REUSEADDR)
        return dict(self.bound)

    async def _open_udp(self, loop: asyncio.AbstractEventLoop, port: int) -> int:
        sock = socket.socket(_family(self.address), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _set_buffer(sock, socket.SO_RCVBUF, getattr(socket, "SO_RCVBUFFORCE", None))
            _set_buffer(sock, socket.SO_SNDBUF, getattr(socket, "SO_SNDBUFFORCE", None))
            sock.bind((self.address, port))
        except OSError as exc:
            sock.close()
            raise BindError(self.name, self.address, port, "udp", exc) from None
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(self), sock=sock
        )
        self._udp = transport
        self._udp_protocol = protocol
        bound = int(sock.getsockname()[1])
        self._udp_local = (self.address, bound)
        return bound

    async def _open_stream_server(
        self, loop: asyncio.AbstractEventLoop, transport: TransportName, port: int
    ) -> int:
        sock = socket.socket(_family(self.address), socket.SOCK_STREAM)
        try:
            # A restarted pool must get its port back although old connections linger in
            # TIME_WAIT (what a restarted Windows service does too).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, port))
        except OSError as exc:
            sock.close()
            raise BindError(self.name, self.address, port, transport, exc) from None
        bound = int(sock.getsockname()[1])
        server = await loop.create_server(
            lambda: self._accept(transport), sock=sock, backlog=LISTEN_BACKLOG
        )
        self._servers.append(server)
        return bound

    def _accept(self, transport: TransportName) -> asyncio.Protocol:
        stream = _Stream(self, transport, None)
        if transport != "tls":
            return stream
        assert self._server_ssl is not None  # checked in __init__
        # Our own TLS layer over TCP, not create_server(ssl=...): see _Tls for why.
        return _Tls(stream, self._server_ssl, server_side=True)

    @property
    def udp_open(self) -> bool:
        """Whether the UDP socket is open (False while suspended, see :meth:`suspend_udp`)."""
        return self._udp is not None

    def suspend_udp(self) -> None:
        """Close the UDP socket until the core next sends a datagram; it is then reopened on
        the same port and what was sent goes out.  A client registered over TCP or TLS needs
        its UDP socket only for DNS, and a process running 10,000 agents would otherwise hold
        twice the file descriptors (benchmarks/agents_bench.py).  Datagrams that arrive
        meanwhile are not received (a closed port)."""
        if self._udp is None or self._udp_suspended:
            return
        self._send_udp_pending()
        self._udp.close()
        self._udp = None
        self._udp_protocol = None
        self._udp_suspended = True

    async def _reopen_udp(self) -> None:
        loop = self._loop
        try:
            if loop is not None and self._udp_suspended:
                try:
                    await self._open_udp(loop, self.bound.get("udp", 0))
                except BindError:  # the port was taken meanwhile: any port will do for DNS
                    await self._open_udp(loop, 0)
                self._udp_suspended = False
        except OSError as exc:
            self._debug(f"udp reopen failed: {exc}")
        finally:
            self._udp_reopen = None
        self._send_udp_pending()

    def now(self) -> float:
        """The core's ``now``: the loop's clock, scaled."""
        assert self._loop is not None
        return self._loop.time() * self.time_scale

    def attach(self, core: Core) -> None:
        """Connect ``core``; it receives from now on.  Arms its timer."""
        self._core = core
        self._udp_flows.clear()
        self.poke()

    def poke(self) -> None:
        """Flush after a command was given to the core outside an input (e.g. ``start(now)``)."""
        if self._core is not None and self._loop is not None:
            self._flush(self._core)

    async def close(self) -> None:
        """Close every socket and connection (a stopped process); the core is detached."""
        self._send_udp_pending()  # what the core sent before the stop leaves, as it would have
        loop = self._loop
        self._core = None
        self._cancel_timer()
        if self._udp_reopen is not None:
            self._udp_reopen.cancel()
            self._udp_reopen = None
        self._udp_suspended = False
        for task in self._connects:
            task.cancel()
        self._connects.clear()
        for stream in list(self._streams.values()):
            # A killed process: no graceful SIP goodbye, the kernel sends FIN (RST if unread
            # data is pending).
            stream.close(abort=True)
        self._streams.clear()
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            await asyncio.wait_for(server.wait_closed(), 5.0)
        if self._udp is not None and self._udp_protocol is not None:
            self._udp.close()
            # Wait for the socket to be really closed, so the same port can be bound again.
            await asyncio.wait_for(asyncio.shield(self._udp_protocol.closed), 5.0)
        self._udp = None
        self._udp_protocol = None
        self._udp_flows.clear()
        if loop is not None:
            self._loop = None

    # -- faults ------------------------------------------------------------------------------

    def disable_nic(self) -> None:
        """Silent host: see the module docstring for what that means per transport."""
        self._send_udp_pending()  # sent before the NIC went down
        self.nic_enabled = False
        for stream in self._streams.values():
            stream.pause()

    def enable_nic(self) -> None:
        self.nic_enabled = True
        for stream in list(self._streams.values()):
            stream.release()

    # -- inputs ------------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: Any) -> None:
        # The hot path: keep it to a few attribute loads and one call into the core.
        core = self._core
        if core is None or not self.nic_enabled:
            self.dropped += 1
            if self._debug_log is not None:
                self._debug(f"dropped udp from {addr[0]}:{addr[1]} (NIC disabled or no core)")
            return
        flow = self._udp_flows.get(addr)
        if flow is None:
            flow = Flow("udp", self._udp_local, (addr[0], addr[1]))
            if len(self._udp_flows) < _FLOW_CACHE:
                self._udp_flows[addr] = flow
        if self._debug_log is not None:
            self._debug(f"<- udp {addr[0]}:{addr[1]} {len(data)} bytes")
        assert self._loop is not None
        core.receive(data, flow, self._loop.time() * self.time_scale)
        self._flush(core)

    def _accepted(self, stream: _Stream) -> None:
        assert stream.flow is not None
        self._streams[stream.flow] = stream
        if self._debug_log is not None:
            self._debug(f"accepted {stream.flow.transport} from {stream.flow.remote}")

    def _stream_data(self, stream: _Stream, data: bytes) -> None:
        core = self._core
        flow = stream.flow
        if core is None or flow is None or self._loop is None:
            return  # not attached yet (the pool is being built): as if never read
        try:
            items = stream.framer.feed(data)
        except SipError as exc:
            # Framing is lost (no Content-Length, too large): the core gets the unframed bytes
            # so that it can answer 400/413 if a Via and CSeq can be read (RFC 3261 §8.2; a
            # protocol decision, so not ours), then the connection is closed.
            self._debug(f"framing error on {flow}: {exc}")
            unframed = bytes(getattr(stream.framer, "_buffer", b"") or data)
            core.receive(unframed, flow, self.now())
            self._flush(core)
            stream.close()
            self._streams.pop(flow, None)
            return
        if not items:
            return
        now = self.now()
        for item in items:
            if type(item) is bytes:
                core.receive(item, flow, now)
            elif isinstance(item, KeepAlivePing):
                stream.send(PONG)  # RFC 5626 §3.5.1: CRLFCRLF ping, CRLF pong
            elif self.expect_pongs:
                core.receive(PONG, flow, now)  # the answer to the core's own ping
        self._flush(core)

    def _stream_lost(self, stream: _Stream) -> None:
        flow = stream.flow
        if flow is None:
            return
        if self._streams.get(flow) is stream:
            del self._streams[flow]
        core = self._core
        if stream.closed_here or core is None or self._loop is None:
            return
        if self._debug_log is not None:
            self._debug(f"connection lost: {flow}")
        # The core decides whether a closed flow matters (a binding's flow, a pending NOTIFY).
        core.flow_failed(flow, self.now())
        self._flush(core)

    async def _connect(self, stream: _Stream, flow: Flow) -> None:
        loop = asyncio.get_running_loop()
        tls = flow.transport == "tls"
        host, port = flow.remote
        layer: _Tls | None = None
        protocol: asyncio.Protocol = stream
        if tls:
            assert self._client_ssl is not None  # _send checked
            # Our own TLS layer, not create_connection(ssl=...): see _Tls for why.
            protocol = layer = _Tls(stream, self._client_ssl, server_hostname=host)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.create_connection(
                    lambda: protocol,
                    host,
                    port,
                    # Leave from the pool's own address, as the real host would.
                    local_addr=(self.address, 0),
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
            if self._streams.get(flow) is stream:
                del self._streams[flow]
            core = self._core
            self._debug(f"connect {flow.transport} {host}:{port} failed: {exc}")
            if core is not None and not stream.closed_here:
                core.flow_failed(flow, loop.time() * self.time_scale)
                self._flush(core)

    # -- outputs -----------------------------------------------------------------------------

    def _flush(self, core: Core) -> None:
        """Send what the core wants sent, report its events, re-arm its one timer."""
        actions = core.actions()
        while actions:
            for action in actions:
                if type(action) is Send:
                    self._send(action.flow, action.data)
                elif type(action) is CloseFlow:
                    self._close_flow(action.flow)
                elif self._on_effect is not None and isinstance(action, Effect):
                    self._on_effect(action)  # the host performs it (a client's cache write)
                else:
                    raise TypeError(f"{self.name} asked for {action!r}, which nothing performs")
            actions = core.actions()
        events = core.events()
        if events and self._on_events is not None:
            self._on_events(events)
        deadline = core.next_deadline()
        if deadline != self._timer_at:
            self._arm(deadline)

    def _send(self, flow: Flow, data: bytes) -> None:
        if flow.transport == "udp":
            udp = self._udp
            if udp is not None and self.nic_enabled and self._loop is not None:
                if self._debug_log is not None:
                    self._debug(f"-> udp {flow.remote[0]}:{flow.remote[1]} {len(data)} bytes")
                # Speed: the datagrams go out at the end of this loop iteration, after every
                # datagram it read has been handled, not one sendto between two reads.  Under
                # load the loop reads bursts (up to 32 datagrams an iteration on uvloop), and
                # alternating Python and the kernel's loopback delivery per datagram cost 8-20%
                # more CPU per REGISTER (docs/benchmarks.md).  Order is kept; disable_nic and
                # close first send what is queued, so what leaves is unchanged.
                if not self._udp_pending:
                    self._loop.call_soon(self._send_udp_pending)
                self._udp_pending.append((data, flow.remote))
            elif self._udp_suspended and self.nic_enabled and self._loop is not None:
                self._udp_pending.append((data, flow.remote))
                if self._udp_reopen is None:
                    self._udp_reopen = self._loop.create_task(self._reopen_udp())
            else:
                self.dropped += 1
            return
        stream = self._streams.get(flow)
        if stream is None:
            if not self.nic_enabled or self._loop is None:
                return  # the SYN is lost: the core's transaction timer will notice
            if flow.transport == "tls" and self._client_ssl is None:
                self._debug(f"no client TLS context for {flow}")
                self._loop.call_soon(self._fail_later, flow)
                return
            stream = _Stream(self, flow.transport, flow)
            self._streams[flow] = stream
            task = self._loop.create_task(self._connect(stream, flow))
            self._connects[task] = None
            task.add_done_callback(self._connected)
        stream.send(data)

    def _connected(self, task: asyncio.Task[None]) -> None:
        self._connects.pop(task, None)
        if not self._connects:
            self._connects.clear()  # frees the table the dict kept after its last entry left

    def _send_udp_pending(self) -> None:
        """Put the queued UDP datagrams on the socket, in order (see _send)."""
        if not self._udp_pending:
            return
        pending, self._udp_pending = self._udp_pending, []
        udp = self._udp
        if udp is None:
            if self._udp_suspended:  # being reopened: _reopen_udp sends them
                self._udp_pending[:0] = pending
                return
            self.dropped += len(pending)  # no socket (close() sends the queue first)
            return
        sendto = udp.sendto
        for data, remote in pending:
            sendto(data, remote)

    def _fail_later(self, flow: Flow) -> None:
        core = self._core
        if core is not None and self._loop is not None:
            core.flow_failed(flow, self.now())
            self._flush(core)

    def _close_flow(self, flow: Flow) -> None:
        stream = self._streams.pop(flow, None)
        if stream is not None:
            stream.close()

    # -- the one timer -----------------------------------------------------------------------

    def _arm(self, deadline: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline / self.time_scale, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        due = self._timer_at
        self._timer = None
        self._timer_at = None
        core = self._core
        if core is None or self._loop is None:
            return
        now = self.now()
        # The loop runs a timer up to one clock-resolution early; the deadline has been reached
        # as far as the loop is concerned, so the core must not see a time just before it
        # (it would do nothing and ask for the same deadline again).
        if due is not None and now < due:
            now = due
        core.handle_timer(now)
        self._flush(core)

    # -- misc --------------------------------------------------------------------------------

    def _debug(self, text: str) -> None:
        if self._debug_log is not None:
            self._debug_log(f"{self.name}: {text}")

    @property
    def connections(self) -> list[Flow]:
        """The open (or opening) stream flows, for diagnostics and tests."""
        return list(self._streams)


def _set_buffer(sock: socket.socket, option: int, force: int | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    # Linux halves/caps the request at net.core.{r,w}mem_max; root may override the cap.
    if force is not None and sock.getsockopt(socket.SOL_SOCKET, option) < SOCKET_BUFFER:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            pass
