"""Registration bindings (RFC 3261 §10.3) with expiry, sans-IO."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from emulator.net import Flow

__all__ = ["Binding", "BindingStore"]


@dataclass(slots=True)
class Binding:
    """One registered contact of an address-of-record.

    ``instance`` identifies the endpoint: ``+sip.instance`` of the Contact, else the ``epid``
    From parameter (MS-SIPREGE §3.1.1.1), else the Contact URI.
    """

    aor: str
    instance: str
    contact: str
    flow: Flow
    call_id: str
    cseq: int
    expires_at: float
    registered_at: float
    resiliency: bool = False
    """Accepted by a backup for a failed-over primary (is-connected-to-primary="no")."""
    home: str | None = None
    """The user's home pool when this is a resiliency binding."""
    survivable: bool = True
    """The REGISTER said ``Supported: ms-userservices-state-notification`` (MS-SIPREGE
    §2.2.1.5): the endpoint can stay registered while user services are unavailable."""


class BindingStore:
    """Bindings by AOR and instance, with a lazy heap of expiry deadlines.

    The heap holds at most one live entry per binding key ``(aor, instance)``: the one whose
    time is in ``_queued``, never later than the binding's ``expires_at``.  A refresh that moves
    the expiry later (the usual case: every REGISTER of a client) pushes nothing; when the old
    entry comes up, it is queued again at the binding's current expiry.  Only a shortened
    expiry, or a new key, pushes an entry.  So the heap stays about as large as the store
    instead of keeping a stale entry per REGISTER until the earliest live one comes up (behind
    one binding left unrefreshed for an hour, an hour of refreshes at 10,000/s would be 36
    million entries), and a refresh costs no heap push (speed and memory; docs/benchmarks.md).
    Entries whose time is not their key's ``_queued`` time are stale and dropped when they
    come up.
    """

    __slots__ = ("_by_aor", "_heap", "_queued", "on_dropped")

    def __init__(self) -> None:
        # AOR -> its one binding, or (two or more) a dict of them by instance in the order
        # they were first put.  One binding per user is the rule (a simulated client, a
        # SIPp user): a dict per AOR cost about 180 bytes more per binding (memory).
        self._by_aor: dict[str, Binding | dict[str, Binding]] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._queued: dict[tuple[str, str], float] = {}
        self.on_dropped: Callable[[str], None] | None = None
        """Told the contact text of every binding removed, or replaced by one with another
        contact: the pool's parse cache forgets that Contact value (a client that moved to
        another port or pool never sends it again; memory, issue 20)."""

    def get(self, aor: str, instance: str) -> Binding | None:
        found = self._by_aor.get(aor)
        if found is None:
            return None
        if isinstance(found, Binding):
            return found if found.instance == instance else None
        return found.get(instance)

    def of(self, aor: str) -> list[Binding]:
        found = self._by_aor.get(aor)
        if found is None:
            return []
        if isinstance(found, Binding):
            return [found]
        return list(found.values())

    def count(self, aor: str) -> int:
        """How many bindings ``aor`` has (for the per-user limit)."""
        found = self._by_aor.get(aor)
        if found is None:
            return 0
        return 1 if isinstance(found, Binding) else len(found)

    def oldest(self, aor: str) -> Binding | None:
        """The binding of ``aor`` nearest its expiry, the first registered among equals: the
        one the per-user limit evicts (for bindings of equal expiry settings, the one
        refreshed longest ago)."""
        found = self.of(aor)
        if not found:
            return None
        return min(found, key=lambda b: (b.expires_at, b.registered_at))

    def put(self, binding: Binding) -> None:
        aor, instance, expires_at = binding.aor, binding.instance, binding.expires_at
        by_aor = self._by_aor
        per_aor = by_aor.get(aor)
        old: Binding | None = None
        if per_aor is None or (isinstance(per_aor, Binding) and per_aor.instance == instance):
            old = per_aor
            by_aor[aor] = binding
        elif isinstance(per_aor, Binding):
            by_aor[aor] = {per_aor.instance: per_aor, instance: binding}
        else:
            old = per_aor.get(instance)
            per_aor[instance] = binding
        if old is not None and old.contact != binding.contact and self.on_dropped is not None:
            self.on_dropped(old.contact)
        key = (aor, instance)
        queued = self._queued.get(key)
        if queued is None or expires_at < queued:
            self._queued[key] = expires_at
            heap = self._heap
            heapq.heappush(heap, (expires_at, key))
            if len(heap) > 2 * len(self._queued) + 1024:
                # Mostly stale entries of removed bindings (a client that registers a new
                # endpoint every time, each evicting another): rebuilt from the live ones, so
                # the heap stays about as large as the store (issue 21; amortised O(1)).
                self._heap = [(at, k) for k, at in self._queued.items()]
                heapq.heapify(self._heap)

    def remove(self, aor: str, instance: str) -> Binding | None:
        by_aor = self._by_aor
        found = by_aor.get(aor)
        if found is None:
            return None
        binding: Binding | None
        if isinstance(found, Binding):
            if found.instance != instance:
                return None
            binding = found
            del by_aor[aor]
        else:
            binding = found.pop(instance, None)
            if len(found) == 1:  # back to one: held as such (the same order, alone)
                by_aor[aor] = next(iter(found.values()))
        if binding is not None:
            self._queued.pop((aor, instance), None)  # its heap entry is stale now
            if self.on_dropped is not None:
                self.on_dropped(binding.contact)
        return binding

    def remove_all(self, aor: str) -> list[Binding]:
        found = self._by_aor.pop(aor, None)
        if found is None:
            return []
        removed = [found] if isinstance(found, Binding) else list(found.values())
        for binding in removed:
            self._queued.pop((aor, binding.instance), None)
            if self.on_dropped is not None:
                self.on_dropped(binding.contact)
        return removed

    def expiry_bound(self) -> float | None:
        """A time no later than :meth:`next_expiry` (None: no binding), without fixing the heap.

        Lets a caller that only needs the earliest of several deadlines skip the fix-up while
        another deadline is earlier anyway (a registrar's Timer J, 32 s, against bindings of
        an hour).
        """
        return self._heap[0][0] if self._heap else None

    def next_expiry(self) -> float | None:
        """The exact time the next binding expires (the heap's top is made exact first)."""
        heap = self._heap
        while heap:
            at, key = heap[0]
            if self._due(at, key) is not None:
                return at
        return None

    def expire(self, now: float) -> list[Binding]:
        """Remove and return the bindings whose time is up (RFC 3261 §10.3: expiry is exact)."""
        out: list[Binding] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, key = heap[0]
            binding = self._due(at, key)
            if binding is not None:
                heapq.heappop(heap)
                del self._queued[key]
                self.remove(*key)
                out.append(binding)
        return out

    def _due(self, at: float, key: tuple[str, str]) -> Binding | None:
        """The binding expiring at ``at`` if the heap's top entry is exact; else fix the top."""
        if self._queued.get(key) == at:
            binding = self.get(*key)
            if binding is None:  # removed since: the entry goes
                del self._queued[key]
            elif binding.expires_at == at:
                return binding
            else:  # refreshed to a later expiry since: queued again at that time
                self._queued[key] = binding.expires_at
                heapq.heapreplace(self._heap, (binding.expires_at, key))
                return None
        heapq.heappop(self._heap)  # stale: a shorter expiry was queued since, or removed
        return None

    def __iter__(self) -> Iterator[Binding]:
        for per_aor in self._by_aor.values():
            if isinstance(per_aor, Binding):
                yield per_aor
            else:
                yield from per_aor.values()

    def __len__(self) -> int:
        return sum(1 if isinstance(v, Binding) else len(v) for v in self._by_aor.values())
