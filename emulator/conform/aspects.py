"""What is judged of a behaviour trace, and how a real program's trace is compared with its
profile's.

Rules of this file:

* An *aspect* is one function of a trace (and of the situation's fault time) to a value: a
  string (structure: which names were asked, which servers were tried, in which order), a
  number (a delay in seconds, or a fraction of the granted Expires), or None (it did not
  happen in the situation's duration).
* The profile's value is not one value but what the simulator gives over several seeds
  (``SEEDS``): a random backoff is then a range, not a draw.  A structural aspect matches when
  the real value is one the simulator gave; a number matches when it lies within the
  simulator's range widened by the aspect's tolerance; "did not happen" matches only if it did
  not happen in some seed either.
* A value the profile *draws* once per run rather than times (baresip's Expires: its regint
  plus a random 0-255, ``register_expires_jitter``) is judged against the range of the draw
  the profile states (``drawn``), when every seed's value is itself a draw from that range: a
  few seeds cannot cover a 256-wide draw, and its range is a fact of the profile, not a
  tolerance of the comparison.
* Tolerances (docs/conform.md): delays to ``TIME_TOLERANCE`` (a second: scheduling, the
  program's own timer granularity and start-up); a refresh fraction to a second of the granted
  Expires.
* Sans-IO: pure functions of the traces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from emulator.conform.trace import TraceEntry

__all__ = [
    "ASPECTS",
    "TIME_TOLERANCE",
    "AspectDef",
    "Judgement",
    "Value",
    "judge",
    "measure",
]

Value = str | float | None
Kind = Literal["exact", "seconds", "fraction"]

TIME_TOLERANCE = 1.0
"""Seconds a delay may differ from the profile's range and still match."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What an aspect may look at besides the trace."""

    fault_at: float | None
    """When the situation's first fault step happened (seconds from the start), if any."""
    fault_target: str | None
    """The pool that step targeted."""
    duration: float


Extractor = Callable[[Sequence[TraceEntry], Facts], Value]


@dataclass(frozen=True, slots=True)
class AspectDef:
    name: str
    kind: Kind
    extract: Extractor
    meaning: str


def _registers(trace: Sequence[TraceEntry]) -> list[TraceEntry]:
    """Outgoing REGISTER requests, one per transaction (retransmissions already left out)."""
    seen: set[str] = set()
    out: list[TraceEntry] = []
    for entry in trace:
        if entry.kind == "request" and entry.outgoing and entry.method == "REGISTER":
            if entry.transaction in seen:
                continue
            seen.add(entry.transaction)
            out.append(entry)
    return out


def _register_finals(trace: Sequence[TraceEntry]) -> list[TraceEntry]:
    return [
        e
        for e in trace
        if e.kind == "response"
        and not e.outgoing
        and e.method == "REGISTER"
        and e.status is not None
        and e.status >= 200
    ]


def _target(entry: TraceEntry) -> str:
    return f"{entry.peer}/{entry.transport}"


def _questions(trace: Sequence[TraceEntry], facts: Facts, services: bool) -> Value:
    """DNS questions before the first REGISTER, in order, each once: the service look-ups
    (NAPTR, SRV) or the address look-ups (A, AAAA)."""
    registers = _registers(trace)
    until = registers[0].time if registers else facts.duration
    names: list[str] = []
    for entry in trace:
        if entry.kind == "dns" and entry.outgoing and entry.time <= until:
            service = entry.method.split(" ", 1)[0] in ("naptr", "srv")
            if service == services and entry.method not in names:
                names.append(entry.method)
    return " > ".join(names) if names else None


def _dns(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    return _questions(trace, facts, True)


def _dns_hosts(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    """The address questions as a set: belle-sip (linphone) asks them in parallel, in an
    order that changes from run to run (seen with 5.1.65)."""
    asked = _questions(trace, facts, False)
    return None if asked is None else ", ".join(sorted(str(asked).split(" > ")))


def _first_register(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    registers = _registers(trace)
    return _target(registers[0]) if registers else None


def _targets(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    targets: list[str] = []
    for entry in _registers(trace):
        target = _target(entry)
        if not targets or targets[-1] != target:
            targets.append(target)
    return " > ".join(targets[:8]) if targets else None


def _expires_asked(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    values: list[str] = []
    for entry in _registers(trace):
        text = "none" if entry.expires is None else str(entry.expires)
        if not values or values[-1] != text:
            values.append(text)
    return " > ".join(values[:6]) if values else None


def _expires_granted(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    for entry in _register_finals(trace):
        if entry.status is not None and entry.status < 300:
            return None if entry.expires is None else str(entry.expires)
    return None


def _outcome(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    finals = _register_finals(trace)
    if not finals:
        return "no answer"
    last = finals[-1]
    return f"{last.status} from {last.peer}"


def _statuses(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    statuses: list[str] = []
    for entry in _register_finals(trace):
        text = f"{entry.status}"
        if not statuses or statuses[-1] != text:
            statuses.append(text)
    return " > ".join(statuses[:8]) if statuses else None


def _retry_after_failure(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    """Seconds from the first REGISTER failure (a final response >= 300) to the next new
    REGISTER transaction."""
    failure = next(
        (e for e in _register_finals(trace) if e.status is not None and e.status >= 300), None
    )
    if failure is None:
        return None
    later = [
        e
        for e in _registers(trace)
        if e.time >= failure.time and e.transaction != failure.transaction
    ]
    return round(later[0].time - failure.time, 3) if later else None


def _refresh_fraction(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    """When the first binding was refreshed, as a fraction of the Expires it was granted."""
    ok = next(
        (e for e in _register_finals(trace) if e.status is not None and 200 <= e.status < 300),
        None,
    )
    if ok is None or not ok.expires:
        return None
    later = [e for e in _registers(trace) if e.time > ok.time and e.transaction != ok.transaction]
    return round((later[0].time - ok.time) / ok.expires, 4) if later else None


def _failover(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    """Seconds from the fault to the first REGISTER to another server than the faulted one."""
    if facts.fault_at is None:
        return None
    for entry in _registers(trace):
        if entry.time >= facts.fault_at and entry.peer != facts.fault_target:
            return round(entry.time - facts.fault_at, 3)
    return None


def _first_after_fault(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    """Seconds from the fault to the first new REGISTER transaction (to any server)."""
    if facts.fault_at is None:
        return None
    for entry in _registers(trace):
        if entry.time >= facts.fault_at:
            return round(entry.time - facts.fault_at, 3)
    return None


def _keep_alive(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    kinds: list[str] = []
    for entry in trace:
        if not entry.outgoing:
            continue
        if entry.kind == "keep-alive":
            kind = f"crlf/{entry.transport}"
        elif entry.kind == "request" and entry.method == "OPTIONS":
            kind = f"OPTIONS/{entry.transport}"
        else:
            continue
        if kind not in kinds:
            kinds.append(kind)
    return ", ".join(sorted(kinds)) if kinds else "none"


def _after_notify(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    """Seconds from the first NOTIFY the client received to its next REGISTER."""
    notify = next(
        (e for e in trace if e.kind == "request" and not e.outgoing and e.method == "NOTIFY"),
        None,
    )
    if notify is None:
        return None
    for entry in _registers(trace):
        if entry.time >= notify.time:
            return round(entry.time - notify.time, 3)
    return None


def _notify_answer(trace: Sequence[TraceEntry], facts: Facts) -> Value:
    for entry in trace:
        if entry.kind == "response" and entry.outgoing and entry.method == "NOTIFY":
            return str(entry.status)
    return None


ASPECTS: dict[str, AspectDef] = {
    a.name: a
    for a in (
        AspectDef("dns", "exact", _dns, "NAPTR/SRV questions before the first REGISTER"),
        AspectDef(
            "dns-hosts", "exact", _dns_hosts, "A/AAAA questions before the first REGISTER (a set)"
        ),
        AspectDef(
            "first-register", "exact", _first_register, "server/transport of the first REGISTER"
        ),
        AspectDef("targets", "exact", _targets, "servers REGISTERed to, in order (repeats folded)"),
        AspectDef(
            "expires-asked", "exact", _expires_asked, "Expires asked in REGISTERs (changes only)"
        ),
        AspectDef("expires-granted", "exact", _expires_granted, "Expires of the first 2xx"),
        AspectDef("statuses", "exact", _statuses, "final REGISTER statuses (repeats folded)"),
        AspectDef("outcome", "exact", _outcome, "the last final REGISTER response"),
        AspectDef(
            "retry-after-failure", "seconds", _retry_after_failure, "first failure to next REGISTER"
        ),
        AspectDef(
            "refresh-fraction", "fraction", _refresh_fraction, "first refresh / granted Expires"
        ),
        AspectDef("first-after-fault", "seconds", _first_after_fault, "fault to the next REGISTER"),
        AspectDef("failover", "seconds", _failover, "fault to the first REGISTER elsewhere"),
        AspectDef("keep-alive", "exact", _keep_alive, "keep-alive kinds sent"),
        AspectDef("after-notify", "seconds", _after_notify, "NOTIFY received to next REGISTER"),
        AspectDef(
            "notify-answer", "exact", _notify_answer, "status the client answered NOTIFY with"
        ),
    )
}


def measure(name: str, trace: Sequence[TraceEntry], facts: Facts) -> Value:
    return ASPECTS[name].extract(trace, facts)


@dataclass(frozen=True, slots=True)
class Judgement:
    """One row of the table."""

    situation: str
    aspect: str
    real: Value
    profile: tuple[Value, ...]
    """The simulator's value for each seed."""
    match: bool
    kind: Kind
    tolerance: float
    note: str = ""

    def real_text(self) -> str:
        return format_value(self.real, self.kind)

    def profile_text(self) -> str:
        if self.note.startswith("drawn: the profile asks "):
            return f"{self.note.removeprefix('drawn: the profile asks ')} (a draw)"
        return format_values(self.profile, self.kind)

    def as_json(self) -> dict[str, Any]:
        return {
            "situation": self.situation,
            "aspect": self.aspect,
            "real": self.real,
            "profile": list(self.profile),
            "profile_text": self.profile_text(),
            "match": self.match,
            "kind": self.kind,
            "tolerance": self.tolerance,
            "note": self.note,
        }


def tolerance_for(kind: Kind, granted: float | None) -> float:
    if kind == "seconds":
        return TIME_TOLERANCE
    if kind == "fraction":
        return TIME_TOLERANCE / granted if granted else 0.01
    return 0.0


def judge(
    situation: str,
    aspect: str,
    real: Value,
    profile: Sequence[Value],
    granted: float | None,
    *,
    drawn: tuple[int, int] | None = None,
) -> Judgement:
    """Does the real program's value match the profile's (see the rules above)?"""
    kind = ASPECTS[aspect].kind
    tolerance = tolerance_for(kind, granted)
    values = tuple(profile)
    if drawn is not None and _within(real, drawn) and all(_within(v, drawn) for v in values):
        low, high = drawn
        note = f"drawn: the profile asks {low}-{high}"
        return Judgement(situation, aspect, real, values, True, kind, 0.0, note)
    if kind == "exact" or real is None or isinstance(real, str):
        match = real in values
    else:
        numbers = [v for v in values if isinstance(v, int | float)]
        match = bool(numbers) and min(numbers) - tolerance <= real <= max(numbers) + tolerance
    return Judgement(situation, aspect, real, values, match, kind, round(tolerance, 4))


def _within(value: Value, support: tuple[int, int]) -> bool:
    """``value`` is one whole number (a single Expires) inside ``support``."""
    if not isinstance(value, str) or not value.isdigit() or not value.isascii():
        return False
    return support[0] <= int(value) <= support[1]


def format_value(value: Value, kind: Kind) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if kind == "fraction":
        return f"{value:.3f}"
    return f"{value:.1f} s"


def format_values(values: Sequence[Value], kind: Kind) -> str:
    if kind == "exact":
        distinct: list[str] = []
        for value in values:
            text = format_value(value, kind)
            if text not in distinct:
                distinct.append(text)
        return " | ".join(distinct)
    numbers = [v for v in values if isinstance(v, int | float)]
    parts: list[str] = []
    if numbers:
        low, high = min(numbers), max(numbers)
        if high - low < 0.05:
            parts.append(format_value(low, kind))
        elif kind == "fraction":
            parts.append(f"{low:.3f}-{high:.3f}")
        else:
            parts.append(f"{low:.1f}-{high:.1f} s")
    if any(v is None for v in values):
        parts.append("-")
    return " | ".join(parts) if parts else "-"
