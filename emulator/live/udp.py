"""A live host's one UDP socket: bound with large kernel buffers, datagrams out in batches,
closed while idle and reopened on demand (emulator/live/driver.py drives it).

Received datagrams go to the driver with their :class:`~emulator.net.Flow` (remembered per
source address, so the hot path does not build one per datagram); what the core sends is queued
and put on the socket at the end of the loop iteration (see :meth:`UdpSocket.send`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from emulator.live.sockets import BindError, family
from emulator.net import Address, Flow

__all__ = ["FLOW_CACHE", "SOCKET_BUFFER", "UdpSocket"]

SOCKET_BUFFER = 4 * 1024 * 1024
"""SO_RCVBUF / SO_SNDBUF asked for on UDP sockets: a 10,000 REGISTER/s burst must not overflow
the kernel queue while the loop is busy (Linux caps it at net.core.rmem_max unless root)."""

FLOW_CACHE = 200_000
"""UDP flows remembered per socket, so the hot path does not build a Flow per datagram."""


class _DatagramProtocol(asyncio.DatagramProtocol):
    __slots__ = ("_owner", "_received", "closed")

    def __init__(self, owner: UdpSocket) -> None:
        self._owner = owner
        self._received = owner._datagram
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # Linux reports ICMP errors on unconnected UDP sockets only with IP_RECVERR, and then
        # without the offending address: nothing the core could use.  Heartbeat and
        # transaction timers detect a dead UDP peer instead.
        self._owner._say(f"udp error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class UdpSocket:
    """One UDP socket on ``address``; ``deliver(data, flow)`` gets each datagram received.

    ``debug`` (already naming the host) receives a line per datagram and socket error; None
    keeps the hot path free of formatting.  :attr:`dropped` counts datagrams the core sent that
    found no socket.
    """

    __slots__ = (
        "_debug",
        "_deliver",
        "_flows",
        "_loop",
        "_pending",
        "_protocol",
        "_reopen",
        "_suspended",
        "_transport",
        "address",
        "dropped",
        "local",
        "name",
        "port",
    )

    def __init__(
        self,
        name: str,
        address: str,
        deliver: Callable[[bytes, Flow], None],
        debug: Callable[[str], None] | None,
    ) -> None:
        self.name = name
        self.address = address
        self.port = 0
        """The port bound by :meth:`open` (a reopened socket asks for it again)."""
        self.local: Address = (address, 0)
        self.dropped = 0
        self._deliver = deliver
        self._debug = debug
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _DatagramProtocol | None = None
        self._flows: dict[Any, Flow] = {}
        # Datagrams the core sent while handling the current loop iteration's input, put on the
        # socket together at its end (flush): see send.
        self._pending: list[tuple[bytes, Address]] = []
        # suspend(): the socket is closed until the core sends a datagram again, which reopens
        # it on the same port (_reopen_socket, one task at a time).
        self._suspended = False
        self._reopen: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        """Whether the socket is open (False while suspended, see :meth:`suspend`)."""
        return self._transport is not None

    async def open(self, loop: asyncio.AbstractEventLoop, port: int) -> int:
        """Bind ``port`` (0: ephemeral); returns the bound port.  Raises :class:`BindError`."""
        self._loop = loop
        self.port = await self._bind(port)
        return self.port

    async def _bind(self, port: int) -> int:
        assert self._loop is not None
        sock = socket.socket(family(self.address), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _set_buffer(sock, socket.SO_RCVBUF, getattr(socket, "SO_RCVBUFFORCE", None))
            _set_buffer(sock, socket.SO_SNDBUF, getattr(socket, "SO_SNDBUFFORCE", None))
            sock.bind((self.address, port))
        except OSError as exc:
            sock.close()
            raise BindError(self.name, self.address, port, "udp", exc) from None
        transport, protocol = await self._loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(self), sock=sock
        )
        self._transport = transport
        self._protocol = protocol
        bound = int(sock.getsockname()[1])
        self.local = (self.address, bound)
        return bound

    def forget_flows(self) -> None:
        """Drop the remembered flows (a new core is attached)."""
        self._flows.clear()

    # -- in ------------------------------------------------------------------------------------

    def _datagram(self, data: bytes, addr: Any) -> None:
        # The hot path: a dictionary look-up and one call into the driver.
        flow = self._flows.get(addr)
        if flow is None:
            flow = Flow("udp", self.local, (addr[0], addr[1]))
            if len(self._flows) < FLOW_CACHE:
                self._flows[addr] = flow
        self._deliver(data, flow)

    # -- out -----------------------------------------------------------------------------------

    def send(self, data: bytes, remote: Address) -> None:
        """Queue ``data`` for ``remote`` (the caller checked that the NIC is up); reopen the
        socket if it is suspended; count it in :attr:`dropped` if there is no socket."""
        loop = self._loop
        if self._transport is not None and loop is not None:
            if self._debug is not None:
                self._debug(f"-> udp {remote[0]}:{remote[1]} {len(data)} bytes")
            # Speed: the datagrams go out at the end of this loop iteration, after every
            # datagram it read has been handled, not one sendto between two reads.  Under
            # load the loop reads bursts (up to 32 datagrams an iteration on uvloop), and
            # alternating Python and the kernel's loopback delivery per datagram cost 8-20%
            # more CPU per REGISTER (docs/benchmarks.md).  Order is kept; the driver flushes
            # before disabling the NIC and before closing, so what leaves is unchanged.
            if not self._pending:
                loop.call_soon(self.flush)
            self._pending.append((data, remote))
        elif self._suspended and loop is not None:
            self._pending.append((data, remote))
            if self._reopen is None:
                self._reopen = loop.create_task(self._reopen_socket())
        else:
            self.dropped += 1

    def flush(self) -> None:
        """Put the queued datagrams on the socket, in order (see :meth:`send`)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        transport = self._transport
        if transport is None:
            if self._suspended:  # being reopened: _reopen_socket sends them
                self._pending[:0] = pending
                return
            self.dropped += len(pending)  # no socket (close() sends the queue first)
            return
        sendto = transport.sendto
        for data, remote in pending:
            sendto(data, remote)

    # -- suspending ----------------------------------------------------------------------------

    def suspend(self) -> None:
        """Close the socket until the core next sends a datagram; it is then reopened on the
        same port and what was sent goes out.  A client registered over TCP or TLS needs its
        UDP socket only for DNS, and a process running 10,000 agents would otherwise hold
        twice the file descriptors (benchmarks/agents_bench.py).  Datagrams that arrive
        meanwhile are not received (a closed port)."""
        if self._transport is None or self._suspended:
            return
        self.flush()
        self._transport.close()
        self._transport = None
        self._protocol = None
        self._suspended = True

    async def _reopen_socket(self) -> None:
        try:
            if self._loop is not None and self._suspended:
                try:
                    await self._bind(self.port)
                except BindError:  # the port was taken meanwhile: any port will do for DNS
                    await self._bind(0)
                self._suspended = False
        except OSError as exc:
            self._say(f"udp reopen failed: {exc}")
        finally:
            self._reopen = None
        self.flush()

    # -- closing -------------------------------------------------------------------------------

    def cancel_reopen(self) -> None:
        """Stop reopening a suspended socket (the host is stopping)."""
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        self._suspended = False

    async def close(self) -> None:
        """Close the socket and wait until it is closed, so that its port can be bound again."""
        if self._transport is not None and self._protocol is not None:
            self._transport.close()
            await asyncio.wait_for(asyncio.shield(self._protocol.closed), 5.0)
        self._transport = None
        self._protocol = None
        self._flows.clear()
        self._loop = None

    def _say(self, text: str) -> None:
        if self._debug is not None:
            self._debug(text)


def _set_buffer(sock: socket.socket, option: int, force: int | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    # Linux halves/caps the request at net.core.{r,w}mem_max; root may override the cap.
    if force is not None and sock.getsockopt(socket.SOL_SOCKET, option) < SOCKET_BUFFER:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            pass
