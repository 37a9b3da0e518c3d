"""The contact list of a signed-in client (Lync's roaming contacts): the SUBSCRIBE after
every sign-in, its answer, the NOTIFYs that change it, and what a count change reports
(:class:`~clients.events.ContactsChanged`).

Helpers of :class:`clients.agent.Agent`: plain functions taking the agent, which holds the
state (``contacts``); they change the visible state only through ``Agent._change``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from clients.events import (
    ContactsChanged,
    ContactsReason,
    ContactsRefused,
)
from clients.requests import Purpose
from emulator.sip.message import Response

if TYPE_CHECKING:
    from clients.agent import Agent


_CONTACT_ITEM = re.compile(rb"<contact\b")


def fetch(agent: Agent, now: float) -> None:
    """SUBSCRIBE to the contact list (Lync does after every sign-in); the 200 carries it."""
    if not agent.profile.contact_list or agent.registrar is None or agent.keepalive.flow is None:
        return
    flow = agent.keepalive.flow
    request = agent.requests.subscribe_contacts(flow)
    agent._start_tx(now, request, flow, Purpose.CONTACTS, agent.registrar)


def answered(agent: Agent, now: float, response: Response) -> None:
    if response.status == 200:
        set_count(agent, now, count_contacts(response.body), ContactsReason.FETCHED)
    else:
        why = diagnostic(response)
        if agent.notes:
            agent._note(ContactsRefused(now, agent.name, response.status, why))
        set_count(agent, now, None, ContactsReason.UNAVAILABLE, response.status)


def set_count(
    agent: Agent, now: float, count: int | None, reason: ContactsReason, status: int = 0
) -> None:
    if count == agent.contacts:
        return
    agent.contacts = count
    if agent._machine.state == "registered":
        agent._change(now, ContactsChanged, reason, status)


def count_contacts(body: bytes) -> int:
    return len(_CONTACT_ITEM.findall(body))


def diagnostic(response: Response) -> str:
    """The reason text of an ``ms-diagnostics(-public)`` header, or the reason phrase."""
    for name in ("ms-diagnostics", "ms-diagnostics-public"):
        value = response.headers.get(name)
        if value:
            found = re.search(r'reason="([^"]*)"', value)
            if found:
                return found.group(1)
    return response.reason
