"""What the pool cores do about an administrator's pool failover and failback, new pairings and
new timers (Pool.configuration_changed; emulator/pairing.py), on the wire."""

from __future__ import annotations

from typing import TypeVar

from emulator.registrar import events as ev
from emulator.sip.headers import PresenceState
from emulator.sip.message import Request, Response
from tests.registrar.harness import World, make_world, register

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"
FE3 = "fe3.contoso.test"
DIR = "dir1.contoso.test"
USER2 = "clientuser2"  # homed on fe2, whose backup is fe1


E = TypeVar("E")


def of(world: World, kind: type[E], pool: str) -> list[E]:
    """The events of one type from one pool, in order."""
    return [e for e in world.events if isinstance(e, kind) and getattr(e, "pool", None) == pool]


def reconfigured(world: World) -> None:
    """What the plan's TellReconfigured does: every pool's core is told."""
    for pool in world.pools.values():
        pool.configuration_changed(world.now)
    world.flush()


def fail_over(world: World, pool: str = FE2, takes: float = 100.0) -> None:
    world.pools[FE1].pairings.fail_over(pool, world.now, takes)
    reconfigured(world)


def ok(answers: list[Response | Request]) -> PresenceState:
    (answer,) = answers
    assert isinstance(answer, Response) and answer.status == 200, answer
    return PresenceState.parse(answer.headers.get("presence-state") or "")


def contacts(answers: list[Response | Request]) -> list[str]:
    (answer,) = answers
    assert isinstance(answer, Response) and answer.status == 301, answer
    return answer.headers.get_all("contact")


def notifies(world: World, since: int = 0) -> list[Request]:
    return [
        m for _, m in world.to_clients[since:] if isinstance(m, Request) and m.method == "NOTIFY"
    ]


def test_the_backup_serves_in_resiliency_mode_then_in_full_once_the_failover_completes() -> None:
    world = make_world()
    fail_over(world, takes=100.0)
    during = ok(world.send(FE1, register(USER2)))
    assert during.is_connected_to_primary is False and not during.user_services_available
    world.run_until(100.0)
    after = ok(world.send(FE1, register(USER2, cseq=2)))
    assert after.is_connected_to_primary is True and after.user_services_available
    assert not after.limited


def test_the_failed_pool_sends_its_users_to_the_backup_and_others_keep_redirecting_home() -> None:
    world = make_world()
    fail_over(world)
    (only,) = contacts(world.send(FE2, register(USER2)))
    assert "fe1.contoso.test" in only and only.endswith(";q=0.7")
    home, backup = contacts(world.send(DIR, register(USER2)))
    assert "fe2.contoso.test" in home and "fe1.contoso.test" in backup


def test_a_running_failed_pool_signs_its_users_out_towards_the_backup() -> None:
    world = make_world()
    ok(world.send(FE2, register(USER2)))
    before = len(world.to_clients)
    fail_over(world)
    (notify,) = notifies(world, before)
    assert notify.body.startswith(b"deregistered;event=preferred-registrar-change")
    assert "fe1.contoso.test" in (notify.headers.get("p-preferred-registrar") or "")
    assert world.pools[FE2].bindings() == []
    assert [e.cause for e in of(world, ev.BindingRemoved, FE2)] == ["pool failover"]


def test_endpoints_served_during_the_failover_hear_that_it_completed() -> None:
    world = make_world()
    fail_over(world, takes=50.0)
    ok(world.send(FE1, register(USER2)))
    before = len(world.to_clients)
    world.run_until(49.0)
    assert notifies(world, before) == []
    world.run_until(50.0)
    (notify,) = notifies(world, before)
    assert notify.body.startswith(b"registered;event=userservices-available")


def test_the_heartbeats_do_not_fail_a_failed_over_pool_back_only_the_administrator_does() -> None:
    world = make_world()
    world.silenced.add(FE2)
    world.run_until(60.0)  # fe1 fails fe2 over by itself after 30 s
    fail_over(world, takes=10.0)
    ok(world.send(FE1, register(USER2)))
    before = len(world.to_clients)
    world.silenced.discard(FE2)
    world.run_until(200.0)  # fe2 answers again: the failback interval (40 s) passes
    assert of(world, ev.FailedBack, FE1)  # the heartbeat machine went back to up...
    held = [e for e in of(world, ev.AdminEvent, FE1) if "held" in e.text]
    sent_home = [n for n in notifies(world, before) if n.body.startswith(b"deregistered")]
    assert held and sent_home == []  # ...but nobody was sent home
    assert [b.aor for b in world.pools[FE1].bindings()] == ["sip:clientuser2@contoso.test"]

    pairings = world.pools[FE1].pairings
    pairings.fail_back(FE2, world.now, 30.0)
    reconfigured(world)
    (home,) = [n for n in notifies(world, before) if n.body.startswith(b"deregistered")]
    assert home.body.startswith(b"deregistered;event=preferred-registrar-change")
    assert world.pools[FE1].bindings() == []
    # At home, resiliency mode until the failback completes...
    during = ok(world.send(FE2, register(USER2, call_id="call-2")))
    assert during.is_connected_to_primary is True and not during.user_services_available
    world.run_until(world.now + 30.0)
    changed = of(world, ev.UserServicesChanged, FE2)
    assert [e.mode for e in changed] == ["resiliency", "full"]
    after = ok(world.send(FE2, register(USER2, call_id="call-2", cseq=2)))
    assert not after.limited


def test_a_new_pairing_moves_the_heartbeats_and_the_301s_backup() -> None:
    world = make_world()
    pairings = world.pools[FE1].pairings
    pairings.set_backup(FE2, FE3, world.now)
    reconfigured(world)
    assert FE2 not in world.pools[FE1].status().peers
    assert world.pools[FE3].status().peers == {FE2: "up"}
    home, backup = contacts(world.send(DIR, register(USER2)))
    assert "fe2.contoso.test" in home and "fe3.contoso.test" in backup
    # fe3 now heartbeats fe2, and fails it over when it goes silent; fe1 no longer does.
    world.silenced.add(FE2)
    world.run_until(world.now + 60.0)
    assert of(world, ev.FailedOver, FE3) and not of(world, ev.FailedOver, FE1)
    pairings.set_backup(FE2, None, world.now)
    reconfigured(world)
    (alone,) = contacts(world.send(DIR, register(USER2)))
    assert "fe2.contoso.test" in alone


def test_new_timers_apply_to_a_running_detection() -> None:
    world = make_world()
    world.silenced.add(FE2)
    world.run_until(8.0)
    pairings = world.pools[FE1].pairings
    pairings.set_timers({"failover_interval": 12.0, "heartbeat_interval": 1.0}, world.now)
    reconfigured(world)
    world.run_until(20.0)
    (failed,) = of(world, ev.FailedOver, FE1)
    assert failed.now <= 12.0 + 1.0  # not the topology's 30 s
    assert world.pools[FE1].heartbeater.settings.heartbeat_interval == 1.0
