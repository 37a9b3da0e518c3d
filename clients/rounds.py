"""A sign-in round: the plan of targets it tries in order (:mod:`clients.plan`), the DNS
steps that add to it (:mod:`clients.discovery`), the next target, and giving up (a
:class:`~clients.states.Backoff`, then a new round).

Rounds start at sign-in, after a failed round, after a registrar was lost
(:mod:`clients.failover`) and after a deregistering NOTIFY (:mod:`clients.notify`); a failback
is a round too (:func:`clients.failover.go_home`).  The round's data is the agent's ``round``
(:class:`clients.states.Round`).

Helpers of :class:`clients.agent.Agent`: plain functions taking the agent; they change the
visible state only through ``Agent._change`` and ``Agent._progress`` (clients/states.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from clients import registration
from clients.cache import CacheUnreadable
from clients.discovery import Query, first_address
from clients.dns import DnsAnswer
from clients.events import (
    CacheIgnored,
    DiscoveryStarted,
    DnsAnswered,
    LookupSent,
    RoundFailed,
    RoundReason,
    SignedOut,
    SignInStarted,
    SignOutReason,
)
from clients.plan import (
    DISCOVER,
    Discover,
    PlanItem,
    Target,
    is_ip,
    remembered,
)
from clients.requests import Purpose
from clients.states import Backoff
from emulator.sip.errors import SipError
from emulator.sip.uri import SipUri

if TYPE_CHECKING:
    from clients.agent import Agent


def from_memory(agent: Agent, after_loss: bool) -> list[Target]:
    if not after_loss:
        return []
    return remembered(agent.primary, agent.backup, lost_primary=agent.registrar_was_primary)


def begin(agent: Agent, now: float, reason: RoundReason, *, after_loss: bool) -> None:
    plan: list[PlanItem] = list(from_memory(agent, after_loss))
    trust_cache = False
    if agent.profile.uses_endpoint_cache:
        cached = agent._cached
        if isinstance(cached, CacheUnreadable):
            if agent.notes:
                agent._note(CacheIgnored(now, agent.name, cached.reason))
        elif cached is not None:
            plan.append(
                Target(cached.home_server, cached.port, cached.transport, cached.address, "cache")
            )
            # The first cache_only_rounds rounds trust the cache: no discovery.
            trust_cache = agent._failures < agent.profile.cache_only_rounds
    if not trust_cache:
        plan.append(DISCOVER)
    agent.round.plan = plan
    agent.round.redirect_depth = 0
    agent.round.homeward = None
    agent.round.timed_out = False
    agent.registrar = None
    agent.keepalive.flow = None
    agent.mode = None
    if isinstance(plan[0], Target):
        agent._progress(now, SignInStarted, reason)
    else:
        agent._progress(now, DiscoveryStarted, reason)
    advance(agent, now)


def backoff_over(agent: Agent, now: float, backoff: Backoff) -> None:
    """The backoff after a failed round ran out: retry its target, or start a new round."""
    if backoff.target is not None:
        agent.round.plan = [backoff.target, *agent.round.plan]
        advance(agent, now)
    else:
        # Still recovering from a lost registrar: the backup stays first in the plan.
        begin(agent, now, RoundReason.RETRY, after_loss=agent._lost)


def advance(agent: Agent, now: float) -> None:
    while agent.round.plan:
        item = agent.round.plan.pop(0)
        if isinstance(item, Discover):
            # A new discovery round: a Director it finds may redirect again.
            agent.round.redirect_depth = 0
            agent.discovery.begin(agent.profile, agent.domain)
            if next_step(agent, now):
                return
            continue
        try_target(agent, now, item)
        return
    if agent.profile.srv_first_target_only and next_step(agent, now):
        return  # SIPE: the next discovery name after its one target failed [3P]
    give_up(agent, now)


def next_step(agent: Agent, now: float) -> bool:
    """Query the next discovery name; False when none is left."""
    step = agent.discovery.next_step()
    if step is None:
        return False
    name, qtype, transport, port = step
    agent._progress(now, LookupSent, qtype, name)
    purpose: Literal["naptr", "srv", "a"] = (
        "srv" if qtype == "SRV" else "naptr" if qtype == "NAPTR" else "a"
    )
    discovery = agent.discovery
    parallel = agent.profile.parallel_lookups
    if parallel and qtype == "A" and discovery.was_prefetched(name):
        # Asked beside the SRV query: its answers decide, once every query is back.
        discovery.awaiting = step
        settle(agent, now)
        return True
    send = discovery.start_query(now, agent.rng, name, qtype, purpose, transport, port)
    if send is not None:
        agent._actions.append(send)
    if parallel and qtype == "SRV":
        # linphone 5.1: the A and AAAA of the domain go out with the SRV query [3P].
        for later, later_type, _, _ in discovery.steps:
            if later_type == "A" and not discovery.was_prefetched(later):
                discovery.mark_prefetched(later)
                ask_addresses(agent, now, later)
    if send is None:
        receive_cached(agent, now)  # the client's DNS cache answered
    return True


def ask_addresses(agent: Agent, now: float, name: str) -> None:
    """Ask ``name``'s A and AAAA beside the other queries (``Profile.parallel_lookups``)."""
    for qtype in ("A", "AAAA"):
        send = agent.discovery.start_side(now, agent.rng, name, qtype)
        if send is not None:
            agent._actions.append(send)


def settle(agent: Agent, now: float) -> None:
    """Every query of a parallel discovery is back: go on with what it waits for, the SRV
    targets with the addresses found (targets without one are left out) or a prefetched A
    step's name (``Profile.parallel_lookups``)."""
    discovery = agent.discovery
    awaiting = discovery.awaiting
    if awaiting is None or discovery.busy:
        return
    discovery.awaiting = None
    if isinstance(awaiting, list):
        resolved: list[Target] = []
        for target in awaiting:
            address = discovery.address_of(target.host)
            if address is not None:
                resolved.append(target.with_address(address))
        discovery.first_srv_targets = resolved
        agent.round.plan = [*resolved, *agent.round.plan]
        advance(agent, now)
        return
    name, _, transport, port = awaiting
    address = discovery.address_of(name)
    if address is None:
        if not next_step(agent, now):
            advance(agent, now)
        return
    discovery.steps = ()
    agent.round.plan = [Target(name, port, transport, address, "a"), *agent.round.plan]
    advance(agent, now)


def give_up(agent: Agent, now: float) -> None:
    # RFC 5626 §4.5 counts the failure that just happened: the first retry waits
    # base-time * 2^1 * [0.5, 1], i.e. 30-60 s with the defaults.
    agent._failures += 1
    timeout_retry = agent.profile.retry_after_timeout
    if timeout_retry is not None and agent.round.timed_out:
        delay = timeout_retry  # linphone 5.1: 2 s after a REGISTER's Timer F
    else:
        delay = agent.profile.backoff.delay(agent._failures, agent.rng)
    agent.round.timed_out = False
    free = agent.first_free(now)
    if free is not None:
        # A server that answered 503 with Retry-After: the next round comes no sooner than
        # the first such server is free again (RFC 3261 §21.5.4).
        delay = max(delay, free - now)
    agent._backoff = Backoff(now + delay)
    if agent._machine.state != "signed-out":
        agent._change(now, SignedOut, SignOutReason.NO_REGISTRAR, delay)
    elif agent.notes:
        agent._note(RoundFailed(now, agent.name, delay))
    agent.round.loud = False


def try_target(agent: Agent, now: float, target: Target) -> None:
    if agent.deferred_until(target, now) is not None:
        # RFC 3261 §21.5.4: nothing to a server whose Retry-After has not passed.
        advance(agent, now)
        return
    if target.address is None:
        try:
            SipUri.parse(f"sip:{target.host}")
        except SipError:
            advance(agent, now)
            return
        if is_ip(target.host):
            try_target(agent, now, target.with_address(target.host))
            return
        send = agent.discovery.start_query(
            now, agent.rng, target.host, "A", "resolve", target.transport, target.port, target
        )
        if send is None:
            receive_cached(agent, now)  # the client's DNS cache answered
        else:
            agent._actions.append(send)
        return
    registration.send_register(agent, now, target, Purpose.REGISTER, expires=agent._expires)


def receive_dns(agent: Agent, data: bytes, now: float) -> None:
    found = agent.discovery.answered(data, now)
    if found is not None:
        use_answer(agent, now, *found)


def receive_cached(agent: Agent, now: float) -> None:
    """The DNS cache answered the query just started: go on as with an answer from the wire."""
    found = agent.discovery.take_cached()
    if found is not None:
        use_answer(agent, now, *found)


def use_answer(agent: Agent, now: float, query: Query, answer: DnsAnswer) -> None:
    if agent.notes:
        records = tuple(r.rdata_text() for r in answer.records)
        agent._note(DnsAnswered(now, agent.name, query.qtype, query.name, answer.rcode, records))
    if query.purpose == "address":
        settle(agent, now)  # Discovery.answered kept its addresses
        return
    if not answer.ok:
        dns_failed(agent, now, query)
        return
    if query.purpose == "naptr":
        # RFC 3263 §4.1: a usable record names the SRV name to ask; none, and the profile's
        # SRV names follow as without NAPTR (libre naptr_handler) [3P].
        if not agent.discovery.naptr_chosen(query, answer):
            dns_failed(agent, now, query)
        elif not next_step(agent, now):
            advance(agent, now)
    elif query.purpose == "srv":
        targets = agent.discovery.srv_targets(query, answer, agent.rng)
        if targets is None:
            dns_failed(agent, now, query)
            return
        if agent.profile.srv_first_target_only:
            targets = targets[:1]  # SIPE: the first target only [3P]
        if agent.profile.parallel_lookups:
            # linphone 5.1: A and AAAA of every target, all at once; the targets wait for
            # their answers (the additional section's addresses are not used) [3P].
            agent.discovery.awaiting = targets
            for host in dict.fromkeys(t.host for t in targets):
                if not is_ip(host):
                    ask_addresses(agent, now, host)
                else:
                    agent.discovery.found_addresses()[host] = [host]
            settle(agent, now)
            return
        agent.round.plan = [*targets, *agent.round.plan]
        advance(agent, now)
    elif query.purpose == "a":
        agent.discovery.steps = ()
        address = first_address(answer)
        target = Target(query.name, query.step_port, query.step_transport, address, "a")
        agent.round.plan = [target, *agent.round.plan]
        advance(agent, now)
    else:
        assert query.target is not None
        resolved = query.target.with_address(first_address(answer))
        remember_address(agent, resolved)
        registration.send_register(agent, now, resolved, Purpose.REGISTER, expires=agent._expires)


def dns_failed(agent: Agent, now: float, query: Query) -> None:
    if query.purpose == "resolve":
        advance(agent, now)
    elif not next_step(agent, now):
        advance(agent, now)


def remember_address(agent: Agent, target: Target) -> None:
    primary, backup = agent.primary, agent.backup
    if primary is not None and primary.host == target.host and primary.address is None:
        agent.primary = primary.with_address(target.address)
    if backup is not None and backup.host == target.host and backup.address is None:
        agent.backup = backup.with_address(target.address)
