"""What ``sipemu run`` writes as a run goes: the report as text lines, and ``--json`` as JSON
Lines (docs/scenarios.md, "Output as it happens").

A realtime run tells a :class:`RunOutput` of each trace entry and client state change the
moment it happens; each goes out as one text line (flushed) and one JSON line (one ``write``
system call, so a kill never leaves half a line: a line is complete if it ends with a newline).
A run in virtual time is over in well under a second; it writes the same lines once it ends.
Either way the file ends with a ``summary`` object, unless the process was killed outright
(SIGKILL): then every line before the kill is there and readable.

The JSON Lines records, one object per line, named by ``type``:

- ``run``: ``scenario``, ``seed``, ``mode`` (``simulated`` | ``realtime``), ``time_scale``
  (realtime), ``format`` (:data:`FORMAT`); the first line;
- ``trace``: ``t``, ``source``, ``kind``, ``text`` (a line of the timeline, as
  :meth:`~emulator.sim.trace.TraceEntry.to_json`);
- ``state``: ``t``, ``client``, ``state``, ``registrar``, ``mode``, ``primary``, ``backup``,
  ``cause``, ``contacts`` (a client's state change: what the expectations read);
- ``violation``: ``t``, ``invariant``, ``subject``, ``detail`` (simulated runs that watch
  invariants);
- ``expectation``: ``expectation``, ``line``, ``verdict`` (``pass`` | ``fail`` |
  ``undecided``), ``passed``, ``detail``;
- ``summary``: ``scenario``, ``seed``, ``passed``, ``expectations`` (counts by verdict),
  ``interrupted`` (``SIGINT`` | ``SIGTERM`` | null), ``stopped_at``, ``error`` (a crash's
  message, or null), ``exit_status``; the last line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from clients.events import ClientStateChanged
from emulator.scenario.model import Scenario
from emulator.scenario.runner import (
    DETAIL_KINDS,
    RunResult,
    report_header,
    report_results,
)
from emulator.sim.invariants import Violation
from emulator.sim.trace import TraceEntry

__all__ = ["FORMAT", "JsonLines", "RunOutput", "read_json_lines"]

FORMAT = 2
"""The ``--json`` format: 2 is JSON Lines (1, until issue 21, was one JSON document)."""


class JsonLines:
    """A JSON Lines file written one whole line per ``write`` system call (no buffering in
    this process: what :meth:`write` returned from is the kernel's, and survives a kill)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)

    def write(self, record: Mapping[str, object]) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:  # a regular file takes it all at once; a short write is continued
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        """Flush to disk (fsync) and close; idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        except OSError:  # a pipe or a character device (/dev/stdout) has nothing to sync
            pass
        finally:
            os.close(fd)


def read_json_lines(path: str | Path) -> list[dict[str, object]]:
    """The records of a ``--json`` file; a last line without its newline (a write cut short
    by a kill) is left out."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    return [json.loads(line) for line in lines[:-1] if line]


def state_record(event: ClientStateChanged) -> dict[str, object]:
    return {
        "type": "state",
        "t": round(event.now, 6),
        "client": event.client,
        "state": event.state,
        "registrar": event.registrar,
        "mode": event.mode,
        "primary": event.primary,
        "backup": event.backup,
        "cause": event.cause,
        "contacts": event.contacts,
    }


def violation_record(violation: Violation) -> dict[str, object]:
    return {
        "type": "violation",
        "t": round(violation.now, 6),
        "invariant": violation.invariant,
        "subject": violation.subject,
        "detail": violation.detail,
    }


class RunOutput:
    """Where a run's report goes, as it happens.

    ``text``: the readable report (header, timeline unless ``timeline=False``, expectations),
    one line at a time, flushed; ``json``: a path for the JSON Lines.  ``verbose``: the text
    timeline also shows every SIP exchange, DNS query and detail (the JSON always holds
    whatever the run recorded)."""

    def __init__(
        self,
        *,
        text: TextIO | None = None,
        json: str | Path | None = None,
        verbose: bool = False,
        timeline: bool = True,
    ) -> None:
        self.text = text
        self.json = JsonLines(json) if json is not None else None
        self.verbose = verbose
        self.timeline = timeline
        self.scenario: Scenario | None = None
        self.seed: int | None = None
        self.finished = False

    def _line(self, line: str) -> None:
        if self.text is not None:
            self.text.write(line + "\n")
            self.text.flush()

    def start(
        self, scenario: Scenario, seed: int, *, mode: str, time_scale: float | None = None
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        for line in report_header(scenario, seed):
            self._line(line)
        if self.json is not None:
            record: dict[str, object] = {
                "type": "run",
                "format": FORMAT,
                "scenario": scenario.source,
                "seed": seed,
                "mode": mode,
            }
            if time_scale is not None:
                record["time_scale"] = time_scale
            self.json.write(record)

    def entry(self, entry: TraceEntry) -> None:
        # The JSON line first: once a reader sees the text line, the file holds it too.
        if self.json is not None:
            self.json.write({"type": "trace", **entry.to_json()})
        if self.timeline and (self.verbose or entry.kind not in DETAIL_KINDS):
            self._line(entry.line())

    def state(self, event: ClientStateChanged) -> None:
        if self.json is not None:
            self.json.write(state_record(event))

    def violation(self, violation: Violation) -> None:
        if self.json is not None:
            self.json.write(violation_record(violation))

    def finish(self, result: RunResult, exit_status: int, *, extra: str = "") -> None:
        """``extra`` (a ladder), the expectations and the summary; closes the JSON file."""
        if self.timeline:
            self._line("")
        if extra:
            for line in extra.rstrip("\n").split("\n"):
                self._line(line)
            self._line("")
        for line in report_results(result.results, result.interrupted, result.stopped_at):
            self._line(line)
        if self.json is not None:
            for r in result.results:
                self.json.write(
                    {
                        "type": "expectation",
                        "expectation": r.expectation.describe(),
                        "line": r.expectation.line,
                        "verdict": r.mark.lower(),
                        "passed": r.passed,
                        "detail": r.detail,
                    }
                )
            self._summary(result, exit_status, None)
        self.close()

    def abort(
        self, error: BaseException, exit_status: int | None = None, interrupted: str | None = None
    ) -> None:
        """The run ended with an error (a crash, or a sentence for the user), or a signal
        (``interrupted``) came before it could stop by itself: the summary says so.  What was
        written before stays as it is."""
        if self.json is not None and not self.finished:
            problem = None if interrupted else f"{type(error).__name__}: {error}"
            self._summary(None, exit_status, problem, interrupted)
        self.close()

    def _summary(
        self,
        result: RunResult | None,
        exit_status: int | None,
        error: str | None,
        interrupted: str | None = None,
    ) -> None:
        assert self.json is not None
        counts = {"pass": 0, "fail": 0, "undecided": 0}
        for r in result.results if result is not None else ():
            counts[r.mark.lower()] += 1
        self.json.write(
            {
                "type": "summary",
                "scenario": self.scenario.source if self.scenario is not None else None,
                "seed": self.seed,
                "passed": result.passed if result is not None else False,
                "expectations": counts,
                "interrupted": result.interrupted if result is not None else interrupted,
                "stopped_at": (
                    round(result.stopped_at, 6)
                    if result is not None and result.stopped_at is not None
                    else None
                ),
                "error": error,
                "exit_status": exit_status,
            }
        )
        self.finished = True

    def close(self) -> None:
        if self.json is not None:
            self.json.close()

    def write_run(self, result: RunResult, exit_status: int, *, extra: str = "") -> None:
        """A run that is over (virtual time): every line at once, in the order of time."""
        self.start(result.scenario, result.seed, mode="simulated")
        states = sorted(
            (event for events in result.timeline.values() for event in events),
            key=lambda e: e.now,
        )
        i = 0
        for entry in result.trace:
            # A client's state record goes just before the first trace line after it.
            while i < len(states) and states[i].now <= entry.now:
                self.state(states[i])
                i += 1
            self.entry(entry)
        for event in states[i:]:
            self.state(event)
        for violation in result.violations:
            self.violation(violation)
        self.finish(result, exit_status, extra=extra)
