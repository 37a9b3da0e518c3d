"""The whole ``sipemu conform`` run: every chosen situation with the real program, then in
the simulator with its profile over several seeds; the table and the JSON.

Rules of this file:

* A situation where some aspect differs is run again with the real program, up to
  ``retries`` times (default 1), and judged afresh each time.  A difference counts only when
  it is there on every try: a real program on a loaded machine (CI runs two conform runs side
  by side on two cores) can miss a timing by more than the tolerance once, and one late timer
  is not a behaviour.  A row that matched only on a retry says so in the table ("yes, try 2")
  and in the JSON (``tries`` and the earlier real values), so flakiness stays visible.
* ``--retries 0`` makes the first try final.
* A number is judged against the seeds' values and the two *extreme* runs' (every draw at
  one end of its range, emulator/conform/sim.py): a random delay's whole range, not the few
  draws the seeds made.  Structure is judged against the seeds only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.conform.aspects import ASPECTS, Facts, Judgement, judge, measure
from emulator.conform.drivers import Driver
from emulator.conform.sim import EXTREMES, SEEDS, simulate
from emulator.conform.situations import Situation
from emulator.conform.trace import TraceEntry

__all__ = ["Report", "compare", "format_table", "run"]


@dataclass
class Report:
    program: str
    version: str
    profile: str
    settings: str
    judgements: list[Judgement] = field(default_factory=list)
    wall: float = 0.0
    situations: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Situation -> why it was not run with this program."""
    retried: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Situation -> the judgements of the tries before the last (JSON form)."""

    @property
    def passed(self) -> bool:
        return all(j.match for j in self.judgements)

    def as_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "version": self.version,
            "profile": self.profile,
            "settings": self.settings,
            "passed": self.passed,
            "wall_seconds": round(self.wall, 1),
            "judgements": [j.as_json() for j in self.judgements],
            "situations": self.situations,
            "skipped": self.skipped,
            "retried": self.retried,
        }

    def matched_on_retry(self) -> list[Judgement]:
        """Rows that match now but differed on an earlier try of their situation."""
        out = []
        for j in self.judgements:
            earlier = self.retried.get(j.situation, [])
            if j.match and any(e["aspect"] == j.aspect and not e["match"] for e in earlier):
                out.append(j)
        return out


def _granted(trace: Sequence[TraceEntry]) -> float | None:
    for entry in trace:
        if entry.kind == "response" and entry.status is not None and 200 <= entry.status < 300:
            if entry.method == "REGISTER" and entry.expires:
                return float(entry.expires)
    return None


def drawn_expires(situation: Situation, profile: str) -> tuple[int, int] | None:
    """The Expires the profile's account asks, when it is a random draw (baresip's regint
    plus 0-255, ``register_expires_jitter``): the range of the draw, judged as a range (a
    random value, like a backoff); None when the account asks one fixed value."""
    from clients.profile import get_profile

    known = get_profile(profile)
    if situation.account_expires is not None or not known.register_expires_jitter:
        return None
    low = known.register_expires
    return low, low + known.register_expires_jitter


def compare(
    situation: Situation,
    real: Sequence[TraceEntry],
    profile_traces: Sequence[Sequence[TraceEntry]],
    *,
    real_fault_at: float | None,
    long: bool = False,
    drawn: tuple[int, int] | None = None,
    extremes: Sequence[Sequence[TraceEntry]] = (),
) -> list[Judgement]:
    """Judge every aspect of ``situation``: the real trace against the simulator's (numbers
    also against the ``extremes`` runs')."""
    fault = situation.fault
    duration = situation.effective_duration(long)
    target = fault.target if fault is not None else None
    sim_facts = Facts(fault.at if fault is not None else None, target, duration)
    real_facts = Facts(real_fault_at if fault is not None else None, target, duration)
    out: list[Judgement] = []
    for aspect in situation.judged(long):
        real_value = measure(aspect, real, real_facts)
        values = [measure(aspect, trace, sim_facts) for trace in profile_traces]
        if ASPECTS[aspect].kind in ("seconds", "fraction"):
            values += [measure(aspect, trace, sim_facts) for trace in extremes]
        support = drawn if aspect in ("expires-asked", "expires-granted") else None
        out.append(judge(situation.name, aspect, real_value, values, _granted(real), drawn=support))
    return out


def run(
    driver: Driver,
    situations: Sequence[Situation],
    *,
    long: bool = False,
    seeds: int = SEEDS,
    keep: Path | None = None,
    retries: int = 1,
    progress: Callable[[str], None] = print,
) -> Report:
    """Run every situation (inside the namespace) and judge it."""
    from emulator.conform.live import run_live

    report = Report(driver.name, driver.version(), driver.profile, driver.settings)
    started = time.monotonic()
    for chosen in situations:
        why = driver.not_judged.get(chosen.name)
        if why is not None:
            report.skipped[chosen.name] = why
            progress(f"{chosen.name}: skipped ({why})")
            continue
        moved = chosen.for_transports(driver.transports)
        if moved is None:
            reason = f"the {driver.name} driver cannot make it use {chosen.transport().upper()}"
            report.skipped[chosen.name] = reason
            progress(f"{chosen.name}: skipped ({reason})")
            continue
        situation = moved
        progress(f"{situation.name}: {situation.title} ({situation.effective_duration(long):g} s)")
        traces = [
            simulate(situation, driver.profile, seed=seed, long=long) for seed in range(seeds)
        ]
        extremes = [
            simulate(situation, driver.profile, seed=0, long=long, extreme=value)
            for value in EXTREMES
        ]
        earlier: list[dict[str, Any]] = []
        for attempt in range(retries + 1):
            live = asyncio.run(run_live(situation, driver, long=long, keep=keep))
            judgements = compare(
                situation,
                live.trace,
                traces,
                real_fault_at=live.fault_at,
                long=long,
                drawn=drawn_expires(situation, driver.profile),
                extremes=extremes,
            )
            if all(j.match for j in judgements) or attempt == retries:
                break
            differs = ", ".join(j.aspect for j in judgements if not j.match)
            progress(f"  differs on try {attempt + 1} ({differs}): running it again")
            earlier.extend({"try": attempt + 1, **j.as_json()} for j in judgements)
        if earlier:
            report.retried[situation.name] = earlier
        report.judgements.extend(judgements)
        report.situations[situation.name] = {
            "title": situation.title,
            "steps": [s.describe() for s in situation.steps],
            "wall_seconds": round(live.wall, 1),
            "workdir": str(live.workdir) if keep is not None else None,
            "real_trace": [e.as_json() for e in live.trace],
            "profile_trace": [e.as_json() for e in traces[0]],
        }
        for j in judgements:
            progress(
                f"  {j.aspect}: real {j.real_text()} | profile {j.profile_text()} | "
                f"{'ok' if j.match else 'DIFFERS'}"
            )
    report.wall = time.monotonic() - started
    return report


def format_table(report: Report) -> str:
    """The table: situation | aspect | real program | profile | match."""
    header = (
        "SITUATION",
        "ASPECT",
        f"{report.program.upper()} {report.version}",
        f"PROFILE {report.profile}",
        "MATCH",
    )
    rows = [header] + [
        (j.situation, j.aspect, j.real_text(), j.profile_text(), _match_text(report, j))
        for j in report.judgements
    ]
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for name, reason in report.skipped.items():
        lines.append(f"{name}: skipped ({reason})")
    differs = sum(not j.match for j in report.judgements)
    flaky = len(report.matched_on_retry())
    retried = f" ({flaky} matched only on a retry)" if flaky else ""
    lines.append(
        f"{len(report.judgements)} aspects, {differs} differ{retried}; "
        f"wall time {report.wall:.0f} s"
    )
    return "\n".join(lines)


def _match_text(report: Report, j: Judgement) -> str:
    if not j.match:
        return "NO"
    tries = report.retried.get(j.situation)
    if not tries:
        return "yes"
    if any(e["aspect"] == j.aspect and not e["match"] for e in tries):
        return f"yes, try {max(e['try'] for e in tries) + 1}"
    return "yes"


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")
