"""The deployment's administrative state and disaster-recovery actions, sans-IO.

* :class:`Directory`: which pool is each user's home (changed by ``force-move``), shared by
  every pool core; starts from the topology.  It carries the deployment's
  :class:`~emulator.pairing.Pairings` (backup pairings, timers, pool failovers).
* :class:`ContactStore`: the contact lists, kept in each pool's back end (a list lives on the
  user's home pool; a force-move does not carry it: field report R4).
* :class:`Administration`: the Central Management Store (its pool, ``move-cms``), the nightly
  contact-list export and its import, ``force-move``, and the rule that administrative actions
  fail while the pool hosting the CMS is down (R4).
* :class:`PersistentChat`: a Persistent Chat pool's databases and R5's ordered failover
  procedure; every step is validated (order and preconditions) and says why it is refused.

Every action returns ``None`` when done, or a sentence saying why it was refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.pairing import Pairings
    from emulator.registrar.presence import PresenceStore

__all__ = [
    "CHAT_STEPS",
    "Administration",
    "ContactStore",
    "Directory",
    "PersistentChat",
    "PersistentChatSpec",
]


class Directory:
    """User (normalised AOR) -> home pool FQDN; mutable at run time.  With it, what the CMS
    replicates about the pools themselves (:attr:`pairings`: backup pairings, resiliency
    timers, pool failovers), so that every pool core built on this directory sees them."""

    def __init__(self, homes: Mapping[str, str], pairings: Pairings | None = None) -> None:
        # The topology's users, read through until the first move copies them (memory: a
        # deployment of 100,000 generated users kept them twice, about 40 bytes a user).
        self._homes: Mapping[str, str] = homes
        self._own: dict[str, str] | None = None
        self.pairings = pairings
        """Set by the deployment's Operations (or by the first pool core built without one)."""
        self.presence: PresenceStore | None = None
        """The users' published presence (emulator/registrar/presence.py), shared by the pool
        cores built on this directory; made by the first of them."""

    def get(self, aor: str) -> str | None:
        return self._homes.get(aor)

    def users_of(self, pool: str) -> list[str]:
        return sorted(aor for aor, home in self._homes.items() if home == pool)

    def move(self, aors: Iterable[str], pool: str) -> None:
        own = self._own
        if own is None:
            own = self._own = dict(self._homes)
            self._homes = own
        for aor in aors:
            own[aor] = pool

    def __len__(self) -> int:
        return len(self._homes)


class ContactStore:
    """Contact lists by pool (whose back end holds them) and user."""

    def __init__(self) -> None:
        self._lists: dict[str, dict[str, list[str]]] = {}

    def of(self, pool: str, aor: str) -> list[str] | None:
        """The user's list on that pool's back end; None when that back end has none for it."""
        found = self._lists.get(pool, {}).get(aor)
        return list(found) if found is not None else None

    def put(self, pool: str, aor: str, contacts: Iterable[str]) -> None:
        self._lists.setdefault(pool, {})[aor] = list(contacts)

    def add(self, pool: str, aor: str, contact: str) -> None:
        current = self._lists.setdefault(pool, {}).setdefault(aor, [])
        if contact not in current:
            current.append(contact)

    def lose(self, pool: str) -> None:
        """A pool's back end is lost for good (the site is gone: R4)."""
        self._lists.pop(pool, None)


@dataclass
class Administration:
    """Administrative state: CMS location and availability, backups, moves."""

    directory: Directory
    contacts: ContactStore
    cms: str
    """The pool hosting the Central Management Store."""
    pool_up: Callable[[str], bool]
    """Whether a pool is running and reachable from the administrator."""
    exported: dict[str, list[str]] | None = None
    """The last contact-list export (the nightly backup): user -> contacts."""
    log: list[str] = field(default_factory=list)

    def _cms_down(self, action: str) -> str | None:
        if not self.pool_up(self.cms):
            return (
                f"{action} refused: the Central Management Store is on {self.cms}, which is "
                "down; no topology, policy or user change can be made (move the CMS first)"
            )
        return None

    def export_contacts(self, pools: Iterable[str]) -> str | None:
        """Export the contact lists of the users homed on ``pools`` (the nightly backup).
        Exporting reads the pools' back ends: it needs them up, not the CMS."""
        exported: dict[str, list[str]] = {}
        for pool in pools:
            if not self.pool_up(pool):
                return f"export-contacts refused: {pool} is down"
            for aor in self.directory.users_of(pool):
                found = self.contacts.of(pool, aor)
                if found is not None:
                    exported[aor] = found
        self.exported = exported
        self.log.append(f"exported the contact lists of {len(exported)} user(s)")
        return None

    def import_contacts(self) -> str | None:
        """Import the last export into each user's *current* home pool."""
        refused = self._cms_down("import-contacts")
        if refused:
            return refused
        if self.exported is None:
            return "import-contacts refused: no contact lists were exported (export-contacts)"
        for aor, contacts in self.exported.items():
            home = self.directory.get(aor)
            if home is not None:
                self.contacts.put(home, aor, contacts)
        self.log.append(f"imported the contact lists of {len(self.exported)} user(s)")
        return None

    def force_move(self, source: str, target: str) -> str | None:
        """Move-CsUser -Force: every user homed on ``source`` is homed on ``target``; their
        contact lists stay behind on ``source`` (R4: lost with the failed pool)."""
        refused = self._cms_down("force-move")
        if refused:
            return refused
        users = self.directory.users_of(source)
        self.directory.move(users, target)
        self.log.append(f"force-moved {len(users)} user(s) from {source} to {target}")
        return None

    def move_cms(self, target: str) -> str | None:
        """Move-CsManagementServer: allowed with the old CMS pool down (that is what it is for,
        with -Force in a disaster); the target must be up."""
        if not self.pool_up(target):
            return f"move-cms refused: {target} is down"
        old, self.cms = self.cms, target
        self.log.append(f"Central Management Store moved from {old} to {target}")
        return None

    def allowed(self, action: str) -> str | None:
        """For other administrative actions (e.g. DNS changes made by the administrator)."""
        return self._cms_down(action)


CHAT_STEPS = (
    "remove-log-shipping",
    "copy-backup-files",
    "apply-log-backups",
    "bring-backup-online",
    "set-pool-failed-over",
    "establish-mirror",
    "set-active-servers",
)
"""R5's Persistent Chat failover procedure, in order."""


@dataclass(frozen=True, slots=True)
class PersistentChatSpec:
    pool: str = "pchat.contoso.test"
    primary_db: str = "pchat-sql01"
    backup_db: str = "pchat-sql02"
    primary_site: str = "site1"
    backup_site: str = "site2"


class PersistentChat:
    """A Persistent Chat pool: primary and backup databases with log shipping, and R5's
    failover procedure as validated, ordered steps."""

    def __init__(self, spec: PersistentChatSpec) -> None:
        self.spec = spec
        self.primary_up = True
        self.backup_site_up = True
        self.done: list[str] = []
        self.log: list[str] = []

    @property
    def failed_over(self) -> bool:
        return len(self.done) == len(CHAT_STEPS)

    @property
    def available(self) -> bool:
        """The chat service works only in a consistent state: on the primary database with the
        procedure not started, or after the whole procedure (the backup is primary, mirrored,
        and the active servers are in its data center).  The compliance database is not failed
        over (R5: its content is transient): it stays on the primary side."""
        if not self.done:
            return self.primary_up
        return self.failed_over and self.backup_site_up

    def set_primary(self, up: bool) -> None:
        self.primary_up = up

    def set_backup_site(self, up: bool) -> None:
        self.backup_site_up = up

    def step(self, name: str) -> str | None:
        """Carry out step ``name`` of R5's procedure; None, or why it is refused."""
        if name not in CHAT_STEPS:
            return f"unknown Persistent Chat step {name!r} (steps: {', '.join(CHAT_STEPS)})"
        if not self.backup_site_up:
            return f"{name} refused: the secondary data center ({self.spec.backup_site}) is down"
        if self.primary_up and not self.done:
            return (
                f"{name} refused: the primary Persistent Chat database "
                f"{self.spec.primary_db} is still up (R5 fails over only when it is gone)"
            )
        expected = CHAT_STEPS[len(self.done)] if not self.failed_over else None
        if expected is None:
            return f"{name} refused: the failover procedure is complete"
        if name != expected:
            position = CHAT_STEPS.index(name) + 1
            if name in self.done:
                return f"{name} refused: already done (step {position})"
            return (
                f"{name} refused: step {position} of R5's procedure; the next step is "
                f"{expected} (step {len(self.done) + 1})"
            )
        self.done.append(name)
        self.log.append(
            f"Persistent Chat: {name} done (step {len(self.done)} of {len(CHAT_STEPS)})"
        )
        if self.failed_over:
            self.log.append(
                f"Persistent Chat failed over to {self.spec.backup_db}; the "
                "compliance database is not failed over"
            )
        return None
