"""A pool on the IPv6 loopback address: served on ``[::1]``, with an AAAA record."""

from __future__ import annotations

import asyncio
import socket

import dns.asyncquery
import dns.message
import pytest

from emulator.sip.message import Response, parse_message
from emulator.testing import RunningDeployment
from emulator.testing.sip_client import register_request
from emulator.topology import parse_topology

pytestmark = pytest.mark.live

TOPOLOGY = """
domain = "contoso.test"
[[pool]]
fqdn = "fe6.contoso.test"
address = "::1"
ports = { udp = 0, tcp = 0 }
[[user]]
uri = "sip:clientuser1@contoso.test"
pool = "fe6.contoso.test"
[dns]
address = "127.0.0.10"
port = 0
"""


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no ::1")
async def test_pool_on_ipv6_loopback_answers_and_has_an_aaaa_record() -> None:
    with RunningDeployment(parse_topology(TOPOLOGY, "v6.toml")) as running:
        host, port = running.dns_address
        query = dns.message.make_query("fe6.contoso.test", "AAAA")
        answer = await dns.asyncquery.udp(query, host, port=port, timeout=10)
        assert [r.address for r in answer.answer[0]] == ["::1"]
        address = running.pool_address("fe6.contoso.test", "udp")
        assert address[0] == "::1"
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.bind(("::1", 0))
            client.setblocking(False)
            local = client.getsockname()[:2]
            request = register_request("clientuser1", "contoso.test", (f"[{local[0]}]", local[1]))
            await loop.sock_sendto(client, request, address)
            data = await asyncio.wait_for(loop.sock_recv(client, 65535), 10)
        message = parse_message(data)
        assert isinstance(message, Response) and message.status == 200
