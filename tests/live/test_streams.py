"""The stream transports' defences (docs/live.md, "Limits and defences"): what is framed before
bad bytes is answered first, idle and message timeouts, and a CRLF-only datagram is no bad
input.  Timeouts are set small and the tests wait on the event (the connection closed, a log
line), never on the clock."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from emulator.live.driver import CoreDriver
from emulator.live.stream import StreamLimits
from emulator.net import Flow
from emulator.sip.message import Response, parse_message
from emulator.testing import RunningDeployment
from emulator.testing.sip_client import WAIT, UdpClient, read_message, register_request
from tests.live.test_transports import HOST, EchoCore, message

pytestmark = pytest.mark.live

DOMAIN = "contoso.test"
FE1 = "fe1.contoso.test"
SHORT = 0.3
"""A limit short enough to be reached while the test waits (WAIT) for its effect."""


async def open_driver(
    limits: StreamLimits, notices: asyncio.Queue[str]
) -> tuple[CoreDriver, EchoCore]:
    core = EchoCore()
    driver = CoreDriver(
        "fe1.test",
        HOST,
        {"udp": 0, "tcp": 0},
        debug=core.debug.put_nowait,
        notice=notices.put_nowait,
        stream_limits=limits,
    )
    await driver.open()
    driver.attach(core)
    return driver, core


@pytest.fixture
async def notices() -> asyncio.Queue[str]:
    return asyncio.Queue()


@pytest.fixture
async def echo(notices: asyncio.Queue[str]) -> AsyncIterator[tuple[CoreDriver, EchoCore]]:
    driver, core = await open_driver(StreamLimits.off(), notices)
    try:
        yield driver, core
    finally:
        await driver.close()


async def connect(driver: CoreDriver) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(HOST, driver.bound["tcp"]), WAIT)


async def closed(reader: asyncio.StreamReader, rest: bytes = b"") -> bool:
    """Whether the peer sends ``rest`` and then closes the connection (EOF) within WAIT."""
    return await asyncio.wait_for(reader.read(), WAIT) == rest


async def notice_with(notices: asyncio.Queue[str], text: str) -> str:
    while text not in (line := await asyncio.wait_for(notices.get(), WAIT)):
        pass
    return line


# -- valid messages before bad bytes (issue 21 item 5) ----------------------------------------


async def test_messages_before_garbage_are_delivered_in_order_then_the_connection_closes(
    echo: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = echo
    reader, writer = await connect(driver)
    try:
        first, second = message(b"one"), message(b"two")
        garbage = b"NOT SIP\r\nVia: x\r\n\r\n"  # no Content-Length: cannot be framed
        writer.write(first + second + garbage)  # one write: one read, most likely
        assert await read_message(reader) == first  # echoed: delivered and answered
        assert await read_message(reader) == second
        got = [(await asyncio.wait_for(core.received.get(), WAIT))[0] for _ in range(3)]
        assert got == [first, second, garbage]  # the bad bytes last, for the core's 400
        assert await closed(reader, garbage)  # what the core answered them, then the close
    finally:
        writer.close()


async def test_a_message_before_an_oversized_one_is_answered(
    echo: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = echo
    reader, writer = await connect(driver)
    try:
        small = message(b"small")
        huge = message(b"x" * 70_000)  # over MAX_DATAGRAM: 413 from the framer
        writer.write(small + huge)
        assert await read_message(reader) == small
        rest = await asyncio.wait_for(reader.read(), WAIT)  # the echo of what was unframed
        assert huge.startswith(rest)  # then EOF: closed
        assert (await asyncio.wait_for(core.received.get(), WAIT))[0] == small
    finally:
        writer.close()


def dblreq(register: bytes) -> bytes:
    """RFC 4475 §3.3.? "dblreq" in shape: a REGISTER, then a whole INVITE, in one write."""
    invite = (
        b"INVITE sip:joe@contoso.test SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 127.0.0.1:5097;branch=z9hG4bKdblreq2\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:caller@contoso.test>;tag=141334\r\n"
        b"To: <sip:joe@contoso.test>\r\nCall-ID: dblreq.2@127.0.0.1\r\nCSeq: 8 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    return register + invite


async def test_two_requests_in_one_write_are_both_answered_by_a_pool(
    sipemu: RunningDeployment,
) -> None:
    host, port = sipemu.pool_address(FE1, "tcp")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), WAIT)
    try:
        register = register_request("clientuser1", DOMAIN, ("127.0.0.1", 5097), transport="TCP")
        writer.write(dblreq(register))
        answers = [parse_message(await read_message(reader), stream=True) for _ in range(2)]
    finally:
        writer.close()
    assert all(isinstance(a, Response) for a in answers)
    assert [a.headers.get("cseq", "").split()[-1] for a in answers] == ["REGISTER", "INVITE"]
    assert isinstance(answers[0], Response) and answers[0].status == 200


async def test_a_register_then_unframeable_bytes_get_200_then_400_then_close(
    sipemu: RunningDeployment,
) -> None:
    host, port = sipemu.pool_address(FE1, "tcp")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), WAIT)
    try:
        register = register_request("clientuser1", DOMAIN, ("127.0.0.1", 5096), transport="TCP")
        # A request with a Via and CSeq but no Content-Length: the stream is out of sync.
        unframeable = (
            b"OPTIONS sip:contoso.test SIP/2.0\r\n"
            b"Via: SIP/2.0/TCP 127.0.0.1:5096;branch=z9hG4bKnolength\r\n"
            b"From: <sip:x@contoso.test>;tag=1\r\nTo: <sip:x@contoso.test>\r\n"
            b"Call-ID: nolength@127.0.0.1\r\nCSeq: 2 OPTIONS\r\n\r\n"
        )
        writer.write(register + unframeable)
        ok = parse_message(await read_message(reader), stream=True)
        bad = parse_message(await read_message(reader), stream=True)
        assert await closed(reader)
    finally:
        writer.close()
    assert isinstance(ok, Response) and ok.status == 200
    assert isinstance(bad, Response) and bad.status == 400
    assert bad.headers.get("cseq") == "2 OPTIONS"


# -- timeouts (issue 21 item 6) ----------------------------------------------------------------


async def test_an_idle_connection_is_closed_and_the_core_told(notices: asyncio.Queue[str]) -> None:
    driver, core = await open_driver(
        StreamLimits(idle_timeout=SHORT, message_timeout=None), notices
    )
    try:
        reader, writer = await connect(driver)
        writer.write(message(b"hello"))
        assert await read_message(reader) == message(b"hello")
        _, flow = core.received.get_nowait()
        assert await closed(reader)
        line = await notice_with(notices, "idle")
        assert f"{flow.remote[0]}:{flow.remote[1]}" in line and "--idle-timeout" in line
        assert await asyncio.wait_for(core.failed.get(), WAIT) == flow
        assert flow not in driver.connections
        writer.close()
    finally:
        await driver.close()


async def test_keep_alive_pings_count_as_traffic(notices: asyncio.Queue[str]) -> None:
    """A CRLF ping moves the idle deadline (white box: no test can wait out a wall clock)."""
    driver, core = await open_driver(StreamLimits(idle_timeout=60.0, message_timeout=None), notices)
    try:
        reader, writer = await connect(driver)
        writer.write(message())
        await read_message(reader)
        _, flow = core.received.get_nowait()
        connection = driver._streams._connections[flow]
        connection.active_at = 0.0  # as if the last traffic were long ago
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"  # the pong
        assert connection.active_at > 0.0
        assert connection.message_since is None  # a ping is not a message in progress
        writer.close()
    finally:
        await driver.close()


async def test_a_slowloris_message_is_closed(notices: asyncio.Queue[str]) -> None:
    driver, _ = await open_driver(StreamLimits(idle_timeout=None, message_timeout=SHORT), notices)
    try:
        reader, writer = await connect(driver)
        writer.write(message(b"first"))  # a whole message: the connection is greeted
        await read_message(reader)
        writer.write(b"REGISTER sip:contoso.test SIP/2.0\r\nVia: SIP/2.0/TCP h;bra")  # and stop
        assert await closed(reader)
        line = await notice_with(notices, "not read whole")
        assert "--message-timeout" in line
        writer.close()
    finally:
        await driver.close()


async def test_a_connection_that_brings_no_message_is_closed(
    notices: asyncio.Queue[str],
) -> None:
    driver, core = await open_driver(
        StreamLimits(idle_timeout=None, message_timeout=SHORT), notices
    )
    try:
        reader, writer = await connect(driver)
        writer.write(b"\r\n\r\n")  # a ping is traffic, not a message
        assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
        assert await closed(reader)
        await notice_with(notices, "no message within")
        assert core.received.empty()
        writer.close()
    finally:
        await driver.close()


async def test_a_greeted_connection_may_stay_silent_without_an_idle_limit(
    notices: asyncio.Queue[str],
) -> None:
    driver, _ = await open_driver(StreamLimits(idle_timeout=None, message_timeout=0.1), notices)
    try:
        reader, writer = await connect(driver)
        writer.write(message())
        await read_message(reader)
        # The one negative wait: several message timeouts pass, nothing is closed.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.5)
        assert notices.empty()
        writer.close()
    finally:
        await driver.close()


async def test_a_silent_host_closes_nothing_until_its_nic_is_back(
    notices: asyncio.Queue[str],
) -> None:
    driver, core = await open_driver(
        StreamLimits(idle_timeout=SHORT, message_timeout=None), notices
    )
    try:
        reader, writer = await connect(driver)
        writer.write(message())
        await read_message(reader)
        _, flow = core.received.get_nowait()
        connection = driver._streams._connections[flow]
        driver.disable_nic()
        timer = connection.timer
        assert timer is not None
        # What the timer does when it fires while the NIC is down: nothing, and no re-arm.
        timer.cancel()
        driver._streams._check(connection)
        assert connection.timer is None and flow in driver.connections
        driver.enable_nic()  # the limits start again
        assert connection.timer is not None
        assert await closed(reader)
        writer.close()
    finally:
        await driver.close()


def test_limits_refuse_nonsense() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            StreamLimits(idle_timeout=bad)


# -- UDP keep-alives are no bad input (issue 21, one line per bad input) -----------------------


async def test_a_crlf_datagram_is_a_keep_alive_not_a_message(
    echo: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = echo
    client = await UdpClient.open()
    try:
        target = (HOST, driver.bound["udp"])
        for keep_alive in (b"\r\n\r\n", b"\r\n"):
            client.send(keep_alive, target)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"", target)  # asyncio's sendto skips empty datagrams: a raw socket
        client.send(b"ping", target)
        assert await client.receive() == b"ping"
        data, _ = core.received.get_nowait()
        assert data == b"ping"  # the keep-alives never reached the core
        assert driver.keepalives == 3
    finally:
        client.close()


async def test_keep_alive_datagrams_are_not_logged_as_bad_messages(
    sipemu: RunningDeployment,
) -> None:
    client = await UdpClient.open()
    try:
        target = sipemu.pool_address(FE1, "udp")
        client.send(b"\r\n\r\n", target)
        client.send(register_request("clientuser1", DOMAIN, client.address), target)
        ok = parse_message(await client.receive())
    finally:
        client.close()
    assert isinstance(ok, Response) and ok.status == 200
    assert not [line for line in sipemu.log_lines() if "bad message" in line]


def test_a_flood_of_bad_datagrams_is_a_bounded_number_of_lines(
    sipemu_factory: object,
) -> None:
    from emulator.live.ratelimit import BURST
    from emulator.testing import DeploymentFactory

    assert isinstance(sipemu_factory, DeploymentFactory)
    running = sipemu_factory()
    try:
        target = running.pool_address(FE1, "udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for n in range(BURST * 5):
                sock.sendto(b"\x00garbage %d\r\n\r\n" % n, target)
        running.wait_until(
            lambda: any("more bad-input lines suppressed" in x for x in running.log_lines()),
            what="the summary of suppressed lines",
        )
        lines = running.log_lines()
        bad = [line for line in lines if "bad message" in line]
        assert BURST <= len(bad) < BURST * 5
    finally:
        running.stop()


async def test_flows_in_notices_name_the_peer(notices: asyncio.Queue[str]) -> None:
    from emulator.live.stream import _where

    assert _where(Flow("tcp", ("::1", 5061), ("::1", 40000))) == "[::1]:40000"
    assert _where(Flow("tcp", (HOST, 5061), (HOST, 40000))) == f"{HOST}:40000"


async def test_a_deployment_closes_an_idle_connection_and_logs_one_line(
    sipemu_factory: object,
) -> None:
    from emulator.testing import DeploymentFactory

    assert isinstance(sipemu_factory, DeploymentFactory)
    running = sipemu_factory(stream_limits=StreamLimits(idle_timeout=SHORT))
    try:
        host, port = running.pool_address(FE1, "tcp")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), WAIT)
        local = writer.get_extra_info("sockname")
        writer.write(register_request("clientuser1", DOMAIN, local[:2], transport="TCP"))
        ok = parse_message(await read_message(reader), stream=True)
        assert isinstance(ok, Response) and ok.status == 200
        assert await closed(reader)
        writer.close()
        running.wait_until(
            lambda: any(
                f"{FE1} TCP {local[0]}:{local[1]} closed: idle" in line
                for line in running.log_lines()
            ),
            what="the idle line in the log",
        )
    finally:
        running.stop()


def test_sipemu_up_takes_the_limits_and_refuses_nonsense(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from emulator.cli import build_parser

    defaults = build_parser().parse_args(["up"])
    assert (defaults.idle_timeout, defaults.message_timeout) == (3605.0, 20.0)
    args = build_parser().parse_args(["up", "--idle-timeout", "0", "--message-timeout", "2.5"])
    assert StreamLimits(args.idle_timeout, args.message_timeout) == StreamLimits(None, 2.5)
    for bad in ("-1", "nan", "inf", "soon"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["up", "--idle-timeout", bad])
        assert "is not a number of seconds" in capsys.readouterr().err


def test_bindings_taken_over_from_many_sources_are_a_bounded_number_of_lines(
    sipemu_factory: object,
) -> None:
    # Issue 21: one endpoint (one epid) registered from ever new sources, as a spoofed flood
    # would: each is "binding replaced from another source", through the same rate limit.
    import re

    from emulator.live.ratelimit import BURST
    from emulator.testing import DeploymentFactory
    from emulator.testing.sip_client import register_request

    assert isinstance(sipemu_factory, DeploymentFactory)
    running = sipemu_factory()
    try:
        target = running.pool_address(FE1, "udp")
        for _ in range(BURST * 3):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(10)
                request = register_request("clientuser1", "contoso.test", sock.getsockname())
                sock.sendto(re.sub(rb";epid=\w+", b";epid=same", request), target)
                assert sock.recv(65536).startswith(b"SIP/2.0 200 OK")
        running.wait_until(
            lambda: any("more bad-input lines suppressed" in x for x in running.log_lines()),
            what="the summary of suppressed lines",
        )
        replaced = [x for x in running.log_lines() if "binding replaced from another" in x]
        assert BURST <= len(replaced) < BURST * 3 - 1
    finally:
        running.stop()
