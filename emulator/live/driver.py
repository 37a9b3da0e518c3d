"""asyncio driver that puts ONE sans-IO core on real sockets: UDP, TCP and TLS.

The driver is thin (house style, principles 1-2): it never looks inside a SIP message.  After
every input (a datagram, a framed stream message, a connection failure, a timer) it

1. hands the input to the core with ``now = loop.time() * time_scale`` (1 unless a scenario
   runs faster than real time: the cores only ever see ``now``, so a scaled clock is a
   faithful fast-forward),
2. drains ``core.actions()`` and puts each :class:`~emulator.net.Send` on its flow (opening a
   TCP/TLS connection when the flow has none; UDP datagrams leave together at the end of the
   loop iteration), closes the flow (:class:`~emulator.net.CloseFlow`) or hands an
   :class:`~emulator.net.Effect` (a client's cache write) to the ``on_effect`` callback,
3. drains ``core.events()`` to the ``on_events`` callback,
4. re-arms ONE ``loop.call_at`` on ``core.next_deadline()`` (aioquic's ``transmit()``).

The sockets are elsewhere, one job per module: the UDP socket in emulator/live/udp.py, the TCP
and TLS listeners, connections and stream framing in emulator/live/stream.py, the TLS layer in
emulator/live/tls.py, certificates in emulator/live/certs.py.

Two fault modes are provided (see docs/live.md for what they can and cannot emulate):

* NIC disabled (:meth:`CoreDriver.disable_nic`): silent.  Datagrams to and from the host vanish;
  established connections stop being read and what the core writes on them is held (TCP would
  retransmit it) until the NIC is enabled again; new connections are still accepted by the
  kernel but never read; no new outbound connection is attempted (the SYN is "lost").
* Stopped (:meth:`CoreDriver.close`): every socket is closed, so the kernel refuses (ICMP port
  unreachable for UDP, RST for TCP).  :meth:`CoreDriver.open` binds the same ports again.

Defences (docs/live.md, "Limits and defences"): the stream limits of
:class:`~emulator.live.stream.StreamLimits`; the open-files limit raised to its hard limit at
the first :meth:`CoreDriver.open` (:func:`~emulator.live.sockets.raise_open_files_limit`); a UDP
datagram holding only CRLFs, or nothing (a keep-alive: RFC 5626 §3.5.1's CRLF, sent over UDP
by many clients), is dropped before the core, neither answered nor reported as a bad message.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping, Sequence

from emulator.live.sockets import BindError, describe_os_error, raise_open_files_limit
from emulator.live.stream import CONNECT_TIMEOUT, StreamLimits, StreamTransports
from emulator.live.udp import SOCKET_BUFFER, UdpSocket
from emulator.net import CloseFlow, Core, Effect, Flow, Send, TransportName
from emulator.wire.live import WireRecorder

__all__ = [
    "CONNECT_TIMEOUT",
    "SOCKET_BUFFER",
    "BindError",
    "CoreDriver",
    "StreamLimits",
    "describe_os_error",
]


class CoreDriver:
    """Puts one core on a host's sockets: one UDP socket, one TCP and one TLS listener.

    ``ports`` maps each transport to serve to its port (0: ephemeral).  After :meth:`open`,
    :attr:`bound` holds the ports actually bound, and a later :meth:`open` (after
    :meth:`close`) binds those same ports again.  The core is attached after binding
    (:meth:`attach`), because a pool core must know every pool's real ports.

    ``on_events`` receives each non-empty batch of ``core.events()``; ``on_effect`` performs
    each :class:`~emulator.net.Effect` action (a client's cache write), after the input.
    ``debug`` receives one line per datagram, connection and socket error; it is off on the
    hot path unless given.  ``notice`` receives the lines for the log (the caller rate-limits
    them): a connection closed by a limit, descriptors exhausted.  ``stream_limits``: the
    TCP/TLS timeouts (default: none, a client's).
    """

    def __init__(
        self,
        name: str,
        address: str,
        ports: Mapping[TransportName, int],
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        on_events: Callable[[Sequence[object]], None] | None = None,
        on_effect: Callable[[Effect], None] | None = None,
        debug: Callable[[str], None] | None = None,
        expect_pongs: bool = False,
        time_scale: float = 1.0,
        notice: Callable[[str], None] | None = None,
        stream_limits: StreamLimits | None = None,
    ) -> None:
        if "tls" in ports and server_ssl is None:
            raise ValueError(f"{name}: a TLS port needs a server SSL context")
        self.name = name
        self.address = address
        self.ports: dict[TransportName, int] = dict(ports)
        self.bound: dict[TransportName, int] = {}
        self.nic_enabled = True
        self._on_events = on_events
        self._on_effect = on_effect
        self._debug_log = debug
        self._notice = notice
        self.keepalives = 0
        """UDP datagrams holding only CRLFs (keep-alives), dropped before the core."""
        self.expect_pongs = expect_pongs
        """The core sends CRLF keep-alive pings (a client): pongs are handed to it as CRLF."""
        self.time_scale = time_scale
        """The core's clock runs this many times faster than the loop's (``--time-scale``)."""
        self._dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._core: Core | None = None
        self._udp = UdpSocket(
            name, address, self._datagram, self.debug if debug is not None else None
        )
        self._streams = StreamTransports(
            self,
            server_ssl=server_ssl,
            client_ssl=client_ssl,
            expect_pongs=expect_pongs,
            limits=stream_limits,
        )
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._recorder: WireRecorder | None = None

    @property
    def recorder(self) -> WireRecorder | None:
        """Told of every message this host sends and receives (emulator/wire/live.py)."""
        return self._recorder

    @recorder.setter
    def recorder(self, recorder: WireRecorder | None) -> None:
        self._recorder = recorder
        self._streams.recorder = recorder

    # -- life cycle --------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._loop is not None

    @property
    def core(self) -> Core | None:
        return self._core

    @property
    def dropped(self) -> int:
        """Datagrams dropped in or out because the NIC was disabled (or no core attached, or
        no socket)."""
        return self._dropped + self._udp.dropped

    async def open(self) -> dict[TransportName, int]:
        """Bind every transport; returns the bound ports.  Raises :class:`BindError`."""
        if self._loop is not None:
            return dict(self.bound)
        loop = asyncio.get_running_loop()
        self._loop = loop
        raise_open_files_limit()  # once a process: a no-op when already at the hard limit
        self._streams.start(loop)
        try:
            for transport, port in self.ports.items():
                if transport == "udp":
                    self.bound["udp"] = await self._udp.open(loop, port)
                else:
                    self.bound[transport] = await self._streams.listen(transport, port)
        except BaseException:
            await self.close()
            raise
        self.ports = dict(self.bound)  # a restart binds the same ports (SO_REUSEADDR)
        return dict(self.bound)

    @property
    def udp_open(self) -> bool:
        """Whether the UDP socket is open (False while suspended, see :meth:`suspend_udp`)."""
        return self._udp.is_open

    def suspend_udp(self) -> None:
        """Close the UDP socket until the core next sends a datagram (see
        :meth:`~emulator.live.udp.UdpSocket.suspend`)."""
        self._udp.suspend()

    def now(self) -> float:
        """The core's ``now``: the loop's clock, scaled."""
        assert self._loop is not None
        return self._loop.time() * self.time_scale

    def attach(self, core: Core) -> None:
        """Connect ``core``; it receives from now on.  Arms its timer."""
        self._core = core
        self._udp.forget_flows()
        self.poke()

    def poke(self) -> None:
        """Flush after a command was given to the core outside an input (e.g. ``start(now)``)."""
        if self._core is not None and self._loop is not None:
            self._flush(self._core)

    async def close(self) -> None:
        """Close every socket and connection (a stopped process); the core is detached."""
        self._udp.flush()  # what the core sent before the stop leaves, as it would have
        loop = self._loop
        self._core = None
        self._cancel_timer()
        self._udp.cancel_reopen()
        await self._streams.close()
        # Wait for the socket to be really closed, so the same port can be bound again.
        await self._udp.close()
        if loop is not None:
            self._loop = None

    # -- faults ------------------------------------------------------------------------------

    def disable_nic(self) -> None:
        """Silent host: see the module docstring for what that means per transport."""
        self._udp.flush()  # sent before the NIC went down
        self.nic_enabled = False
        self._streams.pause()

    def enable_nic(self) -> None:
        self.nic_enabled = True
        self._streams.release()

    # -- inputs ------------------------------------------------------------------------------

    def _datagram(self, data: bytes, flow: Flow) -> None:
        # The hot path: keep it to a few attribute loads and one call into the core.
        core = self._core
        if core is None or not self.nic_enabled:
            self._dropped += 1
            if self._debug_log is not None:
                host, port = flow.remote
                self.debug(f"dropped udp from {host}:{port} (NIC disabled or no core)")
            return
        if data[:1] in b"\r" and not data.strip(b"\r\n"):  # empty, or starting with CR
            # A keep-alive (CRLFs only, or empty): not a message, neither answered nor a bad
            # input (Kamailio drops datagrams this short before parsing them, too).
            self.keepalives += 1
            if self._debug_log is not None:
                self.debug(f"<- udp {flow.remote[0]}:{flow.remote[1]} keep-alive (CRLF)")
            return
        if self._debug_log is not None:
            self.debug(f"<- udp {flow.remote[0]}:{flow.remote[1]} {len(data)} bytes")
        assert self._loop is not None
        if self._recorder is not None:
            self._recorder.received("udp", flow.remote, self._udp.local, data)
        core.receive(data, flow, self._loop.time() * self.time_scale)
        self._flush(core)

    # What the stream side (emulator/live/stream.py) calls: see StreamHost.

    @property
    def receiving(self) -> bool:
        """A core is attached and the host is open: bytes read now are handed to it."""
        return self._core is not None and self._loop is not None

    def deliver(self, flow: Flow, messages: list[bytes]) -> None:
        """Hand whole messages read on a stream flow to the core (all at one ``now``)."""
        core = self._core
        if core is None or self._loop is None:
            return
        now = self.now()
        for data in messages:
            core.receive(data, flow, now)
        self._flush(core)

    def deliver_unframed(self, flow: Flow, data: bytes) -> None:
        """Hand bytes that could not be framed to the core: it answers 400/413 if it can."""
        core = self._core
        if core is None or self._loop is None:
            return
        core.receive(data, flow, self.now())
        self._flush(core)

    def flow_failed(self, flow: Flow) -> None:
        """Tell the core that a flow failed (refused, reset, no TLS context, timed out)."""
        core = self._core
        if core is None or self._loop is None:
            return
        core.flow_failed(flow, self.now())
        self._flush(core)

    # -- outputs -----------------------------------------------------------------------------

    def _flush(self, core: Core) -> None:
        """Send what the core wants sent, report its events, re-arm its one timer."""
        actions = core.actions()
        while actions:
            for action in actions:
                if type(action) is Send:
                    self._send(action.flow, action.data)
                elif type(action) is CloseFlow:
                    self._streams.close_flow(action.flow)
                elif self._on_effect is not None and isinstance(action, Effect):
                    self._on_effect(action)  # the host performs it (a client's cache write)
                else:
                    raise TypeError(f"{self.name} asked for {action!r}, which nothing performs")
            actions = core.actions()
        events = core.events()
        if events and self._on_events is not None:
            self._on_events(events)
        deadline = core.next_deadline()
        if deadline != self._timer_at:
            self._arm(deadline)

    def _send(self, flow: Flow, data: bytes) -> None:
        if flow.transport == "udp":
            if self.nic_enabled and self._loop is not None:
                self._udp.send(data, flow.remote)
                if self._recorder is not None:
                    self._recorder.sent("udp", self._udp.local, flow.remote, data)
            else:
                self._dropped += 1
            return
        self._streams.send(flow, data)

    # -- the one timer -----------------------------------------------------------------------

    def _arm(self, deadline: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline / self.time_scale, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        due = self._timer_at
        self._timer = None
        self._timer_at = None
        core = self._core
        if core is None or self._loop is None:
            return
        now = self.now()
        # The loop runs a timer up to one clock-resolution early; the deadline has been reached
        # as far as the loop is concerned, so the core must not see a time just before it
        # (it would do nothing and ask for the same deadline again).
        if due is not None and now < due:
            now = due
        core.handle_timer(now)
        self._flush(core)

    # -- misc --------------------------------------------------------------------------------

    def debug(self, text: str) -> None:
        """One line to the ``debug`` callback, naming this host (nothing without one)."""
        if self._debug_log is not None:
            self._debug_log(f"{self.name}: {text}")

    def notice(self, text: str) -> None:
        """One line for the log, naming this host (also to ``debug``)."""
        if self._notice is not None:
            self._notice(f"{self.name} {text}")
        self.debug(text)

    @property
    def connections(self) -> list[Flow]:
        """The open (or opening) stream flows, for diagnostics and tests."""
        return self._streams.connections
