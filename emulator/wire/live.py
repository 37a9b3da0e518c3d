"""What a live run's drivers tell: every message they send and receive, once, with wall time.

Rules of this file:

* One :class:`WireRecorder` per run, shared by every driver of the run (the pools', the fake
  DNS's, the agents'), all on one event loop.  The drivers call :meth:`WireRecorder.sent`
  when they put a message on a socket and :meth:`WireRecorder.received` when they take one
  off, with the socket's real addresses (a TCP connection's ephemeral port, not the
  listening port the core named).
* A message between two hosts of the same run is seen twice (sent by one, received by the
  other) and recorded once, when it is sent: a received message whose source address is one
  this run has sent from is not recorded again.  A message from a peer outside the run (SIPp,
  a real client) is recorded when it is received.
* ``protocol``: "dns" when either end is a DNS server address the run registered
  (:attr:`WireRecorder.dns`), "sip" otherwise; the fake DNS says "dns" itself.
* Times are ``time.time()`` (wall clock, seconds since the Unix epoch), taken when the driver
  tells: what the pcapng file and HEP show.
"""

from __future__ import annotations

import time

from emulator.net import Address, TransportName
from emulator.wire import Capture, Packet, Tap, WireProtocol

__all__ = ["WireRecorder"]


class WireRecorder:
    """The live drivers' side of a :class:`~emulator.wire.Tap` (see the rules above)."""

    def __init__(self, tap: Tap, capture: Capture | None = None) -> None:
        self.tap = tap
        self.capture = capture if capture is not None else Capture(virtual=False)
        self.dns: set[Address] = set()
        """Addresses of DNS servers: a message to or from one is DNS."""
        self._senders: set[Address] = set()
        self._closed = False

    def sent(
        self,
        transport: TransportName,
        src: Address,
        dst: Address,
        data: bytes,
        protocol: WireProtocol | None = None,
    ) -> None:
        if self._closed:
            return
        self._senders.add(src)
        if protocol is None:
            protocol = "dns" if dst in self.dns or src in self.dns else "sip"
        self.tap.packet(Packet(time.time(), transport, src, dst, data, protocol, True))

    def received(
        self,
        transport: TransportName,
        src: Address,
        dst: Address,
        data: bytes,
        protocol: WireProtocol | None = None,
    ) -> None:
        if self._closed or src in self._senders:
            return  # a host of this run sent it: recorded then
        if protocol is None:
            protocol = "dns" if dst in self.dns or src in self.dns else "sip"
        self.tap.packet(Packet(time.time(), transport, src, dst, data, protocol, False))

    def close(self) -> None:
        """Close the tap (once); later messages are ignored."""
        if self._closed:
            return
        self._closed = True
        self.tap.close()
