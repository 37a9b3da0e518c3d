"""REGISTER: sending it (sign-in, refresh, unregister), its answers (200, 423 Interval Too
Brief, 3xx handed to :mod:`clients.redirects`), a sign-in REGISTER's failure (the next target,
or the retry some profiles make), the registered state's entry (the endpoint cache's save,
the refresh deadline, the keep-alive and failback cycles started), and the refresh.

Helpers of :class:`clients.agent.Agent`: plain functions taking the agent; they change the
visible state only through ``Agent._change`` and ``Agent._progress`` (clients/states.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients import contacts, redirects, rounds
from clients.cache import CacheEntry, SaveCache
from clients.events import (
    BindingLost,
    ExpiresRaised,
    FailedBack,
    FailedOver,
    Failure,
    FailureKind,
    RefreshFoundNew,
    Registered,
    RegisterSent,
    RoundEnded,
    ServicesChanged,
    SignedOut,
    SignOutReason,
    TargetFailed,
    TargetRetried,
)
from clients.plan import (
    Target,
    endpoint,
)
from clients.requests import Purpose, Tx
from clients.states import Backoff, Refresh
from emulator.net import Flow
from emulator.sip.errors import SipError
from emulator.sip.headers import KeepAlive, PresenceState, parse_contacts
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.numbers import MAX_DELTA_SECONDS, parse_number

if TYPE_CHECKING:
    from clients.agent import Agent
    from clients.profile import Profile


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
        if agent._machine.state != "registered":
            agent._progress(now, RegisterSent, target.host, target.source)


def answered(agent: Agent, now: float, entry: Tx, response: Response) -> None:
    """A final answer to a REGISTER (a sign-in's or a refresh's)."""
    purpose = entry.purpose
    status = response.status
    if status == 200:
        registered(agent, now, entry, response)
    elif status == 423 and entry.expires:
        minimum = response.headers.get("min-expires") or ""
        asked = _delta_seconds(minimum)
        wanted = asked if asked is not None else entry.expires * 2
        if wanted <= entry.expires:
            # RFC 3261 §10.2.8 allows a retry with at least Min-Expires; one that asks for
            # no more than was refused would loop.
            agent._tx_failed(entry, now, Failure(FailureKind.MIN_EXPIRES, 423, minimum))
            return
        agent._expires = wanted
        if agent.notes:
            agent._note(ExpiresRaised(now, agent.name, entry.target.host, agent._expires))
        send_register(agent, now, entry.target, purpose, expires=agent._expires, flow=entry.flow)
    elif status == 401 and _answers_challenge(agent, entry, response):
        # RFC 3261 §22.2: the same REGISTER again, with credentials (clients/credentials.py).
        send_register(agent, now, entry.target, purpose, expires=entry.expires, flow=entry.flow)
    elif 300 <= status < 400 and purpose is Purpose.REGISTER:
        redirects.redirected(agent, now, entry, response)
    elif 300 <= status < 400 and agent.profile.follows_redirect:
        if agent.profile.follows_refresh_redirect:
            redirects.refresh_redirected(agent, now, entry, response)
        else:
            stop(agent, now, entry, Failure(FailureKind.STATUS, status, response.reason))
    else:
        if status == 503 and agent.profile.honours_retry_after:
            _retry_after(agent, now, entry, response)
        agent._tx_failed(entry, now, Failure(FailureKind.STATUS, status, response.reason))


def _answers_challenge(agent: Agent, entry: Tx, response: Response) -> bool:
    """Whether the client answers this 401 (it has credentials, the challenge is one it knows,
    and either it sent none or the nonce was stale)."""
    credentials = agent.credentials
    if credentials is None:
        return False
    try:
        sent = parse_message(entry.tx.data)
    except SipError:
        return False
    return credentials.challenged(response, sent if isinstance(sent, Request) else None)


def _retry_after(agent: Agent, now: float, entry: Tx, response: Response) -> None:
    """A 503's ``Retry-After`` (RFC 3261 §20.33: delta-seconds, then an optional comment and
    parameters): nothing more goes to that server until it has passed (§21.5.4)."""
    value = response.headers.get("retry-after") or ""
    seconds = _delta_seconds(value.split(";", 1)[0].split("(", 1)[0].strip())
    if seconds:
        agent.defer(now, entry.target, now + seconds)


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
    homeward = agent.round.homeward
    failed_back = homeward is not None and homeward.host == target.host
    agent.registrar = target
    agent.keepalive.flow = entry.flow
    agent.round.loud = False
    agent._failures = 0
    agent._backoff = None
    agent.stuck_retrying = None
    agent.round.redirect_depth = 0
    agent._loss = None
    agent._lost_by = None
    agent.round.homeward = None
    old_mode = agent.mode
    agent.mode = "limited" if presence is not None and presence.limited else "full"
    if agent.mode == "limited":
        agent.contacts = None
    on_primary = presence is None or presence.is_connected_to_primary is not False
    agent.registrar_was_primary = on_primary
    if on_primary and agent.primary is None:
        agent.primary = target
    save_cache(agent, now, target, on_primary)
    agent._refresh = Refresh(agent.profile.refresh_at(now, expires))
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
    if agent.round.leaving is not None:
        old_target, old_flow = agent.round.leaving
        agent.round.leaving = None
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
        agent._refresh = None
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
        agent.round.plan = list(first)
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


def stop(agent: Agent, now: float, entry: Tx, failure: Failure, *, noted: bool = False) -> None:
    """The profile gives up for good after ``failure``: signed out, no retry, nothing armed
    (``Profile.final_statuses``, ``Profile.follows_refresh_redirect``).  ``noted``: the
    failure's note was made and its flow closed already."""
    if not noted:
        if agent.notes:
            agent._note(TargetFailed(now, agent.name, entry.target.host, failure))
        agent._close(entry.flow)
    # _close spares the registrar's flow: forget it first, or it is never closed.
    flow, agent.keepalive.flow = agent.keepalive.flow, None
    if flow is not None:
        agent._close(flow)
    agent.round.plan = []
    agent.round.loud = False
    agent._refresh = None
    agent._backoff = None
    agent.keepalive.stop()
    agent.failback.stop()
    agent.registrar = None
    if agent._machine.state != "signed-out":
        agent._change(now, SignedOut, SignOutReason.REFUSED, 0.0, failure, entry.target.host)


def _delta_seconds(value: str) -> int | None:
    """A header's delta-seconds (RFC 3261 §25.1: ASCII digits, at most 2**32-1), or None."""
    try:
        return parse_number(value, "delta-seconds", MAX_DELTA_SECONDS)
    except SipError:
        return None


def granted_expires(response: Response, asked: int) -> int:
    value = response.headers.get("expires")
    granted = _delta_seconds(value or "")
    if granted is not None:
        return granted
    try:
        contacts = parse_contacts(response.headers)
    except SipError:
        return asked
    for contact in contacts:
        if contact.expires is not None:
            return contact.expires
    return asked


def ends_round(profile: Profile, failure: Failure) -> bool:
    """Whether ``failure`` (a final answer) ends the round instead of moving on to the next
    target (``Profile.next_target_statuses``)."""
    if failure.kind is FailureKind.MIN_EXPIRES:
        return profile.next_target_statuses is not None
    if failure.kind is not FailureKind.STATUS or failure.status is None:
        return False
    return not profile.moves_on_after(failure.status)


def failed(agent: Agent, entry: Tx, now: float, failure: Failure, redirect_refused: bool) -> None:
    """A sign-in REGISTER failed (no answer, a connection failure, a refusal): the next
    target, or a retry of the same one for the profiles that keep retrying one server."""
    if agent.notes:
        agent._note(TargetFailed(now, agent.name, entry.target.host, failure))
    agent._close(entry.flow)
    profile = agent.profile
    if (
        entry.target.source == "redirect"
        and profile.retries_dead_redirect_target
        and not redirect_refused
    ):
        # linphone 5.1 keeps sending REGISTERs to the first Contact of a 301.
        agent._failures += 1
        delay = profile.backoff.delay(agent._failures, agent.rng)
        agent._backoff = Backoff(now + delay, entry.target)
        agent.stuck_retrying = entry.target.host
        agent._progress(now, TargetRetried, failure, entry.target.host)
        return
    if redirect_refused and profile.retries_refused_redirect:
        # baresip 1.0 retries the same server after a 301 it does not follow, after its
        # growing random backoff (54.6 s, then 71.3 s observed).
        if profile.redirect_refused_backoff:
            agent._failures += 1
            delay = profile.backoff.delay(agent._failures, agent.rng)
        else:
            assert profile.redirect_as_failure_retry is not None
            delay = profile.redirect_as_failure_retry
        agent._backoff = Backoff(now + delay, entry.target)
        agent.stuck_retrying = entry.target.host
        if agent._machine.state != "signed-out":
            agent._change(
                now,
                SignedOut,
                SignOutReason.REFUSED_REDIRECT,
                delay,
                failure,
                entry.target.host,
            )
        agent.round.loud = False
        return
    if failure.kind is FailureKind.STATUS and failure.status in profile.final_statuses:
        # linphone 5.1 never retries a 404: signed out until the user signs in again.
        stop(agent, now, entry, failure, noted=True)
        return
    agent.round.timed_out = failure.kind is FailureKind.TIMEOUT
    if ends_round(profile, failure):
        # baresip 1.0 (libre): a final answer other than a 503 ends the request; the next
        # comes after the backoff, with a new lookup (a 404 from fe1, fe2 never tried).
        if agent.notes:
            agent._note(RoundEnded(now, agent.name, entry.target.host, failure))
        agent.round.plan = []
    elif not profile.srv_failover and entry.target.source == "srv":
        agent.round.plan = [
            p for p in agent.round.plan if not (isinstance(p, Target) and p.source == "srv")
        ]
    rounds.advance(agent, now)
