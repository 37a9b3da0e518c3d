"""Requests a registered client receives: OPTIONS (answered 200), and NOTIFY/BENOTIFY: a
contact-list change, the user services going down or coming back (survivable mode,
MS-SIPREGE), or a deregistration (with or without a ``P-Preferred-Registrar``).  Anything
else is answered 501; a generic UA answers registration NOTIFYs 489 (RFC 6665 §4.1.3), or
its profile's ``notify_unknown_status`` (baresip: 481), or 200 without acting on them
(``Profile.answers_notify_ok``, linphone).

Helpers of :class:`clients.agent.Agent`: plain functions taking the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients import contacts, failover, rounds
from clients.events import (
    ContactsReason,
    DeregistrationNotified,
    FailbackReason,
    Mode,
    RoundReason,
    ServicesChanged,
    SignedOut,
    SignOutReason,
)
from clients.plan import (
    preferred_target,
)
from clients.requests import CONTACTS_EVENT
from emulator.net import Flow, Send
from emulator.sip.headers import make_response
from emulator.sip.message import Request

if TYPE_CHECKING:
    from clients.agent import Agent


def receive_request(agent: Agent, request: Request, flow: Flow, now: float) -> None:
    method = request.method
    lync = agent.profile.lync_headers
    if method == "OPTIONS" or (lync and method in ("NOTIFY", "BENOTIFY")):
        status = 200
    elif method in ("NOTIFY", "BENOTIFY") and agent.profile.answers_notify_ok:
        # linphone 5.1: "200 Ok" to the failback NOTIFY, and nothing else [3P].
        response = make_response(request, 200, to_tag=agent.requests.tag)
        agent._actions.append(Send(flow, response.to_bytes()))
        return
    elif method in ("NOTIFY", "BENOTIFY"):
        # A generic UA knows no registration-notify event package: 489, RFC 6665 §4.1.3
        # (baresip: 481, no such subscription; Profile.notify_unknown_status).
        status = agent.profile.notify_unknown_status
    else:
        status = 501
    response = make_response(request, status, to_tag=agent.requests.tag)
    agent._actions.append(Send(flow, response.to_bytes()))
    if status != 200 or method == "OPTIONS":
        return
    if CONTACTS_EVENT in (request.headers.get("event") or ""):
        if agent._machine.state == "registered" and flow == agent.keepalive.flow:
            contacts.set_count(
                agent, now, contacts.count_contacts(request.body), ContactsReason.CHANGED
            )
        return
    body = request.body.decode("utf-8", "replace").strip()
    if body.startswith("registered;event=userservices-"):
        user_services(agent, now, flow, available=body.endswith("-available"))
        return
    if not body.startswith("deregistered"):
        return
    preferred = request.headers.get("p-preferred-registrar")
    if agent.notes:
        agent._note(DeregistrationNotified(now, agent.name, body, preferred or ""))
    if agent.registrar is None:
        return
    if agent.profile.deregistered_stops:
        # SIPE 1.25: "You have been rejected by the server: User services unavailable" (or
        # "Preferred registrar changed"): the 200, a de-REGISTER, and the account stays
        # signed out, a fatal error finch never reconnects [3P].
        agent.sign_out(now)
        return
    agent._refresh = None
    agent.keepalive.stop()
    agent.failback.stop()
    if preferred:
        home = preferred_target(preferred, agent.registrar.transport, agent.primary)
        if home is not None:
            agent.keepalive.flow = None
            failover.go_home(agent, now, home, FailbackReason.PREFERRED_REGISTRAR)
            return
    agent._close(flow)
    agent.keepalive.flow = None
    agent._change(now, SignedOut, SignOutReason.DEREGISTERED, 0.0, None, "", body)
    rounds.begin(agent, now, RoundReason.AGAIN, after_loss=False)


def user_services(agent: Agent, now: float, flow: Flow, *, available: bool) -> None:
    """``registered;event=userservices-(un)available``: the registrar's back end went down or
    came back while this endpoint stays registered (survivable mode, MS-SIPREGE)."""
    if agent._machine.state != "registered" or flow != agent.keepalive.flow:
        return
    mode: Mode = "full" if available else "limited"
    if mode == agent.mode:
        return
    agent.mode = mode
    if not available:
        agent.contacts = None
    agent._change(now, ServicesChanged, available)
    if available:
        contacts.fetch(agent, now)
