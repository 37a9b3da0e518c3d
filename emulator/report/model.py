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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from emulator.net import Address
from emulator.scenario.runner import RunResult
from emulator.topology import Topology
from emulator.wire import Packet
from emulator.wire.names import Participant as WireParticipant
from emulator.wire.names import ParticipantRole, participants
from emulator.wire.names import Participants as WireParticipants

__all__ = ["PacketClock", "Participant", "ParticipantKind", "Participants", "RunRecord"]

ParticipantKind = ParticipantRole


@dataclass(frozen=True, slots=True)
class Participant:
    """One column of the report's ladder: a client, a pool, the fake DNS, or an address
    nobody named."""

    name: str
    kind: ParticipantKind
    address: str


class Participants:
    """The report's columns, in the order and with the names every drawing of a run uses
    (emulator/wire/names.py: clients, the DNS, Directors, Front Ends, then unknown addresses
    as first seen), each with its index; an address nobody named gets a column the first
    time it is looked up."""

    def __init__(self, names: WireParticipants) -> None:
        self.names = names
        self.columns: list[Participant] = []
        self._by_name: dict[str, int] = {}
        for participant in names.ordered():
            self._add(participant)

    def _add(self, participant: WireParticipant) -> int:
        self._by_name[participant.name] = len(self.columns)
        self.columns.append(Participant(participant.name, participant.role, participant.host))
        return len(self.columns) - 1

    def index(self, address: Address) -> int:
        """The column of ``address``."""
        participant = self.names.of(address)
        found = self._by_name.get(participant.name)
        return found if found is not None else self._add(participant)

    @classmethod
    def of(cls, topology: Topology, clients: Mapping[str, str] | None = None) -> Participants:
        """The columns of a run of ``topology`` whose clients (name -> IP address, in the
        run's order) are these."""
        return cls(participants(topology, clients or {}))


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
