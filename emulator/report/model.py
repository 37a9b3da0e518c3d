"""What a report is built from: one :class:`RunRecord` per run, simulated or real-time.

A record holds what the run already knows (its :class:`~emulator.scenario.runner.RunResult`:
trace, client timelines, expectation results, invariant violations), the packets a tap saw
(:class:`~emulator.wire.Packet`, possibly none) and :class:`Participants`, the names of the
addresses those packets travelled between.  A simulated run fills every part
(:func:`emulator.report.simulated.simulate`); a real-time run fills the same record from its
``RunResult`` and, once its live drivers carry taps, from their packets (with ``clock`` saying
how wall-clock packet times map to the scenario's clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from emulator.net import Address
from emulator.scenario.runner import RunResult
from emulator.topology import Topology
from emulator.wire import Packet

__all__ = ["PacketClock", "Participant", "ParticipantKind", "Participants", "RunRecord"]

ParticipantKind = Literal["client", "dns", "director", "frontend", "pool", "other"]
_POOL_KINDS: dict[str, ParticipantKind] = {"director": "director", "frontend": "frontend"}


@dataclass(frozen=True, slots=True)
class Participant:
    """One column of the ladder: a client, a pool, the fake DNS, or an address nobody named."""

    name: str
    kind: ParticipantKind
    address: str


class Participants:
    """Which participant an address belongs to (by IP address: a host is one participant,
    whatever its port).

    Emulator choice: the report has its own small mapping until the participants helper of
    the text ladder (emulator/wire/names.py) lands; both name a host the same way, a pool by
    its FQDN, the fake DNS ``dns``, a client by its scenario name.
    """

    def __init__(self, known: Iterable[Participant] = ()) -> None:
        self.columns: list[Participant] = []
        self._by_address: dict[str, int] = {}
        for participant in known:
            self.add(participant)

    def add(self, participant: Participant) -> int:
        found = self._by_address.get(participant.address)
        if found is not None:
            return found
        self._by_address[participant.address] = len(self.columns)
        self.columns.append(participant)
        return len(self.columns) - 1

    def index(self, address: Address) -> int:
        """The column of ``address``; an unknown host gets a column of its own."""
        found = self._by_address.get(address[0])
        if found is None:
            found = self.add(Participant(address[0], "other", address[0]))
        return found

    @classmethod
    def of(cls, topology: Topology, clients: Mapping[str, str] | None = None) -> Participants:
        """Clients (name -> IP address, in the run's order), the fake DNS, Directors, then
        the other pools in topology order: the ladder's columns, left to right."""
        known = [Participant(name, "client", address) for name, address in (clients or {}).items()]
        known.append(Participant("dns", "dns", topology.dns.address))
        pools = sorted(topology.pools, key=lambda pool: not pool.is_director)  # stable
        for pool in pools:
            kind = _POOL_KINDS.get(pool.role, "pool")
            known.append(Participant(pool.fqdn, kind, pool.address))
        return cls(known)


@dataclass(frozen=True, slots=True)
class PacketClock:
    """How a packet's ``time`` maps onto the run's timeline: ``(time - origin) * scale``.

    A simulation's packets are on the scenario's clock already (the default); a live tap's
    are wall-clock seconds since the epoch, ``origin`` being the wall-clock time of scenario
    time 0 and ``scale`` the real-time run's ``time_scale``."""

    origin: float = 0.0
    scale: float = 1.0

    def __call__(self, time: float) -> float:
        return (time - self.origin) * self.scale


@dataclass(frozen=True)
class RunRecord:
    """Everything a report shows of one run."""

    result: RunResult
    participants: Participants
    packets: Sequence[Packet] = ()
    clock: PacketClock = field(default_factory=PacketClock)
    virtual: bool = True
    """True for a simulation (virtual time), False for a real-time run on loopback."""
    packets_recorded: bool = True
    """False when nothing tapped the run's drivers (the ladder then says why it is empty)."""
    note: str = ""
    """A sentence the report shows under its title (what the run did not record, and why)."""

    @property
    def duration(self) -> float:
        return self.result.scenario.duration
