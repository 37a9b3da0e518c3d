"""Tiny raw-socket helpers for live tests: a UDP client, stream reads, a REGISTER builder.

Deliberately dumb (no transactions, no retransmission): tests use them to put exact bytes on
the wire and read exact bytes back.  Every wait takes a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from pathlib import Path
from typing import Any, cast

__all__ = ["WAIT", "UdpClient", "read_message", "register_request", "tls_client_context"]

WAIT = 5.0
"""Default upper bound of a wait (s): generous, so a loaded CI machine does not flake."""

_counter = itertools.count(1)


class UdpClient(asyncio.DatagramProtocol):
    """A UDP socket whose datagrams and socket errors (ICMP) land in queues."""

    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)

    @classmethod
    async def open(
        cls, local: str = "127.0.0.1", remote: tuple[str, int] | None = None
    ) -> UdpClient:
        """A socket on ``local`` (ephemeral port); ``remote`` connects it (to see ICMP errors)."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            cls, local_addr=(local, 0), remote_addr=remote
        )
        return protocol

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return (str(host), int(port))

    def send(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def receive(self, timeout: float = WAIT) -> bytes:
        data, _ = await asyncio.wait_for(self.datagrams.get(), timeout)
        return data

    async def error(self, timeout: float = WAIT) -> Exception:
        return await asyncio.wait_for(self.errors.get(), timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def tls_client_context(ca_path: str | Path) -> ssl.SSLContext:
    """A client context trusting only the deployment's CA (hostname checking on)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path))


async def read_message(reader: asyncio.StreamReader, timeout: float = WAIT) -> bytes:
    """Read one SIP message (head + Content-Length body) from a stream, bounded."""

    async def read() -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value.strip())
        body = await reader.readexactly(length) if length else b""
        return head + body

    return await asyncio.wait_for(read(), timeout)


def register_request(
    user: str,
    domain: str,
    local: tuple[str, int],
    *,
    transport: str = "UDP",
    expires: int = 3600,
    call_id: str | None = None,
    cseq: int = 1,
) -> bytes:
    """A minimal REGISTER for ``sip:user@domain`` sent from ``local`` (with an epid).

    The Request-URI names the domain, as Lync clients do; Via and Contact name ``local``.
    """
    n = next(_counter)
    call_id = call_id or f"test-{n}-{user}@{local[0]}"
    host, port = local
    lines = [
        f"REGISTER sip:{domain} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {host}:{port};branch=z9hG4bKtest{n:08d}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag=t{n};epid=ep{n:06d}",
        f"To: <sip:{user}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@{host}:{port};transport={transport.lower()}>",
        f"Expires: {expires}",
        "User-Agent: sipemu-test",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()
