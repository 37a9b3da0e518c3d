"""An HTML report of a run: ladder, timeline and statistics in one self-contained file
(docs/report.md)."""

from emulator.report.document import (
    BAND_LIMIT,
    INLINE_LIMIT,
    build_report,
    report_data,
    write_report,
)
from emulator.report.model import PacketClock, Participant, Participants, RunRecord
from emulator.report.realtime import realtime_record
from emulator.report.simulated import record_of_simulation, simulate

__all__ = [
    "BAND_LIMIT",
    "INLINE_LIMIT",
    "PacketClock",
    "Participant",
    "Participants",
    "RunRecord",
    "build_report",
    "realtime_record",
    "record_of_simulation",
    "report_data",
    "simulate",
    "write_report",
]
