"""A run's packets as a ladder diagram in the terminal, in the manner of sngrep's call flow.

One column per participant (emulator/wire/names.py: clients, the DNS, Directors, Front End
pools), one arrow per packet with its label (method, status, DNS question or answer) above
it and its time on the left; retransmissions drawn dashed and marked; the run's steps,
faults and state changes as notes between the arrows.  :func:`render_ladder` takes packets
from any driver (emulator/wire :class:`~emulator.wire.Packet` values): the simulator's tap
today, the live drivers' taps when they are wired.

Rules of this file:

* The renderer is a pure function of its inputs (packets, participants, notes, width,
  character set): a seeded simulated run gives the same ladder byte for byte.
* Width: every column gets the same width, between :data:`MIN_COLUMN` and :data:`MAX_COLUMN`
  characters, to fit ``width``; when even the narrowest columns do not fit, the busiest
  participants keep a column and the others share the last one, ``(N others)``, where each
  arrow's label starts with the name of its end there (``client19: 200 OK``).
* Keep-alives (CRLF pings and pongs) are left out unless a filter asks for them
  (``method=keep-alive``); the ladder says how many it left out.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from emulator.wire import Packet
from emulator.wire.messages import DNS, KEEP_ALIVE, WireMessage, decode
from emulator.wire.names import Participant, Participants

__all__ = [
    "MAX_COLUMN",
    "MIN_COLUMN",
    "Charset",
    "Group",
    "LadderFilter",
    "Note",
    "on_timeline",
    "parse_filter",
    "render_ladder",
    "select",
    "shown_notes",
    "window",
]

Charset = Literal["unicode", "ascii"]
Group = Literal["none", "call-id", "transaction"]

MIN_COLUMN = 12
MAX_COLUMN = 30
GUTTER = 12
"""Characters of the time column, ``"   300.001  "``."""


@dataclass(frozen=True, slots=True)
class Note:
    """Something that happened besides packets (a step, a fault, a state change)."""

    time: float
    source: str
    text: str


# -- filters -----------------------------------------------------------------------------------

FILTER_KEYS = ("client", "host", "call-id", "method", "from", "until")


@dataclass(frozen=True, slots=True)
class LadderFilter:
    """One ``KEY=VALUE`` (or ``KEY!=VALUE``) condition on the packets shown.

    ``client`` / ``host``: a participant at either end (a client's name; any participant's
    name, e.g. a pool's FQDN or ``dns``); ``call-id``: part of the Call-ID; ``method``: a
    request's method or a response's CSeq method, ``DNS`` or ``keep-alive``; ``from`` /
    ``until``: a time window, in seconds.  Conditions on different keys must all hold; several
    on one key, any of them (and ``!=`` conditions, none of them)."""

    key: str
    value: str
    negated: bool = False


def parse_filter(text: str) -> LadderFilter:
    """``"client=ClientUser2"`` -> a filter; ValueError (a sentence) when it is not one."""
    key, op, value = text.partition("!=")
    negated = bool(op)
    if not op:
        key, op, value = text.partition("=")
    key, value = key.strip().lower(), value.strip()
    if not op or key not in FILTER_KEYS or not value:
        raise ValueError(
            f"ladder filter {text!r} is not KEY=VALUE or KEY!=VALUE with KEY one of "
            f"{', '.join(FILTER_KEYS)} (e.g. client=ClientUser2, method!=OPTIONS, from=300)"
        )
    if key in ("from", "until"):
        if negated:
            raise ValueError(f"ladder filter {text!r}: {key} takes '=', not '!='")
        try:
            float(value)
        except ValueError:
            raise ValueError(
                f"ladder filter {text!r}: {key} takes seconds (e.g. {key}=300)"
            ) from None
    return LadderFilter(key, value, negated)


def _matches(f: LadderFilter, m: WireMessage, names: Participants) -> bool:
    packet = m.packet
    if f.key in ("client", "host"):
        ends = (names.name(packet.src), names.name(packet.dst))
        return f.value in ends or f.value.lower() in (e.lower() for e in ends)
    if f.key == "call-id":
        return bool(m.call_id) and f.value in m.call_id
    if f.key == "method":
        return m.method.upper() == f.value.upper()
    if f.key == "from":
        return packet.time >= float(f.value)
    return packet.time <= float(f.value)  # until


def select(
    messages: Iterable[WireMessage],
    names: Participants,
    filters: Sequence[LadderFilter] = (),
) -> tuple[list[WireMessage], int]:
    """The messages the filters keep, and how many keep-alives they would have kept but were
    left out by default."""
    by_key: dict[str, list[LadderFilter]] = {}
    for f in filters:
        by_key.setdefault(f.key, []).append(f)
    keep_alives = any(
        f.key == "method" and not f.negated and f.value.lower() == KEEP_ALIVE for f in filters
    )
    kept: list[WireMessage] = []
    hidden = 0
    for m in messages:
        if all(_holds(group, m, names) for group in by_key.values()):
            if m.method == KEEP_ALIVE and not keep_alives:
                hidden += 1
            else:
                kept.append(m)
    return kept, hidden


def window(filters: Sequence[LadderFilter]) -> tuple[float, float]:
    """The time window the ``from`` and ``until`` filters leave (notes are shown in it)."""
    starts = [float(f.value) for f in filters if f.key == "from"]
    ends = [float(f.value) for f in filters if f.key == "until"]
    return max(starts, default=-math.inf), min(ends, default=math.inf)


def shown_notes(
    notes: Iterable[Note],
    shown: Iterable[str],
    names: Participants,
    filters: Sequence[LadderFilter],
    last: float,
) -> list[Note]:
    """The notes a drawing shows, in time order: those of the participants drawn (and of
    sources that are no participant: the scenario, the administrator), inside the filters'
    time window and not after the last packet shown (or the window's end, if given)."""
    start, end = window(filters)
    if math.isinf(end):
        end = last
    columns = set(shown)
    kept = [
        n
        for n in notes
        if start <= n.time <= end and (n.source in columns or names.get(n.source) is None)
    ]
    return sorted(kept, key=lambda n: n.time)


def _holds(group: list[LadderFilter], m: WireMessage, names: Participants) -> bool:
    wanted = [f for f in group if not f.negated]
    refused = [f for f in group if f.negated]
    if wanted and not any(_matches(f, m, names) for f in wanted):
        return False
    return not any(_matches(f, m, names) for f in refused)


# -- drawing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Glyphs:
    life: str
    line: str
    dashed: str
    right: str
    left: str
    rule: str
    ellipsis: str
    retransmission: str


_GLYPHS: dict[Charset, _Glyphs] = {
    "unicode": _Glyphs("│", "─", "╌", "▶", "◀", "┈", "…", "↻"),
    "ascii": _Glyphs("|", "-", ".", ">", "<", "-", "~", "(re)"),
}


def _fit(text: str, width: int, ellipsis: str) -> str:
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    return text[: width - len(ellipsis)] + ellipsis


def _time(t: float) -> str:
    return f"{t:10.3f}  "


class _Layout:
    """Columns, their width and where each participant's lifeline is."""

    def __init__(
        self, columns: list[Participant], hidden: list[Participant], width: int, glyphs: _Glyphs
    ) -> None:
        self.glyphs = glyphs
        self.columns = columns
        self.others = bool(hidden)
        count = len(columns) + (1 if hidden else 0)
        self.column = max(MIN_COLUMN, min(MAX_COLUMN, (width - GUTTER) // max(count, 1)))
        self.index = {p.name: i for i, p in enumerate(columns)}
        self.other_index = len(columns)
        self.titles = [self._title(p) for p in columns]
        if hidden:
            self.titles.append(_fit(f"({len(hidden)} others)", self.column - 1, glyphs.ellipsis))
        self.count = count

    def _title(self, p: Participant) -> str:
        room = self.column - 1
        name = p.name if len(p.name) <= room else p.short
        return _fit(name, room, self.glyphs.ellipsis)

    def x(self, i: int) -> int:
        """The character position of column ``i``'s lifeline."""
        return GUTTER + i * self.column + self.column // 2

    def at(self, name: str) -> int:
        return self.index.get(name, self.other_index)

    def blank(self) -> list[str]:
        row = [" "] * (GUTTER + self.count * self.column)
        for i in range(self.count):
            row[self.x(i)] = self.glyphs.life
        return row

    def header(self) -> list[str]:
        row = [" "] * (GUTTER + self.count * self.column)
        for i, title in enumerate(self.titles):
            start = max(GUTTER, self.x(i) - len(title) // 2)
            start = min(start, GUTTER + (i + 1) * self.column - len(title))
            row[start : start + len(title)] = list(title)
        return ["".join(row).rstrip(), "".join(self.blank()).rstrip()]


def _arrow(layout: _Layout, m: WireMessage, names: Participants) -> list[str]:
    g = layout.glyphs
    src, dst = names.of(m.packet.src), names.of(m.packet.dst)
    a, b = layout.at(src.name), layout.at(dst.name)
    label = m.label
    if layout.others:  # name the real end when it shares the "others" column
        if a == b == layout.other_index:
            label = f"{src.short} {g.right} {dst.short}: {label}"
        elif a == layout.other_index:
            label = f"{src.short}: {label}"
        elif b == layout.other_index:
            label = f"{dst.short}: {label}"
    if m.retransmission:
        label = f"{label} {g.retransmission}"
    top, bottom = layout.blank(), layout.blank()
    bottom[:GUTTER] = list(_time(m.packet.time))
    line = g.dashed if m.retransmission else g.line
    if a == b:  # both ends share a column (the others): a short arrow into its lifeline
        x = layout.x(a)
        text = _fit(label, x - GUTTER - 2, g.ellipsis)
        top[x - 1 - len(text) : x - 1] = list(text)
        bottom[x - 3 : x] = [line, line, g.right]
        return ["".join(top).rstrip(), "".join(bottom).rstrip()]
    xa, xb = layout.x(a), layout.x(b)
    lo, hi = min(xa, xb), max(xa, xb)
    for x in range(lo + 1, hi):
        bottom[x] = line
    if xb > xa:
        bottom[hi - 1] = g.right
    else:
        bottom[lo + 1] = g.left
    room = hi - lo - 3
    text = _fit(label, room, g.ellipsis)
    start = lo + 2 + (room - len(text)) // 2
    top[start : start + len(text)] = list(text)
    return ["".join(top).rstrip(), "".join(bottom).rstrip()]


def _note(layout: _Layout, note: Note, width: int) -> str:
    g = layout.glyphs
    total = max(width, GUTTER + layout.count * layout.column)
    body = _fit(f"{g.rule}{g.rule} {note.source}: {note.text} ", total - GUTTER, g.ellipsis)
    return (_time(note.time) + body).rstrip()


def _columns(
    messages: Sequence[WireMessage], names: Participants, width: int
) -> tuple[list[Participant], list[Participant]]:
    counts: Counter[str] = Counter()
    for m in messages:
        counts[names.name(m.packet.src)] += 1
        counts[names.name(m.packet.dst)] += 1
    present = names.ordered(counts)
    fits = max(1, (width - GUTTER) // MIN_COLUMN)
    if len(present) <= fits:
        return present, []
    busiest = sorted(present, key=lambda p: (-counts[p.name], p.rank))
    keep = {p.name for p in busiest[: max(1, fits - 1)]}
    return names.ordered(keep), [p for p in present if p.name not in keep]


def _ladder(
    messages: Sequence[WireMessage],
    names: Participants,
    notes: Iterable[Note],
    filters: Sequence[LadderFilter],
    width: int,
    glyphs: _Glyphs,
) -> list[str]:
    columns, hidden = _columns(messages, names, width)
    layout = _Layout(columns, hidden, width, glyphs)
    lines = layout.header()
    last = messages[-1].packet.time if messages else -math.inf
    pending = shown_notes(notes, (p.name for p in columns), names, filters, last)
    k = 0
    for m in messages:
        while k < len(pending) and pending[k].time <= m.packet.time:
            lines.append(_note(layout, pending[k], width))
            k += 1
        lines.extend(_arrow(layout, m, names))
    lines.extend(_note(layout, n, width) for n in pending[k:])
    return lines


def _group_key(m: WireMessage, group: Group) -> str:
    if m.call_id and group == "call-id":
        return f"Call-ID {m.call_id}"
    if m.method == DNS:
        return m.transaction  # "DNS 0x173a 127.2.0.1:53000"
    return f"transaction {m.transaction}" if m.transaction else m.label


def on_timeline(packets: Iterable[Packet], origin: float) -> Iterable[Packet]:
    """``packets`` with ``origin`` taken from their times: a live run's packets carry
    wall-clock times (emulator/wire, ``Capture.virtual``); drawings show seconds from the
    run's start, as the trace does."""
    if origin == 0.0:
        return packets
    return (dataclasses.replace(p, time=p.time - origin) for p in packets)


def render_ladder(
    packets: Iterable[Packet],
    names: Participants,
    *,
    filters: Sequence[LadderFilter] = (),
    notes: Iterable[Note] = (),
    width: int = 100,
    charset: Charset = "unicode",
    group: Group = "none",
    origin: float = 0.0,
) -> str:
    """The ladder of ``packets`` (in the order they happened) as text, lines ending in LF.

    ``notes`` (steps, faults, state changes) appear between the arrows at their time; in a
    grouped ladder (one diagram per Call-ID or transaction) they are left out.  ``origin``
    is taken from every packet's time (a live run: its start, ``time.time()``)."""
    glyphs = _GLYPHS[charset]
    messages, hidden = select(decode(on_timeline(packets, origin)), names, filters)
    out: list[str] = []
    if not messages:
        out.append("(no packets to show" + (": the filters left none)" if filters else ")"))
    elif group == "none":
        out.extend(_ladder(messages, names, notes, filters, width, glyphs))
    else:
        groups: dict[str, list[WireMessage]] = {}
        for m in messages:
            groups.setdefault(_group_key(m, group), []).append(m)
        for key, members in groups.items():
            first, last = members[0].packet.time, members[-1].packet.time
            requests = Counter(
                m.label if m.method == DNS else m.method for m in members if m.request
            )
            what = ", ".join(
                f"{method} x{n}" if n > 1 else method for method, n in requests.items()
            )
            title = (
                f"{key} ({what or 'answers only'}; {len(members)} packets, {first:.3f}-{last:.3f})"
            )
            out.append(_fit(f"{glyphs.rule * 2} {title}", width, glyphs.ellipsis))
            out.extend(_ladder(members, names, (), filters, width, glyphs))
            out.append("")
    retransmissions = sum(m.retransmission for m in messages)
    summary = f"{len(messages)} packets shown"
    if retransmissions:
        summary += f" ({retransmissions} retransmissions, marked {glyphs.retransmission})"
    if hidden:
        summary += f"; {hidden} keep-alives left out (method=keep-alive shows them)"
    out.append(summary)
    return "\n".join(out) + "\n"
