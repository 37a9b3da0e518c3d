"""The failover invariants over a realtime run (``sipemu run --realtime``; issue 19, item 8).

The invariant monitor (emulator/sim/invariants.py) judges the pools' events against the
network's ground truth.  A realtime run has no simulated network, so :class:`LiveInvariants`
keeps one that only says what the run's steps did to it: which NICs are disabled
(``disable-nic``, ``dns-down``) and which pools are stopped (``stop-pool``, an administrative
restart).  The live pools' events are fed to the monitor as they come, on the scenario's
clock, and each violation is handed out as soon as the monitor records it.

Rules of this file:

* The ground truth is the steps' intent, dated at the step's scheduled time (the live fault
  takes effect a moment later, in a task or a netlink call): a backup then looks cut off
  slightly *before* it really is and connected slightly *before* it really is, so a correct
  failover or
  failback is never reported early.  Partitions exist only at packet level (``--netns``):
  ``partition`` / ``heal`` steps cut and heal links here too; link properties (latency, loss)
  are not modelled, so a step is the only way connectivity changes.
* Nothing here touches sockets or clocks: the run hands in ``clock``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from emulator.pairing import Pairings
from emulator.sim.invariants import InvariantMonitor, Violation
from emulator.sim.network import Network
from emulator.topology import Topology

__all__ = ["LiveInvariants"]


class LiveInvariants:
    """The invariant monitor of a realtime run, and the network its steps describe."""

    def __init__(
        self,
        topology: Topology,
        client_addresses: Mapping[str, str],
        *,
        clock: Callable[[], float],
        grace: float = 10.0,
        home_of: Callable[[str], str | None] | None = None,
        pairings: Pairings | None = None,
    ) -> None:
        self.network = Network(random.Random(0))
        self.address: dict[str, str] = {p.fqdn: p.address for p in topology.pools}
        self.address.update(client_addresses)
        self.address["dns"] = topology.dns.address
        for address in self.address.values():
            self.network.add_host(address)
        self._clock = clock
        self.step_time: float | None = None
        """While a step is carried out, its scheduled time: the network changes the step makes
        are dated then, not a moment later when the loop got round to it (at a high time
        scale the loop's lateness is a sizeable fraction of a second in scenario time, and a
        cut dated late made a correct failover look early)."""
        self.monitor = InvariantMonitor(
            topology,
            self.network,
            clock=self._now,
            grace=grace,
            home_of=home_of,
            pairings=pairings,
        )
        self._told = 0

    def _now(self) -> float:
        now = self._clock()
        return now if self.step_time is None else min(now, self.step_time)

    def nic(self, target: str, enabled: bool) -> None:
        """``disable-nic`` / ``enable-nic`` of a pool, a client or ``dns``."""
        address = self.address.get(target.lower().rstrip("."), self.address.get(target))
        if address is not None:
            self.network.set_nic(address, enabled)
            self.monitor.network_changed()

    def partition(self, a: str, b: str, *, oneway: bool = False) -> None:
        """A ``partition`` step between two named hosts."""
        self.network.partition(self._address(a), self._address(b), oneway=oneway)
        self.monitor.network_changed()

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """A ``heal`` step (all links, a host's or one pair's)."""
        self.network.heal(
            None if a is None else self._address(a), None if b is None else self._address(b)
        )
        self.monitor.network_changed()

    def _address(self, name: str) -> str:
        return self.address.get(name.lower().rstrip("."), self.address.get(name, name))

    def running(self, pool: str, running: bool) -> None:
        """``stop-pool`` / ``start-pool`` (and the two halves of an administrative restart)."""
        self.network.set_running(self.address[pool], running)
        self.monitor.network_changed()

    def pool_event(self, pool: str, event: object) -> None:
        self.monitor.pool_event(pool, event)

    def new_violations(self) -> list[Violation]:
        """The violations recorded since the last call."""
        found = self.monitor.violations[self._told :]
        self._told = len(self.monitor.violations)
        return found

    def finish(self, now: float) -> tuple[Violation, ...]:
        """Every violation of the run (the checks still pending are judged at ``now``)."""
        return tuple(self.monitor.finish(now))
