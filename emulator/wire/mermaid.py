"""A run's packets as a Mermaid sequence diagram, for docs and issue reports.

GitHub, GitLab and most Markdown editors draw a fenced ````mermaid```` block; the Mermaid
Live Editor and mermaid-cli turn it into an image.  :func:`render_mermaid` writes
``sequenceDiagram`` text: one ``participant`` per client, pool and DNS (in the fixed column
order of emulator/wire/names.py), one message per packet (requests and DNS queries as solid
arrows ``->>``, answers dotted ``-->>``, retransmissions as open arrows ``-)``/``--)``), the
virtual time in front of each label, and the run's steps, faults and state changes as
``Note over`` lines.  It takes packets from any driver (emulator/wire), like the terminal
ladder, and the same filters (emulator/wire/ladder.py).

Rules of this file:

* Participant identifiers are the names with every character other than letters, digits
  and ``_`` replaced by ``_`` (Mermaid reads ``.`` and ``-`` in an identifier as arrow
  syntax); a clash or a Mermaid keyword gets a number; ``as`` shows the real name.
* Text (labels, notes, names after ``as``) is written with Mermaid's entity codes for the
  characters its grammar reserves: ``;`` ends a statement, ``#`` starts an entity code, and
  ``<``, ``>`` and ``"`` could be read as markup.
* Mermaid refuses big diagrams (its ``maxTextSize``, 50,000 characters by default, and
  slow layouts beyond a few hundred messages): :data:`LARGE` is where the CLI warns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from emulator.wire import Packet
from emulator.wire.ladder import LadderFilter, Note, on_timeline, select, shown_notes
from emulator.wire.messages import decode
from emulator.wire.names import Participant, Participants

__all__ = ["LARGE", "escape", "render_mermaid"]

LARGE = 50_000
"""Characters beyond which Mermaid's default configuration refuses to draw a diagram."""

_KEYWORDS = frozenset(
    "participant actor as note over left right of loop alt else opt par and end rect "
    "critical break activate deactivate autonumber title box create destroy link links "
    "properties details sequencediagram option".split()
)

_ENTITIES = {";": "#59;", "#": "#35;", "<": "#lt;", ">": "#gt;", '"': "#quot;"}
_RESERVED = re.compile(r"[;#<>\"]")


def escape(text: str) -> str:
    """``text`` as Mermaid message or note text (one line, reserved characters coded)."""
    text = " ".join(text.split())
    return _RESERVED.sub(lambda m: _ENTITIES[m.group(0)], text)


def _identifiers(columns: Sequence[Participant]) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    for p in columns:
        base = re.sub(r"\W", "_", p.name, flags=re.ASCII) or "p"
        if base[0].isdigit():
            base = "h" + base
        candidate, n = base, 1
        while candidate.lower() in used or candidate.lower() in _KEYWORDS:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate.lower())
        ids[p.name] = candidate
    return ids


def render_mermaid(
    packets: Iterable[Packet],
    names: Participants,
    *,
    filters: Sequence[LadderFilter] = (),
    notes: Iterable[Note] = (),
    title: str | None = None,
    origin: float = 0.0,
) -> str:
    """``sequenceDiagram`` text for ``packets`` (in order), lines ending in LF; ``origin`` is
    taken from every packet's time (emulator/wire/ladder.py, :func:`on_timeline`)."""
    messages, _ = select(decode(on_timeline(packets, origin)), names, filters)
    ends = {names.name(m.packet.src) for m in messages} | {
        names.name(m.packet.dst) for m in messages
    }
    columns = names.ordered(ends)
    ids = _identifiers(columns)
    lines = ["sequenceDiagram"]
    if title:
        lines.append(f"    title {escape(title)}")
    for p in columns:
        lines.append(f"    participant {ids[p.name]} as {escape(p.name)}")
    if not columns:
        return "\n".join(lines) + "\n"
    pending = shown_notes(notes, ids, names, filters, messages[-1].packet.time)
    leftmost, rightmost = ids[columns[0].name], ids[columns[-1].name]
    k = 0

    def note(n: Note) -> str:
        where = ids.get(n.source) or (
            f"{leftmost},{rightmost}" if leftmost != rightmost else leftmost
        )
        return f"    Note over {where}: {n.time:.3f} {escape(n.source)}: {escape(n.text)}"

    for m in messages:
        while k < len(pending) and pending[k].time <= m.packet.time:
            lines.append(note(pending[k]))
            k += 1
        src, dst = ids[names.name(m.packet.src)], ids[names.name(m.packet.dst)]
        dotted = "" if m.request else "-"
        arrow = f"-{dotted})" if m.retransmission else f"-{dotted}>>"
        label = f"{m.packet.time:.3f} {m.label}"
        if m.retransmission:
            label += " (retransmission)"
        lines.append(f"    {src}{arrow}{dst}: {escape(label)}")
    lines.extend(note(n) for n in pending[k:])
    return "\n".join(lines) + "\n"
