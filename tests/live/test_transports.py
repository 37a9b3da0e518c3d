"""The asyncio drivers with a tiny fake core, on real loopback sockets (ephemeral ports)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from emulator.live import stream
from emulator.live.certs import TlsMaterial
from emulator.live.driver import BindError, CoreDriver
from emulator.net import CloseFlow, Flow, Send
from emulator.testing.sip_client import WAIT, UdpClient, read_message, tls_client_context

pytestmark = pytest.mark.live

HOST = "127.0.0.11"
PEER = "127.0.0.12"


def message(body: bytes = b"hello", method: str = "MESSAGE") -> bytes:
    """Enough of a SIP message for the framer (start line, Content-Length, body)."""
    return (
        f"{method} sip:x SIP/2.0\r\nCall-ID: 1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


class EchoCore:
    """Echoes every message on its flow; records inputs in queues a test can await."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Flow]] = asyncio.Queue()
        self.failed: asyncio.Queue[Flow] = asyncio.Queue()
        self.timers: asyncio.Queue[float] = asyncio.Queue()
        self.debug: asyncio.Queue[str] = asyncio.Queue()  # the driver's debug lines
        self.deadline: float | None = None
        self.echo = True
        self._actions: list[Send | CloseFlow] = []
        self._events: list[object] = []

    # commands
    def send(self, flow: Flow, data: bytes) -> None:
        self._actions.append(Send(flow, data))

    def close(self, flow: Flow) -> None:
        self._actions.append(CloseFlow(flow))

    # the driving contract
    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        self.received.put_nowait((data, flow))
        self._events.append(("received", flow))
        if self.echo:
            self._actions.append(Send(flow, data))

    def flow_failed(self, flow: Flow, now: float) -> None:
        self.failed.put_nowait(flow)

    def handle_timer(self, now: float) -> None:
        assert self.deadline is not None and now >= self.deadline
        self.deadline = None
        self.timers.put_nowait(now)

    def next_deadline(self) -> float | None:
        return self.deadline

    def actions(self) -> list[Send | CloseFlow]:
        out, self._actions = self._actions, []
        return out

    def events(self) -> list[object]:
        out, self._events = self._events, []
        return out


@pytest.fixture(scope="module")
def tls() -> TlsMaterial:
    material = TlsMaterial()
    yield material
    material.cleanup()


@pytest.fixture
async def driven(tls: TlsMaterial) -> AsyncIterator[tuple[CoreDriver, EchoCore]]:
    events: list[object] = []
    core = EchoCore()
    driver = CoreDriver(
        "fe1.test",
        HOST,
        {"udp": 0, "tcp": 0, "tls": 0},
        server_ssl=tls.server_context("fe1.test", HOST),
        client_ssl=tls.client_context(),
        on_events=events.extend,
        debug=core.debug.put_nowait,
    )
    await driver.open()
    driver.attach(core)
    try:
        yield driver, core
    finally:
        await driver.close()


async def test_udp_echo_and_flow(driven: tuple[CoreDriver, EchoCore]) -> None:
    driver, core = driven
    client = await UdpClient.open()
    try:
        client.send(b"ping", (HOST, driver.bound["udp"]))
        assert await client.receive() == b"ping"
        data, flow = core.received.get_nowait()
        assert data == b"ping"
        assert flow == Flow("udp", (HOST, driver.bound["udp"]), client.address)
    finally:
        client.close()


async def test_tcp_framing_with_split_writes(driven: tuple[CoreDriver, EchoCore]) -> None:
    driver, core = driven
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, driver.bound["tcp"]), WAIT
    )
    try:
        whole = message(b"split body") + message(b"second")
        for piece in (whole[:7], whole[7:40], whole[40:]):
            writer.write(piece)
            await writer.drain()
        assert await read_message(reader) == message(b"split body")
        assert await read_message(reader) == message(b"second")
        first, flow = core.received.get_nowait()
        assert first == message(b"split body")
        assert flow.transport == "tcp" and flow.local == (HOST, driver.bound["tcp"])
        assert flow in driver.connections
    finally:
        writer.close()


async def test_crlf_ping_gets_pong(driven: tuple[CoreDriver, EchoCore]) -> None:
    driver, core = driven
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, driver.bound["tcp"]), WAIT
    )
    try:
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
        assert core.received.empty()  # a keep-alive is not a message
    finally:
        writer.close()


async def test_tls_handshake_with_generated_ca(
    driven: tuple[CoreDriver, EchoCore], tls: TlsMaterial
) -> None:
    driver, _ = driven
    assert tls.ca_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    for name in ("fe1.test", HOST):  # both SANs: the FQDN and the IP address
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                HOST,
                driver.bound["tls"],
                ssl=tls_client_context(tls.ca_path),
                server_hostname=name,
            ),
            WAIT,
        )
        try:
            writer.write(message(b"over tls"))
            assert await read_message(reader) == message(b"over tls")
        finally:
            writer.close()


async def test_framing_error_goes_to_core_then_connection_closes(
    driven: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = driven
    core.echo = False
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, driver.bound["tcp"]), WAIT
    )
    try:
        garbage = b"GARBAGE sip:x SIP/2.0\r\nVia: x\r\n\r\n"  # no Content-Length on a stream
        writer.write(garbage)
        data, _ = await asyncio.wait_for(core.received.get(), WAIT)
        assert data == garbage
        assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the driver
    finally:
        writer.close()


async def test_timer_fires_at_the_core_deadline(driven: tuple[CoreDriver, EchoCore]) -> None:
    driver, core = driven
    loop = asyncio.get_running_loop()
    core.deadline = loop.time() + 0.05
    driver.poke()
    fired = await asyncio.wait_for(core.timers.get(), WAIT)
    assert fired >= core.deadline if core.deadline else True
    assert core.timers.empty()


async def test_nic_disabled_drops_udp_silently_and_enable_restores(
    driven: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = driven
    client = await UdpClient.open()
    try:
        driver.disable_nic()
        client.send(b"lost", (HOST, driver.bound["udp"]))
        while "dropped udp" not in await asyncio.wait_for(core.debug.get(), WAIT):
            pass
        assert driver.dropped == 1
        driver.enable_nic()
        client.send(b"kept", (HOST, driver.bound["udp"]))
        assert await client.receive() == b"kept"
        data, _ = core.received.get_nowait()
        assert data == b"kept"
        assert core.received.empty()
        assert client.errors.empty()  # silent: no ICMP error either
    finally:
        client.close()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_nic_disabled_holds_a_stream_until_enabled(
    driven: tuple[CoreDriver, EchoCore], tls: TlsMaterial, transport: str
) -> None:
    """Over TLS the held bytes go through the driver's own TLS layer."""
    driver, core = driven
    secure = tls_client_context(tls.ca_path) if transport == "tls" else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            HOST,
            driver.bound[transport],
            ssl=secure,
            server_hostname=HOST if secure else None,
        ),
        WAIT,
    )
    try:
        writer.write(message(b"one"))
        assert await read_message(reader) == message(b"one")
        await asyncio.wait_for(core.received.get(), WAIT)
        driver.disable_nic()
        writer.write(message(b"two"))
        await writer.drain()
        # The one negative wait: nothing may be read while the NIC is down (bounded, short).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(core.received.get(), 0.3)
        driver.enable_nic()
        assert await read_message(reader) == message(b"two")  # read, echoed
    finally:
        writer.close()


async def test_stop_refuses_and_restart_rebinds_the_same_ports(
    driven: tuple[CoreDriver, EchoCore],
) -> None:
    driver, _ = driven
    ports = dict(driver.bound)
    await driver.close()
    client = await UdpClient.open(remote=(HOST, ports["udp"]))
    try:
        client.send(b"anyone?")
        assert isinstance(await client.error(), ConnectionRefusedError)
    finally:
        client.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection(HOST, ports["tcp"]), WAIT)

    assert await driver.open() == ports
    core = EchoCore()
    driver.attach(core)
    client = await UdpClient.open()
    try:
        client.send(b"back", (HOST, ports["udp"]))
        assert await client.receive() == b"back"
    finally:
        client.close()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, ports["tcp"]), WAIT)
    try:
        writer.write(message())
        assert await read_message(reader) == message()
    finally:
        writer.close()


async def test_send_on_a_new_flow_opens_a_tcp_connection(
    driven: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = driven
    got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await read_message(reader)
        got.put_nowait((data, writer.get_extra_info("peername")[:2]))
        writer.write(message(b"answer"))
        await writer.drain()

    server = await asyncio.start_server(peer, PEER, 0)
    try:
        port = server.sockets[0].getsockname()[1]
        flow = Flow("tcp", (HOST, driver.bound["tcp"]), (PEER, port))
        core.echo = False
        core.send(flow, message(b"notify"))
        driver.poke()
        data, source = await asyncio.wait_for(got.get(), WAIT)
        assert data == message(b"notify")
        assert source[0] == HOST  # the connection leaves from the pool's own address
        answer, answer_flow = await asyncio.wait_for(core.received.get(), WAIT)
        assert answer == message(b"answer")
        assert answer_flow == flow  # reported on the flow the core named
    finally:
        server.close()


async def test_connect_failure_reports_flow_failed(
    driven: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = driven
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind((PEER, 0))
        port = probe.getsockname()[1]
    flow = Flow("tcp", (HOST, driver.bound["tcp"]), (PEER, port))
    core.send(flow, message(b"nobody"))
    driver.poke()
    assert await asyncio.wait_for(core.failed.get(), WAIT) == flow
    assert flow not in driver.connections


async def test_close_flow_closes_the_connection(driven: tuple[CoreDriver, EchoCore]) -> None:
    driver, core = driven
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, driver.bound["tcp"]), WAIT
    )
    try:
        writer.write(message())
        await read_message(reader)
        _, flow = core.received.get_nowait()
        core.close(flow)
        driver.poke()
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        assert core.failed.empty()  # closed on the core's own request: no failure report
    finally:
        writer.close()


async def test_port_in_use_is_a_sentence() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, 0))
        port = taken.getsockname()[1]
        driver = CoreDriver("fe9.test", HOST, {"udp": port})
        with pytest.raises(BindError) as info:
            await driver.open()
    text = str(info.value)
    assert f"{HOST}:{port} (UDP)" in text and "fe9.test" in text and "in use" in text
    assert not driver.is_open


# -- outbound TLS (the driver's own TLS layer over TCP, not asyncio's SSLProtocol) -------------


async def test_send_on_a_new_flow_opens_a_verified_tls_connection(
    driven: tuple[CoreDriver, EchoCore], tls: TlsMaterial
) -> None:
    driver, core = driven
    got: asyncio.Queue[tuple[bytes, str | None]] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await read_message(reader)
        got.put_nowait((data, writer.get_extra_info("ssl_object").version()))
        writer.write(message(b"answer over tls"))
        await writer.drain()
        await reader.read()  # until the driver closes

    server = await asyncio.start_server(peer, PEER, 0, ssl=tls.server_context("fe2.test", PEER))
    try:
        port = server.sockets[0].getsockname()[1]
        flow = Flow("tls", (HOST, driver.bound["tls"]), (PEER, port))
        core.echo = False
        core.send(flow, message(b"first"))
        core.send(flow, message(b"second"))  # held until the handshake is done, kept in order
        driver.poke()
        data, version = await asyncio.wait_for(got.get(), WAIT)
        assert data == message(b"first")
        assert version is not None and version.startswith("TLS")
        answer, answer_flow = await asyncio.wait_for(core.received.get(), WAIT)
        assert answer == message(b"answer over tls")
        assert answer_flow == flow
        assert flow in driver.connections
        core.close(flow)
        driver.poke()
        assert flow not in driver.connections
        assert core.failed.empty()
    finally:
        server.close()


async def test_tls_to_an_untrusted_certificate_reports_flow_failed(
    driven: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = driven
    stranger = TlsMaterial()  # another CA: the driver's client context does not trust it
    accepted: asyncio.Queue[None] = asyncio.Queue()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.put_nowait(None)
        await reader.read()

    try:
        server = await asyncio.start_server(
            peer, PEER, 0, ssl=stranger.server_context("evil.test", PEER)
        )
        try:
            port = server.sockets[0].getsockname()[1]
            flow = Flow("tls", (HOST, driver.bound["tls"]), (PEER, port))
            core.send(flow, message(b"secret"))
            driver.poke()
            assert await asyncio.wait_for(core.failed.get(), WAIT) == flow
            assert flow not in driver.connections
            assert accepted.empty()  # the server's handshake failed too: no application data
            assert core.received.empty()
        finally:
            server.close()
    finally:
        stranger.cleanup()


async def test_accepted_tls_without_a_handshake_is_dropped(
    driven: tuple[CoreDriver, EchoCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, core = driven
    monkeypatch.setattr(stream, "CONNECT_TIMEOUT", 0.2)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, driver.bound["tls"]), WAIT
    )
    try:
        # Connected over TCP, no ClientHello: the pool drops it (asyncio's TLS did so too).
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        assert driver.connections == []
        assert core.received.empty()
    finally:
        writer.close()


async def test_accepted_tls_with_garbage_instead_of_a_handshake_is_closed(
    driven: tuple[CoreDriver, EchoCore],
) -> None:
    driver, core = driven
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, driver.bound["tls"]), WAIT
    )
    try:
        writer.write(message(b"plain SIP on the TLS port"))
        await asyncio.wait_for(reader.read(), WAIT)  # an alert, maybe, then the end
        assert reader.at_eof()
        assert driver.connections == []
        assert core.received.empty()
    finally:
        writer.close()
