"""The coasting protocol: periodic behaviours of a core that a simulator may fast-forward.

Rules of this file:

* A *cycle* is a small object that owns one periodic behaviour of a core and its deadline: a
  client's keep-alive pings, its failback probes of the primary, a pool's heartbeats.  The core
  lists its cycles in ``cycles`` and asks each for its deadline; nothing else about coasting is
  a method of the core.
* A simulator (``emulator/sim/``, never a live driver) may ask a cycle what its rounds would
  put on the network (:meth:`Cycle.coast_flows`) and, once it knows what becomes of each
  flow's messages while the network stays as it is (a :data:`Path`), tell it to skip them
  (:meth:`Cycle.begin_coast`).  While coasting, :meth:`Cycle.deadline` leaves the skipped
  rounds out, so the core's ``next_deadline()`` needs no coasting branch.  What the core's
  next deadline is besides its cycles (:meth:`Coasting.deadline_besides_cycles`) tells a
  cycle whether something else falls due before its next round.
* Before any input reaches the core (a timer, bytes, a failure, a command) and when the
  network changes, the simulator brings the cycle up to ``now`` (:meth:`Cycle.catch_up` or
  :meth:`Cycle.end_coast`).  The skipped rounds then leave the core exactly as the real rounds
  would have: the same state, the same counters, the same draws from the core's generator in
  the same order.  A run that coasts and one that does not give the same trace.
* What is still on its way at ``now`` is handed back (:class:`InFlight`) for the simulator to
  carry as the network would have: it arrives when it would have.

Sans-IO: no clock, no sockets; times are the virtual ``now`` the simulator passes in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from emulator.net import Flow, Send
from emulator.values import static_frozen

__all__ = ["Answered", "Coasting", "Cycle", "InFlight", "Path"]


@static_frozen
class Answered:
    """Every message of the cycle on a flow reaches its peer ``out`` seconds after it is sent,
    and the peer's answer comes back ``back`` seconds after that."""

    out: float
    back: float


Path = Answered | None
"""What becomes of a cycle's messages on one flow while the network stays as it is:
:class:`Answered`, or None (they vanish: no answer ever comes, no error either)."""


@static_frozen
class InFlight:
    """A message of a skipped round still on its way when coasting ends: ``send`` went out at
    ``sent_at``; with ``path`` Answered its answer is due back at ``sent_at + out + back``
    (``send.data`` empty: the answer is a keep-alive pong the simulator delivers itself)."""

    send: Send
    sent_at: float
    path: Path


class Cycle(Protocol):
    """One periodic behaviour of a core (see the rules above)."""

    @property
    def coasting(self) -> bool:
        """Whether the simulator is skipping this cycle's rounds."""
        ...

    def deadline(self) -> float | None:
        """When the cycle next acts (its next round, a pending answer's timeout); None while
        coasting or idle."""
        ...

    def coast_flows(self) -> Sequence[Flow] | None:
        """The flows the cycle's next rounds use, if nothing but its own rounds could change
        its state now (None: it cannot coast now)."""
        ...

    def begin_coast(self, paths: Mapping[Flow, Path], other: float | None) -> bool:
        """Skip the rounds from now on, given what becomes of each flow's messages and the
        core's next deadline besides this cycle (``other``).  False: it cannot (a round
        would change the cycle's state, or something else falls due first)."""
        ...

    def catch_up(self, now: float, *, inclusive: bool) -> None:
        """Apply the rounds skipped up to ``now`` and go on coasting.  ``inclusive``: a round
        due exactly at ``now`` went out already (False: it is left due; the caller acts
        first)."""
        ...

    def end_coast(self, now: float, *, inclusive: bool) -> list[InFlight]:
        """Catch up to ``now`` and stop coasting; returns what is still on its way."""
        ...

    @property
    def rounds_coasted(self) -> int:
        """How many rounds were skipped so far (for the simulator's counters)."""
        ...


class Coasting(Protocol):
    """A core with cycles a simulator may coast.  The simulator begins coasting them in the
    order listed, each with ``other`` = :meth:`deadline_besides_cycles` and the deadlines of
    the other cycles not coasting by then."""

    @property
    def cycles(self) -> Sequence[Cycle]: ...

    def deadline_besides_cycles(self) -> float | None:
        """The core's next deadline leaving out every cycle's (what ``next_deadline()`` is
        when no cycle has a deadline)."""
        ...
