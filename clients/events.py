"""Events a client agent emits: one per state change, plus detail lines for timelines.

Every state change is a typed, past-tense event (:class:`Registered`, :class:`Redirected`,
:class:`RegistrarLost`, :class:`FailedOver`, :class:`FailedBack`, :class:`SignedOut`, ...), a
subclass of :class:`ClientStateChanged`, which carries what the user sees after it (state,
registrar, mode, primary and backup, contacts).  Why it happened is typed too: reason enums
and the :class:`Failure` and :class:`Loss` values.  ``cause`` renders the reason as the
timeline's text (scenario traces, ``--json`` reports and expectations read it), and
:meth:`ClientStateChanged.line` the whole line.  Detail lines are typed the same way
(subclasses of :class:`ClientNote`, whose ``text`` renders them).  Which state each event
may lead from and to is :mod:`clients.states`'s table.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from emulator.values import static_frozen

__all__ = [
    "AgentEvent",
    "BindingLost",
    "CacheIgnored",
    "ClientActionDone",
    "ClientNote",
    "ClientState",
    "ClientStateChanged",
    "ContactsChanged",
    "ContactsFailed",
    "ContactsReason",
    "ContactsRefused",
    "DeregistrationNotified",
    "DiscoveryStarted",
    "DnsAnswered",
    "DnsTimedOut",
    "ExpiresRaised",
    "FailbackReason",
    "FailbackStarted",
    "FailedBack",
    "FailedOver",
    "Failure",
    "FailureKind",
    "LookupSent",
    "Loss",
    "LossKind",
    "LossNoticed",
    "MessageIgnored",
    "Mode",
    "RedirectReceived",
    "Redirected",
    "RefreshFoundNew",
    "RegisterSent",
    "Registered",
    "RegistrarLost",
    "RoundEnded",
    "RoundFailed",
    "RoundReason",
    "ServicesChanged",
    "SignInStarted",
    "SignOutReason",
    "SignedOut",
    "StaleRefreshFailed",
    "StepTaken",
    "TargetDeferred",
    "TargetFailed",
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


@static_frozen
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


@static_frozen
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
    REFUSED = "refused"
    """A final answer the profile never retries (``failure``, ``host``): the client stays
    signed out until the user signs in again (``Profile.final_statuses``)."""


class ContactsReason(Enum):
    FETCHED = "contact list fetched"
    UNAVAILABLE = "contact list unavailable"
    CHANGED = "contact list changed"


# -- the events -----------------------------------------------------------------------------


@static_frozen
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


@static_frozen
class SignInStarted(ClientStateChanged):
    """A round started with a registrar to try (the endpoint cache, or one kept in memory)."""

    reason: RoundReason

    @property
    def cause(self) -> str:
        return self.reason.value


@static_frozen
class DiscoveryStarted(ClientStateChanged):
    """A round started with DNS discovery."""

    reason: RoundReason

    @property
    def cause(self) -> str:
        return self.reason.value


@static_frozen
class LookupSent(ClientStateChanged):
    """A discovery query went out (the next name of the profile's discovery order)."""

    qtype: str
    name: str

    @property
    def cause(self) -> str:
        return f"looking up {self.qtype} {self.name}"


@static_frozen
class RegisterSent(ClientStateChanged):
    """A REGISTER went out to ``host`` (learned from ``source``, see ``Target.source``)."""

    host: str
    source: str

    @property
    def cause(self) -> str:
        return f"REGISTER to {self.host} ({self.source})"


@static_frozen
class TargetRetried(ClientStateChanged):
    """A redirect target failed and the profile retries it, not moving on (linphone)."""

    failure: Failure
    host: str

    @property
    def cause(self) -> str:
        return f"{self.failure}; retrying {self.host}"


@static_frozen
class Registered(ClientStateChanged):
    """A 200 from ``host`` (learned from ``source``): registered."""

    host: str
    source: str

    @property
    def cause(self) -> str:
        return f"200 from {self.host} ({self.source})"


@static_frozen
class FailedOver(Registered):
    """Registered again after losing the registrar (at the backup, or wherever the round
    found)."""


@static_frozen
class FailedBack(Registered):
    """Registered at the primary after a failback (probes answered, a redirected refresh, a
    P-Preferred-Registrar)."""


@static_frozen
class BindingLost(ClientStateChanged):
    """A refresh was answered as a new registration (MS-SIPREGE ``register-action``): the
    binding had been lost; registering again."""

    @property
    def cause(self) -> str:
        return "binding was lost: registering again"


@static_frozen
class Redirected(ClientStateChanged):
    """A 3xx from ``by`` named the primary and backup registrars."""

    by: str

    @property
    def cause(self) -> str:
        return f"redirected by {self.by}"


@static_frozen
class RegistrarLost(ClientStateChanged):
    """The registrar was lost (``loss``) and the detection timeout passed: signed out."""

    loss: Loss

    @property
    def cause(self) -> str:
        return f"registrar lost ({self.loss})"


@static_frozen
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
            return f"{self.failure}; retrying {self.host} in {self.retry_in:.1f} s"
        if reason is SignOutReason.REFUSED:
            return f"{self.host} refused: {self.failure}; not retried"
        return f"deregistered by the registrar ({self.detail})"


@static_frozen
class ServicesChanged(ClientStateChanged):
    """User services became (un)available while registered: by a NOTIFY (``by`` empty) or
    as a refresh answered by ``by`` said."""

    available: bool
    by: str = ""

    @property
    def cause(self) -> str:
        how = f"refresh answered by {self.by}" if self.by else "NOTIFY"
        return f"user services {'available' if self.available else 'unavailable'} ({how})"


@static_frozen
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


@static_frozen
class ClientNote:
    """Base of the detail lines of a timeline (recorded only when the agent's ``notes`` is
    on): each subclass is one kind of detail, typed; ``text`` renders it."""

    now: float
    client: str

    @property
    def text(self) -> str:
        raise NotImplementedError

    def line(self) -> str:
        return f"{self.now:10.3f} {self.client}:   {self.text}"


@static_frozen
class StepTaken(ClientNote):
    """A step of a round the user does not watch (``step``: the event it would have been)."""

    step: ClientStateChanged

    @property
    def text(self) -> str:
        return self.step.cause


@static_frozen
class RoundFailed(ClientNote):
    """A round the user does not watch found no registrar; the next after ``retry_in``."""

    retry_in: float

    @property
    def text(self) -> str:
        return f"no registrar reachable; retry in {self.retry_in:.1f} s"


@static_frozen
class CacheIgnored(ClientNote):
    """The endpoint cache could not be read (``reason``); the round goes on without it."""

    reason: str

    @property
    def text(self) -> str:
        return f"endpoint cache unreadable: {self.reason}"


@static_frozen
class DnsAnswered(ClientNote):
    """A DNS answer: its rcode and its records' data (``records``, as text)."""

    qtype: str
    name: str
    rcode: str
    records: tuple[str, ...]

    @property
    def text(self) -> str:
        detail = ", ".join(self.records) or "no records"
        return f"DNS {self.qtype} {self.name}: {self.rcode}, {detail}"


@static_frozen
class DnsTimedOut(ClientNote):
    """A DNS query got no answer after its tries."""

    qtype: str
    name: str

    @property
    def text(self) -> str:
        return f"DNS {self.qtype} {self.name}: no answer"


@static_frozen
class TargetFailed(ClientNote):
    """A REGISTER to ``host`` failed."""

    host: str
    failure: Failure

    @property
    def text(self) -> str:
        return f"{self.host} failed: {self.failure}"


@static_frozen
class RoundEnded(ClientNote):
    """A final answer from ``host`` (``failure``) ended the round: the targets left were not
    tried (``Profile.next_target_statuses``, baresip); the backoff follows."""

    host: str
    failure: Failure

    @property
    def text(self) -> str:
        return f"{self.host} answered {self.failure}: the round ends, the next targets untried"


@static_frozen
class StaleRefreshFailed(ClientNote):
    """A refresh sent to ``host`` before the agent moved to another registrar failed
    (``failure``): it is about the registrar left behind, and ignored."""

    host: str
    failure: Failure

    @property
    def text(self) -> str:
        return f"stale refresh to {self.host} failed ({self.failure}): ignored"


@static_frozen
class TargetDeferred(ClientNote):
    """``host`` answered 503 with Retry-After: it is skipped until ``until`` (RFC 3261
    §21.5.4)."""

    host: str
    until: float

    @property
    def text(self) -> str:
        return f"{self.host} skipped: Retry-After until t={self.until:.1f}"


@static_frozen
class ExpiresRaised(ClientNote):
    """A 423 from ``host``: the REGISTER is sent again with ``expires``."""

    host: str
    expires: int

    @property
    def text(self) -> str:
        return f"423 from {self.host}: retrying with Expires {self.expires}"


@static_frozen
class RedirectReceived(ClientNote):
    """A 3xx from ``host`` with its Contacts (``contacts``: host and q of each)."""

    status: int
    host: str
    contacts: tuple[tuple[str, float], ...]

    @property
    def text(self) -> str:
        listed = ", ".join(f"{host} q={q:g}" for host, q in self.contacts)
        return f"{self.status} from {self.host}: {listed}"


@static_frozen
class RefreshFoundNew(ClientNote):
    """A refresh answered as a new registration (``action``): the binding had been lost."""

    action: str

    @property
    def text(self) -> str:
        return f"refresh answered register-action={self.action}: binding lost, registering again"


@static_frozen
class LossNoticed(ClientNote):
    """The registrar (``host``, "?" if unknown) was found lost; the detection timeout runs."""

    host: str
    loss: Loss

    @property
    def text(self) -> str:
        return f"registrar {self.host} lost: {self.loss}"


class FailbackReason(Enum):
    """Why the agent heads for its primary (``detail``: who redirected, for how long the
    probes were answered)."""

    REFRESH_REDIRECTED = "refresh-redirected"
    PROBES_ANSWERED = "probes-answered"
    PREFERRED_REGISTRAR = "preferred-registrar-change"


@static_frozen
class FailbackStarted(ClientNote):
    """The agent registers at ``host`` (its primary, or the preferred registrar)."""

    host: str
    reason: FailbackReason
    by: str = ""
    seconds: float = 0.0

    @property
    def text(self) -> str:
        if self.reason is FailbackReason.REFRESH_REDIRECTED:
            why = f"refresh redirected by {self.by}"
        elif self.reason is FailbackReason.PROBES_ANSWERED:
            why = f"primary answered probes for {self.seconds:g} s"
        else:
            why = "preferred-registrar-change"
        return f"failing back to {self.host}: {why}"


@static_frozen
class DeregistrationNotified(ClientNote):
    """A NOTIFY ``deregistered...`` (``body``), naming a ``preferred`` registrar or not."""

    body: str
    preferred: str = ""

    @property
    def text(self) -> str:
        preferred = f", P-Preferred-Registrar {self.preferred}" if self.preferred else ""
        return f"NOTIFY {self.body}{preferred}"


@static_frozen
class ContactsRefused(ClientNote):
    """The contact-list SUBSCRIBE was refused (``status``, the registrar's ``reason``)."""

    status: int
    reason: str

    @property
    def text(self) -> str:
        return f"contact list refused: {self.status} {self.reason}"


@static_frozen
class ContactsFailed(ClientNote):
    """The contact-list SUBSCRIBE failed (no answer, no connection)."""

    failure: Failure

    @property
    def text(self) -> str:
        return f"contact list: {self.failure}"


@static_frozen
class MessageIgnored(ClientNote):
    """A malformed message was dropped (``error``: the parser's)."""

    error: str

    @property
    def text(self) -> str:
        return f"ignored a malformed message: {self.error}"


@static_frozen
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
