"""Interop with a real SIP peer: SIPp (Debian ``sip-tester``) against the live deployment."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
from pathlib import Path

import pytest

from emulator.testing import RunningDeployment
from emulator.testing.sip_client import UdpClient
from tests.peers import require_program

pytestmark = [pytest.mark.live, pytest.mark.peer]

SCENARIOS = Path(__file__).parent / "sipp"
SIPP_TIMEOUT = 30.0


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def sipp(
    running: RunningDeployment, pool: str, scenario: str, user: str, tmp_path: Path
) -> tuple[int, str]:
    """Run one SIPp call of ``scenario`` as ``user`` against ``pool`` over UDP.

    Returns SIPp's exit status (0: every check of the scenario passed) and its message trace.
    """
    program = require_program("sipp")
    host, port = running.pool_address(pool, "udp")
    trace = tmp_path / f"{scenario}-{user}.log"
    command = [
        program,
        f"{host}:{port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-s",
        user,
        "-key",
        "domain",
        "contoso.test",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_udp_port()),
        "-m",
        "1",
        "-timeout",
        "10s",
        "-timeout_error",
        "-trace_msg",
        "-message_file",
        str(trace),
        "-nostdin",
    ]
    result = subprocess.run(
        command, capture_output=True, timeout=SIPP_TIMEOUT, cwd=tmp_path, check=False
    )
    return result.returncode, trace.read_text(errors="replace") if trace.exists() else ""


def received(trace: str) -> list[str]:
    """The messages SIPp received, from its ``-trace_msg`` log."""
    out = []
    for block in re.split(r"^-{10,} .*$", trace, flags=re.MULTILINE):
        head, _, message = block.strip().partition("\n")
        if "message received" in head:
            out.append(message.strip())
    return out


def test_sipp_register_for_clientuser2_at_fe1_gets_the_301_with_both_contacts(
    sipemu: RunningDeployment, tmp_path: Path
) -> None:
    status, trace = sipp(sipemu, "fe1.contoso.test", "register-301.xml", "clientuser2", tmp_path)
    assert status == 0, trace
    (response,) = received(trace)
    fe2 = sipemu.pool_address("fe2.contoso.test", "tls")[1]
    fe1 = sipemu.pool_address("fe1.contoso.test", "tls")[1]
    assert response.splitlines()[0] == "SIP/2.0 301 Redirect request to Home Server"
    contacts = [line for line in response.splitlines() if line.startswith("Contact:")]
    assert contacts == [
        f"Contact: <sip:fe2.contoso.test:{fe2};transport=TLS>;q=0.7",
        f"Contact: <sip:fe1.contoso.test:{fe1};transport=TLS>;q=0.3",
    ]
    assert sipemu.bindings() == []


def test_sipp_clientuser1_registers_at_fe1_and_a_refresh_is_refreshed(
    sipemu: RunningDeployment, tmp_path: Path
) -> None:
    status, trace = sipp(
        sipemu, "fe1.contoso.test", "register-refresh.xml", "clientuser1", tmp_path
    )
    assert status == 0, trace
    first, refresh, unregister = received(trace)
    assert (
        'presence-state: register-action="added";primary-cluster-type="central";'
        'is-connected-to-primary="yes"' in first
    )
    assert 'register-action="refreshed"' in refresh
    assert unregister.startswith("SIP/2.0 200 OK")
    assert sipemu.bindings() == []  # the scenario's Expires: 0 removed it


def test_sipp_scenario_fails_when_the_answer_is_not_the_expected_one(
    sipemu: RunningDeployment, tmp_path: Path
) -> None:
    # clientuser1 is homed on fe1: a 200, so the 301 scenario must fail (the checks bite).
    status, _ = sipp(sipemu, "fe1.contoso.test", "register-301.xml", "clientuser1", tmp_path)
    assert status != 0


async def test_garbage_then_sipp_register_still_works(
    sipemu: RunningDeployment, tmp_path: Path
) -> None:
    client = await UdpClient.open()
    try:
        target = sipemu.pool_address("fe1.contoso.test", "udp")
        for junk in (b"", b"\r\n", b"\x00" * 100, b"REGISTER\r\n\r\n", bytes(range(256)) * 4):
            client.send(junk, target)
    finally:
        client.close()
    status, trace = await asyncio.to_thread(
        sipp, sipemu, "fe1.contoso.test", "register-refresh.xml", "clientuser1", tmp_path
    )
    assert status == 0, trace
    assert sum("bad message" in line for line in sipemu.log_lines()) >= 3
