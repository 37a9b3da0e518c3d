"""The live deployment on real loopback sockets (ephemeral ports), through the pytest fixtures."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from emulator.sip.headers import PresenceState
from emulator.sip.message import Response, parse_message
from emulator.testing import RunningDeployment
from emulator.testing.sip_client import (
    WAIT,
    UdpClient,
    read_message,
    register_request,
    tls_client_context,
)
from emulator.topology import parse_topology
from fakedns.records import SrvRecord

pytestmark = pytest.mark.live

DOMAIN = "contoso.test"
FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"

# The R1 lab with short timers (failover 2 s, failback 3 s), shipped as topologies/fast.toml.
FAST = (Path(__file__).resolve().parents[2] / "topologies" / "fast.toml").read_text()


async def udp_exchange(
    running: RunningDeployment, pool: str, user: str, **kwargs: object
) -> Response:
    client = await UdpClient.open()
    try:
        client.send(
            register_request(user, DOMAIN, client.address, **kwargs),  # type: ignore[arg-type]
            running.pool_address(pool, "udp"),
        )
        message = parse_message(await client.receive())
    finally:
        client.close()
    assert isinstance(message, Response)
    return message


async def test_clientuser2_at_fe1_is_redirected_home_with_its_backup(
    sipemu: RunningDeployment,
) -> None:
    moved = await udp_exchange(sipemu, FE1, "clientuser2")
    assert (moved.status, moved.reason) == (301, "Redirect request to Home Server")
    fe2_tls = sipemu.pool_address(FE2, "tls")[1]
    fe1_tls = sipemu.pool_address(FE1, "tls")[1]
    assert moved.headers.get_all("Contact") == [
        f"<sip:fe2.contoso.test:{fe2_tls};transport=TLS>;q=0.7",
        f"<sip:fe1.contoso.test:{fe1_tls};transport=TLS>;q=0.3",
    ]
    assert sipemu.bindings() == []


async def test_clientuser1_at_fe1_is_registered_with_presence_state(
    sipemu: RunningDeployment,
) -> None:
    ok = await udp_exchange(sipemu, FE1, "clientuser1", expires=600)
    assert ok.status == 200
    presence = PresenceState.parse(ok.headers.get("presence-state") or "")
    assert (presence.register_action, presence.is_connected_to_primary) == ("added", True)
    assert ok.headers.get("Expires") == "600"
    (binding,) = sipemu.bindings(FE1)
    assert binding.aor == "sip:clientuser1@contoso.test"
    assert sipemu.bindings(FE2) == []


async def test_register_over_tcp_and_tls(sipemu: RunningDeployment) -> None:
    host, port = sipemu.pool_address(FE1, "tcp")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(register_request("clientuser1", DOMAIN, ("127.0.0.1", 5099), transport="TCP"))
        ok = parse_message(await read_message(reader), stream=True)
    finally:
        writer.close()
    assert isinstance(ok, Response) and ok.status == 200

    host, port = sipemu.pool_address(FE2, "tls")
    context = tls_client_context(sipemu.ca_path)
    # The certificate names the pool's FQDN: verification by name, as a SIP client does.
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=FE2)
    try:
        writer.write(register_request("clientuser2", DOMAIN, ("127.0.0.1", 5098), transport="TLS"))
        ok = parse_message(await read_message(reader), stream=True)
    finally:
        writer.close()
    assert isinstance(ok, Response) and ok.status == 200
    assert [b.aor for b in sipemu.bindings(FE2)] == ["sip:clientuser2@contoso.test"]


async def test_tls_certificate_is_rejected_without_the_ca(sipemu: RunningDeployment) -> None:
    host, port = sipemu.pool_address(FE1, "tls")
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=ssl.create_default_context(), server_hostname=FE1
            ),
            WAIT,
        )


async def test_garbage_gets_no_crash_and_the_next_register_works(
    sipemu: RunningDeployment,
) -> None:
    client = await UdpClient.open()
    try:
        target = sipemu.pool_address(FE1, "udp")
        client.send(b"\x00\x01garbage\xff\r\n\r\n", target)
        broken = register_request("clientuser1", DOMAIN, client.address).replace(
            b"CSeq: 1 REGISTER", b"CSeq: one REGISTER"
        )
        client.send(broken, target)
        bad = parse_message(await client.receive())
        assert isinstance(bad, Response) and bad.status == 400
        assert "ms-diagnostics" in bad.headers
    finally:
        client.close()
    # Garbage on a stream: the connection is closed, the pool keeps serving.
    host, port = sipemu.pool_address(FE1, "tcp")
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GARBAGE WITHOUT FRAMING\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()
    ok = await udp_exchange(sipemu, FE1, "clientuser1")
    assert ok.status == 200
    assert any("bad message" in line for line in sipemu.log_lines())


async def test_stop_pool_refuses_and_start_pool_serves_again_without_bindings(
    sipemu: RunningDeployment,
) -> None:
    assert (await udp_exchange(sipemu, FE1, "clientuser1")).status == 200
    sipemu.stop_pool(FE1)
    assert not sipemu.is_running(FE1)
    host, port = sipemu.pool_address(FE1, "tcp")
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection(host, port), WAIT)
    client = await UdpClient.open(remote=sipemu.pool_address(FE1, "udp"))
    try:
        client.send(register_request("clientuser1", DOMAIN, client.address))
        assert isinstance(await client.error(), ConnectionRefusedError)  # ICMP port unreachable
    finally:
        client.close()
    sipemu.start_pool(FE1)
    assert sipemu.bindings(FE1) == []  # a fresh process
    assert (await udp_exchange(sipemu, FE1, "clientuser1", call_id="again")).status == 200


async def test_disabled_nic_is_silent_then_serves_again(sipemu: RunningDeployment) -> None:
    sipemu.disable_nic(FE1)
    client = await UdpClient.open()
    try:
        target = sipemu.pool_address(FE1, "udp")
        client.send(register_request("clientuser1", DOMAIN, client.address), target)
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.5)  # bounded: silence is the expected outcome
        sipemu.enable_nic(FE1)
        client.send(register_request("clientuser1", DOMAIN, client.address, call_id="x"), target)
        ok = parse_message(await client.receive())
    finally:
        client.close()
    assert isinstance(ok, Response) and ok.status == 200


def test_heartbeats_fail_over_and_back_with_short_timers(
    sipemu_factory: object,
) -> None:
    running = sipemu_factory(parse_topology(FAST, "<fast>"))  # type: ignore[operator]
    running.wait_for_peer_state(FE1, FE2, "up")
    running.disable_nic(FE2)
    running.wait_for_peer_state(FE1, FE2, "heartbeat-lost", timeout=5)
    running.wait_for_peer_state(FE1, FE2, "failed-over", timeout=10)
    ok = asyncio.run(udp_exchange(running, FE1, "clientuser2"))
    presence = PresenceState.parse(ok.headers.get("presence-state") or "")
    assert ok.status == 200 and presence.limited and not presence.is_connected_to_primary
    running.enable_nic(FE2)
    running.wait_for_peer_state(FE1, FE2, "recovering", timeout=5)
    running.wait_for_peer_state(FE1, FE2, "up", timeout=10)
    assert running.bindings(FE1) == []  # sent home by the failback NOTIFY
    lines = running.log_lines()
    assert any("FAILED OVER" in line for line in lines)
    assert any("FAILED BACK" in line for line in lines)


async def test_fake_dns_serves_the_topology_and_takes_edits(sipemu: RunningDeployment) -> None:
    host, port = sipemu.dns_address
    tls_port = sipemu.pool_address(FE1, "tls")[1]

    def srv() -> list[str]:
        query = dns.message.make_query("_sipinternaltls._tcp.contoso.test", "SRV")
        answer = dns.query.udp(query, host, port=port, timeout=WAIT)
        return sorted(rr.to_text() for rrset in answer.answer for rr in rrset)

    assert await asyncio.to_thread(srv) == [f"0 0 {tls_port} fe1.contoso.test."]
    fe2_port = sipemu.pool_address(FE2, "tls")[1]
    sipemu.dns.add(SrvRecord("_sipinternaltls._tcp.contoso.test", 10, 0, fe2_port, FE2))
    assert await asyncio.to_thread(srv) == [
        f"0 0 {tls_port} fe1.contoso.test.",
        f"10 0 {fe2_port} fe2.contoso.test.",
    ]
    sipemu.dns.set_fault("servfail", "_sipinternaltls._tcp.contoso.test")
    query = dns.message.make_query("_sipinternaltls._tcp.contoso.test", "SRV")
    answer = await asyncio.to_thread(dns.query.udp, query, host, port=port, timeout=WAIT)
    assert answer.rcode() == dns.rcode.SERVFAIL


def test_unknown_pool_names_are_sentences(sipemu: RunningDeployment) -> None:
    with pytest.raises(ValueError, match=r"no pool named 'fe9.contoso.test' \(pools: fe1"):
        sipemu.disable_nic("fe9.contoso.test")


def test_port_in_use_is_a_sentence(sipemu_factory: object, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.11", 0))
        port = taken.getsockname()[1]
        ports = f"ports = {{ udp = {port}, tcp = 0, tls = 0 }}"
        text = FAST.replace("ports = { udp = 0, tcp = 0, tls = 0 }", ports, 1)
        from emulator.live.deployment import DeploymentError
        from emulator.testing import RunningDeployment as Running

        running = Running(parse_topology(text, "<taken>"))
        with pytest.raises(
            DeploymentError,
            match=r"cannot listen on 127.0.0.11:\d+ \(UDP\) for "
            r"fe1.contoso.test: the port is already in use",
        ):
            running.start()
