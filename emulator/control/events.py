"""What the deployment logs, as JSON, and its fan-out to event-stream clients (SSE).

:func:`event_json` turns one ``(source, event)`` from :meth:`Deployment.subscribe` into a
JSON object with a ``kind`` (``sip``, ``bad-message``, ``pool``, ``binding``, ``dns``,
``dns-update``, ``notice``), the ``source``, a readable ``text`` (the line ``sipemu up``
logs) and the event's own fields.  :class:`EventHub` hands each to every subscriber's bounded
queue; a subscriber that does not keep up loses its oldest events (counted), so a slow
``curl`` can never hold the deployment back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

from emulator.registrar import events as ev
from fakedns.authority import DnsQueried

__all__ = ["EventHub", "Subscription", "event_json"]

QUEUE_SIZE = 10_000
"""Events kept per subscriber before its oldest are dropped."""


def _plain(value: Any) -> Any:
    """A JSON-able copy of an event field (flows and tuples become lists/objects)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _fields(event: object) -> dict[str, Any]:
    names = getattr(type(event), "__slots__", None) or getattr(event, "__dict__", {})
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        names = [f.name for f in dataclasses.fields(event)]
    return {str(n): _plain(getattr(event, n)) for n in names if not str(n).startswith("_")}


def event_json(source: str, event: object) -> dict[str, Any]:
    """One deployment event as a JSON object (see the module docstring)."""
    if isinstance(event, str):
        return {"kind": "notice", "source": source, "text": event}
    if isinstance(event, DnsQueried):
        kind = "dns-update" if event.opcode == "UPDATE" else "dns"
        return {"kind": kind, "source": "dns", "text": event.line(), **_fields(event)}
    try:
        kind, text = ev.describe(event)  # type: ignore[arg-type]
    except Exception:  # an event type this module does not know yet (the cores evolve)
        kind, text = "pool", repr(event)
    out: dict[str, Any] = {"kind": kind, "source": source, "type": type(event).__name__}
    out["text"] = text
    out.update(_fields(event))
    return out


class Subscription:
    """One event-stream client's queue; iterate with ``await next_event()``."""

    def __init__(self, hub: EventHub, kinds: frozenset[str] | None, size: int) -> None:
        self._hub = hub
        self.kinds = kinds
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, item: dict[str, Any]) -> None:
        if self.kinds is not None and item["kind"] not in self.kinds:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)

    async def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None when none came within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._hub.unsubscribe(self)


class EventHub:
    """Fans deployment events out to subscribers; numbers them (the SSE ``id``)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self._ids = itertools.count(1)
        self.listeners: list[Callable[[str, object], None]] = []
        """Also called with every raw event (the metrics)."""
        self._joined: asyncio.Event | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def __call__(self, source: str, event: object) -> None:
        """The deployment listener: convert once, hand to every subscriber."""
        for listener in self.listeners:
            listener(source, event)
        if not self._subscribers:
            return
        if isinstance(event, ev.Exchanged) and event.heartbeat:
            return  # heartbeats between pools: every few seconds per pair, logged only verbose
        item = event_json(source, event)
        item["id"] = next(self._ids)
        for subscription in list(self._subscribers):
            subscription.offer(item)

    def subscribe(
        self, kinds: frozenset[str] | None = None, size: int = QUEUE_SIZE
    ) -> Subscription:
        subscription = Subscription(self, kinds, size)
        self._subscribers.append(subscription)
        if self._joined is not None:
            self._joined.set()
        return subscription

    async def subscribed(self) -> None:
        """Return once the stream has a subscriber (a harness that starts a reader and then
        acts waits on this, with a timeout, instead of polling :attr:`subscribers`)."""
        while not self._subscribers:
            self._joined = asyncio.Event()
            await self._joined.wait()

    def wake_all(self) -> None:
        """Wake every subscriber (the server is closing: their streams end)."""
        for subscription in list(self._subscribers):
            if not subscription.queue.full():  # a full queue wakes its reader anyway
                subscription.queue.put_nowait({"kind": "_end", "id": 0})

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)
