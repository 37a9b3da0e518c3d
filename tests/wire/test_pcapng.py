"""pcapng of a simulated run, read back with tshark: every SIP and DNS message decodes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dpkt
import pytest

from emulator.scenario.model import load_scenario
from emulator.scenario.runner import finish, prepare
from emulator.sip.message import Request, Response, parse_message
from emulator.wire import Capture, Packet, PacketLog, Taps
from emulator.wire.frames import Framer
from emulator.wire.pcapng import TLS_COMMENT, VIRTUAL_EPOCH, PcapngWriter

from .tshark import decode_as, fields, sip_messages

ROOT = Path(__file__).resolve().parents[2]
R1_TEST2 = ROOT / "scenarios" / "r1-test2-clientuser2-fails-over-and-back.toml"


@pytest.fixture(scope="module")
def r1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Packet]]:
    """R1 test 2 captured once for the module: (the pcapng file, the packets)."""
    path = tmp_path_factory.mktemp("wire") / "r1.pcapng"
    return path, simulated_capture(path)


def simulated_capture(path: Path) -> list[Packet]:
    """Run R1 test 2 uncoasted with a pcapng writer and a PacketLog on the world's tap."""
    scenario = load_scenario(R1_TEST2)
    deployment = prepare(scenario, coast=False)
    log = PacketLog()
    deployment.world.tap = Taps([log, PcapngWriter(path, Capture(virtual=True, name="r1"))])
    try:
        deployment.run_until(scenario.duration)
    finally:
        deployment.world.tap.close()
    assert finish(scenario, deployment).passed
    return log.packets


def test_every_sip_message_of_a_simulated_run_decodes(r1: tuple[Path, list[Packet]]) -> None:
    path, packets = r1
    sip = sip_messages(packets)
    tls = [p for p in sip if p.transport == "tls"]
    assert tls and len(tls) < len(sip)  # the run has TLS sign-ins and UDP heartbeats
    ports = {p.src[1] for p in tls} | {p.dst[1] for p in tls}
    rows = fields(
        path,
        "sip",
        ["sip.Method", "sip.Status-Code", "sip.Call-ID", "sip.CSeq", "frame.comment"],
        decode_as(tcp=ports & {5061}),
    )
    assert len(rows) == len(sip)
    expected = []
    for packet in sip:
        message = parse_message(packet.data)
        method = message.method if isinstance(message, Request) else ""
        status = str(message.status) if isinstance(message, Response) else ""
        comment = TLS_COMMENT if packet.transport == "tls" else ""
        expected.append(
            [method, status, message.headers.get("Call-ID"), message.headers.get("CSeq"), comment]
        )
    assert rows == expected
    assert Counter(r[0] for r in rows)["REGISTER"] >= 3
    assert {"200", "301"} <= {r[1] for r in rows}


def test_dns_queries_and_srv_answers_decode(r1: tuple[Path, list[Packet]]) -> None:
    path, packets = r1
    dns = [p for p in packets if p.protocol == "dns"]
    assert dns
    # The fake DNS listens on 5353, which Wireshark takes for mDNS unless told.
    rows = fields(
        path,
        "dns",
        ["dns.qry.name", "dns.qry.type", "dns.flags.response", "dns.srv.target", "dns.srv.port"],
        decode_as(dns={5353}),
    )
    assert len(rows) == len(dns)
    for row, packet in zip(rows, dns, strict=True):
        message = dpkt.dns.DNS(packet.data)
        assert row[0] == message.qd[0].name
        assert row[2] == ("1" if message.qr else "0")
    srv = [r for r in rows if r[1] == "33" and r[2] == "1"]
    assert srv and srv[0][:1] == ["_sipinternaltls._tcp.contoso.test"]
    assert srv[0][3:] == ["fe1.contoso.test", "5061"]


def test_timestamps_are_virtual_seconds_from_the_epoch(r1: tuple[Path, list[Packet]]) -> None:
    path, packets = r1
    rows = fields(path, "sip || dns", ["frame.time_epoch"], decode_as(tcp={5061}, dns={5353}))
    times = [float(r[0]) - VIRTUAL_EPOCH for r in rows]
    wanted = [p.time for p in packets if p.protocol == "dns" or p.data.strip(b"\r\n")]
    assert times == pytest.approx(wanted, abs=1e-6)
    assert times[-1] == pytest.approx(900.0)  # the scenario's last instant


def test_tcp_streams_have_one_handshake_and_consistent_seq_numbers(
    r1: tuple[Path, list[Packet]],
) -> None:
    path, packets = r1
    connections = {frozenset((p.src, p.dst)) for p in packets if p.transport != "udp"}
    syn = fields(path, "tcp.flags.syn == 1 && tcp.flags.ack == 0", ["tcp.stream"])
    assert len(syn) == len(connections)
    # Wireshark's TCP analysis finds nothing wrong (no lost segment, no retransmission, no
    # out-of-order): the sequence and acknowledgement numbers are consistent per direction.
    assert fields(path, "tcp.analysis.flags && !tcp.analysis.keep_alive", ["frame.number"]) == []


def test_the_file_reads_up_to_the_last_packet_when_the_run_dies(tmp_path: Path) -> None:
    path = tmp_path / "partial.pcapng"
    writer = PcapngWriter(path, Capture(virtual=True))
    framer_input = Packet(1.5, "udp", ("127.0.0.1", 5060), ("127.0.0.11", 5060), b"x" * 10)
    writer.packet(framer_input)
    # Not closed: what a crash leaves.  Everything written so far is on disk already.
    frames = list(dpkt.pcapng.Reader(path.open("rb")))
    assert len(frames) == 1
    writer.close()
    writer.close()  # twice is fine
    writer.packet(framer_input)  # after close: ignored, not an error
    assert len(list(dpkt.pcapng.Reader(path.open("rb")))) == 1


def test_ipv6_and_names_are_framed() -> None:
    framer = Framer()
    v6 = framer.frames(Packet(0.0, "udp", ("::1", 5060), ("::1", 5061), b"OPTIONS"))
    assert dpkt.ip6.IP6(v6[0].data).data.data == b"OPTIONS"
    named = framer.frames(Packet(0.0, "tcp", ("host.test", 1), ("127.0.0.1", 2), b"x"))
    assert [f.handshake for f in named] == [True, True, True, False]
    ip = dpkt.ip.IP(named[-1].data)
    assert ip.src[:2] == bytes((198, 18)) or ip.src[:2] == bytes((198, 19))
