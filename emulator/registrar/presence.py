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

from dataclasses import dataclass, field

__all__ = [
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
