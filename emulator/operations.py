"""A deployment's shared state behind the pools, and the administrative and DR actions on it.

Sans-IO, and the same for the simulator and the live deployment: :class:`Operations` owns the
user directory (home pools), the contact lists, one :class:`~emulator.backend.BackEnd` per Front
End pool, the :class:`~emulator.admin.Administration` (CMS, contact export and import,
force-move) and the :class:`~emulator.admin.PersistentChat` pool.  Pool cores are built on
them (``Pool(..., directory=, backend=, contacts=)``), so a restarted pool keeps its back end
and everything the administrator changed.

:meth:`Operations.perform` carries out one action and returns an :class:`Outcome`: done or
refused (with the reason, a sentence), and what changed that the pool cores must hear of (which
back ends changed, which users moved, whose contact lists changed, which pools restart).
:func:`emulator.effects.plan` turns that into what each driver does to its cores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.admin import (
    CHAT_STEPS,
    Administration,
    ContactStore,
    Directory,
    PersistentChat,
)
from emulator.backend import BackEnd, ServerRole
from emulator.pairing import TIMER_KEYS, Pairings
from emulator.topology import Topology

__all__ = [
    "ADMIN_ACTIONS",
    "BACKEND_ROLES",
    "OPTIONAL_KEYS",
    "POOL_FAILOVER_TAKES",
    "OperationError",
    "Operations",
    "Outcome",
    "contact_store",
]

ADMIN_ACTIONS: dict[str, tuple[str, ...]] = {
    "backend-down": ("target", "server"),
    "backend-up": ("target", "server"),
    "backend-failover": ("target",),
    "r2-procedure": ("target",),
    "export-contacts": (),
    "import-contacts": (),
    "force-move": ("from", "to"),
    "move-cms": ("target",),
    "lose-contacts": ("target",),
    "chat-step": ("step",),
    "chat-db-down": (),
    "chat-db-up": (),
    "chat-site-down": (),
    "chat-site-up": (),
    "pool-failover": ("target",),
    "pool-failback": ("target",),
    "set-backup": ("target", "backup"),
    "set-timers": (),
}
"""Administrative / DR action -> its required keys (docs/scenarios.md, docs/backends.md).
``export-contacts`` takes an optional ``target`` (default: every Front End pool);
``pool-failover`` and ``pool-failback`` an optional ``takes`` (seconds, default
:data:`POOL_FAILOVER_TAKES`); ``set-timers`` one or more of :data:`TIMER_KEYS`."""

POOL_FAILOVER_TAKES = 900.0
"""How long ``Invoke-CsPoolFailOver`` and ``-FailBack`` take by default: 15 minutes, the lower
end of Microsoft's engineering target for their recovery time objective ("15-20 minutes",
Front End pool disaster recovery in Skype for Business Server).  A CHOICE within a DOC range;
a step's ``takes`` key changes it."""

OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {
    "export-contacts": ("target",),
    "pool-failover": ("takes",),
    "pool-failback": ("takes",),
    "set-timers": tuple(TIMER_KEYS),
}
"""Administrative action -> the keys it may take besides its required ones."""

BACKEND_ROLES: tuple[ServerRole, ...] = ("principal", "mirror", "witness")

_REFUSED = re.compile(r"^[\w-]+ refused: ")

CHAT_ACTIONS = frozenset(a for a in ADMIN_ACTIONS if a.startswith("chat-"))


def _seconds(
    params: Mapping[str, Any], key: str, *, required: bool, positive: bool = False
) -> str | None:
    """Why ``params[key]`` is not a number of seconds (None: it is, or it may be absent)."""
    if key not in params:
        return f"{key}: a number of seconds" if required else None
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key}: a number of seconds, not {value!r}"
    low = 0.0
    if not (value > low if positive else value >= low) or value > 86_400 * 365:
        bound = "more than 0" if positive else "0 or more"
        return f"{key}: a number of seconds, {bound} (up to a year), not {value!r}"
    return None


class OperationError(ValueError):
    """An action named something the deployment does not have (a sentence)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one administrative action did."""

    action: str
    refused: str | None = None
    """Why the action was refused (a sentence), or None when it was done."""
    text: str = ""
    """What was done, for the timeline."""
    backends_changed: tuple[str, ...] = ()
    """Pools whose back end changed (their cores: ``Pool.backend_changed``)."""
    moved: tuple[str, ...] = ()
    """Users whose home pool changed (every pool's core: ``Pool.users_moved``)."""
    contacts_changed: tuple[str, ...] = ()
    """Users whose contact lists changed (every pool's core: ``Pool.contacts_changed``)."""
    restart: tuple[str, ...] = ()
    """Pools whose Front End service restarts (a fresh core, same back end).  Which cores
    hear of all this, and in which order: :func:`emulator.effects.plan`."""
    reconfigured: bool = False
    """The pools' own configuration changed (:class:`~emulator.pairing.Pairings`: a pool
    failover or failback, a backup pairing, the resiliency timers): every running pool's core
    reconciles (``Pool.configuration_changed``)."""

    def __post_init__(self) -> None:
        if self.refused is not None:  # "force-move refused: why" -> "why" (line() adds it)
            object.__setattr__(self, "refused", _REFUSED.sub("", self.refused, count=1))

    @property
    def ok(self) -> bool:
        return self.refused is None

    @property
    def detail(self) -> str:
        """Why it was refused, or what was done."""
        return self.refused if self.refused is not None else self.text

    def line(self) -> str:
        return f"{self.action} refused: {self.refused}" if self.refused else self.text


def contact_store(topology: Topology) -> ContactStore:
    """The contact lists the topology gives, each on its user's home pool."""
    store = ContactStore()
    for aor, contacts in topology.contacts.items():
        store.put(topology.users[aor], aor, contacts)
    return store


class Operations:
    """The administrative state of one deployment and the actions on it."""

    def __init__(
        self,
        topology: Topology,
        *,
        now: float = 0.0,
        pool_up: Callable[[str], bool] = lambda fqdn: True,
    ) -> None:
        self.topology = topology
        self.pairings = Pairings(topology)
        """Backup pairings, resiliency timers, pool failovers: shared by every pool core."""
        self.directory = Directory(topology.users, self.pairings)
        self.contacts = contact_store(topology)
        self.backends: dict[str, BackEnd] = {
            p.fqdn: BackEnd(p.backend, topology.profile, now=now)
            for p in topology.pools
            if not p.is_director
        }
        cms = topology.cms or next(iter(self.backends), "")
        self.admin = Administration(self.directory, self.contacts, cms, pool_up)
        self.chat = PersistentChat(topology.persistent_chat) if topology.persistent_chat else None
        self.chat_history: list[tuple[float, bool]] = []
        """(time, available) each time the chat service's availability changed."""
        if self.chat is not None:
            self.chat_history.append((now, self.chat.available))

    # -- look-ups ----------------------------------------------------------------------------

    def backend(self, pool: str) -> BackEnd:
        found = self.backends.get(pool.lower().rstrip("."))
        if found is None:
            known = ", ".join(self.backends) or "none"
            raise OperationError(f"{pool!r} is not a Front End pool with a back end ({known})")
        return found

    def chat_available(self) -> bool | None:
        """Whether the Persistent Chat service works (None: the topology has none)."""
        return None if self.chat is None else self.chat.available

    @staticmethod
    def validate(topology: Topology, action: str, params: Mapping[str, Any]) -> str | None:
        """Why ``action`` with ``params`` cannot apply to ``topology`` (None: it can).  Used by
        the scenario loader, so that a bad step is reported before the run."""
        pools = {p.fqdn for p in topology.pools}
        fronts = {p.fqdn: p for p in topology.pools if not p.is_director}

        def pool_key(key: str, front_only: bool = True) -> str | None:
            value = params.get(key)
            name = str(value).lower().rstrip(".") if isinstance(value, str) else None
            known = fronts if front_only else pools
            if name not in known:
                what = "Front End pool" if front_only else "pool"
                return f"{key}: the FQDN of a {what} ({', '.join(sorted(known)) or 'none'})"
            return None

        if action not in ADMIN_ACTIONS:
            return f"action: one of {', '.join(ADMIN_ACTIONS)}"
        if action in ("backend-down", "backend-up"):
            problem = pool_key("target")
            if problem:
                return problem
            spec = fronts[str(params["target"]).lower().rstrip(".")].backend
            servers = {
                role: name
                for role, name in zip(
                    BACKEND_ROLES, (spec.principal, spec.mirror, spec.witness), strict=True
                )
                if name
            }
            server = params.get("server")
            if server not in servers and server not in servers.values():
                choices = ", ".join(f"{r} ({n})" for r, n in servers.items())
                return f"server: a server of that back end: {choices}"
            return None
        if action in ("backend-failover", "r2-procedure", "lose-contacts"):
            return pool_key("target")
        if action == "move-cms":
            return pool_key("target")
        if action == "export-contacts" and "target" in params:
            return pool_key("target")
        if action == "force-move":
            return pool_key("from") or pool_key("to")
        if action in ("pool-failover", "pool-failback"):
            return pool_key("target") or _seconds(params, "takes", required=False)
        if action == "set-backup":
            problem = pool_key("target")
            if problem:
                return problem
            backup = params.get("backup")
            name = str(backup).lower().rstrip(".") if isinstance(backup, str) else None
            target = str(params["target"]).lower().rstrip(".")
            others = sorted(f for f in fronts if f != target)
            if name != "none" and (name not in fronts or name == target):
                return f"backup: the FQDN of another Front End pool ({', '.join(others)}), or none"
            return None
        if action == "set-timers":
            given = [key for key in TIMER_KEYS if key in params]
            if not given:
                return f"set-timers: one or more of {', '.join(TIMER_KEYS)} (seconds)"
            for key in given:
                problem = _seconds(params, key, required=True, positive=True)
                if problem:
                    return problem
            return None
        if action in CHAT_ACTIONS and topology.persistent_chat is None:
            return "action: the topology has no [persistent_chat] pool"
        if action == "chat-step" and params.get("step") not in CHAT_STEPS:
            return f"step: one of {', '.join(CHAT_STEPS)} (R5's procedure, in this order)"
        return None

    # -- actions -----------------------------------------------------------------------------

    def perform(self, action: str, params: Mapping[str, Any], now: float) -> Outcome:
        """Carry out one action.  OperationError when it names what does not exist."""
        problem = self.validate(self.topology, action, params)
        if problem is not None:
            raise OperationError(f"{action}: {problem}")
        outcome = self._perform(action, params, now)
        self._chat_changed(now)
        return outcome

    def _perform(self, action: str, params: Mapping[str, Any], now: float) -> Outcome:
        target = str(params.get("target", "")).lower().rstrip(".")
        admin = self.admin
        if action in ("backend-down", "backend-up"):
            backend = self.backend(target)
            role = self._role(backend, str(params["server"]))
            up = action == "backend-up"
            name = backend.server(role)
            backend.set_server(role, up, now)
            state = "back up" if up else "down"
            return Outcome(
                action,
                text=f"{target}: back-end {role} {name} {state}",
                backends_changed=(target,),
            )
        if action == "backend-failover":
            refused = self.backend(target).admin_failover(now)
            if refused:
                return Outcome(action, f"{target}: {refused}")
            return Outcome(
                action,
                text=f"{target}: database failed over to {self.backend(target).active}",
                backends_changed=(target,),
            )
        if action == "r2-procedure":
            refused = self.backend(target).r2_procedure(now)
            if refused:
                return Outcome(action, f"{target}: {refused}")
            return Outcome(
                action,
                text=f"{target}: R2 procedure applied: the front end uses "
                f"{self.backend(target).active} and restarts",
                backends_changed=(target,),
                restart=(target,),
            )
        if action == "export-contacts":
            pools = [target] if target else list(self.backends)
            refused = admin.export_contacts(pools)
            if refused:
                return Outcome(action, refused)
            return Outcome(action, text=admin.log[-1])
        if action == "import-contacts":
            refused = admin.import_contacts()
            if refused:
                return Outcome(action, refused)
            users = tuple(sorted(admin.exported or {}))
            return Outcome(action, text=admin.log[-1], contacts_changed=users)
        if action == "force-move":
            source = str(params["from"]).lower().rstrip(".")
            dest = str(params["to"]).lower().rstrip(".")
            users = tuple(self.directory.users_of(source))
            refused = admin.force_move(source, dest)
            if refused:
                return Outcome(action, refused)
            return Outcome(action, text=admin.log[-1], moved=users)
        if action == "move-cms":
            refused = admin.move_cms(target)
            if refused:
                return Outcome(action, refused)
            return Outcome(action, text=admin.log[-1])
        if action == "lose-contacts":
            self.contacts.lose(target)
            return Outcome(action, text=f"{target}: its back end's contact lists are lost")
        if action == "pool-failover":
            return self._pool_failover(target, params, now)
        if action == "pool-failback":
            return self._pool_failback(target, params, now)
        if action == "set-backup":
            return self._set_backup(target, str(params["backup"]).lower().rstrip("."), now)
        if action == "set-timers":
            refused = admin.allowed(action)
            if refused:
                return Outcome(action, refused)
            changes = {key: float(params[key]) for key in TIMER_KEYS if key in params}
            self.pairings.set_timers(changes, now)
            text = "resiliency timers set: " + ", ".join(
                f"{key} {value:g} s" for key, value in changes.items()
            )
            admin.log.append(text)
            return Outcome(action, text=text, reconfigured=True)
        return self._chat(action, params)

    # -- pool failover and failback (docs/backends.md) -------------------------------------

    def _pool_failover(self, pool: str, params: Mapping[str, Any], now: float) -> Outcome:
        """``Invoke-CsPoolFailOver -PoolFqdn pool``: the users homed on ``pool`` are served by
        its backup pool, in resiliency mode until the failover completes (``takes``), then
        with full function; they stay homed on ``pool``."""
        action = "pool-failover"
        pairings = self.pairings
        backup = pairings.backup_of(pool)
        if backup is None:
            # DOC: "Pool failover can only be invoked if you have assigned a backup pool to
            # the failed pool" (Invoke-CsPoolFailOver).
            return Outcome(
                action,
                f"{pool} has no backup pool: pool failover can only be invoked for a pool with "
                "a backup pool assigned (set-backup)",
            )
        refused = self._failover_state(pool, now, failback=False)
        if refused:
            return Outcome(action, refused)
        if self.admin.cms == pool:
            # DOC: a pool failover that involves the pool hosting the CMS needs the CMS failed
            # over first.
            return Outcome(
                action,
                f"the Central Management Store is on {pool}: fail it over to another pool "
                "first (move-cms)",
            )
        refused = self.admin.allowed(action)
        if refused:
            return Outcome(action, refused)
        if not self.admin.pool_up(backup):
            return Outcome(action, f"the backup pool {backup} is down")
        own = pairings.phase(backup, now)
        if own in ("failing-over", "failed-over", "failing-back"):
            # DOC: failing over P2's users to P1 while P1's are failed over to P2 fails; fail
            # P1 back first.  A failback under way counts too (CHOICE).
            return Outcome(
                action,
                f"the users of the backup pool {backup} are failed over ({own}): fail them "
                f"back first (pool-failback target = {backup})",
            )
        served = pairings.failed_over_to(pool, now)
        if served:
            return Outcome(
                action,
                f"{pool} serves the users of {', '.join(served)}, failed over to it: fail "
                "them back first",
            )
        takes = float(params.get("takes", POOL_FAILOVER_TAKES))
        pairings.fail_over(pool, now, takes)
        users = len(self.directory.users_of(pool))
        text = (
            f"{pool}: pool failover to {backup} invoked: its {users} user(s) sign in there "
            f"(resiliency mode until the failover completes in {takes:g} s)"
        )
        self.admin.log.append(text)
        return Outcome(action, text=text, reconfigured=True)

    def _pool_failback(self, pool: str, params: Mapping[str, Any], now: float) -> Outcome:
        """``Invoke-CsPoolFailBack -PoolFqdn pool``: the users failed over to the backup are
        sent home, where they are in resiliency mode until the failback completes."""
        action = "pool-failback"
        refused = self._failover_state(pool, now, failback=True)
        if refused:
            return Outcome(action, refused)
        refused = self.admin.allowed(action)
        if refused:
            return Outcome(action, refused)
        if not self.admin.pool_up(pool):
            # DOC: failback is for "after the pool that experienced the disaster is back
            # online".
            return Outcome(action, f"{pool} is down: fail it back once it is back online")
        takes = float(params.get("takes", POOL_FAILOVER_TAKES))
        found = self.pairings.fail_back(pool, now, takes)
        text = (
            f"{pool}: pool failback from {found.backup} invoked: its users go home "
            f"(resiliency mode until the failback completes in {takes:g} s)"
        )
        self.admin.log.append(text)
        return Outcome(action, text=text, reconfigured=True)

    def _failover_state(self, pool: str, now: float, *, failback: bool) -> str | None:
        """Why ``pool``'s failover state forbids a failover (or a failback), or None."""
        found = self.pairings.failover(pool)
        phase = None if found is None else found.phase(now)
        if found is None or phase is None:
            return f"{pool} is not failed over" if failback else None
        if phase == "failing-back":
            until = found.failback_completes
            return f"a failback of {pool} is under way (it completes at {until:g} s)"
        if failback:
            if phase == "failed-back":
                return f"{pool} is not failed over (it was failed back)"
            if phase == "failing-over":
                return (
                    f"the failover of {pool} has not completed (it completes at "
                    f"{found.completes:g} s)"
                )
            return None
        if phase in ("failing-over", "failed-over"):
            return f"{pool} is failed over already (to {found.backup})"
        return None

    def _set_backup(self, pool: str, backup: str, now: float) -> Outcome:
        """Pair ``pool`` with a backup registrar pool (or none): a topology change."""
        action = "set-backup"
        refused = self.admin.allowed(action)
        if refused:
            return Outcome(action, refused)
        phase = self.pairings.phase(pool, now)
        if phase in ("failing-over", "failed-over", "failing-back"):
            return Outcome(action, f"{pool} is failed over ({phase}): fail it back first")
        new = None if backup == "none" else backup
        old = self.pairings.backup_of(pool)
        self.pairings.set_backup(pool, new, now)
        text = f"{pool}: backup pool {old or 'none'} -> {new or 'none'}"
        self.admin.log.append(text)
        return Outcome(action, text=text, reconfigured=True)

    def _chat(self, action: str, params: Mapping[str, Any]) -> Outcome:
        chat = self.chat
        assert chat is not None  # validate() checked
        if action == "chat-step":
            before = len(chat.log)
            refused = chat.step(str(params["step"]))
            if refused:
                return Outcome(action, refused)
            return Outcome(action, text="; ".join(chat.log[before:]))
        if action in ("chat-db-down", "chat-db-up"):
            up = action == "chat-db-up"
            chat.set_primary(up)
            state = "back up" if up else "lost"
            return Outcome(action, text=f"primary Persistent Chat database {state}")
        up = action == "chat-site-up"
        chat.set_backup_site(up)
        state = "up" if up else "down"
        return Outcome(action, text=f"secondary data center ({chat.spec.backup_site}) {state}")

    @staticmethod
    def _role(backend: BackEnd, server: str) -> ServerRole:
        for role in BACKEND_ROLES:
            if server in (role, backend.server(role)):
                return role
        raise OperationError(f"the back end has no server {server!r}")

    def _chat_changed(self, now: float) -> None:
        if self.chat is None:
            return
        available = self.chat.available
        if self.chat_history[-1][1] != available:
            self.chat_history.append((now, available))
