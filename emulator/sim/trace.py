"""The trace of a run: one line per thing that happened, in the order it happened.

The simulated world (:meth:`emulator.sim.world.World.note`) and the real-time runner
(emulator/scenario/realtime.py) record :class:`TraceEntry` values; a scenario's report prints
them (:meth:`TraceEntry.line`) or writes them as JSON (:meth:`TraceEntry.to_json`).  A seed
gives the same entries, byte for byte, on every run.

A run that records its messages (``sipemu run --verbose`` or ``--messages``;
:class:`MessageTrace`) adds one entry of kind ``"message"`` per packet sent, at the moment it
is sent, holding the whole message; other runs have no such entries, and their other entries
are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable

from emulator.values import static_frozen
from emulator.wire import Packet
from emulator.wire.messages import Reader, full_text, summary
from emulator.wire.names import Participants

__all__ = ["MESSAGE", "MessageTrace", "TraceEntry"]

MESSAGE = "message"
"""The kind of an entry that holds a whole message (a SIP message, a decoded DNS one)."""

_INDENT = " " * 13 + "| "


@static_frozen
class TraceEntry:
    """One line of a run's trace."""

    now: float
    source: str
    kind: str
    text: str
    message: str = ""
    """Kind ``message`` only: the whole SIP message (LF line ends), or the DNS message
    decoded on one line."""
    packet: Packet | None = None
    """Kind ``message`` only: the packet (transport, addresses, protocol) it was read from."""

    def line(self) -> str:
        head = f"{self.now:11.3f}  {self.source:<22} {self.text}"
        if not self.message:
            return head
        return head + "".join(f"\n{_INDENT}{line}".rstrip() for line in self.message.split("\n"))

    def to_json(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "t": round(self.now, 6),
            "source": self.source,
            "kind": self.kind,
            "text": self.text,
        }
        packet = self.packet
        if packet is not None:
            entry["protocol"] = packet.protocol
            entry["transport"] = packet.transport
            entry["src"] = f"{packet.src[0]}:{packet.src[1]}"
            entry["dst"] = f"{packet.dst[0]}:{packet.dst[1]}"
        if self.message:
            entry["message"] = self.message
        return entry


class MessageTrace:
    """A tap (emulator/wire) that makes each packet a ``message`` entry of a trace, named by
    its sender (emulator/wire/names.py), retransmissions marked.

    ``record`` takes each entry (a simulation's ``trace.append``; a realtime run's writer,
    which streams it); ``clock`` puts a packet's time on the trace's timeline (a simulation's
    packets are on it already; a live tap's carry the wall clock)."""

    def __init__(
        self,
        record: Callable[[TraceEntry], None],
        names: Participants,
        clock: Callable[[float], float] | None = None,
    ) -> None:
        self.record = record
        self.names = names
        self.clock = clock
        self._reader = Reader()

    def packet(self, packet: Packet) -> None:
        message = self._reader.read(packet)
        now = packet.time if self.clock is None else self.clock(packet.time)
        self.record(
            TraceEntry(
                now,
                self.names.name(packet.src),
                MESSAGE,
                summary(message, self.names),
                full_text(packet),
                packet,
            )
        )

    def close(self) -> None:
        pass
