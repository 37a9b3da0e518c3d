"""A live deployment's capture: pools, fake DNS and agents on loopback record every message
once, with real addresses, and tshark decodes the file; live TLS writes an SSLKEYLOGFILE."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from clients.driver import ClientConfig, Fleet, client_ssl_context
from emulator.live.deployment import Deployment
from emulator.sip.message import Request, Response, parse_message
from emulator.testing.sip_client import UdpClient, register_request
from emulator.topology import default_topology
from emulator.wire import Capture, Packet, PacketLog, Taps
from emulator.wire.live import WireRecorder
from emulator.wire.pcapng import TLS_COMMENT, PcapngWriter

from .tshark import decode_as, fields, sip_messages

pytestmark = pytest.mark.live

WAIT = 15.0


async def capture_live(tmp_path: Path, *, agents_record: bool) -> tuple[Path, list[Packet], int]:
    """`sipemu up` of the default topology with a UDP REGISTER from a test socket and two
    Lync 2010 agents signing in over TLS; returns the file, the packets and the DNS port."""
    path = tmp_path / "live.pcapng"
    log = PacketLog()
    taps = Taps([log, PcapngWriter(path, Capture(virtual=False, name="test"))])
    recorder = WireRecorder(taps)
    deployment = Deployment(
        default_topology().with_ephemeral_ports(),
        seed=1,
        quiet=True,
        recorder=recorder,
        keylog=tmp_path / "keys.log",
    )
    try:
        await deployment.start()
        udp = await UdpClient.open("127.0.0.1")
        try:
            fe1 = deployment.pool_address("fe1.contoso.test", "udp")
            udp.send(register_request("clientuser1", "contoso.test", udp.address), fe1)
            assert (await udp.receive()).startswith(b"SIP/2.0 200")
        finally:
            udp.close()
        context = client_ssl_context(deployment.ca_path)
        context.keylog_filename = str(tmp_path / "keys.log")
        fleet = Fleet(
            [
                ClientConfig(n, f"sip:{n.lower()}@contoso.test")
                for n in ("ClientUser1", "ClientUser2")
            ],
            dns_server=deployment.dns_address,
            seed=1,
            client_ssl=context,
            recorder=recorder if agents_record else None,
        )
        await fleet.start()
        try:
            fleet.sign_in()
            assert await fleet.wait_for_state("registered", timeout=WAIT), fleet.states()
        finally:
            await fleet.stop(unregister=True)
        dns_port = deployment.dns_address[1]
    finally:
        await deployment.stop()
        taps.close()
    return path, log.packets, dns_port


@pytest.mark.parametrize("agents_record", [False, True], ids=["external-agents", "same-run"])
async def test_a_live_run_is_captured_once_per_message_and_decodes(
    tmp_path: Path, agents_record: bool
) -> None:
    path, packets, dns_port = await capture_live(tmp_path, agents_record=agents_record)
    # Once per message: the agents' own recording (same run) adds nothing twice.
    seen = Counter((p.transport, p.src, p.dst, p.data) for p in packets)
    assert [k for k, n in seen.items() if n > 1 and k[3].strip(b"\r\n")] == []
    sip = sip_messages(packets)
    assert {p.transport for p in sip} == {"udp", "tls"}
    tls_ports = {p.dst[1] for p in sip if p.transport == "tls" and p.dst[0].startswith("127.0.0.1")}
    tls_ports |= {p.src[1] for p in sip if p.transport == "tls"}
    udp_ports = {p.src[1] for p in sip if p.transport == "udp"}
    udp_ports |= {p.dst[1] for p in sip if p.transport == "udp"}
    rows = fields(
        path,
        "sip",
        ["sip.Method", "sip.Status-Code", "sip.Call-ID", "frame.comment", "frame.time_epoch"],
        decode_as(tcp=tls_ports, udp=udp_ports),
    )
    expected = []
    for packet in sip:
        message = parse_message(packet.data)
        expected.append(
            [
                message.method if isinstance(message, Request) else "",
                str(message.status) if isinstance(message, Response) else "",
                message.headers.get("Call-ID"),
                TLS_COMMENT if packet.transport == "tls" else "",
            ]
        )
    assert [r[:4] for r in rows] == expected
    # Real timestamps: what the drivers stamped, in order.
    assert [float(r[4]) for r in rows] == pytest.approx([p.time for p in sip], abs=1e-6)
    methods = Counter(r[0] for r in rows)
    assert methods["REGISTER"] >= 4  # the UDP one, two sign-ins (one redirected), unregisters
    assert "301" in {r[1] for r in rows}
    dns = [p for p in packets if p.protocol == "dns"]
    answers = fields(
        path,
        "dns.flags.response == 1",
        ["dns.qry.name", "dns.srv.target"],
        decode_as(dns={dns_port}),
    )
    assert len(answers) == len([p for p in dns if p.src[1] == dns_port]) > 0
    assert ["_sipinternaltls._tcp.contoso.test", "fe1.contoso.test"] in answers


async def test_live_tls_writes_an_sslkeylogfile(tmp_path: Path) -> None:
    await capture_live(tmp_path, agents_record=False)
    keys = (tmp_path / "keys.log").read_text()
    # TLS 1.3 secrets (or a TLS 1.2 master secret), one line per session and secret.
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in keys or "CLIENT_RANDOM" in keys
