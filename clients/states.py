"""The client agent's states: what the user sees, which event may change it to what, and the
data (with its deadline) each waiting state owns.

Rules of this file:

* The agent's visible state (:data:`~clients.events.ClientState`) changes only through
  :meth:`StateMachine.apply`, given the type of a past-tense event of :mod:`clients.events`;
  the agent then emits that event, which reports the state ``apply`` returned.
  :data:`TRANSITIONS` is the whole of what may happen: for each event type, the states it may
  come in and the state it leaves (``None``: the state stays, the event reports something
  else that changed: the primary, the mode, the contacts).
* An event that the table does not allow in the current state raises
  :class:`~emulator.sip.errors.LocalProtocolError` and leaves the state unchanged: it is a bug
  in the agent, not something a peer can cause.
* Each waiting state owns its deadline: :class:`Refresh` (registered, waiting to refresh),
  :class:`Backoff` (signed out, waiting to retry), :class:`LossTimer` (registered to a
  registrar found lost, waiting out the detection timeout), and, in their own modules, the
  discovery query (:mod:`clients.discovery`), the keep-alive cycle (:mod:`clients.keepalive`)
  and the failback-probe cycle (:mod:`clients.failback`).  The agent holds each as an object
  or None; it has no loose ``*_at`` attribute.
* A round's data (its plan, redirect depth, whether the user watches it, where a failback
  heads and the registration it leaves) is one :class:`Round`, made new with the session.
* The helpers that drive the transitions (clients/rounds.py, registration.py, redirects.py,
  failover.py, notify.py, contacts.py) change the state only through the agent's ``_change``
  and ``_progress``, which call :meth:`StateMachine.apply`.

Sans-IO: no clock; every time is the ``now`` the driver passes in.
"""

from __future__ import annotations

from clients.events import (
    BindingLost,
    ClientState,
    ClientStateChanged,
    ContactsChanged,
    DiscoveryStarted,
    FailedBack,
    FailedOver,
    LookupSent,
    Loss,
    Redirected,
    Registered,
    RegisterSent,
    RegistrarLost,
    ServicesChanged,
    SignedOut,
    SignInStarted,
    TargetRetried,
)
from clients.plan import PlanItem, Target
from emulator.net import Flow
from emulator.sip.errors import LocalProtocolError

__all__ = ["TRANSITIONS", "Backoff", "LossTimer", "Refresh", "Round", "StateMachine"]

_ANY: frozenset[ClientState] = frozenset(("signed-out", "discovering", "registering", "registered"))
_TRYING: frozenset[ClientState] = frozenset(("discovering", "registering"))

TRANSITIONS: dict[type[ClientStateChanged], tuple[frozenset[ClientState], ClientState | None]] = {
    # The user's sign-in round (the only round the user watches: background rounds after a
    # loss or a failed round are notes, docs/clients.md "What the user sees").
    SignInStarted: (frozenset(("signed-out",)), "registering"),
    DiscoveryStarted: (frozenset(("signed-out",)), "discovering"),
    LookupSent: (_TRYING, "discovering"),
    RegisterSent: (_TRYING, "registering"),
    TargetRetried: (_TRYING, "registering"),
    # A 200 to a REGISTER: from a visible round, a background one (signed out), or while
    # registered (failing back, or after the binding was lost).
    Registered: (_ANY, "registered"),
    FailedOver: (_ANY, "registered"),
    FailedBack: (_ANY, "registered"),
    BindingLost: (frozenset(("registered",)), "registered"),
    # Reports while the state stays.
    Redirected: (_ANY, None),
    ServicesChanged: (frozenset(("registered",)), None),
    ContactsChanged: (frozenset(("registered",)), None),
    # Signing out.  A loss is usually seen while registered; a deregistering NOTIFY may have
    # moved the agent on before the detection timeout ran out.
    RegistrarLost: (_ANY, "signed-out"),
    SignedOut: (_ANY, "signed-out"),
}
"""Event type -> (the states it may come in, the state it leaves; None: unchanged)."""


class StateMachine:
    """The visible state and its one door (:meth:`apply`)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: ClientState = "signed-out"

    def apply(self, event: type[ClientStateChanged]) -> ClientState:
        """Take the transition of an ``event`` of this type and return the state it leaves
        (the agent then makes the event, reporting that state); raises, the state unchanged,
        if the table does not allow it."""
        rule = TRANSITIONS.get(event)
        if rule is None or self.state not in rule[0]:
            raise LocalProtocolError(f"client: {event.__name__} is not allowed in {self.state}")
        if rule[1] is not None:
            self.state = rule[1]
        return self.state


class Backoff:
    """Signed out after a failed round: the next attempt at ``at`` (of ``target`` again, for
    the profiles that keep retrying one server; else a new round)."""

    __slots__ = ("at", "target")

    def __init__(self, at: float, target: Target | None = None) -> None:
        self.at = at
        self.target = target


class LossTimer:
    """The registrar was found lost (``loss``); the agent signs out at ``at``, after the
    profile's failover detection timeout (docs/clients.md)."""

    __slots__ = ("at", "loss")

    def __init__(self, at: float, loss: Loss) -> None:
        self.at = at
        self.loss = loss


class Refresh:
    """Registered: the registration is refreshed at ``at`` (set on each 200,
    clients/registration.py; dropped when the registrar is lost or left)."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


class Round:
    """The data of the agent's current round (clients/rounds.py), new with each session."""

    __slots__ = ("homeward", "leaving", "loud", "plan", "redirect_depth", "timed_out")

    def __init__(self) -> None:
        self.plan: list[PlanItem] = []
        """What the round tries next, in order (clients/plan.py)."""
        self.redirect_depth = 0
        """Redirects followed since the round (or its last discovery) began: a redirect target
        that redirects again counts as failed (clients/redirects.py)."""
        self.loud = False
        """The user watches this round (a sign-in until it registers or gives up): its steps
        are state changes; later rounds' are notes (``Agent._progress``).  Set by
        ``Agent.sign_in``, cleared on registering or giving up."""
        self.timed_out = False
        """The round's last REGISTER got no answer (Timer F): set by registration.failed,
        read by rounds.give_up (``Profile.retry_after_timeout``)."""
        self.homeward: Target | None = None
        """The registrar a failback heads for (its 200 is a FailedBack): set by
        failover.go_home, cleared by a new round and on registering."""
        self.leaving: tuple[Target, Flow] | None = None
        """The registration a failback leaves behind, unregistered once the new one holds
        (registration.registered): set by failover.go_home."""
