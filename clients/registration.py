"""TODO."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients import contacts, rounds
from clients.cache import CacheEntry, SaveCache
from clients.events import (
    BindingLost,
    FailedBack,
    FailedOver,
    RefreshFoundNew,
    Registered,
    RegisterSent,
    ServicesChanged,
)
from clients.plan import (
    Target,
    endpoint,
)
from clients.requests import Purpose, Tx
from emulator.net import Flow
from emulator.sip.errors import SipError
from emulator.sip.headers import KeepAlive, PresenceState, parse_contacts
from emulator.sip.message import Response

if TYPE_CHECKING:
    from clients.agent import Agent


def send_register(
    agent: Agent,
    now: float,
    target: Target,
    purpose: Purpose,
    *,
    expires: int,
    flow: Flow | None = None,
) -> None:
    flow = flow or agent._flow_for(target)
    request = agent.requests.register(target, flow, expires)
    entry = agent._start_tx(now, request, flow, purpose, target)
    entry.expires = expires
    if purpose is Purpose.REGISTER:
        agent._register_tx = entry
        if agent._machine.state != "registered":
            agent._progress(now, RegisterSent, target.host, target.source)


def registered(agent: Agent, now: float, entry: Tx, response: Response) -> None:
    target = entry.target
    presence_text = response.headers.get("presence-state")
    presence: PresenceState | None = None
    if presence_text:
        try:
            presence = PresenceState.parse(presence_text)
        except SipError:
            presence = None
    expires = granted_expires(response, entry.expires)
    refreshing = entry.purpose is Purpose.REFRESH
    lost_binding = (
        refreshing
        and agent.profile.lync_headers
        and presence is not None
        and presence.register_action != "refreshed"
    )
    if lost_binding:
        # MS-SIPREGE §3.1.1.5.1: "added" (or "fixed") on a refresh means the binding had
        # been lost: treat it as a registration failure and restart registration.
        if agent.notes:
            action = presence.register_action  # type: ignore[union-attr]
            agent._note(RefreshFoundNew(now, agent.name, action))
    was_registered = agent._machine.state == "registered" and agent.registrar == target
    # Which kind of registration this is, for the event: after a loss, after a failback.
    failed_over = agent._lost
    homeward = agent._homeward
    failed_back = homeward is not None and homeward.host == target.host
    agent.registrar = target
    agent.keepalive.flow = entry.flow
    agent._register_tx = None
    agent._loud = False
    agent._failures = 0
    agent._backoff = None
    agent.stuck_retrying = None
    agent._redirect_depth = 0
    agent._loss = None
    agent._lost_by = None
    agent._homeward = None
    old_mode = agent.mode
    agent.mode = "limited" if presence is not None and presence.limited else "full"
    if agent.mode == "limited":
        agent.contacts = None
    on_primary = presence is None or presence.is_connected_to_primary is not False
    agent.registrar_was_primary = on_primary
    if on_primary and agent.primary is None:
        agent.primary = target
    save_cache(agent, now, target, on_primary)
    agent._refresh_at = now + max(1.0, expires - min(agent.profile.refresh_margin, expires / 2))
    keep_alive = response.headers.get("ms-keep-alive")
    interval = agent.profile.keepalive_interval
    if keep_alive and agent.profile.use_server_keepalive_timeout:
        try:
            timeout = KeepAlive.parse(keep_alive).timeout
        except SipError:
            timeout = None
        if timeout:
            # The server's idle timeout bounds how long the flow may stay silent.
            interval = min(interval, float(timeout))
    agent.keepalive.start(now, interval)
    if agent._leaving is not None:
        old_target, old_flow = agent._leaving
        agent._leaving = None
        if old_flow != entry.flow:
            send_register(agent, now, old_target, Purpose.UNREGISTER, expires=0, flow=old_flow)
    if not on_primary and agent.primary is not None and agent.primary.host != target.host:
        agent.failback.start(now)
    else:
        agent.failback.stop()
    if not (refreshing and was_registered):
        kind = FailedBack if failed_back else FailedOver if failed_over else Registered
        agent._change(now, kind, target.host, target.source)
        contacts.fetch(agent, now)
    elif lost_binding:
        agent._change(now, BindingLost)
        agent._refresh_at = None
        send_register(agent, now, target, Purpose.REGISTER, expires=agent._expires, flow=entry.flow)
    elif agent.mode != old_mode:
        agent._change(now, ServicesChanged, agent.mode == "full", target.host)
        contacts.fetch(agent, now)


def save_cache(agent: Agent, now: float, target: Target, on_primary: bool) -> None:
    if not agent.profile.uses_endpoint_cache:
        return
    # The cache holds the primary registrar (home server), never the backup [DD-BLOG].
    home = target if on_primary else agent.primary
    if home is None or home.address is None:
        return
    entry = CacheEntry(agent.user, home.host, home.port, home.transport, now, home.address)
    agent._cached = entry  # what a later round of this agent reads back
    agent._actions.append(SaveCache(entry))


def refresh(agent: Agent, now: float) -> None:
    if agent.registrar is None or agent.keepalive.flow is None:
        return
    first = agent.discovery.first_srv_targets
    if (
        not agent.profile.sticky_after_failover
        and first
        and (endpoint(agent.registrar) != endpoint(first[0]))
    ):
        # baresip 1.0: the next request goes back to the first SRV target.
        agent._plan = list(first)
        agent._register_tx = None
        rounds.advance(agent, now)
        return
    send_register(
        agent,
        now,
        agent.registrar,
        Purpose.REFRESH,
        expires=agent._expires,
        flow=agent.keepalive.flow,
    )


def granted_expires(response: Response, asked: int) -> int:
    value = response.headers.get("expires")
    if value and value.strip().isdigit():
        return int(value)
    try:
        contacts = parse_contacts(response.headers)
    except SipError:
        return asked
    for contact in contacts:
        if contact.expires is not None:
            return contact.expires
    return asked
