"""What went on the wire: one :class:`Packet` per message a driver sent or received.

Rules of this file:

* A *tap* (:class:`Tap`) is told of every SIP and DNS message a driver puts on or takes off
  the wire, as a :class:`Packet`, in the order it happened.  Cores know nothing of taps: the
  drivers (the simulator's world, the live transports, the fake DNS server) call them, and
  only when one is attached (``tap is None`` costs one comparison on the hot path).
* A packet is one whole message: a UDP datagram, one framed SIP message (or CRLF keep-alive)
  on a TCP/TLS connection, one DNS message.  TLS packets hold the *plaintext* SIP inside the
  TLS session (sipemu terminates the TLS): ``transport == "tls"`` says so.
* ``time`` is on the run's own timeline: virtual seconds in a simulation (0 = start of the
  run), wall-clock seconds since the Unix epoch (``time.time()``) in a live run.
  :attr:`Capture.virtual` tells the sinks which.
* In a simulation a packet is recorded once, when it is sent (src = sender); a live driver
  records what it sends and what it receives on its own sockets.
* Sinks (pcapng, HEP, reports, ladders) are taps too; :class:`Taps` fans one packet out to
  several.  A sink's :meth:`Tap.close` is called exactly once, on every exit path of the run,
  and leaves what was written so far readable.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

from emulator.net import Address, TransportName
from emulator.values import static_frozen

__all__ = ["Capture", "Packet", "PacketLog", "Tap", "Taps", "WireProtocol"]

WireProtocol = Literal["sip", "dns"]


@static_frozen
class Packet:
    """One message on the wire, as a tap sees it."""

    time: float
    transport: TransportName
    src: Address
    dst: Address
    data: bytes
    protocol: WireProtocol = "sip"
    """``"dns"`` for a DNS query or answer, ``"sip"`` for SIP (and CRLF keep-alives)."""
    sent: bool = True
    """True when the recording driver sent it, False when it received it (live)."""


@static_frozen
class Capture:
    """What a sink is told when a run starts."""

    virtual: bool
    """True for a simulation: ``Packet.time`` is virtual seconds from the run's start."""
    name: str = "sipemu"
    """What ran (a command line, a scenario's name): sinks may write it in their headers."""


class Tap(Protocol):
    """Something told of every packet of a run."""

    def packet(self, packet: Packet) -> None: ...

    def close(self) -> None: ...


class PacketLog:
    """A tap that keeps every packet in memory, in order (reports, ladders, tests)."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []

    def packet(self, packet: Packet) -> None:
        self.packets.append(packet)

    def close(self) -> None:
        pass


class Taps:
    """Several taps as one; :meth:`close` closes each once, even when one of them fails."""

    def __init__(self, taps: Iterable[Tap] = ()) -> None:
        self.taps: list[Tap] = list(taps)
        self._closed = False

    def add(self, tap: Tap) -> None:
        self.taps.append(tap)

    def packet(self, packet: Packet) -> None:
        for tap in self.taps:
            tap.packet(packet)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        for tap in self.taps:
            try:
                tap.close()
            except BaseException as exc:  # close the others, then raise the first failure
                if error is None:
                    error = exc
        if error is not None:
            raise error
