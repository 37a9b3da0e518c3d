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
from emulator.topology import Topology

__all__ = [
    "ADMIN_ACTIONS",
    "BACKEND_ROLES",
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
}
"""Administrative / DR action -> its required keys (docs/scenarios.md, docs/backends.md).
``export-contacts`` takes an optional ``target`` (default: every Front End pool)."""

BACKEND_ROLES: tuple[ServerRole, ...] = ("principal", "mirror", "witness")

_REFUSED = re.compile(r"^[\w-]+ refused: ")

CHAT_ACTIONS = frozenset(a for a in ADMIN_ACTIONS if a.startswith("chat-"))


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
        self.directory = Directory(topology.users)
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
        return self._chat(action, params)

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
