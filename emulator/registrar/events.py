"""Events a registrar pool emits (things that happened): for logs, reports and invariants."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.net import Flow

__all__ = [
    "BadMessage",
    "BindingAdded",
    "BindingExpired",
    "BindingRefreshed",
    "BindingRemoved",
    "ClientSentHome",
    "Exchanged",
    "FailbackStarted",
    "FailedBack",
    "FailedOver",
    "PeerHeartbeatLost",
    "PeerHeartbeatRestored",
    "PoolEvent",
]


@dataclass(frozen=True, slots=True)
class Exchanged:
    """A request was answered (or an in-dialog response consumed); ``summary`` is one log line."""

    now: float
    pool: str
    flow: Flow
    summary: str
    heartbeat: bool = False
    """An OPTIONS heartbeat from another pool of the deployment (logged only when verbose)."""


@dataclass(frozen=True, slots=True)
class BadMessage:
    """Bytes that were not a valid SIP message; ``status`` is what was answered (0: dropped)."""

    now: float
    pool: str
    flow: Flow
    status: int
    error: str


@dataclass(frozen=True, slots=True)
class BindingAdded:
    now: float
    pool: str
    aor: str
    contact: str
    expires_at: float
    resiliency: bool
    """True when a backup accepted a failed-over user (resiliency mode)."""


@dataclass(frozen=True, slots=True)
class BindingRefreshed:
    now: float
    pool: str
    aor: str
    contact: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class BindingRemoved:
    """Removed by the client (Expires: 0) or by failback/administration (``cause``)."""

    now: float
    pool: str
    aor: str
    contact: str
    cause: str


@dataclass(frozen=True, slots=True)
class BindingExpired:
    now: float
    pool: str
    aor: str
    contact: str


@dataclass(frozen=True, slots=True)
class PeerHeartbeatLost:
    """The first missed heartbeat of a monitored primary pool (the detection window opens)."""

    now: float
    pool: str
    peer: str
    last_seen: float


@dataclass(frozen=True, slots=True)
class PeerHeartbeatRestored:
    """A monitored primary answers again (the failback detection window opens, if failed over)."""

    now: float
    pool: str
    peer: str


@dataclass(frozen=True, slots=True)
class FailedOver:
    """Heartbeats missing for the failover detection interval: ``peer``'s users are served here."""

    now: float
    pool: str
    peer: str


@dataclass(frozen=True, slots=True)
class FailbackStarted:
    """``peer`` answered heartbeats for the failback detection interval: its users are sent home."""

    now: float
    pool: str
    peer: str


@dataclass(frozen=True, slots=True)
class FailedBack:
    """Failback finished: every failed-over binding of ``peer``'s users was sent home."""

    now: float
    pool: str
    peer: str


@dataclass(frozen=True, slots=True)
class ClientSentHome:
    """A failed-over client was told to go home (``how``: notify, redirect-on-refresh, drop)."""

    now: float
    pool: str
    aor: str
    home: str
    how: str


PoolEvent = (
    Exchanged
    | BadMessage
    | BindingAdded
    | BindingRefreshed
    | BindingRemoved
    | BindingExpired
    | PeerHeartbeatLost
    | PeerHeartbeatRestored
    | FailedOver
    | FailbackStarted
    | FailedBack
    | ClientSentHome
)
