"""Every UDP datagram on the namespace's loopback interface, as the kernel saw it.

The live deployment's recorder sees only what reaches a pool's socket; a datagram to a
silent pool (dropped by the packet filter on input) or to a stopped one (answered with ICMP
port unreachable) never does.  The program's behaviour is what it *sent*: so UDP (SIP and
DNS) is taken from an ``AF_PACKET`` socket on ``lo`` (tapped before the input hook that drops
it), and TCP/TLS messages from the recorder (which holds the TLS plaintext).

Linux only, root (or CAP_NET_RAW) in the namespace.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from emulator.wire import Packet, WireProtocol

__all__ = ["LoopbackCapture"]

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4
_DNS_PORT = 53


class LoopbackCapture:
    """UDP datagrams on ``lo`` (each once: the outgoing copy is skipped), in a thread."""

    def __init__(self, interface: str = "lo") -> None:
        self.packets: list[Packet] = []
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        self._sock.bind((interface, 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="conform-capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[Packet]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with self._lock:
            return list(self.packets)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(70_000)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == _PACKET_OUTGOING:
                continue  # lo shows each packet twice: sent, then received
            packet = _udp(frame, time.time())
            if packet is not None:
                with self._lock:
                    self.packets.append(packet)


def _udp(frame: bytes, when: float) -> Packet | None:
    """The UDP payload of an Ethernet/IPv4 frame as a Packet, or None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    if ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    header = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    src = socket.inet_ntoa(ip[12:16])
    dst = socket.inet_ntoa(ip[16:20])
    udp = ip[header:total]
    if len(udp) < 8:
        return None
    sport, dport = struct.unpack("!HH", udp[:4])
    payload = bytes(udp[8:])
    protocol: WireProtocol = "dns" if _DNS_PORT in (sport, dport) else "sip"
    return Packet(when, "udp", (src, sport), (dst, dport), payload, protocol, True)
