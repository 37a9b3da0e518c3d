"""What ``sipemu up`` prints when it stops: uptime, and per pool the requests answered by
method and status, registrations, failovers and failbacks, and the peak number of bindings.

:class:`UpTally` is a deployment listener (:meth:`Deployment.subscribe`), like the control
API's metrics: it counts the events the deployment reports, whatever the log settings.
Heartbeat OPTIONS between the pools are counted apart from the requests of clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.registrar import events as ev

__all__ = ["PoolTally", "UpTally"]


@dataclass
class PoolTally:
    """One pool's counts."""

    answered: dict[tuple[str, int], int] = field(default_factory=dict)
    """(method, status) -> requests of clients answered."""
    heartbeats: int = 0
    """Heartbeat OPTIONS of other pools answered."""
    registrations: int = 0
    """Bindings added (a new registration; refreshes are not counted)."""
    refreshes: int = 0
    failovers: int = 0
    failbacks: int = 0
    bad_messages: int = 0
    bindings: int = 0
    """Bindings now (by the events: added less removed and expired; 0 when restarted)."""
    peak_bindings: int = 0


class UpTally:
    """Counts what a live deployment reports (subscribe :meth:`observe`); :meth:`lines` is
    the summary.  ``clock``: the wall clock's seconds (monotonic), for the uptime."""

    def __init__(self, pools: list[str], clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self.pools = {name: PoolTally() for name in pools}
        self.dns_queries = 0

    def observe(self, source: str, event: object) -> None:
        pool = self.pools.get(source)
        if pool is None:
            if source == "dns":
                self.dns_queries += 1
            return
        if isinstance(event, ev.Exchanged):
            if event.heartbeat:
                pool.heartbeats += 1
            else:
                key = (event.method, event.status)
                pool.answered[key] = pool.answered.get(key, 0) + 1
        elif isinstance(event, ev.BindingAdded):
            pool.registrations += 1
            pool.bindings += 1
            pool.peak_bindings = max(pool.peak_bindings, pool.bindings)
        elif isinstance(event, ev.BindingRefreshed):
            pool.refreshes += 1
        elif isinstance(event, ev.BindingRemoved | ev.BindingExpired):
            pool.bindings = max(0, pool.bindings - 1)
        elif isinstance(event, ev.FailedOver):
            pool.failovers += 1
        elif isinstance(event, ev.FailedBack):
            pool.failbacks += 1
        elif isinstance(event, ev.BadMessage):
            pool.bad_messages += 1
        elif isinstance(event, str) and event.startswith("pool st"):
            pool.bindings = 0  # stopped or started: a fresh process has no bindings

    def lines(self, stopped_by: str | None = None) -> list[str]:
        """The summary, one line per pool and a head line."""
        uptime = self.clock() - self.started
        why = f" ({stopped_by})" if stopped_by else ""
        head = (
            f"sipemu: summary after {_duration(uptime)}{why}: {_n(self.dns_queries, 'DNS query')}"
        )
        lines = [head]
        for name, pool in self.pools.items():
            answered = sum(pool.answered.values())
            by_status = ", ".join(
                f"{method} {status}: {count}"
                for (method, status), count in sorted(pool.answered.items())
            )
            lines.append(
                f"  {name}: {_n(answered, 'request')} answered"
                + (f" ({by_status})" if by_status else "")
                + f"; {_n(pool.registrations, 'registration')}, {_n(pool.refreshes, 'refresh')}, "
                f"peak {_n(pool.peak_bindings, 'binding')}; {_n(pool.failovers, 'failover')}, "
                f"{_n(pool.failbacks, 'failback')}; {_n(pool.heartbeats, 'heartbeat')} answered"
                + (f"; {_n(pool.bad_messages, 'malformed message')}" if pool.bad_messages else "")
            )
        return lines


def _n(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    plural = (
        noun[:-1] + "ies" if noun.endswith("y") else noun + ("es" if noun.endswith("sh") else "s")
    )
    return f"{count} {plural}"


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s"
