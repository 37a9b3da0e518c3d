"""Admission control of a registrar pool: which requests it serves under overload, sans-IO.

A flood must not take the pool's memory or its answers to everyone else (issue 21).  The pool
asks :meth:`Admission.admit` about every message before it even parses it (a shed message
costs a dictionary look-up and some arithmetic), with the source address and ``now``.

Rules of this file (an emulator choice, documented in docs/live.md "Limits and defences"; the
sources found say only that a front end answers 503 under load, RFC 3261 §21.5.4 says a 503
may carry Retry-After):

* **Overload** is a global token bucket: ``overload_rate`` tokens a second, at most half a
  second's worth held.  While it has a token, every request is admitted and takes one.
* **Sources** are addresses (the port is left out: one host may send from any port), each with
  its own token bucket of ``source_rate`` a second and twice that held.  Every request of a
  source takes one of its tokens, if it has one.
* While the pool is overloaded (no global token), a source that still has tokens of its own
  (it sends at most ``source_rate`` a second) is admitted anyway, so ordinary clients keep
  being served during a flood; the global bucket may go that far into debt, down to minus
  half a second's worth, which caps what a flood from many quiet-looking addresses gets in.
* A source without tokens of its own while the pool is overloaded is **shed for
  ``shed_retry_after`` seconds**: its requests are not processed.  The request that got it
  shed is answered ``503 Service Unavailable`` with ``Retry-After: shed_retry_after``, and
  while it stays shed, one request a second more is (so a client that lost that 503 still
  learns why); the others are dropped without an answer, because answering a flood costs
  the very time the pool lacks.  A source under the debt floor that is not heavy gets the
  503 too, but is not shed for longer.
* Peer pools of the deployment (heartbeats) are never shed.
* At most :data:`SOURCES` sources are remembered; past that, the longest-known one is
  forgotten (it comes back with full buckets: the table's memory stays bounded).

Each :class:`Shedding` report says which source was shed and what it sent meanwhile; the pool
makes it a ``LoadShed`` event when a source starts being shed, so the log gets a line per
shed source every ``shed_retry_after`` seconds at most, not a line per request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

__all__ = ["SOURCES", "Admission", "Decision", "Shedding"]

SOURCES = 100_000
"""Source addresses remembered at most (about 100 bytes each)."""

_WINDOW = 0.5
"""Seconds of tokens a global bucket holds (and how far into debt quiet sources may take it)."""


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
        self.enabled = overload_rate > 0
        self.rate = float(overload_rate)
        self.burst = self.rate * _WINDOW
        self.source_rate = float(source_rate)
        self.source_burst = 2.0 * source_rate
        self.retry_after = retry_after
        self._exempt = frozenset(exempt)
        self.max_sources = max_sources
        self._global = self.burst
        self._global_at = now
        self._sources: dict[str, _Source] = {}
        self.answered = 0
        """503s sent, in all."""
        self.dropped = 0
        """Requests shed without an answer, in all."""
        self.reports: list[Shedding] = []
        """Sources that started being shed since the owner last took this list (drained)."""

    def admit(self, source: str, now: float) -> Decision:
        """Whether to serve a message from ``source`` (an address) arriving at ``now``."""
        sources = self._sources
        state = sources.get(source)
        if state is None:
            if source in self._exempt:
                return Decision.ADMIT
            if len(sources) >= self.max_sources:
                del sources[next(iter(sources))]  # the longest-known one
            state = sources[source] = _Source(self.source_burst, now)
        elif now < state.shed_until:
            return self._shed(state, now)
        else:
            tokens = state.tokens + (now - state.at) * self.source_rate
            state.tokens = tokens if tokens < self.source_burst else self.source_burst
            state.at = now
        own = state.tokens >= 1.0
        if own:
            state.tokens -= 1.0
        level = self._global + (now - self._global_at) * self.rate
        self._global = level if level < self.burst else self.burst
        self._global_at = now
        if self._global >= 1.0 or (own and self._global > -self.burst):
            self._global -= 1.0
            return Decision.ADMIT
        if not own:  # a heavy source while overloaded: shed for a while
            self.reports.append(
                Shedding(source, now + self.retry_after, state.shed, state.answered)
            )
            state.shed = state.answered = 0
            state.shed_until = now + self.retry_after
            state.answered_at = float("-inf")
        return self._shed(state, now)

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
