"""Back ends of pools (SQL principal, mirror, witness) and what they mean for users, sans-IO.

Each Front End pool stores its users' persistent data (contact lists; the "static" and
"dynamic" databases of field report R2) on a back end: a principal SQL server, optionally a
mirror, optionally a witness.  :class:`BackEnd` follows the product profile (docs/backends.md):

``lync2010`` (R2)
    The front end is not mirroring-aware: it uses the server the topology names.  When that
    server is down, users sign in with *limited functionality* (no contact list, no presence)
    until it returns, or until the administrative procedure of R2 points the front end at the
    mirror (remove the principal's identity, rename the mirror, repoint DNS, restart the front
    end): :meth:`BackEnd.r2_procedure`.
``lync2013`` / ``sfb2015`` (R3)
    Synchronous mirroring.  With a witness, losing the principal fails over to the mirror
    automatically within ``rto`` (default 5 min).  Without a witness an administrator must fail
    over (:meth:`BackEnd.admin_failover`); meanwhile active users continue for ``grace``
    (default 30 min), then switch to *resiliency mode*.  Losing the principal and the mirror, or
    either of them and the witness, makes the back end unavailable even if the principal still
    runs (no quorum): users switch to resiliency mode after ``grace`` too.

:meth:`BackEnd.mode` says what users of the pool get now: ``full``, ``limited`` (Lync 2010) or
``resiliency`` (Lync 2013/SfB); the last two are the same on the wire (``presence-state``
with ``user-services-state=unavailable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BackEnd", "BackEndSpec", "BackEndTransition", "Mode", "ServerRole"]

Mode = Literal["full", "limited", "resiliency"]
ServerRole = Literal["principal", "mirror", "witness"]


@dataclass(frozen=True, slots=True)
class BackEndSpec:
    """A pool's back end as the topology describes it."""

    principal: str = "sql01"
    mirror: str | None = None
    witness: str | None = None
    rto: float = 300.0
    """Automatic failover time with a witness (R3: engineering target RTO 5 min)."""
    grace: float = 1800.0
    """How long active users continue without a working back end before resiliency mode (R3:
    about 30 minutes).  Lync 2013/SfB only."""


@dataclass(frozen=True, slots=True)
class BackEndTransition:
    """Something the back end did on its own or by administration (for timelines)."""

    now: float
    text: str


class BackEnd:
    """The back end of one pool: server states, the active database, and the users' mode."""

    def __init__(self, spec: BackEndSpec, profile: str, *, now: float = 0.0) -> None:
        self.spec = spec
        self.profile = profile
        self.up: dict[str, bool] = {spec.principal: True}
        if spec.mirror:
            self.up[spec.mirror] = True
        if spec.witness:
            self.up[spec.witness] = True
        self.active = spec.principal
        """The server holding the databases (the principal, or the mirror after a failover)."""
        self._unavailable_since: float | None = None
        self._failover_at: float | None = None
        self._transitions: list[BackEndTransition] = []
        self._recompute(now)

    @property
    def mirroring_aware(self) -> bool:
        return self.profile != "lync2010"

    # -- faults and administration -----------------------------------------------------------

    def server(self, role: ServerRole) -> str | None:
        return {
            "principal": self.spec.principal,
            "mirror": self.spec.mirror,
            "witness": self.spec.witness,
        }[role]

    def set_server(self, role: ServerRole, up: bool, now: float) -> None:
        """A back-end server goes down or comes back.  ValueError if the role is not there."""
        name = self.server(role)
        if name is None:
            raise ValueError(f"this back end has no {role}")
        self.up[name] = up
        self._recompute(now)

    def admin_failover(self, now: float) -> str | None:
        """Invoke-CsDatabaseFailover (Lync 2013/SfB): the mirror becomes the active database.

        Returns None when done, or the reason it cannot be.
        """
        if not self.mirroring_aware:
            return (
                "Lync 2010 front ends are not mirroring-aware: apply the R2 procedure "
                "instead (r2-procedure)"
            )
        other = self._partner()
        if other is None:
            return "this back end has no mirror to fail over to"
        if not self.up[other]:
            return f"the mirror {other} is down"
        self._switch(other, now, "database failed over by the administrator")
        return None

    def r2_procedure(self, now: float) -> str | None:
        """R2's procedure (Lync 2010): remove the principal's identity, rename the mirror to the
        principal's name, repoint DNS, restart the front end; the front end then uses the
        mirror.  Returns None when done, or the reason it cannot be."""
        if self.mirroring_aware:
            return "R2's procedure is for Lync 2010; fail the database over instead"
        other = self._partner()
        if other is None:
            return "this back end has no mirror to repoint the front end to"
        if not self.up[other]:
            return f"the mirror {other} is down"
        self._switch(other, now, f"front end repointed to {other} (R2 procedure)")
        return None

    def _partner(self) -> str | None:
        """The server that is not active (the mirror, or the old principal after a failover)."""
        candidates = [s for s in (self.spec.principal, self.spec.mirror) if s]
        others = [s for s in candidates if s != self.active]
        return others[0] if others else None

    def _switch(self, server: str, now: float, text: str) -> None:
        self.active = server
        self._failover_at = None
        self._transitions.append(BackEndTransition(now, text))
        self._recompute(now)

    # -- state -------------------------------------------------------------------------------

    def _available(self) -> bool:
        """Whether the active database serves (with SQL mirroring's quorum rule)."""
        if not self.up[self.active]:
            return False
        if not self.mirroring_aware or self.spec.mirror is None or self.spec.witness is None:
            return True
        # Mirroring with a witness: the active server needs its partner or the witness (R3:
        # losing the mirror and the witness makes the back end unavailable, principal or not).
        partner = self._partner()
        assert partner is not None
        return self.up[partner] or self.up[self.spec.witness]

    def _recompute(self, now: float) -> None:
        if self._available():
            if self._unavailable_since is not None:
                self._transitions.append(BackEndTransition(now, "back end available"))
            self._unavailable_since = None
            self._failover_at = None
            return
        if self._unavailable_since is None:
            self._unavailable_since = now
            self._transitions.append(
                BackEndTransition(now, f"back end unavailable ({self._why()})")
            )
        # With a witness, the mirror takes over on its own when the witness sees the principal
        # gone and both the mirror and the witness are up (R3: automatic, RTO 5 min).
        partner = self._partner()
        automatic = (
            self.mirroring_aware
            and self.spec.witness is not None
            and partner is not None
            and not self.up[self.active]
            and self.up[partner]
            and self.up[self.spec.witness]
        )
        if automatic and self._failover_at is None:
            self._failover_at = now + self.spec.rto
        elif not automatic:
            self._failover_at = None

    def _why(self) -> str:
        down = [name for name, up in self.up.items() if not up]
        return ", ".join(f"{name} down" for name in down) or "no quorum"

    def next_deadline(self) -> float | None:
        return self._failover_at

    def handle_timer(self, now: float) -> None:
        if self._failover_at is not None and now >= self._failover_at:
            partner = self._partner()
            assert partner is not None
            self._switch(partner, now, f"database failed over automatically to {partner}")

    def transitions(self) -> list[BackEndTransition]:
        out, self._transitions = self._transitions, []
        return out

    def mode(self, now: float) -> Mode:
        """What the pool's users get now."""
        if self._unavailable_since is None:
            return "full"
        if not self.mirroring_aware:
            return "limited"  # R2: limited functionality at once
        if now - self._unavailable_since < self.spec.grace:
            return "full"  # R3: active users continue for the grace period
        return "resiliency"

    def mode_changes_at(self) -> float | None:
        """When :meth:`mode` will change without any input (the end of the grace period)."""
        if self._unavailable_since is None or not self.mirroring_aware:
            return None
        return self._unavailable_since + self.spec.grace

    @property
    def available(self) -> bool:
        """Whether the databases can be written now (persistent changes, e.g. add a contact)."""
        return self._unavailable_since is None
