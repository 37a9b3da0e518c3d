"""Admission control of a registrar pool: which requests it serves, sans-IO.

A flood must not take the pool's memory or its answers to everyone else (issue 21).  The pool
asks :meth:`Admission.admit` about every message before it even parses it (a shed message
costs a dictionary look-up and some arithmetic), with the source address and ``now``.

Rules of this file (an emulator choice, documented in docs/live.md "Limits and defences"; the
sources found say only that a front end answers 503 under load, and RFC 3261 §21.5.4 that a
503 may carry Retry-After):

* **Sources** are addresses (the port is left out: one host may send from any port), each with
  a token bucket of ``source_rate`` tokens a second, holding twice that.  Every request of a
  source takes one.  A source with no token left sends more than any endpoint does: it is a
  flood, and it is **shed for ``shed_retry_after`` seconds**, whatever the pool's load.  (The
  pool cannot wait to feel overloaded: a flood faster than it can parse fills the socket's
  queue, and the kernel drops legitimate requests with the flood's long before the pool sees
  more than it can handle.  A load test from one address past ``source_rate`` must raise it.)
* **Overload** is a global token bucket of ``overload_rate`` tokens a second, holding a tenth
  of a second's worth: a cap on what all sources together get in.  While it is empty, a
  request is shed (503, the source is not shed for longer) unless its source is *quiet*
  (a second bucket: :data:`QUIET` requests, then :data:`QUIET_RATE` a second, as any
  ordinary client), so that a
  flood from many addresses, each under ``source_rate``, does not lock ordinary clients out.
  Quiet sources never wait for the global bucket, so a simulator's thousands of clients
  signing in at one virtual instant are all served.
* A shed request is answered ``503 Service Unavailable`` with ``Retry-After:
  shed_retry_after`` at most once a second per source (so a client that lost a 503 still
  learns why); the others are dropped without an answer, because answering a flood costs the
  very time the pool lacks.
* Peer pools of the deployment (heartbeats) are never shed.
* At most :data:`SOURCES` sources are remembered; past that, the longest-known one is
  forgotten (it comes back with a full bucket: the table's memory stays bounded).
* A source whose state is that of a new one (both buckets full again, not shed, no 503 within
  the last second, nothing left to report) is forgotten too, at the first request
  :data:`SWEEP_INTERVAL` seconds after the last sweep: forgetting it changes no decision (it
  would come back in that very state), and a pool that served 100,000 clients an hour ago
  does not keep 100,000 states for them (memory: a simulated client, a live endpoint between
  refreshes).
* ``source_rate = 0`` turns the per-source limit off, ``overload_rate = 0`` the global cap;
  both 0: no admission control at all.

Each :class:`Shedding` report says which source started being shed and what it sent during its
previous shedding; the pool makes it a ``LoadShed`` event, so the log gets a line per shed
source every ``shed_retry_after`` seconds at most, not a line per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

__all__ = ["SOURCES", "SWEEP_INTERVAL", "Admission", "Decision", "Shedding"]

SOURCES = 100_000
"""Source addresses remembered at most (about 100 bytes each)."""

_WINDOW = 0.1
"""Seconds of tokens the global bucket holds."""

QUIET = 10
"""A source is quiet while it has sent at most this many requests more than ``QUIET_RATE`` a
second allows (a client signing in sends a few; then one every few minutes)."""

QUIET_RATE = 1.0

SWEEP_INTERVAL = 60.0
"""Seconds between two sweeps of the sources whose state is a new source's (one pass over
the table, at a request: amortised O(1) per request)."""


class Decision(Enum):
    ADMIT = "admit"
    """Serve the request."""
    ANSWER_503 = "answer-503"
    """Shed it, answering 503 with Retry-After."""
    DROP = "drop"
    """Shed it without an answer."""


@dataclass(slots=True)
class _Source:
    tokens: float
    quiet: float
    """The source's quiet bucket (see :data:`QUIET`)."""
    at: float
    """When ``tokens`` was last brought up to date."""
    shed_until: float = 0.0
    answered_at: float = float("-inf")
    """When a 503 was last sent to this source."""
    shed: int = 0
    """Requests shed since the report was last taken."""
    answered: int = 0
    """Of those, the ones answered with a 503."""


@dataclass(frozen=True, slots=True)
class Shedding:
    """A source started being shed: ``shed``/``answered`` count what it sent while it was
    shed before (0 the first time), ``until`` is when it is served again."""

    source: str
    until: float
    shed: int
    answered: int


class Admission:
    """One pool's admission control (see the rules of this file)."""

    __slots__ = (
        "_exempt",
        "_global",
        "_global_at",
        "_sources",
        "_sweep_at",
        "answered",
        "burst",
        "dropped",
        "enabled",
        "max_sources",
        "rate",
        "reports",
        "retry_after",
        "source_burst",
        "source_rate",
    )

    def __init__(
        self,
        *,
        overload_rate: int,
        source_rate: int,
        retry_after: int,
        exempt: Iterable[str] = (),
        now: float = 0.0,
        max_sources: int = SOURCES,
    ) -> None:
        self.enabled = overload_rate > 0 or source_rate > 0
        self.rate = float(overload_rate)
        self.burst = self.rate * _WINDOW
        self.source_rate = float(source_rate) if source_rate > 0 else float("inf")
        self.source_burst = 2.0 * source_rate if source_rate > 0 else float("inf")
        self.retry_after = retry_after
        self._exempt = frozenset(exempt)
        self.max_sources = max_sources
        self._global = self.burst
        self._global_at = now
        self._sources: dict[str, _Source] = {}
        self._sweep_at = now + SWEEP_INTERVAL
        self.answered = 0
        """503s sent, in all."""
        self.dropped = 0
        """Requests shed without an answer, in all."""
        self.reports: list[Shedding] = []
        """Sources that started being shed since the owner last took this list (drained)."""

    def admit(self, source: str, now: float) -> Decision:
        """Whether to serve a message from ``source`` (an address) arriving at ``now``."""
        if now >= self._sweep_at:
            self._sweep(now)
        sources = self._sources
        state = sources.get(source)
        if state is None:
            if source in self._exempt:
                return Decision.ADMIT
            if len(sources) >= self.max_sources:
                del sources[next(iter(sources))]  # the longest-known one
            state = sources[source] = _Source(self.source_burst, QUIET, now)
        elif now < state.shed_until:
            return self._shed(state, now)
        elif now > state.at:
            elapsed = now - state.at
            tokens = state.tokens + elapsed * self.source_rate
            state.tokens = tokens if tokens < self.source_burst else self.source_burst
            quiet = state.quiet + elapsed * QUIET_RATE
            state.quiet = quiet if quiet < QUIET else QUIET
            state.at = now
        if state.tokens < 1.0:  # a flood: shed for a while
            until = now + self.retry_after
            self.reports.append(Shedding(source, until, state.shed, state.answered))
            state.shed = state.answered = 0
            state.shed_until = until
            return self._shed(state, now)
        state.tokens -= 1.0
        state.quiet -= 1.0
        if self.rate <= 0.0:
            return Decision.ADMIT
        if now > self._global_at:
            level = self._global + (now - self._global_at) * self.rate
            self._global = level if level < self.burst else self.burst
            self._global_at = now
        if self._global >= 1.0:
            self._global -= 1.0
            return Decision.ADMIT
        if state.quiet >= 0.0:
            return Decision.ADMIT  # overloaded, but an ordinary client: served
        return self._shed(state, now)

    def _sweep(self, now: float) -> None:
        """Forget the sources that are as new ones at ``now`` and at any later time (the
        rules of this file): each would be made again, by :meth:`admit`, in the very state
        its bucket arithmetic would bring it to.  The order of the others (longest-known
        first) is kept."""
        self._sweep_at = now + SWEEP_INTERVAL
        rate, burst = self.source_rate, self.source_burst
        self._sources = {
            source: state
            for source, state in self._sources.items()
            if state.shed
            or state.answered
            or state.shed_until > now
            or now - state.answered_at < 1.0
            or state.tokens + (now - state.at) * rate < burst
            or state.quiet + (now - state.at) * QUIET_RATE < QUIET
        }

    def _shed(self, state: _Source, now: float) -> Decision:
        state.shed += 1
        if now - state.answered_at >= 1.0:
            state.answered_at = now
            state.answered += 1
            self.answered += 1
            return Decision.ANSWER_503
        self.dropped += 1
        return Decision.DROP

    def shed_until(self, source: str) -> float | None:
        """When ``source`` is served again, if it is being shed (for tests and status)."""
        state = self._sources.get(source)
        return state.shed_until if state is not None and state.shed_until > 0 else None

    def __len__(self) -> int:
        """Sources remembered."""
        return len(self._sources)
