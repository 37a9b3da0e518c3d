"""The trace of a run: one line per thing that happened, in the order it happened.

The simulated world (:meth:`emulator.sim.world.World.note`) and the real-time runner
(emulator/scenario/realtime.py) record :class:`TraceEntry` values; a scenario's report prints
them (:meth:`TraceEntry.line`) or writes them as JSON (:meth:`TraceEntry.to_json`).  A seed
gives the same entries, byte for byte, on every run.
"""

from __future__ import annotations

from emulator.values import static_frozen

__all__ = ["TraceEntry"]


@static_frozen
class TraceEntry:
    """One line of a run's trace."""

    now: float
    source: str
    kind: str
    text: str

    def line(self) -> str:
        return f"{self.now:11.3f}  {self.source:<22} {self.text}"

    def to_json(self) -> dict[str, object]:
        return {
            "t": round(self.now, 6),
            "source": self.source,
            "kind": self.kind,
            "text": self.text,
        }
