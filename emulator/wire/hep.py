"""A tap that sends every packet as HEPv3 over UDP to a Homer / heplify / sngrep collector.

Rules of this file:

* :func:`encode` is the whole of HEPv3 that sipemu needs (the sipcapture HEP specification,
  "HEP3 Network Protocol Specification", rev. 12): the ``HEP3`` magic, the total length, then
  generic chunks (vendor 0x0000), each ``vendor id, type id, length`` (16 bits each, network
  order, the length counting the 6-byte chunk header) and its value:

  ====  ===================================  =====================================
  type  value                                what sipemu puts in it
  ====  ===================================  =====================================
  1     IP protocol family (uint8)           2 (AF_INET) or 10 (AF_INET6)
  2     IP protocol id (uint8)               17 (UDP) or 6 (TCP, also for TLS)
  3/4   IPv4 source / destination            the packet's addresses
  5/6   IPv6 source / destination            the packet's addresses
  7/8   source / destination port (uint16)   the packet's ports
  9     timestamp, seconds (uint32)          the packet's time (see below)
  10    timestamp, microseconds (uint32)
  11    protocol type (uint8)                1 (SIP) or 53 (DNS)
  12    capture agent id (uint32)            ``agent_id`` (CHOICE, default 2026)
  15    payload                              the message as sent
  ====  ===================================  =====================================

* No Python library for HEP is kept on the package registries (none on PyPI at all when this
  was written), so this encoder is ours; it is pinned by a test that decodes it by hand and by
  one against sngrep's HEP listener (tests/wire/test_hep.py).
* Times: a live run's wall clock as is; a simulation's virtual seconds from
  :data:`~emulator.wire.pcapng.VIRTUAL_EPOCH`, as in the pcapng file.
* UDP is fire and forget: a collector that is down costs nothing but the packets (an error
  from the socket, such as ICMP port unreachable, is counted in :attr:`HepSender.errors`).
"""

from __future__ import annotations

import socket
import struct

from emulator.wire import Capture, Packet
from emulator.wire.frames import host_bytes
from emulator.wire.pcapng import VIRTUAL_EPOCH

__all__ = ["DEFAULT_AGENT_ID", "PROTO_DNS", "PROTO_SIP", "HepSender", "encode", "parse_destination"]

PROTO_SIP = 1
PROTO_DNS = 53
DEFAULT_AGENT_ID = 2026
"""HEP capture agent id sipemu sends unless told (CHOICE: any number; Homer shows it)."""

_AF_INET = 2
_AF_INET6 = 10
_IPPROTO_TCP = 6
_IPPROTO_UDP = 17


def _chunk(type_id: int, value: bytes) -> bytes:
    return struct.pack("!HHH", 0, type_id, 6 + len(value)) + value


def encode(packet: Packet, *, time: float, agent_id: int = DEFAULT_AGENT_ID) -> bytes:
    """``packet`` as one HEPv3 message, stamped ``time`` (seconds since the Unix epoch)."""
    src = host_bytes(packet.src[0])
    dst = host_bytes(packet.dst[0])
    if len(src) != len(dst):  # a v4 and a v6 end: map the v4 one
        src, dst = (b"\x00" * 10 + b"\xff\xff" + a if len(a) == 4 else a for a in (src, dst))
    v4 = len(src) == 4
    ip_proto = _IPPROTO_UDP if packet.transport == "udp" else _IPPROTO_TCP
    micros = round(time * 1_000_000)
    seconds, micro = divmod(micros, 1_000_000)
    body = b"".join(
        (
            _chunk(1, struct.pack("!B", _AF_INET if v4 else _AF_INET6)),
            _chunk(2, struct.pack("!B", ip_proto)),
            _chunk(3 if v4 else 5, src),
            _chunk(4 if v4 else 6, dst),
            _chunk(7, struct.pack("!H", packet.src[1])),
            _chunk(8, struct.pack("!H", packet.dst[1])),
            _chunk(9, struct.pack("!I", seconds & 0xFFFFFFFF)),
            _chunk(10, struct.pack("!I", micro)),
            _chunk(11, struct.pack("!B", PROTO_DNS if packet.protocol == "dns" else PROTO_SIP)),
            _chunk(12, struct.pack("!I", agent_id & 0xFFFFFFFF)),
            _chunk(15, packet.data),
        )
    )
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


class HepSender:
    """A :class:`~emulator.wire.Tap` sending each packet to ``(host, port)`` over UDP."""

    def __init__(
        self,
        host: str,
        port: int,
        capture: Capture,
        *,
        agent_id: int = DEFAULT_AGENT_ID,
        epoch: float = VIRTUAL_EPOCH,
    ) -> None:
        self.destination = (host, port)
        self.agent_id = agent_id
        self.epoch = epoch if capture.virtual else 0.0
        self.sent = 0
        self.errors = 0
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = info[0]
        self._address = address
        self._socket: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def packet(self, packet: Packet) -> None:
        sock = self._socket
        if sock is None:
            return
        data = encode(packet, time=packet.time + self.epoch, agent_id=self.agent_id)
        try:
            sock.sendto(data, self._address)
            self.sent += 1
        except OSError:  # buffer full, collector down (ICMP): HEP over UDP may lose packets
            self.errors += 1

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def parse_destination(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6) as a pair; raises ValueError with a sentence."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--hep expects HOST:PORT (e.g. 127.0.0.1:9060), not {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
