"""The simulator's history held compactly: the trace (:class:`Trace`) and the clients'
timelines (:class:`Timelines`).

A run of many clients keeps about ten trace entries and ten state changes per client and
hour, and almost all of them repeat what thousands of other clients wrote: the same texts,
the same registrars, modes and causes, at a few distinct times.  As objects they cost about
90 bytes an entry and 110 a state change (docs/benchmarks.md, issue 20 part 5); here an entry
is a float and three ints in arrays (20 bytes) and a state change a float and an int packed
in 12 bytes, the rest held once in tables that belong to the one history (no table is shared
between two worlds).  Reading gives back objects equal to those recorded, made on access: a
:class:`~emulator.sim.trace.TraceEntry` or a :class:`~clients.events.ClientStateChanged` of
the same class, fields and values, so a report prints, compares and serializes them exactly as
before.  What does not fit the columns (an entry with a whole message or a packet, a time that
is not a float, an event whose fields do not rebuild it) is kept as the object itself.

Not compiled by the optional mypyc build (setup.py): its classes are ``collections.abc``
sequences and mappings, which a compiled class cannot inherit from; nothing here runs per
packet (about ten calls per client and hour), so nothing is lost.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, overload

from clients.events import ClientStateChanged
from emulator.sim.trace import TraceEntry

__all__ = ["ClientTimeline", "Timelines", "Trace"]


class Trace(Sequence[TraceEntry]):
    """A run's trace: a sequence of :class:`TraceEntry`, appended to, made on access.

    Each entry is a time (``array('d')``, exact) and three indexes into one table of the
    distinct strings (sources, kinds, texts) this trace holds."""

    __slots__ = ("_codes", "_string_index", "_strings", "_times", "_whole")

    def __init__(self) -> None:
        self._times = array("d")
        self._codes = array("I")  # source, kind, text of entry i at 3i, 3i + 1, 3i + 2
        self._strings: list[str] = []
        self._string_index: dict[str, int] = {}
        self._whole: dict[int, TraceEntry] = {}
        """Entry # -> the entry itself, for those the columns do not hold whole."""

    def _code(self, text: str) -> int:
        code = self._string_index.get(text)
        if code is None:
            code = self._string_index[text] = len(self._strings)
            self._strings.append(text)
        return code

    def note(self, now: float, source: str, kind: str, text: str) -> None:
        """Append ``TraceEntry(now, source, kind, text)`` without making it."""
        if type(now) is not float:
            self._whole[len(self._times)] = TraceEntry(now, source, kind, text)
        self._times.append(now)
        known = self._string_index.get  # speed: most strings are known, no call for them
        a, b, c = known(source), known(kind), known(text)
        if a is None or b is None or c is None:
            a, b, c = self._code(source), self._code(kind), self._code(text)
        self._codes.extend((a, b, c))

    def append(self, entry: TraceEntry) -> None:
        if entry.message or entry.packet is not None or type(entry.now) is not float:
            self._whole[len(self._times)] = entry
        self._times.append(entry.now)
        code = self._code
        self._codes.extend((code(entry.source), code(entry.kind), code(entry.text)))

    def __len__(self) -> int:
        return len(self._times)

    def _entry(self, i: int) -> TraceEntry:
        whole = self._whole.get(i)
        if whole is not None:
            return whole
        strings, codes, at = self._strings, self._codes, 3 * i
        return TraceEntry(
            self._times[i], strings[codes[at]], strings[codes[at + 1]], strings[codes[at + 2]]
        )

    @overload
    def __getitem__(self, index: int) -> TraceEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[TraceEntry]: ...

    def __getitem__(self, index: int | slice) -> TraceEntry | list[TraceEntry]:
        if isinstance(index, slice):
            return [self._entry(i) for i in range(*index.indices(len(self._times)))]
        if index < 0:
            index += len(self._times)
        if not 0 <= index < len(self._times):
            raise IndexError("trace index out of range")
        return self._entry(index)

    def __iter__(self) -> Iterator[TraceEntry]:
        for i in range(len(self._times)):
            yield self._entry(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Trace, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by contents, as a list is

    def __repr__(self) -> str:
        return f"<Trace of {len(self._times)} entries>"


def _key(cls: type, own: str | None, values: tuple[Any, ...]) -> object:
    """What tells two shapes apart: their values, and what ``==`` does not tell apart but a
    report does: the values' types (1, 1.0 and True are equal) and how floats print (0.0
    and -0.0 are equal)."""
    types = tuple(map(type, values))
    if float in types:
        return (cls, own, values, types, tuple(repr(v) for v in values if type(v) is float))
    return (cls, own, values, types)


def _no_fields(event: object) -> tuple[Any, ...]:
    return ()


_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}
"""Event class -> what reads the values of its fields after ``now`` and ``client``, in
order; None when it cannot be rebuilt from them (the same for every history: classes, not
values)."""


def _getter(cls: type) -> Callable[[Any], tuple[Any, ...]] | None:
    if cls in _GETTERS:
        return _GETTERS[cls]
    try:
        names = tuple(f.name for f in dataclasses.fields(cls))
    except TypeError:  # not a dataclass: its fields are unknown
        names = ()
    getter: Callable[[Any], tuple[Any, ...]] | None = None
    if names[:2] == ("now", "client"):
        rest = names[2:]
        if not rest:
            getter = _no_fields
        elif len(rest) == 1:
            one = operator.attrgetter(rest[0])
            getter = lambda event: (one(event),)  # noqa: E731
        else:
            getter = operator.attrgetter(*rest)
    _GETTERS[cls] = getter
    return getter


Shape = tuple[type, str | None, tuple[Any, ...]]
"""A state change less its time: its class, its client (None: the timeline's own) and the
values of its other fields."""


class _Shapes:
    """The distinct shapes of one deployment's state changes, numbered; and the events that
    are kept whole (the same numbering)."""

    __slots__ = ("index", "rows")

    def __init__(self) -> None:
        self.rows: list[Shape | ClientStateChanged] = []
        self.index: dict[object, int] = {}

    def number(self, client: str, event: ClientStateChanged) -> int:
        cls = type(event)
        getter = _getter(cls)
        now = event.now
        if getter is None or type(now) is not float:
            return self._whole(event)
        own = None if event.client == client and type(event.client) is str else event.client
        values = getter(event)
        key = _key(cls, own, values)
        number = self.index.get(key)
        if number is None:
            shape: Shape = (cls, own, values)
            try:
                rebuilt = _rebuild(shape, client, now)
            except TypeError:  # a class whose fields are not its constructor's arguments
                return self._whole(event)
            if rebuilt != event:  # fields that do not make the event
                return self._whole(event)
            number = self.index[key] = len(self.rows)
            self.rows.append(shape)
        return number

    def _whole(self, event: ClientStateChanged) -> int:
        self.rows.append(event)
        return len(self.rows) - 1

    def event(self, number: int, client: str, now: float) -> ClientStateChanged:
        row = self.rows[number]
        if isinstance(row, tuple):
            return _rebuild(row, client, now)
        return row


def _rebuild(shape: Shape, client: str, now: float) -> ClientStateChanged:
    cls, own, values = shape
    event: ClientStateChanged = cls(now, client if own is None else own, *values)
    return event


_CHANGE = struct.Struct("<dI")
"""A state change in a client's row: its time (a C double: exact) and its shape number."""


class ClientTimeline(Sequence[ClientStateChanged]):
    """One client's state changes, in order: a live view of its row of :class:`Timelines`
    (what the client records later shows in it too, as in a list)."""

    __slots__ = ("_client", "_timelines")

    def __init__(self, timelines: Timelines, client: str) -> None:
        self._timelines = timelines
        self._client = client

    def __len__(self) -> int:
        return len(self._timelines._rows[self._client]) // _CHANGE.size

    def _event(self, row: bytes, i: int) -> ClientStateChanged:
        now, number = _CHANGE.unpack_from(row, i * _CHANGE.size)
        return self._timelines._shapes.event(number, self._client, now)

    @overload
    def __getitem__(self, index: int) -> ClientStateChanged: ...

    @overload
    def __getitem__(self, index: slice) -> list[ClientStateChanged]: ...

    def __getitem__(self, index: int | slice) -> ClientStateChanged | list[ClientStateChanged]:
        row = self._timelines._rows[self._client]
        count = len(row) // _CHANGE.size
        if isinstance(index, slice):
            return [self._event(row, i) for i in range(*index.indices(count))]
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("timeline index out of range")
        return self._event(row, index)

    def __iter__(self) -> Iterator[ClientStateChanged]:
        row = self._timelines._rows[self._client]  # bytes: what was recorded when it began
        for i in range(len(row) // _CHANGE.size):
            yield self._event(row, i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (ClientTimeline, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by contents, as a list is

    def __repr__(self) -> str:
        return repr(list(self))


class Timelines(Mapping[str, ClientTimeline]):
    """Every client's state changes (client name -> :class:`ClientTimeline`), in the order
    the clients were added.

    A change is its time and the number of its shape (class and fields less the time) in a
    table this deployment's timelines share: 12 bytes in one ``bytes`` per client, remade at
    each change (memory: no array object nor spare room; a client changes state about ten
    times an hour)."""

    __slots__ = ("_rows", "_shapes")

    def __init__(self) -> None:
        self._rows: dict[str, bytes] = {}
        self._shapes = _Shapes()

    def add(self, client: str) -> None:
        """Start ``client``'s (empty) timeline."""
        self._rows[client] = b""

    def record(self, client: str, event: ClientStateChanged) -> None:
        """Append ``event`` to ``client``'s timeline."""
        number = self._shapes.number(client, event)
        self._rows[client] += _CHANGE.pack(event.now, number)

    def __getitem__(self, client: str) -> ClientTimeline:
        if client not in self._rows:
            raise KeyError(client)
        return ClientTimeline(self, client)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, client: object) -> bool:
        return client in self._rows

    def __repr__(self) -> str:
        return f"<Timelines of {len(self._rows)} clients>"
