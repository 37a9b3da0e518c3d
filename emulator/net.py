"""Addresses, flows and the actions every sans-IO core emits.

The driving contract (see docs/architecture.md) is the same for every core:

* inputs: ``receive(data, flow, now)``, ``handle_timer(now)`` and commands that take ``now``;
* outputs, pulled by the driver: ``actions()`` (things to put on the wire) and ``events()``
  (things that happened, for logs, reports and invariants);
* ``next_deadline() -> float | None``: the absolute time at which ``handle_timer`` is due.

Drivers (asyncio on real sockets, the simulator on a virtual network) only move bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from emulator.values import static_frozen

__all__ = [
    "TRANSPORTS",
    "Action",
    "Address",
    "CloseFlow",
    "Core",
    "Effect",
    "Flow",
    "Send",
    "TransportName",
]

Address = tuple[str, int]
"""A (host, port) pair. Hosts are IP literals on the wire; FQDNs only in topology data."""

TransportName = Literal["udp", "tcp", "tls"]
TRANSPORTS: tuple[TransportName, ...] = ("udp", "tcp", "tls")


@static_frozen
class Flow:
    """One transport association: for UDP a (local, remote) socket pair, for TCP/TLS a connection.

    For stream transports the driver keeps one connection per flow; a core that answers a
    request replies on the flow the request came in on (RFC 3261 §18.2.2).  A core that
    originates a request to a peer it has no connection with names a new flow and the driver
    opens it (or reports ``FlowFailed`` to the core when it cannot).
    """

    transport: TransportName
    local: Address
    remote: Address

    @property
    def reliable(self) -> bool:
        """True for TCP and TLS (RFC 3261 §17: timers E and K differ for reliable transports)."""
        return self.transport != "udp"

    # Written out rather than left to the dataclass: the compiled build (mypyc) does not see
    # @static_frozen as a dataclass, and compiled code compared flows by identity (two equal
    # flows from two deliveries were "different": a refresh from the same source was logged as
    # a binding replaced from another, found by the compiled suite in issue 21).  Defined here,
    # both builds compare by fields; the dataclass still makes the hash from the same fields.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Flow):
            return NotImplemented
        return (
            self.remote == other.remote
            and self.local == other.local
            and self.transport == other.transport
        )

    def __ne__(self, other: object) -> bool:
        return not self == other


@static_frozen
class Send:
    """Action: put ``data`` (one whole SIP message, or a CRLF keep-alive) on ``flow``."""

    flow: Flow
    data: bytes


@static_frozen
class CloseFlow:
    """Action: close a stream flow (ignored for UDP)."""

    flow: Flow


@static_frozen
class Effect:
    """Base of the actions a core asks of its *host* rather than of the network, such as a
    client saving its endpoint cache (:class:`clients.cache.SaveCache`).  A core never does I/O
    inside an input handler: it emits the effect, and the driver hands it, after the input, to
    the callback of whoever runs the core (``on_effect``), which performs it.  (``@static_frozen``
    like its subclasses: the compiled build cannot derive those from a compiled class.)"""


Action = Send | CloseFlow | Effect
"""What a core asks its driver to do."""


class Core(Protocol):
    """The driving contract of every sans-IO core, as both drivers (the simulator and asyncio on
    real sockets) use it."""

    def receive(self, data: bytes, flow: Flow, now: float) -> None: ...

    def flow_failed(self, flow: Flow, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def actions(self) -> Sequence[Action]:
        """(A Sequence, so that a core that emits no Effect may say ``list[Send | CloseFlow]``.)"""
        ...

    def events(self) -> Sequence[object]: ...
