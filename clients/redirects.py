"""3xx answers to a REGISTER: a sign-in's redirect puts its Contacts first in the round's plan
(MS-SIPREGE ``ms-cluster-failover``, in decreasing q for the profiles that order them) and
remembers them as primary and backup; a refresh's redirect is a failback
(:func:`clients.failover.go_home`).  A redirect target that redirects again counts as failed
(the round's ``redirect_depth``); a profile that does not follow redirects fails the target.

Helpers of :class:`clients.agent.Agent`: plain functions taking the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients import failover, registration, rounds
from clients.events import (
    FailbackReason,
    Failure,
    FailureKind,
    Redirected,
    RedirectReceived,
)
from clients.plan import (
    Target,
    host_of,
    redirect_targets,
)
from clients.requests import Tx
from emulator.net import TransportName
from emulator.sip.errors import SipError
from emulator.sip.headers import NameAddr, parse_contacts
from emulator.sip.message import Response

if TYPE_CHECKING:
    from clients.agent import Agent


def redirected(agent: Agent, now: float, entry: Tx, response: Response) -> None:
    profile = agent.profile
    try:
        contacts = parse_contacts(response.headers)
    except SipError:
        contacts = []  # a malformed Contact list: nothing usable, as if empty
    if agent.notes:
        listed = tuple((host_of(c.uri), c.q) for c in contacts)
        agent._note(RedirectReceived(now, agent.name, response.status, entry.target.host, listed))
    if not profile.follows_redirect:
        agent._close(entry.flow)
        agent._tx_failed(
            entry,
            now,
            Failure(FailureKind.NOT_FOLLOWED, response.status, profile.name),
            redirect_refused=True,
        )
        return
    if agent.round.redirect_depth >= 1:
        # Emulator choice: a redirect target that redirects again counts as failed, so a
        # backup answering 301 before failover cannot loop the client.
        agent._close(entry.flow)
        agent._tx_failed(entry, now, Failure(FailureKind.REDIRECTED_AGAIN))
        return
    targets = targets_of(agent, response, entry.target.transport, contacts)
    if not targets:
        # The text says 301 whatever the 3xx was (as it always has: traces keep it).
        agent._tx_failed(entry, now, Failure(FailureKind.NO_CONTACTS, 301))
        return
    # Memory only, until sign-out (DD-BLOG; protocol-notes §5 item 9).
    agent.primary = targets[0]
    agent.backup = targets[1] if len(targets) > 1 else None
    agent._change(now, Redirected, entry.target.host)
    agent._close(entry.flow)
    agent.round.redirect_depth += 1
    # The Contacts first, then whatever was left (other SRV targets, and discovery when the
    # redirect came from a cached or backup server): RFC 3261 §8.1.3.4 target set.
    agent.round.plan = [*targets, *agent.round.plan]
    rounds.advance(agent, now)


def targets_of(
    agent: Agent,
    response: Response,
    transport: TransportName,
    contacts: list[NameAddr] | None = None,
) -> list[Target]:
    q_descending = agent.profile.redirect_order == "q-descending"
    return redirect_targets(response, transport, q_descending, contacts)


def refresh_redirected(agent: Agent, now: float, entry: Tx, response: Response) -> None:
    # A refresh redirected (failback = redirect-on-refresh): the registrar dropped the
    # binding and names where to go; RFC 3261 §10.2.4: refreshes go where redirected.
    targets = targets_of(agent, response, entry.target.transport)
    if agent.profile.redirect_same_transport:
        # linphone 5.1 (UDP only) does nothing with a Contact naming TLS [3P].
        targets = [t for t in targets if t.transport == entry.target.transport]
    if not targets and agent.profile.redirect_same_transport:
        # linphone 5.1: no REGISTER after a 301 naming only another transport [3P].
        registration.stop(
            agent, now, entry, Failure(FailureKind.NO_CONTACTS, response.status, response.reason)
        )
        return
    if not targets:
        agent._tx_failed(entry, now, Failure(FailureKind.NO_CONTACTS, response.status))
        return
    agent._close(entry.flow)
    agent.keepalive.flow = None
    failover.go_home(
        agent, now, targets[0], FailbackReason.REFRESH_REDIRECTED, by=entry.target.host
    )
