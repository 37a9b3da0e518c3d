"""Losing a registrar and coming home: a loss is noticed (keep-alive or refresh failed, pong
missing, connection lost), waited out for the profile's detection timeout
(:class:`~clients.states.LossTimer`), then the agent signs out and starts a failover round;
the failback probes' answers (:mod:`clients.failback`) and a ``P-Preferred-Registrar`` or
redirected refresh start a failback round (:func:`go_home`), leaving the old registration
to be unregistered once the new one holds (the round's ``leaving``).

Helpers of :class:`clients.agent.Agent`: plain functions taking the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients import registration, rounds
from clients.events import (
    FailbackReason,
    FailbackStarted,
    Failure,
    FailureKind,
    Loss,
    LossKind,
    LossNoticed,
    RegistrarLost,
    RoundEnded,
    RoundReason,
    StaleRefreshFailed,
    TargetFailed,
)
from clients.plan import (
    DISCOVER,
    Target,
    endpoint,
)
from clients.requests import Tx
from clients.states import Backoff, LossTimer, Refresh

if TYPE_CHECKING:
    from clients.agent import Agent


def refresh_failed(agent: Agent, now: float, entry: Tx, failure: Failure) -> None:
    """A refresh got no answer, a refusal or a broken connection.

    Only a refresh of the registration the agent holds can lose it: one sent before the
    agent moved on (a failback, a failover by NOTIFY) is about the registrar it left, and is
    ignored (noted).  A profile whose refresh goes on to the next SRV target
    (``refresh_failure`` "next-target", baresip) tries the targets after the failed one
    without a new lookup; the others lose the registrar."""
    if agent.registrar is not entry.target or entry.flow != agent.keepalive.flow:
        if agent.notes:
            agent._note(StaleRefreshFailed(now, agent.name, entry.target.host, failure))
        return
    if (
        failure.kind is FailureKind.STATUS
        and failure.status in agent.profile.refresh_final_statuses
    ):
        # linphone 5.1: a 480 to its refresh, and no REGISTER afterwards [3P].
        registration.stop(agent, now, entry, failure)
        return
    if failure.kind is FailureKind.TIMEOUT and heard_lately(agent, now, entry):
        # linphone 5.1: the flow heard from its server within 60 s: not suspect, the
        # REGISTER goes to the same registrar again after its retry delay [3P].
        if agent.notes:
            agent._note(TargetFailed(now, agent.name, entry.target.host, failure))
        retry = agent.profile.retry_after_timeout
        if retry is None:
            agent._failures += 1
            retry = agent.profile.backoff.delay(agent._failures, agent.rng)
        agent._refresh = Refresh(now + retry)
        return
    profile = agent.profile
    moves_on = failure.kind in (FailureKind.TIMEOUT, FailureKind.CONNECTION) or (
        failure.kind is FailureKind.STATUS
        and profile.next_target_statuses is not None
        and failure.status in profile.next_target_statuses
    )
    if profile.refresh_failure == "next-target" and moves_on:
        rest = _after(agent.discovery.first_srv_targets, entry.target)
        if rest:
            if agent.notes:
                agent._note(TargetFailed(now, agent.name, entry.target.host, failure))
            agent._refresh = None
            agent.keepalive.stop()
            agent.round.plan = list(rest)
            agent.round.redirect_depth = 0
            rounds.advance(agent, now)
            return
    if registration.ends_round(profile, failure):
        refresh_refused(agent, now, entry, failure)
        return
    registrar_lost(agent, now, Loss(LossKind.REFRESH_FAILED, failure))


def refresh_refused(agent: Agent, now: float, entry: Tx, failure: Failure) -> None:
    """A refresh answered with a final failure that ends the round (baresip 1.0: a 480 from
    its registrar): signed out, the backoff, then a new round with a new lookup; the
    registrars it remembers are not tried first (``Profile.next_target_statuses``)."""
    if agent.notes:
        agent._note(RoundEnded(now, agent.name, entry.target.host, failure))
    # _close spares the registrar's flow: forget it first, or it is never closed.
    flow, agent.keepalive.flow = agent.keepalive.flow, None
    if flow is not None:
        agent._close(flow)
    agent._refresh = None
    agent.keepalive.stop()
    agent.failback.stop()
    agent.registrar = None
    agent.round.plan = []
    rounds.give_up(agent, now)


def heard_lately(agent: Agent, now: float, entry: Tx) -> bool:
    """Whether something came in on ``entry``'s flow within the profile's
    ``flow_suspect_after`` (always False without it)."""
    limit = agent.profile.flow_suspect_after
    heard = agent.heard
    if limit is None or heard is None:
        return False
    last = heard.get(entry.flow)
    return last is not None and now - last < limit


def _after(targets: list[Target], failed: Target) -> list[Target]:
    """The targets after ``failed`` in ``targets`` (none if it is not among them)."""
    key = endpoint(failed)
    for index, target in enumerate(targets):
        if endpoint(target) == key:
            return targets[index + 1 :]
    return []


def registrar_lost(agent: Agent, now: float, loss: Loss) -> None:
    if agent._machine.state != "registered" or agent._loss is not None:
        return
    if agent.notes:
        host = agent.registrar.host if agent.registrar else "?"
        agent._note(LossNoticed(now, agent.name, host, loss))
    agent._lost_by = loss
    agent._refresh = None
    agent.keepalive.stop()
    agent.failback.stop()
    wait = agent.profile.failover_detection_timeout
    if agent.profile.loss_backoff:
        wait = agent.profile.backoff.delay(0, agent.rng)  # finch's reconnection (SIPE) [3P]
    agent._loss = LossTimer(now + wait, loss)


def after_loss(agent: Agent, now: float, loss: Loss) -> None:
    # _close spares the registrar's flow: forget it first, or the dead one stays open.
    flow, agent.keepalive.flow = agent.keepalive.flow, None
    if flow is not None:
        agent._close(flow)
    agent._change(now, RegistrarLost, loss)
    retry = agent.profile.retry_after_timeout
    failure = loss.failure
    if retry is not None and failure is not None and failure.kind is FailureKind.TIMEOUT:
        # linphone 5.1: a REGISTER that got no answer is followed by a new round 2 s later.
        agent.round.loud = False
        agent._backoff = Backoff(now + retry)
        return
    rounds.begin(agent, now, RoundReason.FAILOVER, after_loss=True)


# ProbeHost (clients/failback.py): what the failback cycle asks of the agent.


def probe_answered(agent: Agent, now: float) -> None:
    if agent.primary is None or agent.registrar is None:
        return
    detection = agent.profile.failback_detection_timeout
    if agent.failback.answered(now, detection):
        go_home(
            agent,
            now,
            agent.primary.with_source("primary"),
            FailbackReason.PROBES_ANSWERED,
            seconds=detection,
            fallback=agent.registrar,
        )


def go_home(
    agent: Agent,
    now: float,
    target: Target,
    reason: FailbackReason,
    *,
    by: str = "",
    seconds: float = 0.0,
    fallback: Target | None = None,
) -> None:
    """Register at ``target``; should that fail, at ``fallback`` (the registrar the client
    is still registered with, when nothing removed that binding), then discovery."""
    if agent.registrar is not None and agent.keepalive.flow is not None:
        agent.round.leaving = (agent.registrar, agent.keepalive.flow)
    agent._refresh = None
    agent.keepalive.stop()
    agent.failback.stop()
    if agent.notes:
        agent._note(FailbackStarted(now, agent.name, target.host, reason, by, seconds))
    agent.round.plan = [target, fallback, DISCOVER] if fallback else [target, DISCOVER]
    agent.round.redirect_depth = 0
    agent.round.homeward = target
    rounds.advance(agent, now)
