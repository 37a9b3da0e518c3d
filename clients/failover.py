"""TODO."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients import rounds
from clients.events import (
    FailbackReason,
    FailbackStarted,
    Loss,
    LossNoticed,
    RegistrarLost,
    RoundReason,
)
from clients.plan import (
    DISCOVER,
    Target,
)
from clients.states import LossTimer

if TYPE_CHECKING:
    from clients.agent import Agent


def registrar_lost(agent: Agent, now: float, loss: Loss) -> None:
    if agent._machine.state != "registered" or agent._loss is not None:
        return
    if agent.notes:
        host = agent.registrar.host if agent.registrar else "?"
        agent._note(LossNoticed(now, agent.name, host, loss))
    agent._lost_by = loss
    agent._refresh_at = None
    agent.keepalive.stop()
    agent.failback.stop()
    agent._loss = LossTimer(now + agent.profile.failover_detection_timeout, loss)


def after_loss(agent: Agent, now: float, loss: Loss) -> None:
    # _close spares the registrar's flow: forget it first, or the dead one stays open.
    flow, agent.keepalive.flow = agent.keepalive.flow, None
    if flow is not None:
        agent._close(flow)
    agent._change(now, RegistrarLost, loss)
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
        agent._leaving = (agent.registrar, agent.keepalive.flow)
    agent._refresh_at = None
    agent.keepalive.stop()
    agent.failback.stop()
    if agent.notes:
        agent._note(FailbackStarted(now, agent.name, target.host, reason, by, seconds))
    agent._plan = [target, fallback, DISCOVER] if fallback else [target, DISCOVER]
    agent._redirect_depth = 0
    agent._homeward = target
    rounds.advance(agent, now)
