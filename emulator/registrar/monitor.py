"""Heartbeat-based failure detection of a primary pool by its backup registrar, sans-IO.

Documented (TN-CSVR; protocol-notes §5 items 3-5): the backup accepts a primary's users only
after the primary has been unreachable for the *failover detection interval*, and sends them
home only after the primary has been healthy for the *failback detection interval*; a flap
shorter than the intervals causes neither.  Emulator choices (no source gives the wire
protocol): heartbeats are SIP OPTIONS every ``heartbeat_interval``; one unanswered for
``heartbeat_timeout`` is missed; any final response counts as an answer.

States and transitions (the single table below is the whole machine)::

    up --miss--> heartbeat-lost --answer--> up
    up|heartbeat-lost --silent for failover interval--> failed-over
    failed-over --answer--> recovering --miss--> failed-over
    recovering --answered for failback interval--> up   (failback: users sent home)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from emulator.sip.errors import LocalProtocolError

__all__ = ["PeerMonitor", "PeerState", "Transition"]


class PeerState(Enum):
    UP = "up"
    HEARTBEAT_LOST = "heartbeat-lost"
    FAILED_OVER = "failed-over"
    RECOVERING = "recovering"


_TABLE: dict[tuple[PeerState, str], PeerState] = {
    (PeerState.UP, "answer"): PeerState.UP,
    (PeerState.UP, "miss"): PeerState.HEARTBEAT_LOST,
    (PeerState.UP, "failover-due"): PeerState.FAILED_OVER,
    (PeerState.HEARTBEAT_LOST, "answer"): PeerState.UP,
    (PeerState.HEARTBEAT_LOST, "miss"): PeerState.HEARTBEAT_LOST,
    (PeerState.HEARTBEAT_LOST, "failover-due"): PeerState.FAILED_OVER,
    (PeerState.FAILED_OVER, "answer"): PeerState.RECOVERING,
    (PeerState.FAILED_OVER, "miss"): PeerState.FAILED_OVER,
    (PeerState.RECOVERING, "answer"): PeerState.RECOVERING,
    (PeerState.RECOVERING, "miss"): PeerState.FAILED_OVER,
    (PeerState.RECOVERING, "failback-due"): PeerState.UP,
}


@dataclass(frozen=True, slots=True)
class Transition:
    peer: str
    now: float
    before: PeerState
    after: PeerState
    cause: str


class PeerMonitor:
    """What a backup knows of one primary pool.  Feed it heartbeat outcomes and timer ticks."""

    __slots__ = (
        "failback_interval",
        "failover_interval",
        "last_answer_at",
        "peer",
        "recovering_since",
        "state",
    )

    def __init__(
        self, peer: str, *, failover_interval: float, failback_interval: float, now: float
    ) -> None:
        self.peer = peer
        self.failover_interval = failover_interval
        self.failback_interval = failback_interval
        self.state = PeerState.UP  # emulator choice: a starting pool assumes its peers are up
        self.last_answer_at = now
        self.recovering_since: float | None = None

    @property
    def serving_users(self) -> bool:
        """True while the backup accepts the primary's users (resiliency mode)."""
        return self.state in (PeerState.FAILED_OVER, PeerState.RECOVERING)

    def _step(self, event: str, now: float) -> Transition | None:
        after = _TABLE.get((self.state, event))
        if after is None:
            raise LocalProtocolError(f"monitor of {self.peer}: {event} in state {self.state.value}")
        if after is self.state:
            return None
        before, self.state = self.state, after
        return Transition(self.peer, now, before, after, event)

    def answered(self, now: float) -> Transition | None:
        self.last_answer_at = now
        if self.state is PeerState.FAILED_OVER:
            self.recovering_since = now
        return self._step("answer", now)

    def missed(self, now: float) -> Transition | None:
        if self.state is PeerState.RECOVERING:
            self.recovering_since = None
        return self._step("miss", now)

    def next_deadline(self) -> float | None:
        if self.state in (PeerState.UP, PeerState.HEARTBEAT_LOST):
            return self.last_answer_at + self.failover_interval
        if self.state is PeerState.RECOVERING and self.recovering_since is not None:
            return self.recovering_since + self.failback_interval
        return None

    def handle_timer(self, now: float) -> Transition | None:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        if self.state is PeerState.RECOVERING:
            self.recovering_since = None
            return self._step("failback-due", now)
        return self._step("failover-due", now)
