"""The pools' own configuration that the administrator may change at run time, sans-IO.

What the Central Management Store replicates to every pool about the pools themselves, as one
object the deployment's :class:`~emulator.operations.Operations` owns and every pool core
reads (it hangs on the shared :class:`~emulator.admin.Directory`, so a restarted pool's fresh
core sees it):

* the **backup pairings** (which pool is each pool's backup registrar; the topology's
  ``backup`` keys at the start, changed by ``set-backup``);
* the **resiliency timers** (the topology's ``[resiliency]`` at the start, changed by
  ``set-timers``);
* the administrator's **pool failovers** (``Invoke-CsPoolFailOver`` /
  ``Invoke-CsPoolFailBack``; docs/backends.md, "Pool failover and failback").

A pool failover's phase is a pure function of time (:meth:`PoolFailover.phase`): the cores
need no message to know that a failover has completed, only a deadline to say so
(:meth:`Pairings.deadline`).  :attr:`Pairings.version` grows with every change, so that a core
can tell a change it has not yet reconciled (``Pool.configuration_changed``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from emulator.topology import ResiliencySettings, Topology

__all__ = ["TIMER_KEYS", "FailoverPhase", "Pairings", "PoolFailover"]

FailoverPhase = Literal["failing-over", "failed-over", "failing-back", "failed-back"]
"""Where a pool failover is: ``Invoke-CsPoolFailOver`` ran and has not completed (the backup
serves the pool's users in resiliency mode), completed (full function at the backup),
``Invoke-CsPoolFailBack`` ran and has not completed (the home pool serves its users in
resiliency mode), completed (as if nothing had happened)."""

TIMER_KEYS: Mapping[str, str] = {
    "failover_interval": "failover_detection_interval",
    "failback_interval": "failback_detection_interval",
    "heartbeat_interval": "heartbeat_interval",
    "heartbeat_timeout": "heartbeat_timeout",
}
"""``set-timers`` step key -> the :class:`~emulator.topology.ResiliencySettings` field."""


@dataclass(frozen=True, slots=True)
class PoolFailover:
    """One administrator's failover of ``pool`` (the failed pool, ``-PoolFqdn``) to
    ``backup``, and its failback once invoked."""

    pool: str
    backup: str
    started: float
    """When ``Invoke-CsPoolFailOver`` ran."""
    completes: float
    """When the failover completes (the backup gives full function from then on)."""
    failback_started: float | None = None
    """When ``Invoke-CsPoolFailBack`` ran (None: not yet)."""
    failback_completes: float | None = None

    def phase(self, now: float) -> FailoverPhase:
        if self.failback_started is None:
            return "failing-over" if now < self.completes else "failed-over"
        assert self.failback_completes is not None
        return "failing-back" if now < self.failback_completes else "failed-back"

    def next_change(self, now: float) -> float | None:
        """When :meth:`phase` changes next after ``now`` (None: never again)."""
        for at in (self.completes, self.failback_completes):
            if at is not None and at > now:
                return at
        return None


class Pairings:
    """Backup pairings, resiliency timers and pool failovers of one deployment (mutable)."""

    __slots__ = ("_backups", "failovers", "history", "resiliency", "version")

    def __init__(self, topology: Topology) -> None:
        self._backups: dict[str, str | None] = {p.fqdn: p.backup for p in topology.pools}
        self.resiliency: ResiliencySettings = topology.resiliency
        self.failovers: dict[str, PoolFailover] = {}
        """Failed pool -> its latest failover (kept after failback, for the record)."""
        self.history: list[tuple[float, str, str]] = []
        """(time, pool, what) for every change, in order: the record a scenario reads."""
        self.version = 0

    # -- queries ----------------------------------------------------------------------------

    def backup_of(self, pool: str) -> str | None:
        return self._backups.get(pool)

    def backed_up_by(self, backup: str) -> list[str]:
        """The pools whose backup registrar ``backup`` is, in topology order."""
        return [pool for pool, other in self._backups.items() if other == backup]

    def failover(self, pool: str) -> PoolFailover | None:
        return self.failovers.get(pool)

    def phase(self, pool: str, now: float) -> FailoverPhase | None:
        """Where ``pool``'s latest failover is (None: it was never failed over)."""
        found = self.failovers.get(pool)
        return None if found is None else found.phase(now)

    def failed_over_to(self, backup: str, now: float) -> list[str]:
        """The pools failed over to ``backup`` and not yet failing back."""
        return [
            pool
            for pool, found in self.failovers.items()
            if found.backup == backup and found.phase(now) in ("failing-over", "failed-over")
        ]

    def deadline(self, pool: str, now: float) -> float | None:
        """The next time a failover that concerns ``pool`` (as the failed pool or its backup)
        changes phase after ``now``."""
        best: float | None = None
        for found in self.failovers.values():
            if pool not in (found.pool, found.backup):
                continue
            at = found.next_change(now)
            if at is not None and (best is None or at < best):
                best = at
        return best

    # -- changes (emulator.operations validates them first) ---------------------------------

    def _changed(self, now: float, pool: str, what: str) -> None:
        self.version += 1
        self.history.append((now, pool, what))

    def fail_over(self, pool: str, now: float, takes: float) -> PoolFailover:
        backup = self._backups[pool]
        assert backup is not None
        found = PoolFailover(pool, backup, now, now + takes)
        self.failovers[pool] = found
        self._changed(now, pool, "failover")
        return found

    def fail_back(self, pool: str, now: float, takes: float) -> PoolFailover:
        found = dataclasses.replace(
            self.failovers[pool], failback_started=now, failback_completes=now + takes
        )
        self.failovers[pool] = found
        self._changed(now, pool, "failback")
        return found

    def set_backup(self, pool: str, backup: str | None, now: float) -> None:
        self._backups[pool] = backup
        self._changed(now, pool, f"backup {backup or 'none'}")

    def set_timers(self, changes: Mapping[str, float], now: float) -> None:
        """``changes``: :data:`TIMER_KEYS` keys -> seconds."""
        fields = {TIMER_KEYS[key]: float(value) for key, value in changes.items()}
        self.resiliency = dataclasses.replace(self.resiliency, **fields)
        what = ", ".join(f"{key}={value:g}" for key, value in changes.items())
        self._changed(now, "*", f"timers {what}")
