"""Events a registrar pool emits (things that happened): for logs, reports and invariants."""

from __future__ import annotations

from emulator.net import Flow
from emulator.sip.headers import PresenceState, parse_contacts
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.uri import SipUri
from emulator.values import static_frozen

__all__ = [
    "AdminEvent",
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
    "describe",
]


@static_frozen
class Exchanged:
    """A request was answered (or an in-dialog response consumed).  ``method`` and ``status``
    are the request's method and the status answered, for counting (the control API's
    metrics); ``summary`` is the log line, written only when read (a deployment that counts
    but does not print pays for no text: the 200 to a REGISTER is kept as the bytes sent and
    parsed again only then)."""

    now: float
    pool: str
    flow: Flow
    method: str
    status: int
    aor: str
    """The request's address of record ("?" when its To could not be read)."""
    request: Request
    answer: Response | bytes
    """What was answered: a Response, or the 200 to a REGISTER as the bytes sent."""
    heartbeat: bool = False
    """An OPTIONS heartbeat from another pool of the deployment (logged only when verbose)."""

    @property
    def summary(self) -> str:
        """One log line: ``METHOD aor -> STATUS reason``, with a 301's targets and a REGISTER
        200's presence-state action and mode."""
        answer = self.answer
        if isinstance(answer, Response):
            response = answer
        else:
            parsed = parse_message(answer)
            assert isinstance(parsed, Response)
            response = parsed
        line = f"{self.method} {self.aor} -> {response.status} {response.reason}"
        if response.status == 301:
            targets = ", ".join(
                f"{SipUri.parse(c.uri).host} q={c.q:g}" for c in parse_contacts(response.headers)
            )
            line += f" ({targets})"
        elif response.status == 200 and self.method == "REGISTER":
            presence = response.headers.get("presence-state")
            if presence:
                state = PresenceState.parse(presence)
                mode = "limited" if state.limited else "full"
                line += f" [{state.register_action}, {mode}]"
        return line


@static_frozen
class BadMessage:
    """Bytes that were not a valid SIP message; ``status`` is what was answered (0: dropped)."""

    now: float
    pool: str
    flow: Flow
    status: int
    error: str


@static_frozen
class BindingAdded:
    now: float
    pool: str
    aor: str
    contact: str
    expires_at: float
    resiliency: bool
    """True when a backup accepted a failed-over user (resiliency mode)."""


@static_frozen
class BindingRefreshed:
    now: float
    pool: str
    aor: str
    contact: str
    expires_at: float


@static_frozen
class BindingRemoved:
    """Removed by the client (Expires: 0) or by failback/administration (``cause``)."""

    now: float
    pool: str
    aor: str
    contact: str
    cause: str


@static_frozen
class BindingExpired:
    now: float
    pool: str
    aor: str
    contact: str


@static_frozen
class PeerHeartbeatLost:
    """The first missed heartbeat of a monitored primary pool (the detection window opens)."""

    now: float
    pool: str
    peer: str
    last_seen: float


@static_frozen
class PeerHeartbeatRestored:
    """A monitored primary answers again (the failback detection window opens, if failed over)."""

    now: float
    pool: str
    peer: str


@static_frozen
class FailedOver:
    """Heartbeats missing for the failover detection interval: ``peer``'s users are served here."""

    now: float
    pool: str
    peer: str


@static_frozen
class FailbackStarted:
    """``peer`` answered heartbeats for the failback detection interval: its users are sent home."""

    now: float
    pool: str
    peer: str


@static_frozen
class FailedBack:
    """Failback finished: every failed-over binding of ``peer``'s users was sent home."""

    now: float
    pool: str
    peer: str


@static_frozen
class ClientSentHome:
    """A failed-over client was told to go home (``how``: notify, redirect-on-refresh, drop)."""

    now: float
    pool: str
    aor: str
    home: str
    how: str


@static_frozen
class UserServicesChanged:
    """The pool's user services (its back end) became unavailable or available again:
    ``mode`` is ``full``, ``limited`` (Lync 2010) or ``resiliency`` (Lync 2013/SfB)."""

    now: float
    pool: str
    mode: str
    detail: str


@static_frozen
class AdminEvent:
    """Something the back end did, or an administrative action on this pool."""

    now: float
    pool: str
    text: str


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
    | UserServicesChanged
    | AdminEvent
)


def describe(event: PoolEvent) -> tuple[str, str]:
    """``(kind, text)``: one readable line for logs and timelines, and its kind.

    Kinds: ``sip`` (an exchange), ``bad-message``, ``pool`` (heartbeats, failover, failback,
    clients sent home), ``binding`` (bindings added, refreshed, removed, expired).  The live
    log and the scenario timelines both use it, so they read the same.
    """
    if isinstance(event, Exchanged):
        remote = event.flow.remote
        return "sip", f"{event.flow.transport.upper()} {remote[0]}:{remote[1]} {event.summary}"
    if isinstance(event, BadMessage):
        remote = event.flow.remote
        answer = f"answered {event.status}" if event.status else "dropped"
        return "bad-message", (
            f"{event.flow.transport.upper()} {remote[0]}:{remote[1]} bad message ({answer}): "
            f"{event.error}"
        )
    if isinstance(event, PeerHeartbeatLost):
        ago = event.now - event.last_seen
        return "pool", f"heartbeat lost: {event.peer} (last answer {ago:.1f} s ago)"
    if isinstance(event, PeerHeartbeatRestored):
        return "pool", f"heartbeat restored: {event.peer}"
    if isinstance(event, FailedOver):
        return "pool", f"FAILED OVER: now serving the users of {event.peer} (resiliency mode)"
    if isinstance(event, FailbackStarted):
        return "pool", f"failback started: sending the users of {event.peer} home"
    if isinstance(event, FailedBack):
        return "pool", f"FAILED BACK to {event.peer}"
    if isinstance(event, ClientSentHome):
        return "pool", f"sent {event.aor} home to {event.home} ({event.how})"
    if isinstance(event, UserServicesChanged):
        return "pool", f"user services {event.mode}: {event.detail}"
    if isinstance(event, AdminEvent):
        return "pool", event.text
    if isinstance(event, BindingAdded):
        mode = " (resiliency mode)" if event.resiliency else ""
        return "binding", f"binding added: {event.aor} {event.contact}{mode}"
    if isinstance(event, BindingRefreshed):
        return "binding", f"binding refreshed: {event.aor} {event.contact}"
    if isinstance(event, BindingRemoved):
        return "binding", f"binding removed ({event.cause}): {event.aor} {event.contact}"
    return "binding", f"binding expired: {event.aor} {event.contact}"
