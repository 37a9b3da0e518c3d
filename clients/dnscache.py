"""A client's DNS cache: answers kept for their TTL, negative answers per RFC 2308 (sans-IO).

Before issue 19 an agent asked its DNS server afresh for every name in every round, so a
record's ``ttl`` changed nothing.  Now :class:`clients.discovery.Discovery` asks this cache
first; a fresh entry answers the question without a packet.

What is kept (``now`` is handed in: the cache never reads a clock):

* a positive answer (NOERROR with records of the asked type) for the smallest TTL of its
  records (RFC 1035 §3.2.1, RFC 2181 §5.2: the TTLs of an RRset are equal, the smallest is
  taken if not), at most ``max_ttl``; a TTL of 0 is not cached (RFC 1035 §3.2.1: "only
  used for the transaction in progress");
* the A records in the additional section of an SRV answer, each as the answer to an A
  question for its name, on the same terms (RFC 2782: "the additional data section ... may
  be used"); CHOICE: a client that got them would not ask again;
* a negative answer (NXDOMAIN, or NODATA: NOERROR without records) for min(SOA TTL, SOA
  MINIMUM) of the SOA in its authority section (RFC 2308 §5), at most ``negative_max_ttl``;
  without an SOA it is not cached (RFC 2308 §5: SHOULD NOT).  An NXDOMAIN answers every type
  of the name (RFC 2308 §5: "the name does not exist"); a NODATA only its type;
* nothing for SERVFAIL, REFUSED, other errors or a timeout (CHOICE: RFC 2308 §7.1 allows
  caching a server failure for up to five minutes; no profile is known to).

``max_ttl`` 0 switches positive caching off, ``negative_max_ttl`` 0 negative caching (the
agent then asks every time, as before issue 19).  The values come from the profile
(``dns_cache_max_ttl``, ``dns_negative_cache_max_ttl``; docs/clients.md, "DNS cache").

What an entry holds is shared between clients (memory: a simulator runs thousands of clients
asking the same names; docs/benchmarks.md, issue 20): the names are interned and the answers
kept are one object per answer across caches (:func:`shared_answer`: the answer without its
query ID, which a cached answer never needs; bounded, like clients/dns.py's parse cache).

The cache belongs to the agent: a restarted client process starts with an empty one.  The
Windows DNS Client service that Lync uses keeps its cache across a Lync restart; CHOICE: not
modelled (docs/clients.md).
"""

from __future__ import annotations

import sys
from typing import TypeVar

from clients.dns import DnsAnswer
from fakedns.records import AddressRecord

__all__ = ["DnsCache", "shared_answer"]

_ANY_TYPE = "*"
"""The type under which an NXDOMAIN is kept: it answers every type of the name."""


class DnsCache:
    """Answers by (name, type) with the time each stops being fresh."""

    __slots__ = ("_entries", "limit", "max_ttl", "negative_max_ttl")

    def __init__(self, max_ttl: float, negative_max_ttl: float, *, limit: int = 256) -> None:
        self.max_ttl = max_ttl
        self.negative_max_ttl = negative_max_ttl
        self.limit = limit
        """Most entries kept; past it the oldest stored goes first (bounded memory)."""
        self._entries: dict[tuple[str, str], tuple[float, DnsAnswer]] = {}

    @property
    def enabled(self) -> bool:
        return self.max_ttl > 0 or self.negative_max_ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, qtype: str, now: float) -> DnsAnswer | None:
        """The fresh answer to ``name``/``qtype``, or None (expired entries are dropped)."""
        if not self._entries:
            return None
        key = (_key(name), qtype)
        for probe in (key, (key[0], _ANY_TYPE)):
            entry = self._entries.get(probe)
            if entry is None:
                continue
            until, answer = entry
            if now < until:
                return answer
            del self._entries[probe]
        return None

    def expires(self, name: str, qtype: str) -> float | None:
        """When the entry for ``name``/``qtype`` stops being fresh (None: no entry)."""
        entry = self._entries.get((_key(name), qtype))
        return entry[0] if entry is not None else None

    def store(self, answer: DnsAnswer, now: float) -> float | None:
        """Keep ``answer`` as its kind allows; the seconds it is kept, or None if not."""
        if answer.truncated:
            return None
        name = _key(answer.name)
        if answer.ok:
            if self.max_ttl <= 0:
                return None
            for extra in answer.additional:
                self._put((_key(extra.name), extra.rtype), _address_answer(extra), extra.ttl, now)
            ttl = min(record.ttl for record in answer.records)
            return self._put((name, answer.qtype), answer, min(ttl, self.max_ttl), now)
        if answer.rcode not in ("NXDOMAIN", "NOERROR") or answer.negative_ttl is None:
            return None  # a failure, or a negative answer without an SOA (RFC 2308 §5)
        if self.negative_max_ttl <= 0:
            return None
        hold = min(answer.negative_ttl, self.negative_max_ttl)
        qtype = _ANY_TYPE if answer.rcode == "NXDOMAIN" else answer.qtype
        return self._put((name, qtype), answer, hold, now)

    def clear(self) -> None:
        self._entries.clear()

    def _put(self, key: tuple[str, str], answer: DnsAnswer, ttl: float, now: float) -> float | None:
        hold = min(ttl, self.max_ttl if answer.ok else self.negative_max_ttl)
        if hold <= 0:
            return None
        answer = shared_answer(answer)
        key = _shared_key(key)
        entries = self._entries
        entries.pop(key, None)  # re-inserted last: the newest
        if len(entries) >= self.limit:
            del entries[next(iter(entries))]
        entries[key] = (now + hold, answer)
        return hold


def _key(name: str) -> str:
    return sys.intern(name.lower().rstrip("."))


def _address_answer(record: AddressRecord) -> DnsAnswer:
    """An A (or AAAA) record from an additional section, as the answer to its own question."""
    return DnsAnswer(0, _key(record.name), record.rtype, "NOERROR", (record,))


SHARED_LIMIT = 1024
"""Most answers :func:`shared_answer` (and keys :func:`_shared_key`) keeps; then it starts
again: answers may come from the network, so the tables are bounded."""

_T = TypeVar("_T", tuple[str, str], DnsAnswer)


def _one_of(table: dict[_T, _T], value: _T) -> _T:
    """The object kept in ``table`` equal to ``value``, ``value`` itself when none (bounded)."""
    shared = table.get(value)
    if shared is None:
        if len(table) >= SHARED_LIMIT:
            table.clear()
        shared = table[value] = value
    return shared


_keys: dict[tuple[str, str], tuple[str, str]] = {}


def _shared_key(key: tuple[str, str]) -> tuple[str, str]:
    """The one tuple for ``key`` across caches (memory, issue 20: every client keeps the same
    few names)."""
    return _one_of(_keys, key)


_shared: dict[DnsAnswer, DnsAnswer] = {}


def shared_answer(answer: DnsAnswer) -> DnsAnswer:
    """The one object for ``answer`` without its query ID (0): equal answers kept by any
    cache are the same object.  Immutable, so sharing changes nothing but memory."""
    if answer.query_id:
        answer = DnsAnswer(
            0,
            answer.name,
            answer.qtype,
            answer.rcode,
            answer.records,
            answer.additional,
            answer.truncated,
            answer.negative_ttl,
        )
    return _one_of(_shared, answer)
