"""What an administrative or DR outcome does to the pool cores: one plan, applied by both drivers.

:meth:`emulator.operations.Operations.perform` changes the state behind the pools (back ends,
homes, contact lists) and returns an :class:`~emulator.operations.Outcome`.  The running pool
cores must then hear of it.  :func:`plan` turns the outcome and each pool's state into an
:class:`Effects`: which pools restart, then which core is told what, in order.  The simulator
(``emulator/sim/deployment.py``) and the live deployment (``emulator/live/deployment.py``) both
apply it the same way, and decide nothing themselves:

* for each pool of :attr:`Effects.restart`: stop its process, start a fresh core;
* for each :class:`Tell` of :attr:`Effects.tell`, in order: ``tell.to(core, now)`` on that
  pool's core, then collect what the core wants to do (send, log, re-arm its timer).

Sans-IO: no clock, no I/O; the driver says what state each pool is in (:data:`PoolState`).

Rules of this file:

1. A stopped pool hears nothing: no effect names it.  It is not lost: its next core is built on
   the changed state when it starts (``Pool(..., directory=, backend=, contacts=)``).
2. Restarts come first, in the outcome's order, and only of running pools (reachable or not):
   a stopped pool stays stopped.
3. Then each running pool whose back end changed is told so (``backend_changed``), in the
   outcome's order, reachable or not: the back end is the pool's own.
4. Then moved users (``users_moved``) and changed contact lists (``contacts_changed``) are told
   to every running pool whose host is reachable (not ``silent``), in topology order, moved
   users first.  A silent pool is not told (CHOICE, as both drivers did before this file:
   the administrator's change reaches a Front End over the network).
5. When the pools' own configuration changed (``Outcome.reconfigured``: a pool failover or
   failback, a backup pairing, the resiliency timers), every running pool is told
   (``configuration_changed``), silent or not, in topology order, after rule 3 and before
   rule 4.  The change is in the shared state the cores read (emulator/pairing.py), which a
   silent pool would read at once on its next input anyway: telling it too keeps its timers
   and heartbeats in step with what it reads (CHOICE; a silent pool's NOTIFYs vanish).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal, Protocol

from emulator.values import static_frozen

if TYPE_CHECKING:
    from emulator.operations import Outcome

__all__ = [
    "Effects",
    "PoolCore",
    "PoolState",
    "Tell",
    "TellBackendChanged",
    "TellContactsChanged",
    "TellReconfigured",
    "TellUsersMoved",
    "plan",
]

PoolState = Literal["running", "silent", "stopped"]
"""A pool as its driver sees it: its process runs and its host is reachable (``running``); it
runs but its host is silent (NIC disabled: ``silent``); its process is stopped (``stopped``)."""


class PoolCore(Protocol):
    """What a :class:`Tell` calls: the commands of a pool core (``emulator.registrar.pool.Pool``)
    that tell it of an outcome."""

    def backend_changed(self, now: float) -> None: ...

    def users_moved(self, aors: Iterable[str], now: float) -> None: ...

    def contacts_changed(self, aors: Iterable[str], now: float) -> None: ...

    def configuration_changed(self, now: float) -> None: ...


@static_frozen
class TellBackendChanged:
    """Tell the pool's core that its back end changed (``Pool.backend_changed``)."""

    pool: str

    def to(self, core: PoolCore, now: float) -> None:
        core.backend_changed(now)


@static_frozen
class TellUsersMoved:
    """Tell the pool's core that ``users`` were rehomed (``Pool.users_moved``)."""

    pool: str
    users: tuple[str, ...]

    def to(self, core: PoolCore, now: float) -> None:
        core.users_moved(self.users, now)


@static_frozen
class TellContactsChanged:
    """Tell the pool's core that the contact lists of ``users`` changed
    (``Pool.contacts_changed``)."""

    pool: str
    users: tuple[str, ...]

    def to(self, core: PoolCore, now: float) -> None:
        core.contacts_changed(self.users, now)


@static_frozen
class TellReconfigured:
    """Tell the pool's core that the pools' configuration changed (pairings, timers, pool
    failovers: ``Pool.configuration_changed``)."""

    pool: str

    def to(self, core: PoolCore, now: float) -> None:
        core.configuration_changed(now)


Tell = TellBackendChanged | TellUsersMoved | TellContactsChanged | TellReconfigured
"""One call on one running pool's core."""


@static_frozen
class Effects:
    """What the drivers do to the pool cores after one outcome, in this order."""

    restart: tuple[str, ...] = ()
    """Pools whose process restarts (a fresh core on the same back end), in this order."""
    tell: tuple[Tell, ...] = ()
    """Then these calls, in this order, each followed by collecting what that core does."""


def plan(outcome: Outcome, pools: Mapping[str, PoolState]) -> Effects:
    """The effects of ``outcome`` on the pool cores, given every pool's state (``pools``, in
    topology order)."""
    restart = tuple(fqdn for fqdn in outcome.restart if pools[fqdn] != "stopped")  # rule 2
    tell: list[Tell] = [
        TellBackendChanged(fqdn)
        for fqdn in outcome.backends_changed
        if pools[fqdn] != "stopped"  # rules 1 and 3
    ]
    if outcome.reconfigured:  # rule 5
        tell.extend(TellReconfigured(fqdn) for fqdn, state in pools.items() if state != "stopped")
    if outcome.moved or outcome.contacts_changed:
        for fqdn in _reachable(pools):  # rule 4
            if outcome.moved:
                tell.append(TellUsersMoved(fqdn, outcome.moved))
            if outcome.contacts_changed:
                tell.append(TellContactsChanged(fqdn, outcome.contacts_changed))
    return Effects(restart, tuple(tell))


def _reachable(pools: Mapping[str, PoolState]) -> Iterable[str]:
    return (fqdn for fqdn, state in pools.items() if state == "running")
