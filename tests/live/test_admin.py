"""Administrative and DR actions (emulator.operations) on the live deployment, real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from emulator.effects import Effects, PoolState, plan
from emulator.live.deployment import Deployment, DeploymentError
from emulator.operations import Operations
from emulator.registrar import events as ev
from emulator.scenario.model import parse_scenario
from emulator.scenario.realtime import run_realtime
from emulator.sim.deployment import SimulatedDeployment, pool_trace
from emulator.testing import DeploymentFactory
from emulator.testing.sip_client import WAIT
from emulator.topology import parse_topology

pytestmark = pytest.mark.live

FE1 = "fe1.contoso.test"
DR1 = "dr1.contoso.test"

# R2 on real sockets, compressed: a Lync 2010 pool whose SQL principal fails gives limited
# functionality (no persistent change) until R2's procedure repoints the front end at the
# mirror and restarts it; the client then signs in again and gets its contact list back.
# Short client timers, so that the restart is noticed and recovered from within seconds.
R2 = """
description = "R2 live: principal down -> limited; r2-procedure -> restart -> full, contacts"
seed = 7
duration = 30

[topology]
domain = "contoso.test"
profile = "lync2010"

[[topology.pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
ports = { udp = 0, tcp = 0, tls = 0 }
backend = { principal = "sql01", mirror = "sql02" }

[[topology.user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
contacts = ["sip:bob@contoso.test", "sip:carol@contoso.test"]

[[topology.user]]
uri = "sip:bob@contoso.test"
pool = "fe1.contoso.test"

[topology.dns]
port = 0

[[topology.dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"

[[client]]
name = "alice"
user = "sip:alice@contoso.test"
options = { keepalive_interval = 1, pong_timeout = 1, failover_detection_timeout = 1 }

[[step]]
at = 0
action = "sign-in"
client = "alice"

[[step]]
at = 5
action = "backend-down"
target = "fe1.contoso.test"
server = "principal"
expect = "ok"

[[step]]
at = 8
action = "add-contact"
client = "alice"
contact = "sip:dave@contoso.test"
expect = "refused"

[[step]]
at = 9
action = "backend-failover"
target = "fe1.contoso.test"
expect = "refused"

[[step]]
at = 10
action = "r2-procedure"
target = "fe1.contoso.test"
expect = "ok"

[[step]]
at = 20
action = "add-contact"
client = "alice"
contact = "sip:dave@contoso.test"
expect = "ok"

[[expect]]
client = "alice"
at = 4
state = "registered"
mode = "full"
contacts = 2

[[expect]]
client = "alice"
by = 7
state = "registered"
mode = "limited"

[[expect]]
client = "alice"
always = [7, 9.9]
mode = "limited"

[[expect]]
client = "alice"
by = 18
state = "registered"
mode = "full"
contacts = 2

[[expect]]
client = "alice"
by = 28
state = "registered"
mode = "full"
contacts = 3
"""


def test_r2_procedure_restores_full_function_on_real_sockets() -> None:
    result = run_realtime(parse_scenario(R2, "<r2-live>"), time_scale=10)
    assert result.passed, result.report()
    steps = [r for r in result.results if r.expectation.step is not None]
    assert [r.expectation.outcome for r in steps] == ["ok", "refused", "refused", "ok", "ok"]
    assert "503 User services unavailable" in steps[1].detail  # from the registrar
    admin = [e.text for e in result.trace if e.source == "admin"]
    assert any("R2 procedure applied" in text for text in admin)
    assert any(text.startswith("backend-failover refused: ") for text in admin)
    # The restart cut the client off: it signed in again (the contact list came back).
    alice = result.timeline["alice"]
    restart = next(n for n, e in enumerate(alice) if e.now > 10 and e.state == "signed-out")
    assert any(e.mode == "full" and e.contacts == 2 for e in alice[restart:])


def test_invariant_expectations_are_checked_over_the_live_run() -> None:
    # Once refused (the monitor needed the simulated network); now the live pools' events
    # are judged against the network the steps describe (emulator/scenario/watch.py).
    text = R2 + '[[expect]]\ninvariant = "single-registrar"\n'
    text += '[[expect]]\ninvariant = "served-by-primary-or-backup"\n'
    result = run_realtime(parse_scenario(text, "<inv>"), time_scale=10)
    invariants = [r for r in result.results if r.expectation.invariant is not None]
    assert [r.passed for r in invariants] == [True, True], result.report()
    assert result.violations == ()


# R4 with the Central Management Store on the primary pool (scenarios/r4-cms-on-lost-pool-...).
CMS_ON_FE1 = """
domain = "contoso.test"
profile = "lync2010"

[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "dr1.contoso.test"
ports = { udp = 0, tcp = 0, tls = 0 }

[[pool]]
fqdn = "dr1.contoso.test"
address = "127.0.0.21"
ports = { udp = 0, tcp = 0, tls = 0 }

[cms]
pool = "fe1.contoso.test"

[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
contacts = ["sip:bob@contoso.test"]

[dns]
port = 0

[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
"""


def home_seen_by_fe1(deployment: Deployment) -> str | None:
    pool = deployment.pool(FE1)
    assert pool is not None
    return pool.directory.get("sip:alice@contoso.test")


def test_force_move_is_refused_until_the_cms_is_moved(sipemu_factory: DeploymentFactory) -> None:
    running = sipemu_factory(parse_topology(CMS_ON_FE1, "<cms-on-fe1>"))
    try:
        running.stop_pool(FE1)
        refused = running.admin("force-move", **{"from": FE1, "to": DR1})
        assert not refused.ok
        assert refused.refused is not None and "Central Management Store" in refused.refused
        assert running.call(lambda d: d.ops.directory.get("sip:alice@contoso.test")) == FE1

        moved_cms = running.admin("move-cms", target=DR1)
        assert moved_cms.ok, moved_cms.detail

        moved = running.admin("force-move", **{"from": FE1, "to": DR1})
        assert moved.ok, moved.detail
        assert moved.moved == ("sip:alice@contoso.test",)
        assert running.call(lambda d: d.ops.directory.get("sip:alice@contoso.test")) == DR1
        lines = running.log_lines()
        assert any(" admin force-move refused: " in line for line in lines)
        assert any(" admin force-moved 1 user(s)" in line for line in lines)

        # A restarted fe1 is built on the same state: alice is no longer homed there.
        running.start_pool(FE1)
        assert running.call(home_seen_by_fe1) == DR1
        with pytest.raises(DeploymentError, match="target: the FQDN of a Front End pool"):
            running.admin("move-cms", target="nowhere.contoso.test")
    finally:
        running.stop()


# R5's Persistent Chat on real sockets: the service's availability is checked in the scenario's
# clock (the live history is in the cores' clock, shifted like client events).
CHAT = """
description = "R5 live: the chat service is unavailable once its primary database is lost"
seed = 5
duration = 4

[topology]
domain = "contoso.test"
profile = "lync2013"

[[topology.pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
site = "site1"
ports = { udp = 0, tcp = 0, tls = 0 }

[topology.persistent_chat]
pool = "pchat.contoso.test"
primary_db = "pchat-sql01"
backup_db = "pchat-sql02"
primary_site = "site1"
backup_site = "site2"

[[topology.user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"

[topology.dns]
port = 0

[[step]]
at = 1
action = "chat-step"
step = "remove-log-shipping"
expect = "refused"

[[step]]
at = 2
action = "chat-db-down"
expect = "ok"

[[expect]]
at = 1.5
chat = "available"

[[expect]]
by = 3
chat = "unavailable"
"""


def test_chat_availability_is_checked_in_the_scenario_clock() -> None:
    result = run_realtime(parse_scenario(CHAT, "<chat-live>"), time_scale=10)
    assert result.passed, result.report()
    (lost,) = [e for e in result.trace if e.source == "pchat"]
    assert lost.text == "Persistent Chat service unavailable"
    assert 2 <= lost.now < 3
    # The service's own history, shifted to the scenario's clock (unshifted, its times would be
    # the loop's, and "by 3" would not find the change).
    by = next(r for r in result.results if r.expectation.chat == "unavailable")
    assert by.detail.startswith("reached at 2."), by.detail


# -- one plan, both drivers (emulator.effects) ------------------------------------------------

# Two pools backing each other up, fe1 with a mirrored back end and the CMS; ephemeral ports.
MUTUAL = """
domain = "contoso.test"
profile = "lync2010"

[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
backup = "fe2.contoso.test"
ports = { udp = 0, tcp = 0, tls = 0 }
backend = { principal = "sql01", mirror = "sql02" }

[[pool]]
fqdn = "fe2.contoso.test"
address = "127.0.0.12"
backup = "fe1.contoso.test"
ports = { udp = 0, tcp = 0, tls = 0 }

[[user]]
uri = "sip:alice@contoso.test"
pool = "fe1.contoso.test"
contacts = ["sip:bob@contoso.test"]

[dns]
port = 0

[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
"""

FE2 = "fe2.contoso.test"


def _told(fqdn: str, event: object) -> tuple[str, str] | None:
    """A pool event as (pool, line), for what an outcome makes a core say; heartbeat lines
    (which come with time, not with outcomes) left out."""
    entry = pool_trace(event, False)
    if entry is None or entry[0] != "pool" or entry[1].startswith("heartbeat "):
        return None
    return (fqdn, entry[1])


class _Heard:
    """A live deployment's pool events as they come (its ``on_event``), and a wait on them
    woken by each event (bounded: WAIT seconds), not by polling."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self._more = asyncio.Event()

    def __call__(self, fqdn: str, event: object) -> None:
        self.events.append((fqdn, event))
        self._more.set()

    async def until(self, condition: Callable[[list[tuple[str, object]]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition(self.events):
                self._more.clear()
                await self._more.wait()


async def test_a_stopped_pool_hears_no_outcome_and_says_nothing_until_started() -> None:
    heard = _Heard()
    events = heard.events
    deployment = Deployment(
        parse_topology(MUTUAL, "<mutual>"),
        seed=1,
        time_scale=100,  # fe1's failover detection (120 s) passes in 1.2 s of wall clock
        on_event=heard,
    )
    async with deployment:
        await deployment.stop_pool(FE1)
        outcome = await deployment.admin("backend-down", target=FE1, server="principal")
        assert outcome.ok and deployment.plan(outcome) == Effects()
        assert deployment.pool(FE1) is None
        # fe2 fails fe1 over (120 s); fe1 would have lost fe2's answers and failed it over too.
        await heard.until(lambda seen: any(isinstance(e, ev.FailedOver) for _, e in seen))
        assert [e for fqdn, e in events if fqdn == FE1] == []  # fe1 is silent

        await deployment.start_pool(FE1)
        await heard.until(lambda seen: any(_told(fqdn, e) for fqdn, e in seen if fqdn == FE1))
        # What it says first, heartbeats left out (fe2's heartbeats may reach fe1 as soon as
        # its socket is open, before the start's own lines are collected).
        said = [told for fqdn, e in events if fqdn == FE1 and (told := _told(fqdn, e))]
        assert said[0] == (FE1, "back end unavailable (sql01 down)")  # its state, at start
        pool = deployment.pool(FE1)
        assert pool is not None and not pool.backend.available


ACTIONS: list[tuple[str, dict[str, object]]] = [
    ("backend-down", {"target": FE1, "server": "principal"}),
    ("r2-procedure", {"target": FE1}),
    ("export-contacts", {}),
    ("force-move", {"from": FE1, "to": FE2}),
    ("import-contacts", {}),
    ("backend-up", {"target": FE1, "server": "sql01"}),
]


@pytest.mark.parametrize("fe1", ["running", "silent", "stopped"])
async def test_both_drivers_apply_the_same_plan_for_the_same_outcome(fe1: PoolState) -> None:
    topology = parse_topology(MUTUAL, "<mutual>")
    sim = SimulatedDeployment(topology)
    events: list[tuple[str, object]] = []
    live = Deployment(topology, seed=1, on_event=lambda fqdn, e: events.append((fqdn, e)))
    async with live:
        if fe1 == "silent":
            sim.disable_nic(FE1)
            await live.disable_nic(FE1)
        elif fe1 == "stopped":
            sim.stop_pool(FE1)
            await live.stop_pool(FE1)
        states: dict[str, PoolState] = {FE1: fe1, FE2: "running"}
        assert sim.pool_states() == live.pool_states() == states
        # A third Operations, to compute the plan from the outcome alone.
        ops = Operations(topology, pool_up=lambda fqdn: states[fqdn] == "running")
        for action, params in ACTIONS:
            expected = ops.perform(action, params, 0.0)
            traced = len(sim.world.trace)
            simulated = sim.admin(action, **params)
            del events[:]
            done = await live.admin(action, **params)
            assert (done.ok, done.detail) == (simulated.ok, simulated.detail), action
            assert (done.ok, done.detail) == (expected.ok, expected.detail), action
            effects = plan(expected, states)
            assert sim.plan(simulated) == live.plan(done) == effects, action
            # What the cores said is what the plan's calls made them say, the same in both.
            in_sim = [
                (entry.source, entry.text)
                for entry in sim.world.trace[traced:]
                if entry.kind == "pool" and not entry.text.startswith("heartbeat ")
            ]
            in_live = [told for fqdn, e in events if (told := _told(fqdn, e)) is not None]
            assert in_sim == in_live, action
            if fe1 == "stopped":
                assert not [told for told in in_live if told[0] == FE1], action
