"""Heartbeat-based failure detection of a primary pool by its backup registrar, sans-IO.

Documented (TN-CSVR; protocol-notes §5 items 3-5): the backup accepts a primary's users only
after the primary has been unreachable for the *failover detection interval*, and sends them
home only after the primary has been healthy for the *failback detection interval*; a flap
shorter than the intervals causes neither.  Emulator choices (no source gives the wire
protocol): heartbeats are SIP OPTIONS every ``heartbeat_interval``; one unanswered for
``heartbeat_timeout`` is missed; any final response counts as an answer.

Rules of this file:

* The whole machine is :data:`_TABLE`: ``(state, what was observed) -> (next state, what the
  transition triggers)``.  Nothing else assigns :attr:`PeerMonitor.state`.
* Inputs are typed, past tense (:class:`Observed`): a heartbeat answered, a heartbeat missed,
  the failover or failback detection interval elapsed (found by :meth:`PeerMonitor.handle_timer`
  at :meth:`PeerMonitor.next_deadline`).
* What a transition triggers is decided here too (:class:`Trigger`, :meth:`PeerMonitor._apply`)
  and handed back in order as outputs: the pool events of :mod:`.events` (``PeerHeartbeatLost``,
  ``FailedOver``, ``PeerHeartbeatRestored``, ``FailbackStarted``, ``FailedBack``) and one
  action, :class:`SendUsersHome`, that the pool carries out between ``FailbackStarted`` and
  ``FailedBack``.  The pool appends the events and performs the action; it interprets nothing.
* An input the table does not list for the current state is a bug of the caller: it raises
  :class:`~emulator.sip.errors.LocalProtocolError` and leaves the monitor unchanged.

States and transitions::

    up --miss--> heartbeat-lost --answer--> up
    up|heartbeat-lost --silent for failover interval--> failed-over
    failed-over --answer--> recovering --miss--> failed-over
    recovering --answered for failback interval--> up   (failback: users sent home)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from emulator.registrar.events import (
    FailbackStarted,
    FailedBack,
    FailedOver,
    PeerHeartbeatLost,
    PeerHeartbeatRestored,
)
from emulator.sip.errors import LocalProtocolError
from emulator.values import static_frozen

__all__ = ["MonitorOutput", "Observed", "PeerMonitor", "PeerState", "SendUsersHome", "Trigger"]


class PeerState(Enum):
    UP = "up"
    HEARTBEAT_LOST = "heartbeat-lost"
    FAILED_OVER = "failed-over"
    RECOVERING = "recovering"


class Observed(Enum):
    """What the backup observed of the primary (the monitor's inputs)."""

    HEARTBEAT_ANSWERED = "heartbeat answered"
    HEARTBEAT_MISSED = "heartbeat missed"
    FAILOVER_INTERVAL_ELAPSED = "failover detection interval elapsed"
    FAILBACK_INTERVAL_ELAPSED = "failback detection interval elapsed"


class Trigger(Enum):
    """What a transition does besides changing the state (see :meth:`PeerMonitor._apply`)."""

    NOTHING = "nothing"
    REPORT_LOST = "report the heartbeat lost"
    FAIL_OVER = "fail over: serve the primary's users"
    REPORT_RESTORED = "report the heartbeat restored"
    START_RECOVERY = "report the heartbeat restored; the failback window opens"
    ABANDON_RECOVERY = "the failback window closes"
    FAIL_BACK = "fail back: send the primary's users home"


@static_frozen
class SendUsersHome:
    """Action for the pool: every binding it holds for ``peer``'s users goes home (failback)."""

    now: float
    peer: str


MonitorOutput = (
    PeerHeartbeatLost
    | FailedOver
    | PeerHeartbeatRestored
    | FailbackStarted
    | SendUsersHome
    | FailedBack
)

_UP, _LOST = PeerState.UP, PeerState.HEARTBEAT_LOST
_FAILED, _RECOVERING = PeerState.FAILED_OVER, PeerState.RECOVERING
_ANSWERED, _MISSED = Observed.HEARTBEAT_ANSWERED, Observed.HEARTBEAT_MISSED
_FAILOVER_DUE = Observed.FAILOVER_INTERVAL_ELAPSED
_FAILBACK_DUE = Observed.FAILBACK_INTERVAL_ELAPSED

_TABLE: dict[tuple[PeerState, Observed], tuple[PeerState, Trigger]] = {
    (_UP, _ANSWERED): (_UP, Trigger.NOTHING),
    (_UP, _MISSED): (_LOST, Trigger.REPORT_LOST),
    (_UP, _FAILOVER_DUE): (_FAILED, Trigger.FAIL_OVER),
    (_LOST, _ANSWERED): (_UP, Trigger.REPORT_RESTORED),
    (_LOST, _MISSED): (_LOST, Trigger.NOTHING),
    (_LOST, _FAILOVER_DUE): (_FAILED, Trigger.FAIL_OVER),
    (_FAILED, _ANSWERED): (_RECOVERING, Trigger.START_RECOVERY),
    (_FAILED, _MISSED): (_FAILED, Trigger.NOTHING),
    (_RECOVERING, _ANSWERED): (_RECOVERING, Trigger.NOTHING),
    (_RECOVERING, _MISSED): (_FAILED, Trigger.ABANDON_RECOVERY),
    (_RECOVERING, _FAILBACK_DUE): (_UP, Trigger.FAIL_BACK),
}

_NONE: Sequence[MonitorOutput] = ()


class PeerMonitor:
    """What a backup (``pool``) knows of one primary pool (``peer``).  Feed it heartbeat
    outcomes and timer ticks; each returns what the transition triggered, in order."""

    __slots__ = (
        "failback_interval",
        "failover_interval",
        "last_answer_at",
        "peer",
        "pool",
        "recovering_since",
        "state",
    )

    def __init__(
        self,
        peer: str,
        *,
        failover_interval: float,
        failback_interval: float,
        now: float,
        pool: str = "",
    ) -> None:
        self.pool = pool
        self.peer = peer
        self.failover_interval = failover_interval
        self.failback_interval = failback_interval
        self.state = PeerState.UP  # emulator choice: a starting pool assumes its peers are up
        self.last_answer_at = now
        self.recovering_since: float | None = None

    @property
    def serving_users(self) -> bool:
        """True while the backup accepts the primary's users (resiliency mode)."""
        return self.state is _FAILED or self.state is _RECOVERING

    def answered(self, now: float) -> Sequence[MonitorOutput]:
        """A heartbeat to the primary was answered (any final response)."""
        return self.observe(_ANSWERED, now)

    def missed(self, now: float) -> Sequence[MonitorOutput]:
        """A heartbeat went unanswered for the heartbeat timeout, or was refused."""
        return self.observe(_MISSED, now)

    def next_deadline(self) -> float | None:
        if self.state is _UP or self.state is _LOST:
            return self.last_answer_at + self.failover_interval
        if self.state is _RECOVERING and self.recovering_since is not None:
            return self.recovering_since + self.failback_interval
        return None

    def handle_timer(self, now: float) -> Sequence[MonitorOutput]:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return _NONE
        return self.observe(_FAILBACK_DUE if self.state is _RECOVERING else _FAILOVER_DUE, now)

    def observe(self, observed: Observed, now: float) -> Sequence[MonitorOutput]:
        """The one entry to the table: move to the next state and apply its trigger."""
        found = _TABLE.get((self.state, observed))
        if found is None:
            raise LocalProtocolError(
                f"monitor of {self.peer}: {observed.value} in state {self.state.value}"
            )
        self.state, trigger = found
        if observed is _ANSWERED:
            self.last_answer_at = now
        if trigger is Trigger.NOTHING:
            return _NONE
        return self._apply(trigger, now)

    def _apply(self, trigger: Trigger, now: float) -> Sequence[MonitorOutput]:
        """What each transition triggers (the right-hand column of the table)."""
        pool, peer = self.pool, self.peer
        if trigger is Trigger.REPORT_LOST:
            return (PeerHeartbeatLost(now, pool, peer, self.last_answer_at),)
        if trigger is Trigger.FAIL_OVER:
            return (FailedOver(now, pool, peer),)
        if trigger is Trigger.REPORT_RESTORED:
            return (PeerHeartbeatRestored(now, pool, peer),)
        if trigger is Trigger.START_RECOVERY:
            self.recovering_since = now
            return (PeerHeartbeatRestored(now, pool, peer),)
        if trigger is Trigger.ABANDON_RECOVERY:
            self.recovering_since = None
            return _NONE
        # Trigger.FAIL_BACK
        self.recovering_since = None
        return (
            FailbackStarted(now, pool, peer),
            SendUsersHome(now, peer),
            FailedBack(now, pool, peer),
        )
