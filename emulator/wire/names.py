"""Who is who on the wire: the name of the host behind each address of a run.

Sinks that draw a run (the terminal ladder, the Mermaid export, the HTML report) show one
column per *participant*: each client, each pool (Directors and Front Ends by FQDN) and the
fake DNS.  :func:`participants` derives them from a topology and the clients' addresses;
:func:`simulated_participants` from a simulated deployment.  An address no participant owns
(a peer program, a test's socket) gets a participant of its own, named ``host:port``, when
it is first looked up.

Rules of this file:

* The order of the columns is fixed by roles, not by traffic, so that two ladders of one
  topology line up: clients (in the order given), the DNS, Directors, then Front End pools
  (topology order), then unknown addresses in the order they were first seen.
* An address is looked up by ``(host, port)`` first, then by host alone: a simulated or live
  pool owns its whole host, while clients sharing one host (``sipemu clients run`` on
  127.0.0.1) can be told apart by port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from emulator.net import Address
from emulator.topology.model import DEFAULT_PORTS

if TYPE_CHECKING:
    from emulator.sim.deployment import SimulatedDeployment
    from emulator.topology import Topology

__all__ = [
    "Participant",
    "ParticipantRole",
    "Participants",
    "participants",
    "simulated_participants",
]

ParticipantRole = Literal["client", "dns", "director", "frontend", "other"]

_ROLE_ORDER: dict[ParticipantRole, int] = {
    "client": 0,
    "dns": 1,
    "director": 2,
    "frontend": 3,
    "other": 4,
}


@dataclass(frozen=True, slots=True)
class Participant:
    """One column of a ladder: a client, a pool, the DNS, or an unknown address."""

    name: str
    role: ParticipantRole
    short: str
    """A shorter name for narrow columns (a pool's FQDN without the topology's domain)."""
    rank: int
    """Position in the fixed order of the columns (smaller: further left)."""
    host: str = ""
    """The first host it was named for (what a column header shows)."""


class Participants:
    """Addresses -> participants, and the fixed order of the columns."""

    def __init__(self) -> None:
        self._by_address: dict[Address, Participant] = {}
        self._by_host: dict[str, Participant] = {}
        self._by_name: dict[str, Participant] = {}

    def add(
        self,
        name: str,
        role: ParticipantRole,
        host: str,
        port: int | None = None,
        *,
        short: str | None = None,
    ) -> Participant:
        """Name ``host`` (or only ``(host, port)``) ``name``; a name given again gains one
        more address."""
        found = self._by_name.get(name)
        if found is None:
            rank = len(self._by_name) + 1_000_000 * _ROLE_ORDER[role]
            found = Participant(name, role, short or name, rank, host)
            self._by_name[name] = found
        if port is None:
            self._by_host.setdefault(host, found)
        else:
            self._by_address.setdefault((host, port), found)
        return found

    def of(self, address: Address) -> Participant:
        """The participant behind ``address`` (a new ``other`` one the first time an unknown
        address is seen)."""
        found = self._by_address.get(address) or self._by_host.get(address[0])
        if found is None:
            found = self.add(f"{address[0]}:{address[1]}", "other", address[0], address[1])
        return found

    def name(self, address: Address) -> str:
        return self.of(address).name

    def get(self, name: str) -> Participant | None:
        """The participant called ``name``, or None."""
        return self._by_name.get(name)

    def ordered(self, names: Iterable[str] | None = None) -> list[Participant]:
        """Every participant (or those named), in column order."""
        chosen = self._by_name.values() if names is None else [self._by_name[n] for n in names]
        return sorted(set(chosen), key=lambda p: p.rank)

    def __len__(self) -> int:
        return len(self._by_name)


def participants(topology: Topology, clients: Mapping[str, str | Address] = {}) -> Participants:
    """The participants of a deployment of ``topology`` whose clients have these addresses
    (name -> host, or name -> ``(host, port)`` when clients share a host)."""
    found = Participants()
    for name, where in clients.items():
        if isinstance(where, str):
            found.add(name, "client", where)
        else:
            found.add(name, "client", where[0], where[1])
    dns = topology.dns
    pools = sorted(topology.pools, key=lambda p: not p.is_director)
    hosts = [dns.address] + [pool.address for pool in pools]
    shared = {host for host in hosts if hosts.count(host) > 1}
    # A host of its own is named by host; hosts shared (a test topology with every pool on
    # one address) by each listening port.
    if dns.address in shared:
        found.add("dns", "dns", dns.address, dns.port or 53)
    else:
        found.add("dns", "dns", dns.address)
    suffix = "." + topology.domain.lower()
    for pool in pools:
        short = pool.fqdn[: -len(suffix)] if pool.fqdn.lower().endswith(suffix) else pool.fqdn
        if pool.address in shared:
            for transport in pool.transports:
                port = pool.port(transport) or DEFAULT_PORTS[transport]
                found.add(pool.fqdn, pool.role, pool.address, port, short=short)
        else:
            found.add(pool.fqdn, pool.role, pool.address, short=short)
    return found


def simulated_participants(deployment: SimulatedDeployment) -> Participants:
    """The participants of a simulated deployment: its topology and its clients' hosts."""
    return participants(
        deployment.topology,
        {name: deployment.client_address(name) for name in deployment.specs},
    )
