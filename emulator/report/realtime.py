"""The record of a real-time run (``sipemu run --realtime``), for a report.

A real-time run knows its trace, its clients' timelines and its verdicts
(:class:`~emulator.scenario.runner.RunResult`) as a simulated one does.  Its packets come from
taps on the live drivers (emulator/wire), with wall-clock times: pass them with the
:class:`~emulator.report.model.PacketClock` that maps them onto the scenario's clock (the
wall-clock time of scenario time 0, and the run's time scale).  Until the live drivers carry
taps, a real-time report has no packets, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emulator.report.model import PacketClock, Participants, RunRecord
from emulator.scenario.runner import RunResult
from emulator.wire import Packet

__all__ = ["NO_PACKETS", "realtime_record"]

NO_PACKETS = (
    "A real-time run on loopback: no packet tap was attached to its live drivers, so the "
    "ladder and the message statistics are empty; the timeline and the expectations are "
    "complete."
)


def realtime_record(
    result: RunResult,
    packets: Sequence[Packet] | None = None,
    *,
    clock: PacketClock | None = None,
    clients: Mapping[str, str] | None = None,
) -> RunRecord:
    """A real-time run's record; ``packets`` None: none were recorded. ``clients``: client
    name -> IP address, when known (else a client's packets show its address)."""
    return RunRecord(
        result,
        Participants.of(result.scenario.topology, clients),
        packets or (),
        clock or PacketClock(),
        virtual=False,
        packets_recorded=packets is not None,
        note="" if packets is not None else NO_PACKETS,
    )
