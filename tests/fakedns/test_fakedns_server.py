"""DnsServer on real loopback sockets, queried by dnspython (sync and async) and by dig.

Every wait is bounded: dnspython calls get a timeout or lifetime, subprocesses and reads run
under ``asyncio.wait_for``.  Blocking dnspython calls run in a thread so the server's loop
keeps serving.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import AsyncIterator
from typing import Any, cast

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from fakedns.authority import Authority
from fakedns.records import AddressRecord, SrvRecord
from fakedns.server import DnsServer
from tests.peers import require_program

pytestmark = pytest.mark.live

HOST = "127.0.0.10"
ZONE = "contoso.test"
SRV_NAME = "_sipinternaltls._tcp.contoso.test"
BIG_NAME = "_sip._tcp.contoso.test"
WAIT = 5.0
"""Upper bound of any single wait in these tests (seconds)."""


def zone_records() -> list[SrvRecord | AddressRecord]:
    records: list[SrvRecord | AddressRecord] = [
        SrvRecord(SRV_NAME, 0, 0, 5061, "fe1.contoso.test"),
        SrvRecord(SRV_NAME, 10, 0, 5061, "fe2.contoso.test"),
        AddressRecord("fe1.contoso.test", "192.0.2.1"),
        AddressRecord("fe2.contoso.test", "192.0.2.2"),
    ]
    # 40 SRV records at one name: more than 512 bytes, so UDP truncates (RFC 1035 §4.2.1).
    records += [SrvRecord(BIG_NAME, 0, i, 5060, f"host{i:02d}.contoso.test") for i in range(40)]
    return records


@pytest.fixture
def authority() -> Authority:
    return Authority([ZONE], zone_records())


@pytest.fixture
async def server(authority: Authority) -> AsyncIterator[DnsServer]:
    server = DnsServer(authority, HOST, 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def dig(server: DnsServer, *args: str) -> str:
    path = require_program("dig")
    host, port = server.address
    process = await asyncio.create_subprocess_exec(
        path,
        f"@{host}",
        "-p",
        str(port),
        "+time=2",
        "+tries=1",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), WAIT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


def sync_resolver(server: DnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.address[0]]
    resolver.port = server.address[1]
    resolver.lifetime = 2.0
    return resolver


def async_resolver(server: DnsServer) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server.address[0]]
    resolver.port = server.address[1]
    resolver.lifetime = 2.0
    return resolver


def srv_texts(answer: dns.resolver.Answer) -> list[str]:
    return [rdata.to_text() for rdata in answer]


# -- dnspython ----------------------------------------------------------------------------------


async def test_udp_and_tcp_answer_on_the_same_port(server: DnsServer) -> None:
    host, port = server.address
    assert host == HOST and port > 0
    query = dns.message.make_query(SRV_NAME, "SRV")
    udp = await asyncio.to_thread(dns.query.udp, query, host, timeout=2.0, port=port)
    tcp = await asyncio.to_thread(dns.query.tcp, query, host, timeout=2.0, port=port)
    for response in (udp, tcp):
        assert response.rcode() == dns.rcode.NOERROR
        assert response.flags & dns.flags.AA
        assert sorted(r.to_text() for r in response.answer[0]) == [
            "0 0 5061 fe1.contoso.test.",
            "10 0 5061 fe2.contoso.test.",
        ]


async def test_sync_resolver_gets_srv_a_nxdomain_and_nodata(server: DnsServer) -> None:
    resolver = sync_resolver(server)
    srv = await asyncio.to_thread(resolver.resolve, SRV_NAME, "SRV")
    assert srv_texts(srv) == ["0 0 5061 fe1.contoso.test.", "10 0 5061 fe2.contoso.test."]
    assert srv.rrset is not None and srv.rrset.ttl == 300
    a = await asyncio.to_thread(resolver.resolve, "fe2.contoso.test", "A")
    assert srv_texts(a) == ["192.0.2.2"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        await asyncio.to_thread(resolver.resolve, "fe9.contoso.test", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        await asyncio.to_thread(resolver.resolve, "_tcp.contoso.test", "SRV")


async def test_async_resolver(server: DnsServer) -> None:
    resolver = async_resolver(server)
    srv = await resolver.resolve(SRV_NAME, "SRV")
    assert srv_texts(srv) == ["0 0 5061 fe1.contoso.test.", "10 0 5061 fe2.contoso.test."]
    a = await resolver.resolve("fe1.contoso.test", "A")
    assert srv_texts(a) == ["192.0.2.1"]


async def test_truncated_udp_answer_is_retried_over_tcp(server: DnsServer) -> None:
    host, port = server.address
    query = dns.message.make_query(BIG_NAME, "SRV")  # no EDNS: 512-byte limit
    udp = await asyncio.to_thread(dns.query.udp, query, host, timeout=2.0, port=port)
    assert udp.flags & dns.flags.TC and udp.answer == []
    response, used_tcp = await asyncio.to_thread(
        dns.query.udp_with_fallback, query, host, timeout=2.0, port=port
    )
    assert used_tcp and len(response.answer[0]) == 40
    # The resolver does the same fallback by itself.
    answer = await async_resolver(server).resolve(BIG_NAME, "SRV")
    assert len(answer) == 40


async def test_run_time_edits_and_faults_are_seen_at_once(
    server: DnsServer, authority: Authority
) -> None:
    resolver = async_resolver(server)
    await resolver.resolve(SRV_NAME, "SRV")  # warm the cache
    authority.replace(SRV_NAME, "SRV", [SrvRecord(SRV_NAME, 0, 0, 5062, "fe2.contoso.test")])
    assert srv_texts(await resolver.resolve(SRV_NAME, "SRV")) == ["0 0 5062 fe2.contoso.test."]
    authority.set_fault("servfail", SRV_NAME)
    with pytest.raises(dns.resolver.NoNameservers):
        await resolver.resolve(SRV_NAME, "SRV")
    authority.set_fault("timeout")
    host, port = server.address
    with pytest.raises(dns.exception.Timeout):
        await asyncio.to_thread(
            dns.query.udp,
            dns.message.make_query("fe1.contoso.test", "A"),
            host,
            timeout=0.3,
            port=port,
        )
    authority.clear_faults()
    assert srv_texts(await resolver.resolve("fe1.contoso.test", "A")) == ["192.0.2.1"]


async def test_log_gets_one_line_per_query(authority: Authority) -> None:
    lines: list[str] = []
    server = DnsServer(authority, HOST, 0, log=lines.append)
    await server.start()
    try:
        await async_resolver(server).resolve("fe1.contoso.test", "A")
    finally:
        await server.stop()
    assert len(lines) == 1
    assert lines[0].startswith("udp 127.0.0.1:")  # the client's address
    assert lines[0].endswith("A fe1.contoso.test -> NOERROR, 1 answer")


async def test_events_are_drained_without_a_log(server: DnsServer, authority: Authority) -> None:
    await async_resolver(server).resolve("fe1.contoso.test", "A")
    assert authority.events() == []


# -- raw sockets: framing and garbage -----------------------------------------------------------


async def open_tcp(server: DnsServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.address
    return await asyncio.wait_for(asyncio.open_connection(host, port), WAIT)


async def read_framed(reader: asyncio.StreamReader) -> dns.message.Message:
    length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), WAIT), "big")
    return dns.message.from_wire(await asyncio.wait_for(reader.readexactly(length), WAIT))


def framed(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


async def test_several_pipelined_queries_on_one_tcp_connection(server: DnsServer) -> None:
    reader, writer = await open_tcp(server)
    try:
        queries = [
            dns.message.make_query(name, "A")
            for name in ("fe1.contoso.test", "fe2.contoso.test", "fe9.contoso.test")
        ]
        # All in one write, the last split across two writes: framing must not care.
        data = b"".join(framed(q.to_wire()) for q in queries)
        writer.write(data[:-5])
        await writer.drain()
        writer.write(data[-5:])
        responses = [await read_framed(reader) for _ in queries]
    finally:
        writer.close()
    assert [r.id for r in responses] == [q.id for q in queries]
    assert [r.rcode() for r in responses] == [
        dns.rcode.NOERROR,
        dns.rcode.NOERROR,
        dns.rcode.NXDOMAIN,
    ]


async def test_tcp_survives_garbage_and_keeps_answering(server: DnsServer) -> None:
    reader, writer = await open_tcp(server)
    try:
        writer.write(framed(b""))  # an empty message: not a query, nothing sent
        writer.write(framed(bytes.fromhex("0007 0100 0001 0000 0000 0000") + b"\x3fbad"))
        writer.write(framed(dns.message.make_query("fe1.contoso.test", "A").to_wire()))
        formerr = await read_framed(reader)
        assert formerr.rcode() == dns.rcode.FORMERR and formerr.id == 7
        answer = await read_framed(reader)
        assert answer.rcode() == dns.rcode.NOERROR
    finally:
        writer.close()


async def test_udp_survives_garbage(server: DnsServer) -> None:
    host, port = server.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.bind((HOST, 0))
        for junk in (b"", b"x", b"\xff" * 11, os.urandom(300)):
            sock.sendto(junk, (host, port))
        sock.sendto(b"\x00\x09\x01\x00\x00\x01" + b"\x00" * 6 + b"\x05broken", (host, port))
        sock.sendto(dns.message.make_query("fe2.contoso.test", "A", id=10).to_wire(), (host, port))
        replies = []
        while len(replies) < 2:  # some of the random bytes may parse well enough to be answered
            data = await asyncio.to_thread(sock.recv, 65535)
            message = dns.message.from_wire(data)
            if message.id in (9, 10):
                replies.append(message)
    assert [(m.id, m.rcode()) for m in replies] == [(9, dns.rcode.FORMERR), (10, dns.rcode.NOERROR)]


async def test_idle_tcp_connections_are_closed(authority: Authority) -> None:
    server = DnsServer(authority, HOST, 0, tcp_idle_timeout=0.2)
    await server.start()
    try:
        reader, writer = await open_tcp(server)
        writer.write(framed(dns.message.make_query("fe1.contoso.test", "A").to_wire()))
        await read_framed(reader)
        assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the server
        writer.close()
    finally:
        await server.stop()


async def test_stop_closes_open_tcp_connections_and_is_idempotent(server: DnsServer) -> None:
    reader, writer = await open_tcp(server)
    await server.stop()
    try:
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
    except ConnectionResetError:
        pass  # aborted: a reset is as closed as an EOF
    writer.close()
    await server.stop()


# -- binding ------------------------------------------------------------------------------------


async def test_address_before_start_is_an_error(authority: Authority) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = DnsServer(authority, HOST, 0).address
    await DnsServer(authority, HOST, 0).stop()  # stopping an unstarted server is fine


async def test_udp_port_in_use_raises_oserror(authority: Authority) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, 0))
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await DnsServer(authority, HOST, port).start()


async def test_tcp_port_in_use_raises_oserror_and_frees_udp(authority: Authority) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            await DnsServer(authority, HOST, port).start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, port))  # the server released the UDP port it had bound


async def test_port_0_retries_when_tcp_finds_the_udp_port_taken(
    authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    real_create_server = loop.create_server
    refused: list[int] = []

    async def create_server(factory: Any, host: str, port: int) -> asyncio.Server:
        if not refused:  # the first UDP port's TCP twin "belongs to someone else"
            refused.append(port)
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return await real_create_server(factory, host, port)

    monkeypatch.setattr(loop, "create_server", create_server)
    server = DnsServer(authority, HOST, 0)
    await server.start()
    try:
        assert len(refused) == 1 and server.address[1] > 0
        answer = await async_resolver(server).resolve("fe1.contoso.test", "A")
        assert srv_texts(answer) == ["192.0.2.1"]
    finally:
        await server.stop()


# -- dig ----------------------------------------------------------------------------------------


@pytest.mark.peer
async def test_dig_srv_short_over_udp_and_tcp(server: DnsServer) -> None:
    expected = ["0 0 5061 fe1.contoso.test.", "10 0 5061 fe2.contoso.test."]
    udp = await dig(server, "SRV", SRV_NAME, "+short")
    assert udp.splitlines() == expected
    tcp = await dig(server, "SRV", SRV_NAME, "+short", "+tcp")
    assert tcp.splitlines() == expected


@pytest.mark.peer
async def test_dig_a_query_full_output(server: DnsServer) -> None:
    output = await dig(server, "A", "fe1.contoso.test")
    assert "status: NOERROR" in output
    assert " aa " in output.split("flags:")[1].split(";")[0] + " "
    assert "fe1.contoso.test.\t300\tIN\tA\t192.0.2.1" in output.replace("  ", "\t")
    nx = await dig(server, "A", "fe9.contoso.test")
    assert "status: NXDOMAIN" in nx and "SOA" in nx


@pytest.mark.peer
async def test_dig_falls_back_to_tcp_on_truncation(server: DnsServer) -> None:
    output = await dig(server, "SRV", BIG_NAME, "+short", "+bufsize=512")
    assert len(output.splitlines()) == 40


@pytest.mark.peer
async def test_dig_with_0x20_sees_its_case(server: DnsServer) -> None:
    output = await dig(
        server, "SRV", "_SIPinternalTLS._tcp.Contoso.Test", "+noall", "+question", "+answer"
    )
    assert ";_SIPinternalTLS._tcp.Contoso.Test." in output
    assert "5061 fe1.contoso.test." in output


# -- uvloop (what `sipemu up` and the benchmark run on) -----------------------------------------


def test_serves_under_uvloop(authority: Authority) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[str]:
        server = DnsServer(authority, HOST, 0)
        await server.start()
        try:
            udp = await async_resolver(server).resolve(SRV_NAME, "SRV")
            host, port = server.address
            tcp = await dns.asyncquery.tcp(
                dns.message.make_query(BIG_NAME, "SRV"), host, timeout=2.0, port=port
            )
            return [*srv_texts(udp), str(len(tcp.answer[0]))]
        finally:
            await server.stop()

    assert uvloop.run(main()) == ["0 0 5061 fe1.contoso.test.", "10 0 5061 fe2.contoso.test.", "40"]


# -- bad input: FORMERR, the connection kept, one rate-limited line each (issue 21) --------------


def long_qname_query(qid: int) -> bytes:
    """A query whose QNAME is 270 octets on the wire (RFC 1035 §2.3.4 allows 255)."""
    name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x07contoso\x04test\x00"
    return qid.to_bytes(2, "big") + bytes.fromhex("0100 0001 0000 0000 0000") + name + b"\0\1\0\1"


async def test_tcp_gets_formerr_for_a_long_qname_and_stays_open(authority: Authority) -> None:
    lines: list[str] = []
    bad: list[str] = []
    server = DnsServer(authority, HOST, 0, log=lines.append, bad_input_log=bad.append)
    await server.start()
    try:
        reader, writer = await open_tcp(server)
        try:
            writer.write(framed(long_qname_query(21)))
            writer.write(framed(dns.message.make_query("fe1.contoso.test", "A", id=22).to_wire()))
            formerr = await read_framed(reader)
            answer = await read_framed(reader)
        finally:
            writer.close()
    finally:
        await server.stop()
    assert (formerr.id, formerr.rcode()) == (21, dns.rcode.FORMERR)
    assert (answer.id, answer.rcode()) == (22, dns.rcode.NOERROR)
    assert len(bad) == 1 and "bad query: QNAME of 270 octets" in bad[0]
    assert len(lines) == 1 and lines[0].endswith("A fe1.contoso.test -> NOERROR, 1 answer")


async def test_bad_input_lines_are_rate_limited(authority: Authority) -> None:
    bad: list[str] = []
    # One line a second: a burst of 30 bad queries writes one line now and counts the rest.
    server = DnsServer(authority, HOST, 0, bad_input_log=bad.append, bad_input_rate=1.0)
    await server.start()
    try:
        reader, writer = await open_tcp(server)
        try:
            writer.write(b"".join(framed(long_qname_query(i)) for i in range(30)))
            writer.write(framed(dns.message.make_query("fe1.contoso.test", "A", id=99).to_wire()))
            # Answers come in order: when the good one is read, all 30 were handled.
            replies = [await read_framed(reader) for _ in range(31)]
        finally:
            writer.close()
    finally:
        await server.stop()  # tells the lines it held back
    assert [r.rcode() for r in replies] == [dns.rcode.FORMERR] * 30 + [dns.rcode.NOERROR]
    logged = [line for line in bad if "bad query" in line]
    summaries = [line for line in bad if line.startswith("... ")]
    assert 1 <= len(logged) < 30
    counted = sum(int(line.split()[1]) for line in summaries)
    assert len(logged) + counted == 30  # every bad query is a line or counted in one


class _FlakyAuthority:
    """Stands in for an Authority whose first answer raises (a bug); not a subclass: the
    compiled build compiles Authority (setup.py)."""

    def __init__(self, real: Authority) -> None:
        self.real = real
        self.calls = 0

    def answer(self, data: bytes, transport: Any, now: float, *, client: Any = None) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug")
        return self.real.answer(data, transport, now, client=client)

    def events(self) -> Any:
        return self.real.events()

    def discard_events(self) -> None:
        self.real.discard_events()


async def test_a_core_bug_costs_a_line_not_the_connection(authority: Authority) -> None:
    bad: list[str] = []
    flaky = cast(Authority, _FlakyAuthority(authority))
    server = DnsServer(flaky, HOST, 0, bad_input_log=bad.append)
    await server.start()
    try:
        reader, writer = await open_tcp(server)
        try:
            writer.write(framed(dns.message.make_query("fe1.contoso.test", "A", id=1).to_wire()))
            writer.write(framed(dns.message.make_query("fe2.contoso.test", "A", id=2).to_wire()))
            answer = await read_framed(reader)  # the first got nothing; the connection lives
        finally:
            writer.close()
    finally:
        await server.stop()
    assert answer.id == 2
    assert len(bad) == 1 and "internal error" in bad[0] and "a bug" in bad[0]
