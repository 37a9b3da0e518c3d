"""A simulated IP network: hosts, links with latency/loss/duplication/reordering, partitions.

Synchronous and deterministic: every random draw comes from the generator the world hands in.
Datagrams are delivered after the link latency (plus jitter); streams (TCP/TLS) are modelled as
connections that deliver in order.  Semantics of the faults (see docs/simulation.md):

* a host whose NIC is disabled is *silent*: nothing reaches it and nothing leaves it;
* a stopped host (or a closed port) *refuses*: UDP gets an ICMP port-unreachable and TCP a
  reset, both reported to the sender as ``flow_failed`` one round trip later;
* a partition between two hosts makes traffic vanish in one or both directions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Link", "Network"]


@dataclass(slots=True)
class Link:
    """Properties of the path from one host to another (directional)."""

    latency: float = 0.001
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    cut: bool = False


@dataclass(slots=True)
class _Host:
    address: str
    nic_enabled: bool = True
    running: bool = True


@dataclass
class Network:
    """Change hosts and links through the methods: they keep :attr:`version` (and a Link's
    properties may be changed on the object :meth:`link` returns)."""

    rng: random.Random
    default_latency: float = 0.001
    hosts: dict[str, _Host] = field(default_factory=dict)
    links: dict[tuple[str, str], Link] = field(default_factory=dict)
    version: int = 0
    """Grows with every change of hosts, NICs, running state or links.  While no Link exists,
    :meth:`transit` draws nothing and depends only on these, so a caller may keep its answer
    for as long as the version stays the same (the simulator does, per connection)."""

    def add_host(self, address: str) -> None:
        if address not in self.hosts:
            self.hosts[address] = _Host(address)
            self.version += 1

    def link(self, src: str, dst: str) -> Link:
        link = self.links.get((src, dst))
        if link is None:
            link = self.links[(src, dst)] = Link(self.default_latency)
            self.version += 1
        return link

    def set_nic(self, address: str, enabled: bool) -> None:
        self.hosts[address].nic_enabled = enabled
        self.version += 1

    def set_running(self, address: str, running: bool) -> None:
        self.hosts[address].running = running
        self.version += 1

    def partition(self, a: str, b: str, *, oneway: bool = False) -> None:
        self.link(a, b).cut = True
        if not oneway:
            self.link(b, a).cut = True
        self.version += 1

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        for (src, dst), link in self.links.items():
            if a is None or {src, dst} == {a, b} or (b is None and a in (src, dst)):
                link.cut = False
        self.version += 1

    def changed(self) -> None:
        """Say that a Link's properties were changed on the object :meth:`link` returned."""
        self.version += 1

    def steady_delay(self, src: str, dst: str) -> float | None:
        """The delay of every packet from ``src`` to ``dst`` for as long as :attr:`version`
        stays the same, when that is fixed: reachable, and no loss, jitter or duplication on
        the way (then :meth:`transit` answers ``[delay]`` and draws nothing).  None if not."""
        if not self.reachable(src, dst):
            return None
        link = self.links.get((src, dst))
        if link is None:
            return self.default_latency
        if link.loss or link.jitter or link.duplicate:
            return None
        return link.latency + 0.0  # what _link_delays computes

    def reachable(self, src: str, dst: str) -> bool:
        """Whether a packet from ``src`` can reach ``dst``'s NIC (not whether anyone listens)."""
        s = self.hosts.get(src)
        d = self.hosts.get(dst)
        if d is None or (s is not None and not s.nic_enabled) or not d.nic_enabled:
            return False
        link = self.links.get((src, dst))
        return link is None or not link.cut

    def running(self, address: str) -> bool:
        host = self.hosts.get(address)
        return host is not None and host.running

    def delays(self, src: str, dst: str) -> list[float]:
        """Delivery delays of one packet: [] if lost, two if duplicated (RFC-free, just a link)."""
        link = self.links.get((src, dst))
        if link is None:
            return [self.default_latency]
        return self._link_delays(link)

    def transit(self, src: str, dst: str) -> list[float] | None:
        """``delays(src, dst)`` if ``reachable(src, dst)``, else None: the two in one call.

        Same answers and the same random draws as calling both (speed: the simulator asks for
        every packet, and most paths have no link properties, hence no draws at all).
        """
        hosts = self.hosts
        d = hosts.get(dst)
        if d is None or not d.nic_enabled:
            return None
        s = hosts.get(src)
        if s is not None and not s.nic_enabled:
            return None
        link = self.links.get((src, dst)) if self.links else None
        if link is None:
            return [self.default_latency]
        if link.cut:
            return None
        return self._link_delays(link)

    def _link_delays(self, link: Link) -> list[float]:
        if link.loss and self.rng.random() < link.loss:
            return []
        delay = link.latency + (self.rng.random() * link.jitter if link.jitter else 0.0)
        if link.duplicate and self.rng.random() < link.duplicate:
            extra = link.latency + (self.rng.random() * link.jitter if link.jitter else 0.0)
            return [delay, extra]
        return [delay]
