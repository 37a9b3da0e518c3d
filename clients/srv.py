"""RFC 2782 ordering of SRV records, sans-IO: the only randomness is the ``rng`` passed in.

RFC 2782, "Usage rules" and the description of the Weight field, fixes the order in which a
client tries the targets of one SRV RRset:

1. Lower ``priority`` first; a client MUST try the lowest-numbered priority it can reach.
2. Within one priority, repeatedly: put the records not yet ordered in a list with every
   weight-0 record at the front (otherwise in the order given), compute the running sum of the
   weights, draw ``r`` uniformly from ``[0, sum]`` *inclusive*, select the first record whose
   running sum is ``>= r``, remove it and go again until none is left.

Consequences the emulator relies on: with all weights 0 the draw is always ``r = 0`` and the
first listed record is taken, so the DNS server's order decides (protocol-notes §5 item 10);
with other weights present a weight-0 record is picked first only when ``r = 0``, a "very small
chance" as the RFC asks.  RFC 3263 §4.3 then tries the ordered targets in turn.

A single record whose target is ``.`` means the service is decidedly not available at this
domain (RFC 2782 "Usage rules"); :func:`service_unavailable` tells.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from fakedns.records import SrvRecord

__all__ = ["order_srv", "service_unavailable"]


def order_srv(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """The records in the order RFC 2782 says to try them; ``records`` is not changed.

    Draws one ``rng.randint(0, total)`` per record ordered, so a seed reproduces the order.
    Records with target ``.`` are ordered like any other: see :func:`service_unavailable`.
    """
    by_priority: dict[int, list[SrvRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SrvRecord] = []
    for priority in sorted(by_priority):  # RFC 2782: lowest-numbered priority first
        group = by_priority[priority]
        # "all those with weight 0 are placed at the beginning of the list"; otherwise the
        # server's order is kept (list order is stable under removal, so this holds each round).
        remaining = [r for r in group if r.weight == 0] + [r for r in group if r.weight > 0]
        while remaining:
            total = sum(r.weight for r in remaining)
            threshold = rng.randint(0, total)  # uniform in [0, total], inclusive (RFC 2782)
            running = 0
            for index, record in enumerate(remaining):
                running += record.weight
                if running >= threshold:
                    ordered.append(remaining.pop(index))
                    break
    return ordered


def service_unavailable(records: Sequence[SrvRecord]) -> bool:
    """True when the RRset is one record with target ``.``.

    RFC 2782 "Usage rules": "a Target of '.' means that the service is decidedly not available
    at this domain"; the client aborts instead of trying A lookups.
    """
    return len(records) == 1 and records[0].target == "."
