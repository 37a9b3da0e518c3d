"""emulator.effects: what an administrative or DR outcome does to the pool cores (sans-IO)."""

from __future__ import annotations

from collections.abc import Iterable

from emulator.effects import (
    Effects,
    PoolState,
    TellBackendChanged,
    TellContactsChanged,
    TellReconfigured,
    TellUsersMoved,
    plan,
)
from emulator.operations import Outcome

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"
DR1 = "dr1.contoso.test"
ALICE = "sip:alice@contoso.test"
BOB = "sip:bob@contoso.test"


def states(fe1: PoolState = "running", fe2: PoolState = "running") -> dict[str, PoolState]:
    return {FE1: fe1, FE2: fe2, DR1: "running"}


def test_a_back_end_change_is_told_to_its_pool_when_it_runs() -> None:
    outcome = Outcome(
        "backend-down", text="fe1: back-end principal sql01 down", backends_changed=(FE1,)
    )
    assert plan(outcome, states()) == Effects(tell=(TellBackendChanged(FE1),))


def test_a_silent_pool_still_hears_of_its_own_back_end() -> None:
    outcome = Outcome("backend-down", backends_changed=(FE1,))
    assert plan(outcome, states(fe1="silent")) == Effects(tell=(TellBackendChanged(FE1),))


def test_a_stopped_pool_hears_nothing_and_is_not_restarted() -> None:
    down = Outcome("backend-down", backends_changed=(FE1,))
    assert plan(down, states(fe1="stopped")) == Effects()
    r2 = Outcome("r2-procedure", backends_changed=(FE1,), restart=(FE1,))
    assert plan(r2, states(fe1="stopped")) == Effects()
    moved = Outcome("force-move", moved=(ALICE,))
    assert FE1 not in {t.pool for t in plan(moved, states(fe1="stopped")).tell}


def test_a_restart_comes_before_the_restarted_pool_is_told_of_its_back_end() -> None:
    r2 = Outcome("r2-procedure", backends_changed=(FE1,), restart=(FE1,))
    assert plan(r2, states()) == Effects(restart=(FE1,), tell=(TellBackendChanged(FE1),))
    assert plan(r2, states(fe1="silent")) == Effects(
        restart=(FE1,), tell=(TellBackendChanged(FE1),)
    )


def test_moved_users_are_told_to_every_reachable_running_pool_in_topology_order() -> None:
    moved = Outcome("force-move", moved=(ALICE, BOB))
    assert plan(moved, states()) == Effects(
        tell=(
            TellUsersMoved(FE1, (ALICE, BOB)),
            TellUsersMoved(FE2, (ALICE, BOB)),
            TellUsersMoved(DR1, (ALICE, BOB)),
        )
    )
    assert plan(moved, states(fe1="silent", fe2="stopped")) == Effects(
        tell=(TellUsersMoved(DR1, (ALICE, BOB)),)
    )


def test_changed_contact_lists_are_told_to_every_reachable_running_pool() -> None:
    imported = Outcome("import-contacts", contacts_changed=(ALICE,))
    assert plan(imported, states(fe2="silent")) == Effects(
        tell=(TellContactsChanged(FE1, (ALICE,)), TellContactsChanged(DR1, (ALICE,)))
    )


def test_an_outcome_that_changes_nothing_the_cores_hold_has_no_effects() -> None:
    for outcome in (
        Outcome("force-move", "the Central Management Store's pool is down"),
        Outcome("export-contacts", text="exported the contact lists of 1 user(s)"),
        Outcome("chat-db-down", text="primary Persistent Chat database lost"),
    ):
        assert plan(outcome, states()) == Effects(), outcome


class _Recorder:
    """Stands in for a Pool core: records the calls a Tell makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def backend_changed(self, now: float) -> None:
        self.calls.append(("backend_changed", now))

    def users_moved(self, aors: Iterable[str], now: float) -> None:
        self.calls.append(("users_moved", tuple(aors), now))

    def contacts_changed(self, aors: Iterable[str], now: float) -> None:
        self.calls.append(("contacts_changed", tuple(aors), now))

    def configuration_changed(self, now: float) -> None:
        self.calls.append(("configuration_changed", now))


def test_each_tell_is_one_call_on_the_pool_core() -> None:
    core = _Recorder()
    for tell in (
        TellBackendChanged(FE1),
        TellUsersMoved(FE1, (ALICE,)),
        TellContactsChanged(FE1, (BOB,)),
        TellReconfigured(FE1),
    ):
        tell.to(core, 7.0)
    assert core.calls == [
        ("backend_changed", 7.0),
        ("users_moved", (ALICE,), 7.0),
        ("contacts_changed", (BOB,), 7.0),
        ("configuration_changed", 7.0),
    ]
