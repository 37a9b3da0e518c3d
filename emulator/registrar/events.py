"""Events a registrar pool emits (things that happened): for logs, reports and invariants."""

from __future__ import annotations

from emulator.net import Flow
from emulator.sip.headers import PresenceState, parse_contacts
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.uri import SipUri
from emulator.values import static_frozen

__all__ = [
    "AdminEvent",
    "AnswerTrimmed",
    "AuthRefused",
    "BadMessage",
    "BindingAdded",
    "BindingExpired",
    "BindingLimitReached",
    "BindingRefreshed",
    "BindingRemoved",
    "BindingReplaced",
    "ClientSentHome",
    "Exchanged",
    "FailbackStarted",
    "FailedBack",
    "FailedOver",
    "LoadShed",
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
class AuthRefused:
    """A request did not pass authentication (emulator/registrar/auth.py): answered ``status``
    (401 with a challenge, or 403) because of ``reason``."""

    now: float
    pool: str
    flow: Flow
    method: str
    aor: str
    status: int
    reason: str


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
class BindingReplaced:
    """An endpoint's binding (same ``+sip.instance``, else ``epid``, else Contact URI) was
    taken over by a REGISTER from another source: another address, port, transport or
    connection than the binding's (issue 21: a hijack, or a client that moved; sipemu does
    not authenticate).  Sources are written ``UDP 127.0.0.1:5060``."""

    now: float
    pool: str
    aor: str
    contact: str
    expires_at: float
    previous: str
    """Where the binding was registered from."""
    source: str
    """Where the REGISTER that replaced it came from."""
    previous_contact: str


@static_frozen
class BindingLimitReached:
    """A REGISTER for one endpoint more than ``registrar.max_bindings_per_user``: ``action`` is
    ``evicted`` (``contact`` is the binding removed for the new one) or ``refused`` (``contact``
    is the one refused)."""

    now: float
    pool: str
    aor: str
    limit: int
    action: str
    contact: str
    unreported: int = 0
    """Evictions or refusals of this user since the last report and not reported (one report
    a minute per user at most: a client with a new endpoint identity every time would
    otherwise write a line per REGISTER)."""


@static_frozen
class AnswerTrimmed:
    """The 200 listing every binding of ``aor`` (RFC 3261 §10.3 step 8) would not fit a UDP
    datagram (``size`` bytes): it listed the request's own bindings only (``listed`` of
    ``total``), or, with ``listed`` 0, even that did not fit and the answer was a 513."""

    now: float
    pool: str
    aor: str
    size: int
    listed: int
    total: int


@static_frozen
class LoadShed:
    """The pool is overloaded and ``source`` sends too much: its requests are shed until
    ``until`` (503 with Retry-After to one a second, the others dropped).  ``shed`` and
    ``answered`` count what it sent during its previous shedding (0 the first time)."""

    now: float
    pool: str
    source: str
    until: float
    shed: int
    answered: int


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
    | AuthRefused
    | BadMessage
    | BindingAdded
    | BindingRefreshed
    | BindingReplaced
    | BindingLimitReached
    | AnswerTrimmed
    | LoadShed
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
    clients sent home, bindings replaced from another source, the binding limit, answers too
    large for UDP, load shed), ``binding`` (bindings added, refreshed, removed, expired).  The live
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
    if isinstance(event, AuthRefused):
        # "pool", not "sip": traced even when the exchanges are not (why a request was refused).
        remote = event.flow.remote
        return "pool", (
            f"{event.flow.transport.upper()} {remote[0]}:{remote[1]} {event.method} {event.aor} "
            f"-> {event.status} authentication: {event.reason}"
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
    if isinstance(event, BindingReplaced):
        return "pool", (
            f"binding replaced from another source: {event.aor} {event.contact} "
            f"(was {event.previous_contact} from {event.previous}, now from {event.source})"
        )
    if isinstance(event, BindingLimitReached):
        return "pool", (
            f"binding limit ({event.limit} per user) reached for {event.aor}: "
            f"{event.action} {event.contact}"
            + (f" ({event.unreported} more since the last report)" if event.unreported else "")
        )
    if isinstance(event, AnswerTrimmed):
        if event.listed == 0:
            return "pool", (
                f"200 for {event.aor} too large for UDP ({event.size} bytes) "
                "even with its own bindings only: answered 513"
            )
        return "pool", (
            f"200 for {event.aor} too large for UDP with all {event.total} bindings "
            f"({event.size} bytes): listed the request's {event.listed} only"
        )
    if isinstance(event, LoadShed):
        before = (
            f" (shed before: {event.shed}, {event.answered} answered 503)" if event.shed else ""
        )
        return "pool", (
            f"OVERLOADED: shedding {event.source} for {event.until - event.now:g} s "
            f"(503 + Retry-After){before}"
        )
    if isinstance(event, BindingAdded):
        mode = " (resiliency mode)" if event.resiliency else ""
        return "binding", f"binding added: {event.aor} {event.contact}{mode}"
    if isinstance(event, BindingRefreshed):
        return "binding", f"binding refreshed: {event.aor} {event.contact}"
    if isinstance(event, BindingRemoved):
        return "binding", f"binding removed ({event.cause}): {event.aor} {event.contact}"
    return "binding", f"binding expired: {event.aor} {event.contact}"
