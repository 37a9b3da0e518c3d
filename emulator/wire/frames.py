"""IP, UDP and TCP headers made up for the packets a tap saw, so that a capture file decodes.

Rules of this file:

* sipemu knows each message and its two endpoints, not the IP packets the kernel made of it
  (a simulation makes none at all), so the framing is synthesised: one IPv4 or IPv6 packet per
  message, with correct lengths and checksums (dpkt computes them).
* UDP: one datagram per :class:`~emulator.wire.Packet`.
* TCP and TLS: one segment per message, on a connection named by its two endpoints.  The first
  message seen on a connection is preceded by a synthetic handshake (SYN, SYN-ACK, ACK) from
  its sender; sequence and acknowledgement numbers then run on per direction, so Wireshark
  follows the stream and reassembles nothing (each segment holds one whole message).  A
  connection is never closed in the file (sipemu does not tell taps of FIN or RST).
* DNS over TCP: a :class:`~emulator.wire.Packet` holds the DNS message; its segment is given
  the two-byte length prefix it had on the wire (RFC 1035 §4.2.2).
* Initial sequence numbers are derived from the endpoints (not drawn), so the same run makes
  the same file.
* A host that is not an IP literal (never the case in sipemu's topologies, but a test may name
  one) is given a stable address in 198.18.0.0/15 (RFC 2544's benchmarking range).
"""

from __future__ import annotations

import ipaddress
import zlib
from dataclasses import dataclass

import dpkt

from emulator.net import Address
from emulator.wire import Packet

__all__ = ["Frame", "Framer", "host_bytes"]

_TCP_SYN = dpkt.tcp.TH_SYN
_TCP_ACK = dpkt.tcp.TH_ACK
_TCP_PSH = dpkt.tcp.TH_PUSH
_WINDOW = 65535


@dataclass(frozen=True, slots=True)
class Frame:
    """One synthesised IP packet: raw IPv4/IPv6 bytes (pcapng link type RAW)."""

    data: bytes
    handshake: bool = False
    """A synthetic SYN / SYN-ACK / ACK, not a message of the run."""


def host_bytes(host: str) -> bytes:
    """The packed IP address of ``host`` (4 or 16 bytes); a name maps into 198.18.0.0/15."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).packed
    except ValueError:
        index = zlib.crc32(host.encode()) & 0x1FFFF
        return bytes((198, 18 + (index >> 16), (index >> 8) & 0xFF, index & 0xFF))


@dataclass(slots=True)
class _Direction:
    seq: int


@dataclass(slots=True)
class _Connection:
    directions: dict[tuple[Address, Address], _Direction]


class Framer:
    """Turns packets into IP frames; keeps each TCP connection's sequence numbers."""

    def __init__(self) -> None:
        self._connections: dict[frozenset[Address], _Connection] = {}
        self._hosts: dict[str, bytes] = {}

    def frames(self, packet: Packet) -> list[Frame]:
        """The frames for ``packet``: one, or four for a connection's first message."""
        src, dst = packet.src, packet.dst
        if packet.transport == "udp":
            udp = dpkt.udp.UDP(sport=src[1], dport=dst[1], data=packet.data)
            udp.ulen = len(udp)
            return [Frame(self._ip(src, dst, dpkt.ip.IP_PROTO_UDP, udp))]
        frames: list[Frame] = []
        key = frozenset((src, dst))
        connection = self._connections.get(key)
        if connection is None:
            connection = self._open(src, dst, frames)
            self._connections[key] = connection
        out = connection.directions[(src, dst)]
        back = connection.directions[(dst, src)]
        data = packet.data
        if packet.protocol == "dns":  # RFC 1035 §4.2.2: a length prefix on TCP
            data = len(data).to_bytes(2, "big") + data
        tcp = dpkt.tcp.TCP(
            sport=src[1],
            dport=dst[1],
            seq=out.seq,
            ack=back.seq,
            flags=_TCP_PSH | _TCP_ACK,
            win=_WINDOW,
            data=data,
        )
        out.seq = (out.seq + len(data)) & 0xFFFFFFFF
        frames.append(Frame(self._ip(src, dst, dpkt.ip.IP_PROTO_TCP, tcp)))
        return frames

    def _open(self, src: Address, dst: Address, frames: list[Frame]) -> _Connection:
        """A handshake from ``src`` (taken as the side that connected) to ``dst``."""
        a = _Direction(_isn(src, dst))
        b = _Direction(_isn(dst, src))
        proto = dpkt.ip.IP_PROTO_TCP
        syn = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=a.seq, flags=_TCP_SYN, win=_WINDOW)
        a.seq = (a.seq + 1) & 0xFFFFFFFF
        syn_ack = dpkt.tcp.TCP(
            sport=dst[1], dport=src[1], seq=b.seq, ack=a.seq, flags=_TCP_SYN | _TCP_ACK,
            win=_WINDOW,
        )  # fmt: skip
        b.seq = (b.seq + 1) & 0xFFFFFFFF
        ack = dpkt.tcp.TCP(
            sport=src[1], dport=dst[1], seq=a.seq, ack=b.seq, flags=_TCP_ACK, win=_WINDOW
        )
        frames.append(Frame(self._ip(src, dst, proto, syn), handshake=True))
        frames.append(Frame(self._ip(dst, src, proto, syn_ack), handshake=True))
        frames.append(Frame(self._ip(src, dst, proto, ack), handshake=True))
        return _Connection({(src, dst): a, (dst, src): b})

    def _packed(self, host: str) -> bytes:
        packed = self._hosts.get(host)
        if packed is None:
            packed = self._hosts[host] = host_bytes(host)
        return packed

    def _ip(self, src: Address, dst: Address, proto: int, payload: dpkt.Packet) -> bytes:
        source, destination = self._packed(src[0]), self._packed(dst[0])
        if len(source) != len(destination):  # v4 to v6 cannot happen on a socket: map v4
            source = _as_v6(source)
            destination = _as_v6(destination)
        if len(source) == 4:
            ip = dpkt.ip.IP(src=source, dst=destination, p=proto, ttl=64, data=payload)
            ip.len = len(ip)
            return bytes(ip)
        ip6 = dpkt.ip6.IP6(
            src=source, dst=destination, nxt=proto, hlim=64, plen=len(payload), data=payload
        )
        return bytes(ip6)  # dpkt fills in the UDP/TCP checksum (its sum is 0)


def _as_v6(packed: bytes) -> bytes:
    return packed if len(packed) == 16 else b"\x00" * 10 + b"\xff\xff" + packed


def _isn(src: Address, dst: Address) -> int:
    """A stable initial sequence number for one direction of a connection."""
    return zlib.crc32(f"{src[0]}:{src[1]}>{dst[0]}:{dst[1]}".encode()) & 0xFFFFFFFF
