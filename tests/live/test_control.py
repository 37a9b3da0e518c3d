"""The control API and ``sipemu ctl`` against a live deployment on loopback (ephemeral ports).

The deployment, the control server and the test's HTTP client share the test's event loop, as
``sipemu up`` shares one between the pools and the API; ``sipemu ctl`` (blocking urllib) runs
on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import dns.update
import pytest
import pytest_asyncio

from emulator.cli import main
from emulator.control import ControlServer
from emulator.control.ctl import EXIT_PROBLEM, EXIT_UNAUTHORIZED, EXIT_UNREACHABLE, EXIT_USAGE
from emulator.control.openapi import openapi_document
from emulator.live.deployment import Deployment, DeploymentError
from emulator.operations import Operations
from emulator.registrar import events as ev
from emulator.registrar.events import FailedOver
from emulator.sip.message import Response, parse_message
from emulator.testing.sip_client import UdpClient, register_request
from emulator.topology import parse_topology

pytestmark = pytest.mark.live

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"
FAST = (Path(__file__).resolve().parents[2] / "topologies" / "fast.toml").read_text()
WAIT = 10.0


class Api:
    """A running deployment, its control server and an HTTP session on it."""

    def __init__(
        self, deployment: Deployment, server: ControlServer, session: aiohttp.ClientSession
    ) -> None:
        self.deployment = deployment
        self.server = server
        self.session = session
        self.base = server.url
        self.address = f"{server.address[0]}:{server.address[1]}"

    async def call(
        self, method: str, path: str, body: Any = None, **params: str
    ) -> tuple[int, Any, str]:
        async with self.session.request(
            method, self.base + path, json=body, params=params or None
        ) as response:
            text = await response.text()
            data = json.loads(text) if response.content_type.endswith("json") else text
            return response.status, data, response.content_type


async def start(token: str = "") -> tuple[Deployment, ControlServer]:
    deployment = Deployment(parse_topology(FAST, "fast.toml"), quiet=False, seed=7)
    server = ControlServer(deployment, "127.0.0.1", 0, token=token)
    await deployment.start()
    deployment.dns.accept_updates()
    await server.start()
    return deployment, server


@pytest_asyncio.fixture
async def api() -> AsyncIterator[Api]:
    deployment, server = await start()
    timeout = aiohttp.ClientTimeout(total=WAIT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield Api(deployment, server, session)
    finally:
        await server.stop()
        await deployment.stop()


async def register(api: Api, pool: str, user: str) -> Response:
    client = await UdpClient.open()
    try:
        client.send(
            register_request(user, "contoso.test", client.address),
            api.deployment.pool_address(pool, "udp"),
        )
        message = parse_message(await client.receive())
    finally:
        client.close()
    assert isinstance(message, Response)
    return message


async def ctl(*argv: str) -> int:
    return await asyncio.to_thread(main, ["ctl", *argv])


# -- resources -----------------------------------------------------------------------------------


async def test_every_served_route_is_in_the_openapi_document(api: Api) -> None:
    status, document, _ = await api.call("GET", "/openapi.json")
    assert status == 200 and document == openapi_document()
    app = api.server._app
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    described = {(m, path) for path, ops in document["paths"].items() for m in ops}
    assert served == described


async def test_status_names_pools_ports_dns_and_peer_states(api: Api) -> None:
    status, data, _ = await api.call("GET", "/status")
    assert status == 200
    assert data["seed"] == 7 and data["domain"] == "contoso.test"
    assert data["dns"]["port"] == api.deployment.dns_address[1]
    assert data["dns"]["updates"] is True
    pools = {p["fqdn"]: p for p in data["pools"]}
    assert pools[FE1]["ports"]["udp"] == api.deployment.pool_address(FE1, "udp")[1]
    assert pools[FE1]["peers"] == {FE2: "up"} and pools[FE1]["running"] is True
    _, peers, _ = await api.call("GET", "/peers")
    assert {"pool": FE2, "peer": FE1, "state": "up"} in peers


async def test_bindings_are_listed_and_filtered(api: Api) -> None:
    assert (await register(api, FE1, "clientuser1")).status == 200
    _, everyone, _ = await api.call("GET", "/bindings")
    assert [b["aor"] for b in everyone] == ["sip:clientuser1@contoso.test"]
    assert everyone[0]["pool"] == FE1 and everyone[0]["transport"] == "udp"
    assert 3500 < everyone[0]["expires_in"] <= 3600
    _, on_fe2, _ = await api.call("GET", "/bindings", pool=FE2)
    _, by_aor, _ = await api.call("GET", "/bindings", aor="clientuser1@contoso.test")
    _, failed_over, _ = await api.call("GET", "/bindings", resiliency="true")
    assert (on_fe2, len(by_aor), failed_over) == ([], 1, [])


async def test_stopping_a_pool_through_the_api_closes_it(api: Api) -> None:
    status, pool, _ = await api.call("POST", f"/pools/{FE2}/stop")
    assert status == 200 and pool["running"] is False
    assert not api.deployment.is_running(FE2)
    _, pool, _ = await api.call("POST", f"/pools/{FE2}/start")
    assert pool["running"] is True and api.deployment.is_running(FE2)
    _, pool, _ = await api.call("POST", f"/pools/{FE1}/disable-nic")
    assert pool["nic_enabled"] is False and not api.deployment.nic_enabled(FE1)


async def test_errors_are_problem_documents_with_sentences(api: Api) -> None:
    status, problem, content_type = await api.call("POST", "/pools/fe9.contoso.test/stop")
    assert (status, content_type) == (404, "application/problem+json")
    assert problem["detail"] == (
        "no pool named 'fe9.contoso.test' (pools: fe1.contoso.test, fe2.contoso.test)"
    )
    assert problem["type"] == "urn:sipemu:problem:not-found"
    status, problem, _ = await api.call("GET", "/nowhere")
    assert status == 404 and "GET /openapi.json lists them" in problem["detail"]
    status, problem, _ = await api.call("DELETE", "/status")
    assert status == 405 and problem["detail"] == "DELETE is not allowed on /status"
    async with api.session.post(api.base + "/dns/records", data=b"{nope") as response:
        assert response.status == 400
        assert (await response.json(content_type=None))["detail"].startswith("the body is not JSON")


# -- DNS -----------------------------------------------------------------------------------------


async def dns_query(api: Api, name: str, rtype: str) -> dns.message.Message:
    host, port = api.deployment.dns_address
    return await dns.asyncquery.udp(
        dns.message.make_query(name, rtype), host, port=port, timeout=WAIT
    )


async def test_records_added_by_the_api_are_served_and_listed(api: Api) -> None:
    status, record, _ = await api.call(
        "POST", "/dns/records", {"name": "fe3.contoso.test", "type": "A", "data": "127.0.0.13"}
    )
    assert status == 201 and record["data"] == "127.0.0.13"
    answer = await dns_query(api, "fe3.contoso.test", "A")
    assert [r.address for r in answer.answer[0]] == ["127.0.0.13"]
    naptr = {
        "name": "contoso.test",
        "type": "NAPTR",
        "order": 10,
        "preference": 50,
        "service": "SIPS+D2T",
        "replacement": "_sips._tcp.contoso.test",
    }
    status, record, _ = await api.call("POST", "/dns/records", naptr)
    assert record["data"] == '10 50 "s" "SIPS+D2T" "" _sips._tcp.contoso.test'
    answer = await dns_query(api, "contoso.test", "NAPTR")
    assert next(iter(answer.answer[0])).service == b"SIPS+D2T"
    status, replaced, _ = await api.call(
        "PUT",
        "/dns/records/fe3.contoso.test/A",
        {"records": [{"data": "127.0.0.23"}, {"data": "127.0.0.33", "ttl": 5}]},
    )
    assert status == 200 and [r["data"] for r in replaced] == ["127.0.0.23", "127.0.0.33"]
    _, removed, _ = await api.call(
        "DELETE", "/dns/records", name="fe3.contoso.test", type="A", data="127.0.0.23"
    )
    assert removed["removed"] == 1
    _, listed, _ = await api.call("GET", "/dns/records", name="fe3.contoso.test")
    assert [(r["data"], r["ttl"]) for r in listed] == [("127.0.0.33", 5)]
    status, problem, _ = await api.call(
        "POST", "/dns/records", {"name": "x.fabrikam.test", "type": "A", "data": "127.0.0.1"}
    )
    assert status == 422 and "outside the zones of the fake DNS" in problem["detail"]


async def test_an_rfc_2136_update_is_visible_in_the_api_record_list(api: Api) -> None:
    host, port = api.deployment.dns_address
    update = dns.update.UpdateMessage("contoso.test")
    update.absent("fe4.contoso.test.")
    update.add("fe4.contoso.test.", 60, "AAAA", "::1")
    response = await dns.asyncquery.udp(update, host, port=port, timeout=WAIT)
    assert response.rcode() == dns.rcode.NOERROR
    _, listed, _ = await api.call("GET", "/dns/records", name="fe4.contoso.test")
    assert listed == [
        {"name": "fe4.contoso.test", "type": "AAAA", "ttl": 60, "data": "::1", "address": "::1"}
    ]
    _, policy, _ = await api.call("PUT", "/dns/updates", {"accepted": False})
    assert policy == {"accepted": False, "keys": []}
    refused = await dns.asyncquery.udp(update, host, port=port, timeout=WAIT)
    assert refused.rcode() == dns.rcode.NOTIMP


async def test_dns_faults_are_set_and_cleared(api: Api) -> None:
    _, faults, _ = await api.call("POST", "/dns/faults", {"kind": "servfail", "name": FE2})
    assert faults == {"server": None, "names": {FE2: "servfail"}}
    assert (await dns_query(api, FE2, "A")).rcode() == dns.rcode.SERVFAIL
    status, problem, _ = await api.call("POST", "/dns/faults", {"kind": "slow"})
    assert status == 422 and problem["detail"] == "kind: one of servfail, timeout, nxdomain"
    _, faults, _ = await api.call("DELETE", "/dns/faults")
    assert faults == {"server": None, "names": {}}


# -- administration and steps ----------------------------------------------------------------------


async def test_admin_actions_carry_the_scenario_sentences(api: Api) -> None:
    status, problem, _ = await api.call("POST", "/admin/force-move", {"from": "nowhere", "to": FE2})
    expected = Operations.validate(api.deployment.topology, "force-move", {"from": "nowhere"})
    assert status == 422 and problem["detail"] == f"force-move: {expected}"
    status, problem, _ = await api.call("POST", "/admin/chat-step", {"step": "x"})
    assert status == 422 and "persistent_chat" in problem["detail"]
    status, problem, _ = await api.call("POST", "/admin/import-contacts")
    assert status == 409 and problem["type"] == "urn:sipemu:problem:refused"
    assert problem["detail"].startswith("import-contacts refused: ")
    assert problem["outcome"]["ok"] is False
    status, done, _ = await api.call("POST", "/admin/export-contacts", {})
    assert status == 200 and done["ok"] is True
    status, done, _ = await api.call("POST", "/admin/import-contacts")
    assert status == 200, done


async def test_scenario_steps_run_now_or_are_refused_with_a_sentence(api: Api) -> None:
    status, done, _ = await api.call("POST", "/steps", {"action": "stop-pool", "target": FE2})
    assert status == 200 and done["step"] == f"stop-pool target={FE2}"
    assert not api.deployment.is_running(FE2)
    status, done, _ = await api.call(
        "POST",
        "/steps",
        {
            "action": "dns-add",
            "type": "SRV",
            "name": "_sip._tls.contoso.test",
            "port": 0,
            "record_target": FE2,
        },
    )
    assert status == 200
    tls = api.deployment.pool_address(FE2, "tls")[1]
    assert done["text"] == f"added _sip._tls.contoso.test 300 SRV 0 0 {tls} {FE2}"
    status, problem, _ = await api.call(
        "POST", "/steps", {"action": "partition", "a": FE1, "b": FE2}
    )
    assert status == 422 and "cannot run on a live deployment" in problem["detail"]
    status, problem, _ = await api.call("POST", "/steps", {"action": "stop-pool", "target": "x"})
    assert status == 422 and "target: expected a pool FQDN" in problem["detail"]


# -- events and metrics ----------------------------------------------------------------------------


async def read_events(api: Api, count: int, query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async with api.session.get(f"{api.base}/events?limit={count}&{query}") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                items.append(json.loads(line[len("data: ") :]))
    return items


async def test_the_event_stream_carries_what_the_deployment_logs(api: Api) -> None:
    reader = asyncio.create_task(read_events(api, 3, "kinds=sip,notice"))
    await asyncio.wait_for(api.server.hub.subscribed(), WAIT)
    await register(api, FE1, "clientuser2")
    await api.call("POST", f"/pools/{FE2}/stop")
    await api.call("POST", f"/pools/{FE2}/start")
    events = await asyncio.wait_for(reader, WAIT)
    assert [e["kind"] for e in events] == ["sip", "notice", "notice"]
    assert events[0]["source"] == FE1 and "301 Redirect request to Home Server" in events[0]["text"]
    assert events[1]["text"].startswith("pool stopped")
    assert events[2] == {**events[2], "source": FE2, "kind": "notice"}


async def metric(api: Api, line_start: str) -> float | None:
    _, text, content_type = await api.call("GET", "/metrics")
    assert content_type == "text/plain"
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_count_requests_failovers_and_dns_queries(api: Api) -> None:
    await register(api, FE1, "clientuser1")
    await register(api, FE1, "clientuser2")
    label = f'pool="{FE1}"'
    assert await metric(api, f'sipemu_sip_requests_total{{method="REGISTER",{label}}}') == 2
    assert (
        await metric(api, f'sipemu_sip_responses_total{{method="REGISTER",{label},status="301"}}')
        == 1
    )
    assert await metric(api, f"sipemu_bindings{{{label}}}") == 1
    await dns_query(api, FE1, "A")
    assert (
        await metric(api, 'sipemu_dns_queries_total{qtype="A",rcode="NOERROR",transport="udp"}')
        == 1
    )
    failed_over = asyncio.Event()
    unsubscribe = api.deployment.subscribe(
        lambda source, event: failed_over.set() if isinstance(event, FailedOver) else None
    )
    try:
        await api.call("POST", f"/pools/{FE2}/disable-nic")
        # Failover detection is 2 s in fast.toml.
        await asyncio.wait_for(failed_over.wait(), WAIT)
    finally:
        unsubscribe()
    state = f'sipemu_peer_state{{peer="{FE2}",{label},state="failed-over"}}'
    assert await metric(api, state) == 1
    assert await metric(api, f'sipemu_failovers_total{{peer="{FE2}",{label}}}') == 1
    assert await metric(api, f'sipemu_pool_up{{pool="{FE2}"}}') == 0


async def test_metrics_count_the_defences_of_issue_21(api: Api) -> None:
    # The registrar's limits as the pools report them (their own tests make them happen:
    # tests/registrar/test_limits.py); here, what the metrics make of the events.
    observe = api.server.metrics.observe
    observe(FE1, ev.LoadShed(1.0, FE1, "127.0.0.41", 6.0, 0, 0))
    observe(FE1, ev.BindingLimitReached(2.0, FE1, "sip:u@contoso.test", 8, "evicted", "<x>", 4))
    observe(FE1, ev.BindingReplaced(3.0, FE1, "sip:u@contoso.test", "<y>", 9.0, "a", "b", "<z>"))
    observe(FE1, ev.AnswerTrimmed(4.0, FE1, "sip:u@contoso.test", 70_000, 1, 900))
    label = f'pool="{FE1}"'
    assert await metric(api, f"sipemu_sheddings_total{{{label}}}") == 1
    limit = f'sipemu_binding_limit_total{{action="evicted",{label}}}'
    assert await metric(api, limit) == 5  # the one reported and the four in between
    assert await metric(api, f"sipemu_bindings_replaced_total{{{label}}}") == 1
    assert await metric(api, f"sipemu_answers_trimmed_total{{{label}}}") == 1


# -- security ------------------------------------------------------------------------------------


async def test_a_token_is_required_when_set() -> None:
    deployment, server = await start(token="s3cret")
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/status") as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="sipemu"'
            headers = {"Authorization": "Bearer s3cret"}
            async with session.get(server.url + "/status", headers=headers) as response:
                assert response.status == 200
        address = f"{server.address[0]}:{server.address[1]}"
        assert await ctl("--control", address, "status") == EXIT_UNAUTHORIZED
        assert await ctl("--control", address, "--token", "s3cret", "status") == 0
    finally:
        await server.stop()
        await deployment.stop()


def test_a_non_loopback_control_address_is_refused_before_binding() -> None:
    deployment = Deployment(parse_topology(FAST, "fast.toml"))
    with pytest.raises(DeploymentError, match="not a loopback address"):
        ControlServer(deployment, "192.0.2.1", 0)
    ControlServer(deployment, "192.0.2.1", 0, allow_non_loopback=True)  # constructing binds nothing


# -- sipemu ctl ----------------------------------------------------------------------------------


async def test_ctl_prints_tables_json_and_exit_statuses(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await ctl("--control", api.address, "status") == 0
    out = capsys.readouterr().out
    assert "POOL" in out and f"{FE2} up" in out
    assert await ctl("--control", api.address, "bindings", FE1, "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert (
        await ctl("--control", api.address, "dns", "add", "A", "fe3.contoso.test", "127.0.0.13")
        == 0
    )
    assert "fe3.contoso.test  300  A     127.0.0.13" in capsys.readouterr().out
    naptr = [
        "dns",
        "add",
        "NAPTR",
        "contoso.test",
        "10",
        "50",
        "s",
        "SIP+D2U",
        "",
        "_sip._udp.contoso.test",
    ]
    assert await ctl("--control", api.address, *naptr) == 0
    assert '10 50 "s" "SIP+D2U" "" _sip._udp.contoso.test' in capsys.readouterr().out
    assert await ctl("--control", api.address, "fault", "stop-pool", FE2) == 0
    assert not api.deployment.is_running(FE2)
    assert await ctl("--control", api.address, "admin", "import-contacts") == EXIT_PROBLEM
    assert capsys.readouterr().err.startswith("sipemu ctl: import-contacts refused: ")
    assert await ctl("--control", api.address, "admin", "force-move", "from") == EXIT_USAGE
    assert "'from': expected KEY=VALUE" in capsys.readouterr().err
    assert await ctl("--control", api.address, "step", "dns-fail", "kind=servfail") == 0
    assert api.deployment.dns.faults == {None: "servfail"}
    with socket.socket() as probe:  # a port nothing listens on (bound, not listening)
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
        assert await ctl("--control", closed, "status") == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert err.startswith(f"sipemu ctl: cannot reach the sipemu control API at {closed}")
    assert "Traceback" not in err


async def test_ctl_follows_events(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    follower = asyncio.create_task(
        ctl("--control", api.address, "events", "--count", "1", "--kinds", "notice")
    )
    await asyncio.wait_for(api.server.hub.subscribed(), WAIT)
    await api.deployment.stop_pool(FE2)
    assert await asyncio.wait_for(follower, WAIT) == 0
    assert capsys.readouterr().out.startswith(f"{FE2} notice: pool stopped")


async def test_a_taken_port_is_a_sentence_or_with_fallback_an_ephemeral_one() -> None:
    deployment = Deployment(parse_topology(FAST, "fast.toml"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        strict = ControlServer(deployment, "127.0.0.1", port)
        with pytest.raises(
            DeploymentError, match=f"cannot serve the control API on 127.0.0.1:{port}"
        ):
            await strict.start()
        await strict.stop()
        lenient = ControlServer(deployment, "127.0.0.1", port, fallback=True)
        await lenient.start()
        try:
            assert lenient.fell_back and lenient.address[1] not in (0, port)
        finally:
            await lenient.stop()


def test_sipemu_up_refuses_a_non_loopback_control_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = tmp_path / "fast.toml"
    topology.write_text(FAST)
    assert main(["up", str(topology), "--control", "192.0.2.1:5380"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sipemu: the control API address 192.0.2.1 is not a loopback address")
    assert main(["up", str(topology), "--control", "nowhere"]) == 2
    assert "is not ADDR:PORT" in capsys.readouterr().err
