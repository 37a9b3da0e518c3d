"""HEPv3 export: the encoder, decoded by hand, and a real receiver (sngrep's HEP listener)."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from emulator.scenario.model import load_scenario
from emulator.scenario.runner import prepare
from emulator.sip.message import parse_message
from emulator.wire import Capture, Packet, PacketLog
from emulator.wire.hep import DEFAULT_AGENT_ID, HepSender, encode, parse_destination
from emulator.wire.pcapng import VIRTUAL_EPOCH
from tests.peers import require_program

from .tshark import decode_as, fields, sip_messages

ROOT = Path(__file__).resolve().parents[2]
R1_TEST2 = ROOT / "scenarios" / "r1-test2-clientuser2-fails-over-and-back.toml"


def chunks(data: bytes) -> dict[int, bytes]:
    """A HEPv3 message's generic chunks by type (decoded by hand, as the spec lays them out)."""
    assert data[:4] == b"HEP3"
    (length,) = struct.unpack("!H", data[4:6])
    assert length == len(data)
    found: dict[int, bytes] = {}
    at = 6
    while at < length:
        vendor, kind, size = struct.unpack("!HHH", data[at : at + 6])
        assert vendor == 0 and size >= 6
        found[kind] = data[at + 6 : at + size]
        at += size
    assert at == length
    return found


def test_a_tls_sip_message_is_encoded_chunk_by_chunk() -> None:
    packet = Packet(
        12.25, "tls", ("127.0.0.1", 49152), ("127.0.0.11", 5061), b"REGISTER sip:x SIP/2.0\r\n"
    )
    found = chunks(encode(packet, time=VIRTUAL_EPOCH + packet.time))
    assert found[1] == b"\x02"  # AF_INET
    assert found[2] == b"\x06"  # TCP carries TLS
    assert found[3] == bytes((127, 0, 0, 1)) and found[4] == bytes((127, 0, 0, 11))
    assert struct.unpack("!H", found[7])[0] == 49152
    assert struct.unpack("!H", found[8])[0] == 5061
    assert struct.unpack("!I", found[9])[0] == int(VIRTUAL_EPOCH) + 12
    assert struct.unpack("!I", found[10])[0] == 250_000
    assert found[11] == b"\x01"  # SIP
    assert struct.unpack("!I", found[12])[0] == DEFAULT_AGENT_ID
    assert found[15] == packet.data


def test_dns_over_ipv6_is_encoded_with_its_protocol_type() -> None:
    packet = Packet(0.0, "udp", ("::1", 40000), ("::1", 5353), b"\x00" * 12, "dns")
    found = chunks(encode(packet, time=1.0))
    assert found[1] == b"\x0a" and found[2] == b"\x11"
    assert found[5] == bytes(15) + b"\x01" and 3 not in found
    assert found[11] == bytes((53,))


def test_destinations_are_parsed_or_refused_with_a_sentence() -> None:
    assert parse_destination("127.0.0.1:9060") == ("127.0.0.1", 9060)
    assert parse_destination("[::1]:9060") == ("::1", 9060)
    for bad in ("127.0.0.1", "host:0", ":9060", "host:port"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_destination(bad)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling a condition with a deadline, not waiting for things to settle


def test_sngrep_receives_every_sip_message_of_a_simulated_run(tmp_path: Path) -> None:
    sngrep = require_program("sngrep")
    require_program("tshark")
    scenario = load_scenario(R1_TEST2)
    deployment = prepare(scenario, coast=False)
    log = PacketLog()
    deployment.world.tap = log
    deployment.run_until(60.0)  # sign-ins over TLS, DNS, heartbeats over UDP
    sip = sip_messages(log.packets)
    assert {p.transport for p in sip} == {"udp", "tls"}

    port = _free_udp_port()
    out = tmp_path / "sngrep.pcap"
    # -N: no interface; -q: quiet; -L: the HEP listener; -O: what it captured, as pcap.
    listener = subprocess.Popen(
        [sngrep, "-N", "-q", "-L", f"udp:127.0.0.1:{port}", "-O", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(lambda: _bound(port) or listener.poll() is not None, 10.0, "sngrep to listen")
        assert listener.poll() is None, listener.stderr.read() if listener.stderr else ""
        sender = HepSender("127.0.0.1", port, Capture(virtual=True))
        for packet in log.packets:
            sender.packet(packet)
        sender.close()
        assert sender.sent == len(log.packets) and sender.errors == 0

        def received() -> list[list[str]]:
            if not out.exists():
                return []
            return fields(out, "sip", ["sip.Call-ID", "sip.CSeq"], decode_as(tcp={5061}))

        _wait(lambda: len(received()) >= len(sip), 20.0, "sngrep to write every SIP message")
    finally:
        listener.terminate()
        listener.wait(10)
    rows = received()
    expected = []
    for packet in sip:
        message = parse_message(packet.data)
        expected.append([message.headers.get("Call-ID"), message.headers.get("CSeq")])
    assert sorted(rows) == sorted(expected)
