"""The agenda of the simulated world: what happens next, in time order.

Entries run in the order of (time, order of scheduling), as a heap of ``(time, sequence,
entry)`` would give, but the agenda keeps a heap of the *distinct* pending times and, for each
time, a list of its entries in the order they were scheduled (appending keeps that order for
free).  Same order, cheaper: entries at equal times are the rule in a simulation (fixed
latencies keep clients that signed in together in lockstep), a float heap compares faster than
a tuple heap, and an entry at a time already pending costs one append.

The world's run loop (:meth:`emulator.sim.world.World.run_until`) walks the agenda itself and
its hottest senders append to it inline (speed: a method call per packet shows in
benchmarks/sim_bench.py); they keep the two rules :meth:`Agenda.push` keeps.
"""

from __future__ import annotations

import heapq
from typing import Any

__all__ = ["CALL", "DATAGRAM", "FAIL", "PONG", "STREAM", "TIMER", "Agenda", "Entry"]

Entry = tuple[Any, ...]
"""One agenda entry: a flat tuple whose first element is one of the kinds below."""

# What an entry does when its time comes.  Entries are flat tuples (speed: a tuple per packet
# instead of a closure, whose function object and cells cost more to make and to call, and keep
# the cyclic garbage collector busy).
TIMER = 0  # (TIMER, core index): the core's next_deadline() is due
CALL = 1  # (CALL, fn): a scenario step, a fault
STREAM = 2  # (STREAM, conn #, to_b, data): bytes reach the b (or a) end of a connection
DATAGRAM = 3  # (DATAGRAM, sender index, flow #, data): a datagram reaches its destination
FAIL = 4  # (FAIL, core index, flow #): the core learns that a flow failed
PONG = 5  # (PONG, core index, flow #): a pong reaches the core that pinged, on that flow
# Why "flow #" and "conn #": the flow or connection an entry refers to waits in the world's
# held flows / held connections under a number, so that the entry holds only ints, bools and
# bytes.  Such a tuple is untracked by the cyclic garbage collector at its first pass; one
# holding a Flow is not.  Clients that signed in together act together, so thousands of
# entries wait at once, long enough to be promoted to the oldest generation, whose full sweeps
# (every object of the run) dominated runs of thousands of clients.


class Agenda:
    """Pending entries by time (see the module docstring)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        """Heap of the times that have entries."""
        self.entries: dict[float, list[Entry]] = {}
        """Time -> its entries, in the order they were scheduled."""

    def push(self, when: float, entry: Entry) -> None:
        """Schedule ``entry`` at ``when``, after every entry already scheduled then."""
        entries = self.entries.get(when)
        if entries is None:
            self.entries[when] = [entry]
            heapq.heappush(self.times, when)
        else:
            entries.append(entry)
