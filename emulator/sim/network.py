"""A simulated IP network: hosts, links with latency/loss/duplication/reordering, partitions.

Synchronous and deterministic: every random draw comes from the generator the world hands in.
Datagrams are delivered after the link latency (plus jitter); streams (TCP/TLS) are modelled as
connections that deliver in order.  Semantics of the faults (see docs/simulation.md):

* a host whose NIC is disabled is *silent*: nothing reaches it and nothing leaves it; a
  silent host's TCP either gives no answer to a connection attempt (``tcp = "timeout"``, the
  default) or resets it, as a firewall's REJECT rule would (``tcp = "reset"``);
* one transport of a host may be silent alone (TLS down while UDP is up): only its packets
  vanish (``set_nic(address, False, transport="tls")``);
* a stopped host (or a closed port) *refuses*: UDP gets an ICMP port-unreachable and TCP a
  reset, both reported to the sender as ``flow_failed`` one round trip later;
* a partition between two hosts makes traffic vanish in one or both directions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

TcpSilence = Literal["timeout", "reset"]
"""What a TCP (or TLS) connection attempt to a silent host gets: nothing (the sender times
out) or a reset (the sender hears of it one round trip later)."""

__all__ = ["Link", "Network", "TcpSilence"]


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
    off: frozenset[str] = frozenset()
    """Transports silent on this host while its NIC is up (``udp``, ``tcp``, ``tls``)."""
    tcp: TcpSilence = "timeout"
    """What a connection attempt gets while the host (or its TCP/TLS transport) is silent."""


@dataclass
class Network:
    """Change hosts and links through the methods: they keep :attr:`version` (and a Link's
    properties may be changed on the object :meth:`link` returns)."""

    rng: random.Random
    default_latency: float = 0.001
    hosts: dict[str, _Host] = field(default_factory=dict)
    links: dict[tuple[str, str], Link] = field(default_factory=dict)
    partial: int = 0
    """How many hosts have a transport silent alone (none: no per-transport checks, speed)."""
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

    def set_nic(
        self,
        address: str,
        enabled: bool,
        *,
        transport: str | None = None,
        tcp: TcpSilence | None = None,
    ) -> None:
        """Silence a host or bring it back: its whole NIC (``transport`` None; enabling it
        enables every transport), or one transport alone.  ``tcp``: what connection attempts
        get while it is silent (unchanged when None)."""
        host = self.hosts[address]
        before = bool(host.off)
        if transport is None:
            host.nic_enabled = enabled
            if enabled:
                host.off = frozenset()
        elif enabled:
            host.off = host.off - {transport}
        else:
            host.off = host.off | {transport}
        if tcp is not None:
            host.tcp = tcp
        self.partial += bool(host.off) - before
        self.version += 1

    def silent(self, address: str, transport: str) -> bool:
        """Whether ``transport`` on the host is silent (its NIC, or that transport alone)."""
        host = self.hosts.get(address)
        return host is not None and (not host.nic_enabled or transport in host.off)

    def rejects(self, address: str, transport: str, src: str | None = None) -> bool:
        """Whether a connection attempt (or a segment) over ``transport`` from ``src`` to the
        host gets a reset because the host is silent with ``tcp = "reset"`` (as from a
        firewall's REJECT rule in front of it: the sender's NIC must be up and the path from
        it not cut)."""
        host = self.hosts.get(address)
        if (
            transport == "udp"
            or host is None
            or host.tcp != "reset"
            or (host.nic_enabled and transport not in host.off)
        ):
            return False
        if src is not None:
            s = self.hosts.get(src)
            link = self.links.get((src, address))
            if (s is not None and not s.nic_enabled) or (link is not None and link.cut):
                return False
        return True

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
        if self.partial and (self.hosts[dst].off or (src in self.hosts and self.hosts[src].off)):
            return None  # some of its transports are silent: not the same for every packet
        link = self.links.get((src, dst))
        if link is None:
            return self.default_latency
        if link.loss or link.jitter or link.duplicate:
            return None
        return link.latency + 0.0  # what _link_delays computes

    def reachable(self, src: str, dst: str, transport: str | None = None) -> bool:
        """Whether a packet from ``src`` can reach ``dst``'s NIC (not whether anyone listens);
        over ``transport``, if given (a transport may be silent alone)."""
        s = self.hosts.get(src)
        d = self.hosts.get(dst)
        if d is None or (s is not None and not s.nic_enabled) or not d.nic_enabled:
            return False
        if transport is not None and self.partial:
            if transport in d.off or (s is not None and transport in s.off):
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

    def transit(self, src: str, dst: str, transport: str | None = None) -> list[float] | None:
        """``delays(src, dst)`` if ``reachable(src, dst, transport)``, else None: the two in
        one call.

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
        if self.partial and transport is not None:
            if transport in d.off or (s is not None and transport in s.off):
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
