"""Client agents on real sockets against the live deployment: field report R1's sign-in, and
failover/failback with short timers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from clients.cache import FileCacheStore
from clients.driver import ClientConfig, Fleet, client_ssl_context
from clients.events import AgentEvent, ClientStateChanged
from clients.profile import LYNC2010, Backoff
from emulator.testing import DeploymentFactory, RunningDeployment
from emulator.topology import parse_topology

from .test_deployment import FAST

pytestmark = pytest.mark.live

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"
WAIT = 15.0

# Lync 2010 with every client timer shortened to match the FAST topology (failover 2 s,
# failback 3 s): a silent registrar is noticed within about a second.
FAST_LYNC = replace(
    LYNC2010,
    name="lync2010-fast",
    keepalive_interval=0.3,
    pong_timeout=0.3,
    failover_detection_timeout=0.3,
    transaction_timeout=1.0,
    backoff=Backoff(0.5, 1.0),
    failback_probe_interval=10.0,
    failback_detection_timeout=60.0,
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[AgentEvent] = []

    def __call__(self, event: AgentEvent) -> None:
        self.events.append(event)

    def states(self, client: str) -> list[ClientStateChanged]:
        return [e for e in self.events if isinstance(e, ClientStateChanged) and e.client == client]


FleetMaker = Callable[..., "AsyncIterator[Fleet]"]


@pytest.fixture
async def fleets() -> AsyncIterator[list[Fleet]]:
    made: list[Fleet] = []
    yield made
    for fleet in made:
        await fleet.stop()


def dns_queries(running: RunningDeployment) -> list[str]:
    return [line for line in running.log_lines() if " dns " in line]


async def sign_in(
    running: RunningDeployment,
    fleets: list[Fleet],
    cache_dir: Path,
    recorder: Recorder,
    *names: str,
    profile: object = "lync2010",
) -> Fleet:
    configs = [ClientConfig(n, f"sip:{n.lower()}@contoso.test", profile) for n in names]  # type: ignore[arg-type]
    fleet = Fleet(
        configs,
        dns_server=running.dns_address,
        seed=running.seed,
        caches=lambda config: FileCacheStore(cache_dir),
        client_ssl=client_ssl_context(running.ca_path),
        on_event=recorder,
    )
    fleets.append(fleet)
    await fleet.start()
    fleet.sign_in()
    assert await fleet.wait_for_state("registered", timeout=WAIT), fleet.states()
    return fleet


async def test_r1_sign_in_on_real_sockets(
    sipemu: RunningDeployment, fleets: list[Fleet], tmp_path: Path
) -> None:
    recorder = Recorder()
    fleet = await sign_in(sipemu, fleets, tmp_path, recorder, "ClientUser1", "ClientUser2")
    one, two = fleet.states()["ClientUser1"], fleet.states()["ClientUser2"]
    assert one is not None and two is not None
    # ClientUser1: straight to its home pool, a 200, no 301: it knows no backup.
    assert (one.registrar, one.mode, one.primary, one.backup) == (FE1, "full", FE1, None)
    # ClientUser2: fe1 (the only SRV target) redirects it; it lands on fe2 and knows fe1.
    assert (two.registrar, two.mode, two.primary, two.backup) == (FE2, "full", FE2, FE1)
    assert any("redirected by fe1.contoso.test" in e.cause for e in recorder.states("ClientUser2"))
    bound = {b.aor: b for b in sipemu.bindings()}
    assert set(bound) == {"sip:clientuser1@contoso.test", "sip:clientuser2@contoso.test"}
    assert [b.aor for b in sipemu.bindings(FE2)] == ["sip:clientuser2@contoso.test"]
    # Both cached their home server (never the backup).
    cache = FileCacheStore(tmp_path)
    entry = cache.load("sip:clientuser2@contoso.test")
    assert entry is not None and entry.home_server == FE2
    queries = len(dns_queries(sipemu))
    assert queries >= 3  # SRV, A fe1, A fe2 (at least)

    # A second sign-in uses the cache: straight to fe2, no DNS query, no 301: no backup known.
    await fleet.stop()
    again = Recorder()
    fleet2 = await sign_in(sipemu, fleets, tmp_path, again, "ClientUser2")
    state = fleet2.states()["ClientUser2"]
    assert state is not None
    assert (state.registrar, state.primary, state.backup) == (FE2, FE2, None)
    assert any("(cache)" in e.cause for e in again.states("ClientUser2"))
    assert len(dns_queries(sipemu)) == queries


async def test_a_client_registered_over_tls_closes_its_udp_socket_until_it_needs_dns(
    sipemu: RunningDeployment, fleets: list[Fleet], tmp_path: Path
) -> None:
    fleet = await sign_in(sipemu, fleets, tmp_path, Recorder(), "ClientUser1")
    host = fleet.hosts["ClientUser1"]
    assert not host.driver.udp_open  # registered over TLS: UDP served DNS only
    queries = len(dns_queries(sipemu))
    host.restart(keep_cache=False)  # no cache, no memory: discovery again, over UDP
    assert fleet.states()["ClientUser1"].state != "registered"  # type: ignore[union-attr]
    assert await fleet.wait_for_state("registered", timeout=WAIT), fleet.states()
    assert len(dns_queries(sipemu)) > queries  # the socket was reopened for the SRV query
    assert not host.driver.udp_open  # and closed again once registered
    assert host.driver.dropped == 0


def test_failover_to_the_backup_and_home_again_with_short_timers(
    sipemu_factory: DeploymentFactory, tmp_path: Path
) -> None:
    import asyncio

    running = sipemu_factory(parse_topology(FAST, "<fast>"))
    recorder = Recorder()

    async def scenario() -> None:
        fleets: list[Fleet] = []
        try:
            fleet = await sign_in(
                running, fleets, tmp_path, recorder, "ClientUser2", profile=FAST_LYNC
            )
            assert fleet.states()["ClientUser2"].backup == FE1  # type: ignore[union-attr]
            running.disable_nic(FE2)

            def on(
                registrar: str, mode: str
            ) -> Callable[[dict[str, ClientStateChanged | None]], bool]:
                def check(states: dict[str, ClientStateChanged | None]) -> bool:
                    s = states["ClientUser2"]
                    return (
                        s is not None
                        and s.state == "registered"
                        and s.registrar == registrar
                        and s.mode == mode
                    )

                return check

            assert await fleet.wait_until(on(FE1, "limited"), timeout=WAIT), fleet.states()
            assert [b.resiliency for b in running.bindings(FE1)] == [True]
            running.enable_nic(FE2)
            assert await fleet.wait_until(on(FE2, "full"), timeout=WAIT), fleet.states()
            assert running.bindings(FE1) == []  # the failback NOTIFY removed it
        finally:
            for fleet in fleets:
                await fleet.stop()

    asyncio.run(scenario())
    states = recorder.states("ClientUser2")
    signed_out = [e for e in states if e.state == "signed-out" and "registrar lost" in e.cause]
    assert signed_out, [e.line() for e in states]
    assert any("preferred" in e.cause for e in states if e.registrar == FE2), [
        e.line() for e in states
    ]
