"""What the control API counts does not depend on the log settings, and where client agents run
in the process (``sipemu run --realtime``) it shows them and takes their steps.

Loopback only, ephemeral ports, every wait bounded.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from emulator.cli import main
from emulator.control import ControlServer
from emulator.control.launch import ControlOptions
from emulator.control.metrics import DeploymentMetrics
from emulator.live.deployment import Deployment
from emulator.scenario.model import parse_scenario
from emulator.scenario.realtime import run_realtime
from emulator.scenario.runner import RunResult
from emulator.sip.message import Response, parse_message
from emulator.testing.sip_client import UdpClient, register_request
from emulator.topology import parse_topology

pytestmark = pytest.mark.live

FE1 = "fe1.contoso.test"
FAST = (Path(__file__).resolve().parents[2] / "topologies" / "fast.toml").read_text()
WAIT = 10.0


# -- counting under --quiet ------------------------------------------------------------------------


class Running:
    def __init__(self, deployment: Deployment, server: ControlServer, log: list[str]) -> None:
        self.deployment = deployment
        self.server = server
        self.log = log


@asynccontextmanager
async def running(quiet: bool) -> AsyncIterator[Running]:
    log: list[str] = []
    deployment = Deployment(parse_topology(FAST, "fast.toml"), log=log.append, quiet=quiet, seed=3)
    server = ControlServer(deployment, "127.0.0.1", 0, token="")
    await deployment.start()
    await server.start()
    try:
        yield Running(deployment, server, log)
    finally:
        await server.stop()
        await deployment.stop()


async def register(deployment: Deployment, user: str) -> None:
    client = await UdpClient.open()
    try:
        client.send(
            register_request(user, "contoso.test", client.address),
            deployment.pool_address(FE1, "udp"),
        )
        assert isinstance(parse_message(await client.receive()), Response)
    finally:
        client.close()


async def dns_query(deployment: Deployment) -> None:
    import dns.asyncquery
    import dns.message

    host, port = deployment.dns_address
    query = dns.message.make_query(FE1, "A")
    await dns.asyncquery.udp(query, host, port=port, timeout=WAIT)


# The counters a client's traffic moves (heartbeat OPTIONS between the pools are left out: how
# many there were depends on how long each deployment has run).
COUNTED = re.compile(
    r'^(sipemu_sip_(requests|responses)_total\{method="REGISTER"|sipemu_dns_queries_total\{)'
)


async def counters(session: aiohttp.ClientSession, server: ControlServer) -> list[str]:
    async with session.get(f"{server.url}/metrics") as response:
        text = await response.text()
    return sorted(line for line in text.splitlines() if COUNTED.match(line))


async def test_quiet_deployments_count_exchanges_as_chatty_ones_do_without_logging_them() -> None:
    results: dict[bool, list[str]] = {}
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for quiet in (False, True):
            async with running(quiet) as run:
                reader = asyncio.create_task(first_sip_event(session, run.server))
                await asyncio.wait_for(run.server.hub.subscribed(), WAIT)
                await register(run.deployment, "clientuser1")
                await register(run.deployment, "clientuser2")
                await dns_query(run.deployment)
                event = await asyncio.wait_for(reader, WAIT)
                assert event["kind"] == "sip" and event["method"] == "REGISTER"
                assert event["status"] in (200, 301)
                results[quiet] = await counters(session, run.server)
                exchanges = [line for line in run.log if " REGISTER " in line or " dns " in line]
                assert bool(exchanges) is not quiet, run.log
    assert results[True] == results[False]
    assert any('status="301"' in line and line.endswith(" 1.0") for line in results[True])
    assert any("sipemu_dns_queries_total" in line for line in results[True])


async def first_sip_event(session: aiohttp.ClientSession, server: ControlServer) -> Any:
    async with session.get(f"{server.url}/events?limit=1&kinds=sip") as response:
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                return json.loads(line[len("data: ") :])
    raise AssertionError("the event stream ended without a sip event")


# -- a realtime run with client agents -------------------------------------------------------------

SCENARIO = """
topology = "default"
seed = 4
duration = 120

[[client]]
name = "ClientUser1"
user = "sip:clientuser1@contoso.test"

[[client]]
name = "ClientUser2"
user = "sip:clientuser2@contoso.test"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser1"

[[step]]
at = 0
action = "sign-in"
client = "ClientUser2"

[[expect]]
client = "ClientUser1"
by = 30
state = "registered"
"""


class _Told:
    """Tells waiting threads that something changed (a generation counter under a condition:
    a waiter never holds the lock while it probes, so the run's loop never waits on it)."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.generation = 0

    def changed(self) -> None:
        with self.condition:
            self.generation += 1
            self.condition.notify_all()


class _TellingOutput(io.StringIO):
    """What the run prints, telling waiters of each write (the control API's address)."""

    def __init__(self, told: _Told) -> None:
        super().__init__()
        self._told = told

    def write(self, text: str) -> int:
        written = super().write(text)
        self._told.changed()
        return written


class Realtime:
    """A realtime run on a thread, its control API found in what it prints.  Waits are on
    what the run does (a write to its output, a client's state reaching the metrics), each
    bounded by WAIT."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.told = _Told()
        observe = DeploymentMetrics.observe_client

        def observe_and_tell(metrics: DeploymentMetrics, client: str, state: str) -> None:
            observe(metrics, client, state)
            self.told.changed()

        monkeypatch.setattr(DeploymentMetrics, "observe_client", observe_and_tell)
        self.out = _TellingOutput(self.told)
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.url = self.wait_for(self._url, "the run did not print its control API address")

    def _run(self) -> None:
        try:
            self.result = run_realtime(
                parse_scenario(SCENARIO, "<clients>"),
                time_scale=20,
                control=ControlOptions("127.0.0.1", 0, token=""),
                out=self.out,
            )
        except BaseException as exc:  # re-raised by the test
            self.error = exc
        finally:
            self.told.changed()

    def _url(self) -> str | None:
        found = re.search(r"control API: (http://[0-9.:]+)/", self.out.getvalue())
        return found[1] if found else None

    def wait_for(self, probe: Callable[[], Any], what: str) -> Any:
        """``probe()`` once it is true, probed again after each change the run tells of."""
        deadline = time.monotonic() + WAIT
        told = self.told
        while True:
            with told.condition:
                seen = told.generation
            if self.error is not None:
                raise self.error
            value = probe()
            if value:
                return value
            with told.condition:
                remaining = deadline - time.monotonic()
                assert remaining > 0, what
                told.condition.wait_for(lambda seen=seen: told.generation != seen, remaining)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                text = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            text = exc.read().decode()
            status = exc.code
        return status, json.loads(text) if text.startswith(("{", "[")) else text

    def clients(self, state: str) -> float | None:
        _, text = self.call("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith(f'sipemu_clients{{state="{state}"}} '):
                return float(line.rsplit(" ", 1)[1])
        return None

    def finish(self) -> RunResult:
        self.thread.join(WAIT + 120 / 20)
        assert not self.thread.is_alive(), "the realtime run did not end"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def test_a_realtime_run_shows_its_clients_by_state_and_takes_client_steps(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Realtime(monkeypatch)
    run.wait_for(lambda: run.clients("registered") == 2, "both clients did not register")
    assert run.clients("signed-out") == 0
    status, data = run.call("GET", "/status")
    assert status == 200
    assert data["clients"] == [
        {"name": "ClientUser1", "state": "registered"},
        {"name": "ClientUser2", "state": "registered"},
    ]
    address = run.url.removeprefix("http://")
    assert main(["ctl", "--control", address, "status"]) == 0
    assert "clients: 2 (2 registered)" in capsys.readouterr().out

    # A client step, validated as in a scenario file.
    status, problem = run.call("POST", "/steps", {"action": "sign-out", "client": "Nobody"})
    assert status == 422
    assert "the name of a [[client]] (ClientUser1, ClientUser2)" in problem["detail"]
    status, done = run.call("POST", "/steps", {"action": "sign-out", "client": "ClientUser2"})
    assert status == 200, done
    assert done == {
        "step": "sign-out client=ClientUser2",
        "ok": True,
        "text": "ClientUser2: signing out",
    }
    run.wait_for(lambda: run.clients("signed-out") == 1, "ClientUser2 did not sign out")
    assert run.clients("registered") == 1

    result = run.finish()
    assert result.passed, result.report()
    assert any(e.source == "control" and "sign-out" in e.text for e in result.trace)
    two = result.timeline["ClientUser2"]
    assert two[-1].state == "signed-out"


async def test_client_steps_are_refused_where_no_agents_run() -> None:
    async with running(quiet=True) as run:
        timeout = aiohttp.ClientTimeout(total=WAIT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            body = {"action": "sign-in", "client": "ClientUser1"}
            async with session.post(f"{run.server.url}/steps", json=body) as response:
                problem = await response.json(content_type=None)
                assert response.status == 422
    assert "acts on a client agent, and none runs in this process" in problem["detail"]


def test_control_options_are_for_realtime_runs_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text('topology = "default"\nduration = 5\n')
    assert main(["run", str(path), "--control", "127.0.0.1:0"]) == 2
    assert "--control applies to --realtime runs only" in capsys.readouterr().err
