"""Registration bindings (RFC 3261 §10.3) with expiry, sans-IO."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
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


class BindingStore:
    """Bindings by AOR and instance, with a lazy-deletion heap of expiry deadlines."""

    __slots__ = ("_by_aor", "_heap")

    def __init__(self) -> None:
        self._by_aor: dict[str, dict[str, Binding]] = {}
        self._heap: list[tuple[float, str, str]] = []

    def get(self, aor: str, instance: str) -> Binding | None:
        found = self._by_aor.get(aor)
        return found.get(instance) if found else None

    def of(self, aor: str) -> list[Binding]:
        found = self._by_aor.get(aor)
        return list(found.values()) if found else []

    def put(self, binding: Binding) -> None:
        self._by_aor.setdefault(binding.aor, {})[binding.instance] = binding
        heapq.heappush(self._heap, (binding.expires_at, binding.aor, binding.instance))

    def remove(self, aor: str, instance: str) -> Binding | None:
        found = self._by_aor.get(aor)
        if not found:
            return None
        binding = found.pop(instance, None)
        if not found:
            del self._by_aor[aor]
        return binding

    def remove_all(self, aor: str) -> list[Binding]:
        return list(self._by_aor.pop(aor, {}).values())

    def next_expiry(self) -> float | None:
        heap = self._heap
        while heap:
            expires_at, aor, instance = heap[0]
            binding = self.get(aor, instance)
            if binding is not None and binding.expires_at == expires_at:
                return expires_at
            heapq.heappop(heap)  # stale entry: refreshed or removed since
        return None

    def expire(self, now: float) -> list[Binding]:
        """Remove and return the bindings whose time is up (RFC 3261 §10.3: expiry is exact)."""
        out: list[Binding] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            expires_at, aor, instance = heapq.heappop(heap)
            binding = self.get(aor, instance)
            if binding is not None and binding.expires_at == expires_at:
                self.remove(aor, instance)
                out.append(binding)
        return out

    def __iter__(self) -> Iterator[Binding]:
        for per_aor in self._by_aor.values():
            yield from per_aor.values()

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_aor.values())
