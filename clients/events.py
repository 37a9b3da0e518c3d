"""Events a client agent emits: one per state change, plus detail lines for timelines.

Every state change is a typed, past-tense event (:class:`Registered`, :class:`Redirected`,
:class:`RegistrarLost`, :class:`FailedOver`, :class:`FailedBack`, :class:`SignedOut`, ...), a
subclass of :class:`ClientStateChanged`, which carries what the user sees after it (state,
registrar, mode, primary and backup, contacts).  Why it happened is typed too: reason enums
and the :class:`Failure` and :class:`Loss` values.  ``cause`` renders the reason as the
timeline's text (scenario traces, ``--json`` reports and expectations read it), and
:meth:`ClientStateChanged.line` the whole line.  Which state each event may lead from and to is
:mod:`clients.states`'s table.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from emulator.values import immutable

__all__ = [
    "AgentEvent",
    "BindingLost",
    "ClientActionDone",
    "ClientNote",
    "ClientState",
    "ClientStateChanged",
    "ContactsChanged",
    "ContactsReason",
    "DiscoveryStarted",
    "FailedBack",
    "FailedOver",
    "Failure",
    "FailureKind",
    "LookupSent",
    "Loss",
    "LossKind",
    "Mode",
    "Redirected",
    "RegisterSent",
    "Registered",
    "RegistrarLost",
    "RoundReason",
    "ServicesChanged",
    "SignInStarted",
    "SignOutReason",
    "SignedOut",
    "TargetRetried",
]

ClientState = Literal["signed-out", "discovering", "registering", "registered"]
Mode = Literal["full", "limited"]


# -- why: reasons and failures --------------------------------------------------------------


class RoundReason(Enum):
    """Why the agent starts a sign-in round (its plan from the top)."""

    SIGN_IN = "sign-in"
    """The user signed in."""
    RETRY = "retrying sign-in"
    """The backoff after an exhausted plan ran out."""
    FAILOVER = "failing over"
    """The registrar was lost and the detection timeout passed."""
    AGAIN = "signing in again"
    """The registrar deregistered the endpoint (NOTIFY ``deregistered``)."""


class FailureKind(Enum):
    """How a request to a registrar failed."""

    TIMEOUT = "timeout"
    """No final answer (Timer F)."""
    CONNECTION = "connection"
    """The connection could not be opened or broke."""
    STATUS = "status"
    """A final answer that is a failure (``status``, ``reason``)."""
    MIN_EXPIRES = "min-expires"
    """A 423 whose Min-Expires (``reason``, as sent) asks no more than was refused."""
    NO_CONTACTS = "no-contacts"
    """A 3xx (``status``) without a usable Contact."""
    NOT_FOLLOWED = "not-followed"
    """A 3xx (``status``) the profile (``reason``: its name) does not follow."""
    REDIRECTED_AGAIN = "redirected-again"
    """A redirect target redirected again."""


@immutable
class Failure:
    """Why a request failed; ``str()`` is the timeline's text."""

    kind: FailureKind
    status: int = 0
    reason: str = ""

    def __str__(self) -> str:
        kind = self.kind
        if kind is FailureKind.TIMEOUT:
            return "no answer (Timer F)"
        if kind is FailureKind.CONNECTION:
            return "connection failed"
        if kind is FailureKind.STATUS:
            return f"{self.status} {self.reason}"
        if kind is FailureKind.MIN_EXPIRES:
            return f"423 with Min-Expires {self.reason or '?'}"
        if kind is FailureKind.NO_CONTACTS:
            return f"{self.status} without usable Contacts"
        if kind is FailureKind.NOT_FOLLOWED:
            return f"{self.status} not followed ({self.reason})"
        return "redirected again by a redirect target"


class LossKind(Enum):
    """How the agent noticed that its registrar was lost."""

    PONG_MISSING = "keep-alive unanswered"
    CONNECTION_LOST = "connection to the registrar lost"
    KEEPALIVE_FAILED = "keep-alive OPTIONS failed"
    REFRESH_FAILED = "refresh failed"


@immutable
class Loss:
    """Why the registrar was lost (``failure``: the failed request, for the last two kinds)."""

    kind: LossKind
    failure: Failure | None = None

    def __str__(self) -> str:
        if self.failure is None:
            return self.kind.value
        return f"{self.kind.value}: {self.failure}"


class SignOutReason(Enum):
    """Why the agent is signed out."""

    BY_USER = "by-user"
    NO_REGISTRAR = "no-registrar"
    """The plan is exhausted; it retries after a backoff (``retry_in``)."""
    REFUSED_REDIRECT = "refused-redirect"
    """A 3xx the profile does not follow; it retries that server (``failure``, ``host``)."""
    DEREGISTERED = "deregistered"
    """The registrar's NOTIFY said so (``detail``: its body)."""


class ContactsReason(Enum):
    FETCHED = "contact list fetched"
    UNAVAILABLE = "contact list unavailable"
    CHANGED = "contact list changed"


# -- the events -----------------------------------------------------------------------------


@immutable
class ClientStateChanged:
    """Base of every state-change event: what the user sees after it (the timeline's main
    line).  ``cause`` (a property of each subclass) says why, as text."""

    now: float
    client: str
    state: ClientState
    registrar: str | None
    mode: Mode | None
    primary: str | None
    backup: str | None
    contacts: int | None
    """How many contacts the user's contact list holds, as the client last fetched it (None:
    not fetched, or unavailable in limited functionality / resiliency mode)."""

    @property
    def cause(self) -> str:
        raise NotImplementedError

    def line(self) -> str:
        where = f" at {self.registrar}" if self.registrar else ""
        mode = ""
        if self.mode:
            count = f", {self.contacts} contact(s)" if self.contacts is not None else ""
            mode = f" ({self.mode}{count})"
        known = ""
        if self.primary or self.backup:
            known = f" [primary {self.primary or '?'}, backup {self.backup or '-'}]"
        return f"{self.now:10.3f} {self.client}: {self.state}{where}{mode}{known} - {self.cause}"


@immutable
class SignInStarted(ClientStateChanged):
    """A round started with a registrar to try (the endpoint cache, or one kept in memory)."""

    reason: RoundReason

    @property
    def cause(self) -> str:
        return self.reason.value


@immutable
class DiscoveryStarted(ClientStateChanged):
    """A round started with DNS discovery."""

    reason: RoundReason

    @property
    def cause(self) -> str:
        return self.reason.value


@immutable
class LookupSent(ClientStateChanged):
    """A discovery query went out (the next name of the profile's discovery order)."""

    qtype: str
    name: str

    @property
    def cause(self) -> str:
        return f"looking up {self.qtype} {self.name}"


@immutable
class RegisterSent(ClientStateChanged):
    """A REGISTER went out to ``host`` (learned from ``source``, see ``Target.source``)."""

    host: str
    source: str

    @property
    def cause(self) -> str:
        return f"REGISTER to {self.host} ({self.source})"


@immutable
class TargetRetried(ClientStateChanged):
    """A redirect target failed and the profile retries it, not moving on (linphone)."""

    failure: Failure
    host: str

    @property
    def cause(self) -> str:
        return f"{self.failure}; retrying {self.host}"


@immutable
class Registered(ClientStateChanged):
    """A 200 from ``host`` (learned from ``source``): registered."""

    host: str
    source: str

    @property
    def cause(self) -> str:
        return f"200 from {self.host} ({self.source})"


@immutable
class FailedOver(Registered):
    """Registered again after losing the registrar (at the backup, or wherever the round
    found)."""


@immutable
class FailedBack(Registered):
    """Registered at the primary after a failback (probes answered, a redirected refresh, a
    P-Preferred-Registrar)."""


@immutable
class BindingLost(ClientStateChanged):
    """A refresh was answered as a new registration (MS-SIPREGE ``register-action``): the
    binding had been lost; registering again."""

    @property
    def cause(self) -> str:
        return "binding was lost: registering again"


@immutable
class Redirected(ClientStateChanged):
    """A 3xx from ``by`` named the primary and backup registrars."""

    by: str

    @property
    def cause(self) -> str:
        return f"redirected by {self.by}"


@immutable
class RegistrarLost(ClientStateChanged):
    """The registrar was lost (``loss``) and the detection timeout passed: signed out."""

    loss: Loss

    @property
    def cause(self) -> str:
        return f"registrar lost ({self.loss})"


@immutable
class SignedOut(ClientStateChanged):
    """Signed out (see :class:`SignOutReason` for which fields each reason sets)."""

    reason: SignOutReason
    retry_in: float = 0.0
    failure: Failure | None = None
    host: str = ""
    detail: str = ""

    @property
    def cause(self) -> str:
        reason = self.reason
        if reason is SignOutReason.BY_USER:
            return "signed out by the user"
        if reason is SignOutReason.NO_REGISTRAR:
            return f"no registrar reachable; retry in {self.retry_in:.1f} s"
        if reason is SignOutReason.REFUSED_REDIRECT:
            return f"{self.failure}; retrying {self.host}"
        return f"deregistered by the registrar ({self.detail})"


@immutable
class ServicesChanged(ClientStateChanged):
    """User services became (un)available while registered: by a NOTIFY (``by`` empty) or
    as a refresh answered by ``by`` said."""

    available: bool
    by: str = ""

    @property
    def cause(self) -> str:
        how = f"refresh answered by {self.by}" if self.by else "NOTIFY"
        return f"user services {'available' if self.available else 'unavailable'} ({how})"


@immutable
class ContactsChanged(ClientStateChanged):
    """The contact list count changed (``status``: the refusal, for UNAVAILABLE)."""

    reason: ContactsReason
    status: int = 0

    @property
    def cause(self) -> str:
        if self.reason is ContactsReason.UNAVAILABLE:
            return f"{self.reason.value} ({self.status})"
        text: str = self.reason.value
        return text


@immutable
class ClientNote:
    """A detail worth a timeline line: a DNS answer, a redirect, a target failing."""

    now: float
    client: str
    text: str

    def line(self) -> str:
        return f"{self.now:10.3f} {self.client}:   {self.text}"


@immutable
class ClientActionDone:
    """The outcome of something the user asked for besides signing in (add a contact)."""

    now: float
    client: str
    action: str
    ok: bool
    detail: str

    def line(self) -> str:
        outcome = "done" if self.ok else "refused"
        return f"{self.now:10.3f} {self.client}: {self.action} {outcome}: {self.detail}"


AgentEvent = ClientStateChanged | ClientNote | ClientActionDone
