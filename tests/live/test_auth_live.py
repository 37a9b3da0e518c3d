"""Authentication on real loopback sockets (issue 16): the asyncio driver carries the challenge
exchanges the pool core decides (emulator/registrar/auth.py); a raw UDP client answers Digest
(SHA-256) and MS-SIPAE NTLM, and a real peer, sipsak, answers Digest (MD5)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from clients.cache import FileCacheStore
from clients.driver import ClientConfig, Fleet, client_ssl_context
from clients.events import AgentEvent
from emulator.sip.digest import digest_response, format_params, parse_challenge
from emulator.sip.message import Response, parse_message
from emulator.testing import DeploymentFactory, RunningDeployment
from emulator.testing.sip_client import UdpClient, register_request
from emulator.topology import parse_topology
from tests.peers import require_program
from tests.registrar.ntlm_client import NtlmClient

pytestmark = pytest.mark.live

FE1 = "fe1.contoso.test"
DEFAULT = resources.files("emulator").joinpath("data/default.toml").read_text("utf-8")


def with_auth(factory: DeploymentFactory, auth: str) -> RunningDeployment:
    return factory(parse_topology(DEFAULT + "\n[auth]\n" + auth, "<test>"))


async def exchange(client: UdpClient, target: tuple[str, int], data: bytes) -> Response:
    client.send(data, target)
    answer = parse_message(await client.receive())
    assert isinstance(answer, Response)
    return answer


def digest_header(challenge: Response, user: str, password: str, uri: str) -> str:
    params = parse_challenge(challenge.headers.get("www-authenticate") or "")[1]
    assert params["algorithm"] == "SHA-256"  # offered first (RFC 8760)
    response = digest_response(
        "SHA-256", user, params["realm"], password, "REGISTER", uri, params["nonce"],
        nc="00000001", cnonce="abc", qop="auth",
    )  # fmt: skip
    return format_params(
        "Digest",
        [
            ("username", user),
            ("realm", params["realm"]),
            ("nonce", params["nonce"]),
            ("uri", uri),
            ("response", response),
            ("algorithm", "SHA-256"),
            ("qop", "auth"),
            ("nc", "00000001"),
            ("cnonce", "abc"),
        ],
    )


def with_header(request: bytes, header: str) -> bytes:
    return request.replace(b"Content-Length", f"{header}\r\nContent-Length".encode(), 1)


async def test_raw_udp_client_digest_sha256(sipemu_factory: DeploymentFactory) -> None:
    running = with_auth(sipemu_factory, 'scheme = "digest"')
    target = running.pool_address(FE1, "udp")
    client = await UdpClient.open()
    try:
        local = client.address
        first = await exchange(
            client, target, register_request("clientuser1", "contoso.test", local)
        )
        assert first.status == 401
        right = digest_header(first, "clientuser1", "Pa$$w0rd", "sip:contoso.test")
        ok = await exchange(
            client,
            target,
            with_header(
                register_request("clientuser1", "contoso.test", local, cseq=2),
                f"Authorization: {right}",
            ),
        )
        assert ok.status == 200
        wrong = digest_header(first, "clientuser1", "guess", "sip:contoso.test")
        again = await exchange(
            client,
            target,
            with_header(
                register_request("clientuser1", "contoso.test", local, cseq=3),
                f"Authorization: {wrong}",
            ),
        )
        assert again.status == 401
    finally:
        client.close()
    assert [b.aor for b in running.bindings(FE1)] == ["sip:clientuser1@contoso.test"]
    lines = running.log_lines()
    assert any("401 authentication: no credentials" in line for line in lines), lines
    assert any("wrong password for 'clientuser1'" in line for line in lines), lines


async def test_raw_udp_client_ntlm_signed_200(sipemu_factory: DeploymentFactory) -> None:
    running = with_auth(sipemu_factory, 'scheme = "ntlm"')
    target = running.pool_address(FE1, "udp")
    client = await UdpClient.open()
    ntlm = NtlmClient(targetname=FE1)
    try:
        local = client.address

        def register(cseq: int, header: str = "") -> bytes:
            request = register_request("clientuser1", "contoso.test", local, cseq=cseq)
            return with_header(request, f"Authorization: {header}") if header else request

        assert (await exchange(client, target, register(1))).status == 401
        challenge = await exchange(
            client, target, register(2, ntlm.authorization(', gssapi-data=""'))
        )
        assert challenge.status == 401
        ok = await exchange(client, target, register(3, ntlm.answer(challenge)))
        assert ok.status == 200
        assert ntlm.verify(ok)
        refreshed = await exchange(client, target, ntlm.signed(register(4)))
        assert refreshed.status == 200 and ntlm.verify(refreshed)
    finally:
        client.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# sipsak resolves the SIP URI's host even with an outbound proxy (-p), so this topology's
# domain is "localhost" (resolved by /etc/hosts), the pool is on loopback.
LOCALHOST = """
domain = "localhost"
[[pool]]
fqdn = "fe1.localhost"
address = "127.0.0.11"
ports = { udp = 0 }
[[user]]
uri = "sip:alice@localhost"
pool = "fe1.localhost"
password = "s3cret"
[auth]
scheme = "digest"
# 3P sipsak 0.9.8.1 reads only the first challenge and knows only MD5 ("error: unsupported
# authentication algorithm" with SHA-256 first): MD5 alone for it.
digest_algorithms = ["MD5"]
"""


def sipsak(running: RunningDeployment, password: str) -> subprocess.CompletedProcess[str]:
    program = require_program("sipsak")
    host, port = running.pool_address("fe1.localhost", "udp")
    local = free_udp_port()
    command = [
        program, "-U", "-C", f"sip:alice@127.0.0.1:{local}", "-x", "60",
        "-s", "sip:alice@localhost", "-p", f"{host}:{port}", "-l", str(local),
        "-u", "alice", "-a", password, "-i", "-vv",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.peer
async def test_sipsak_registers_with_digest(sipemu_factory: DeploymentFactory) -> None:
    running = sipemu_factory(parse_topology(LOCALHOST, "<test>"))
    result = await asyncio.to_thread(sipsak, running, "s3cret")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "authorizing" in result.stdout  # it answered the 401
    assert [b.aor for b in running.bindings("fe1.localhost")] == ["sip:alice@localhost"]
    lines = running.log_lines()
    assert any(
        "REGISTER sip:alice@localhost -> 401 authentication: no credentials" in line
        for line in lines
    ), lines
    assert any("REGISTER sip:alice@localhost -> 200 OK" in line for line in lines), lines


@pytest.mark.peer
async def test_sipsak_wrong_password_is_refused(sipemu_factory: DeploymentFactory) -> None:
    running = sipemu_factory(parse_topology(LOCALHOST, "<test>"))
    result = await asyncio.to_thread(sipsak, running, "guess")
    assert result.returncode != 0
    assert running.bindings("fe1.localhost") == []
    assert any("wrong password for 'alice'" in line for line in running.log_lines())


@pytest.mark.parametrize("scheme", ["ntlm", "digest"])
async def test_live_agents_sign_in_over_tls_with_authentication(
    sipemu_factory: DeploymentFactory, tmp_path: Path, scheme: str
) -> None:
    """Client agents on real sockets (DNS SRV, TLS, the 301 from fe1): each REGISTER is
    challenged and answered; ClientUser2 authenticates at fe1, then at fe2 after the 301."""
    running = with_auth(sipemu_factory, f'scheme = "{scheme}"')
    events: list[AgentEvent] = []
    configs = [
        ClientConfig(n, f"sip:{n.lower()}@contoso.test", password="Pa$$w0rd")
        for n in ("ClientUser1", "ClientUser2")
    ]
    fleet = Fleet(
        configs,
        dns_server=running.dns_address,
        seed=running.seed,
        caches=lambda config: FileCacheStore(tmp_path),
        client_ssl=client_ssl_context(running.ca_path),
        on_event=events.append,
    )
    await fleet.start()
    try:
        fleet.sign_in()
        assert await fleet.wait_for_state("registered", timeout=15.0), fleet.states()
        assert {b.aor for b in running.bindings()} == {
            "sip:clientuser1@contoso.test",
            "sip:clientuser2@contoso.test",
        }
    finally:
        await fleet.stop()  # unregisters: the de-REGISTERs are authenticated too
    refused = [line for line in running.log_lines() if "authentication: " in line]
    assert any("fe2.contoso.test TLS" in line and "clientuser2" in line for line in refused)
    assert any("fe1.contoso.test TLS" in line and "clientuser1" in line for line in refused)


async def test_live_agent_without_password_stays_signed_out(
    sipemu_factory: DeploymentFactory, tmp_path: Path
) -> None:
    running = with_auth(sipemu_factory, 'scheme = "digest"')
    fleet = Fleet(
        [ClientConfig("ClientUser1", "sip:clientuser1@contoso.test")],
        dns_server=running.dns_address,
        seed=running.seed,
        caches=lambda config: FileCacheStore(tmp_path),
        client_ssl=client_ssl_context(running.ca_path),
    )
    await fleet.start()
    try:
        fleet.sign_in()
        assert not await fleet.wait_for_state("registered", timeout=2.0)
    finally:
        await fleet.stop()
    assert running.bindings() == []
    assert any("authentication: no credentials" in line for line in running.log_lines())
