"""The loopback capture's frame decoding and the namespace check, without a namespace."""

from __future__ import annotations

import socket
import struct

import pytest

from emulator.conform import namespace
from emulator.conform.capture import _udp


def frame(src: str, dst: str, sport: int, dport: int, payload: bytes, proto: int = 17) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = (
        struct.pack("!BBHHHBBH", 0x45, 0, total, 0, 0, 64, proto, 0)
        + socket.inet_aton(src)
        + socket.inet_aton(dst)
    )
    return b"\x00" * 12 + b"\x08\x00" + ip + udp + b"\x00" * 4  # trailing padding ignored


def test_a_sip_datagram_is_read_with_its_addresses() -> None:
    packet = _udp(frame("127.0.0.100", "127.0.0.11", 5060, 5060, b"REGISTER ..."), 12.5)
    assert packet is not None
    assert packet.src == ("127.0.0.100", 5060) and packet.dst == ("127.0.0.11", 5060)
    assert packet.data == b"REGISTER ..." and packet.protocol == "sip"
    assert packet.time == 12.5 and packet.transport == "udp"


def test_port_53_is_dns_and_tcp_is_not_taken() -> None:
    dns = _udp(frame("127.0.0.100", "127.0.0.10", 40000, 53, b"\x12\x34"), 0.0)
    assert dns is not None and dns.protocol == "dns"
    assert _udp(frame("127.0.0.100", "127.0.0.11", 1, 2, b"x", proto=6), 0.0) is None
    assert _udp(b"\x00" * 10, 0.0) is None


def test_without_unshare_the_reason_is_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    # Namespaces possible (netns.py says so), but util-linux's unshare, which enter() runs,
    # is missing.
    monkeypatch.setattr("emulator.live.netns.namespace_support", lambda: None)
    monkeypatch.setattr("emulator.conform.namespace.shutil.which", lambda tool: None)
    problem = namespace.namespace_problem()
    assert problem is not None
    assert problem.startswith("unshare is not installed: sipemu conform needs util-linux")
