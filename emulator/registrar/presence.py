"""The users' published presence (MS-PRES categories), shared by every pool of a deployment.

A :class:`PresenceStore` holds, per user, the category instances published (by PUBLISH or
``setPresence``: emulator/registrar/services.py) and a version that every change raises, so
that each pool's services can tell which users changed since they last looked and NOTIFY
their own watchers (a watcher subscribes on its own registrar, which need not be the
presentity's home pool).  The deployment shares one store through the
:class:`~emulator.admin.Directory`, as it shares the contact lists; a pool built without one
makes its own.  Sans-IO: plain data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "AGGREGATE_CONTAINERS",
    "BLOCKED_CONTAINER",
    "SELF_CONTAINERS",
    "WATCHER_CONTAINER",
    "PresenceStore",
    "Publication",
]

SELF_CONTAINERS = frozenset({2, 3})
"""Containers a user publishes for its own endpoints (MS-PRES container ids)."""
BLOCKED_CONTAINER = 32_000
WATCHER_CONTAINER = 300
"""The container a watcher is a member of: "colleagues" (CHOICE: every user of the deployment
is a colleague of every other; container ACLs are not emulated)."""
AGGREGATE_CONTAINERS = (100, 200, 300, 400)
"""Where the server publishes a user's ``aggregateState`` (MS-PRES's access-level containers:
public, company, team, personal)."""

_STATE_TYPE = re.compile(r'\bxsi:type="(\w+)"')
_AVAILABILITY = re.compile(r"<(?:\w+:)?availability>\s*(\d{1,5})\s*<")


@dataclass(slots=True)
class Publication:
    """One category instance a user published (MS-PRES: name, instance, container)."""

    name: str
    instance: int
    container: int
    version: int
    expire_type: str
    data: str
    """The category's XML as published (the element inside ``<publication>``)."""

    def xml(self) -> str:
        return (
            f'<category name="{_attr(self.name)}" instance="{self.instance}" '
            f'container="{self.container}" version="{self.version}" '
            f'expireType="{_attr(self.expire_type)}">{self.data}</category>'
        )


@dataclass(slots=True)
class PresenceStore:
    """Every user's publications: AOR -> (category, instance, container) -> publication."""

    users: dict[str, dict[tuple[str, int, int], Publication]] = field(default_factory=dict)
    version: int = 0
    """Raised by every change (:meth:`changed`)."""
    changes: dict[str, int] = field(default_factory=dict)
    """AOR -> the :attr:`version` of its last change."""

    def of(self, aor: str) -> list[Publication]:
        return sorted(
            self.users.get(aor, {}).values(), key=lambda p: (p.name, p.container, p.instance)
        )

    def changed(self, aor: str) -> None:
        """``aor``'s publications changed (the caller changed :attr:`users`)."""
        self.version += 1
        self.changes[aor] = self.version

    def changed_since(self, version: int) -> list[str]:
        """The users whose publications changed after ``version``, in order of change."""
        if version >= self.version:
            return []
        found = sorted((v, aor) for aor, v in self.changes.items() if v > version)
        return [aor for _, aor in found]

    def aggregate(self, aor: str) -> bool:
        """Publish ``aor``'s ``aggregateState`` from the ``userState`` and ``machineState``
        its endpoints published in their self containers (2, 3), as a Lync front end
        aggregates state for OCS 2007 R2 and later clients (MS-PRES: ``aggregateState`` is the
        server's publication; clients publish the other state types).  Whether anything
        changed.

        CHOICE: the availability is that of a ``userState`` (the user's own choice) if any,
        else the most available ``machineState``; instance 0, expireType ``static``, in
        :data:`AGGREGATE_CONTAINERS`.  A user that publishes ``state`` in a watcher container
        itself (an OCS 2007 client, which aggregates on its own; the tests' PUBLISH) is left
        as it is.  With no state left, the aggregate goes."""
        published = self.users.get(aor)
        if published is None:
            return False
        user: list[int] = []
        machine: list[int] = []
        for (name, instance, container), publication in published.items():
            if name != "state":
                continue
            kind = _STATE_TYPE.search(publication.data)
            if container not in SELF_CONTAINERS:
                if kind is None or kind.group(1) != "aggregateState" or instance != 0:
                    return False  # the client's own aggregate: leave it
                continue
            value = _AVAILABILITY.search(publication.data)
            if kind is None or value is None:
                continue
            if kind.group(1) == "userState":
                user.append(int(value.group(1)))
            elif kind.group(1) == "machineState":
                machine.append(int(value.group(1)))
        chosen = user[0] if user else min(machine) if machine else None
        changed = False
        for container in AGGREGATE_CONTAINERS:
            key = ("state", 0, container)
            before = published.get(key)
            if chosen is None:
                changed |= published.pop(key, None) is not None
                continue
            data = (
                '<state xmlns="http://schemas.microsoft.com/2006/09/sip/state" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" manual="false" '
                f'xsi:type="aggregateState"><availability>{chosen}</availability></state>'
            )
            if before is not None and before.data == data:
                continue
            version = before.version + 1 if before is not None else 1
            published[key] = Publication("state", 0, container, version, "static", data)
            changed = True
        return changed

    def seen_by_watchers(self, aor: str) -> list[Publication]:
        """What a watcher (a colleague) sees of ``aor``: per category name and instance, the
        publication in container 300, else in the lowest container that is not a self
        container or the blocked one (CHOICE)."""
        best: dict[tuple[str, int], Publication] = {}
        for publication in self.of(aor):
            container = publication.container
            if container in SELF_CONTAINERS or container == BLOCKED_CONTAINER:
                continue
            key = (publication.name, publication.instance)
            found = best.get(key)
            if found is None or _rank(publication) < _rank(found):
                best[key] = publication
        return sorted(best.values(), key=lambda p: (p.name, p.instance))


def _rank(publication: Publication) -> tuple[int, int]:
    return (0 if publication.container == WATCHER_CONTAINER else 1, publication.container)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
