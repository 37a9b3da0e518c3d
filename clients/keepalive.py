"""The keep-alive cycle of a registered client: a CRLF ping on its stream flow every
``interval`` (RFC 5626 §3.5.1, §4.4.1), or an OPTIONS over UDP, and the pong it waits for.

:class:`KeepAliveCycle` owns the cycle's two deadlines (the next ping, the pong's timeout) and
implements the coasting protocol (:mod:`emulator.coasting`): a simulator that knows every
ping on the flow is answered after fixed delays may skip the rounds and catch them up later;
the cycle ends where the real pings and pongs would have left it.  A ping draws nothing from
the agent's generator, so a skipped round changes nothing but the two deadlines.

What the agent does when the cycle fires (send the ping or the OPTIONS, find the registrar
lost) is clients/agent.py's; this module only keeps the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emulator.coasting import Answered, InFlight, Path
from emulator.net import Flow, Send
from emulator.sip.framing import PING

__all__ = ["KeepAliveCycle"]


class KeepAliveCycle:
    """One registration's keep-alives (see the module docstring)."""

    __slots__ = (
        "_back", "_out", "_ping", "at", "coasting", "expects_pong", "flow", "interval",
        "pong_at", "pong_timeout", "rounds_coasted",
    )  # fmt: skip

    def __init__(self, interval: float, pong_timeout: float, *, expects_pong: bool = True) -> None:
        self.at: float | None = None
        """When the next ping (or OPTIONS) goes out; None: not due (stopped, or waiting)."""
        self.pong_at: float | None = None
        """When an unanswered ping means the registrar is lost; None: no ping unanswered."""
        self.interval = interval
        self.pong_timeout = pong_timeout
        self.expects_pong = expects_pong
        """False: a ping keeps the flow open and nothing more (no pong awaited, no loss found
        by it; linphone, ``Profile.keepalive_detects_loss``): the next one after ``interval``."""
        self.flow: Flow | None = None
        """The registrar's flow (the agent's ``registrar_flow``)."""
        self._ping: Send | None = None
        self.coasting = False
        """Whether a simulator is skipping the rounds (emulator/coasting.py)."""
        self._out = self._back = 0.0
        self.rounds_coasted = 0
        """Rounds skipped so far."""

    # -- the cycle, as the agent drives it ------------------------------------------------

    def start(self, now: float, interval: float) -> None:
        """Registered (or refreshed): the next ping after ``interval``."""
        self.interval = interval
        self.at = now + interval
        self.pong_at = None
        self.coasting = False

    def stop(self) -> None:
        """Not registered (any more): no ping, no pong awaited, nothing to coast."""
        self.at = self.pong_at = None
        self.coasting = False

    def ping(self, now: float, flow: Flow) -> Send:
        """The CRLF ping to send now on ``flow``; its pong is due within ``pong_timeout``."""
        ping = self._ping
        if ping is None or ping.flow is not flow:
            # One Send per registrar flow, reused (it is immutable): making a frozen
            # dataclass costs as much as the rest of a keep-alive.
            ping = self._ping = Send(flow, PING)
        if self.expects_pong:
            self.pong_at = now + self.pong_timeout
        else:
            self.at = now + self.interval
        return ping

    def answered(self, now: float) -> None:
        """The pong (or the OPTIONS's 200) came: the next ping after the interval."""
        self.pong_at = None
        self.at = now + self.interval

    # -- coasting (emulator/coasting.py) --------------------------------------------------

    def deadline(self) -> float | None:
        if self.coasting:
            return None
        at, pong_at = self.at, self.pong_at
        if at is None:
            return pong_at
        if pong_at is not None and pong_at < at:
            return pong_at
        return at

    def coast_flows(self) -> Sequence[Flow] | None:
        """The registrar's stream flow, while the cycle waits for nothing but its next ping
        (a UDP OPTIONS keep-alive is a transaction: it does not coast)."""
        flow = self.flow
        if self.at is None or self.pong_at is not None or flow is None or not flow.reliable:
            return None
        if not self.expects_pong:
            return None  # unanswered pings: nothing to coast on (they run, one per interval)
        return (flow,)

    def begin_coast(self, paths: Mapping[Flow, Path], other: float | None) -> bool:
        flow = self.flow
        assert flow is not None and self.at is not None
        path = paths.get(flow)
        if path is None:
            return False  # pings that vanish end in a lost registrar: they must run
        if other is not None and other < self.at:
            return False  # something else comes first: coast from then on, if at all
        self.coasting = True
        self._out, self._back = path.out, path.back
        return True

    def catch_up(self, now: float, *, inclusive: bool) -> None:
        """Apply the rounds whose pong came back by ``now``; a ping still on its way stays
        skipped (``at`` is when it went out)."""
        at = self.at
        if not self.coasting or at is None:
            return  # the agent left the cycle meanwhile (a command): nothing skipped
        out, back, interval = self._out, self._back, self.interval
        while at < now or (inclusive and at == now):
            pong = at + out + back
            if pong > now:
                break
            self.rounds_coasted += 1
            at = pong + interval
        self.at = at

    def end_coast(self, now: float, *, inclusive: bool) -> list[InFlight]:
        """Catch up and stop coasting; a ping still on its way is handed back (its pong is
        due at ``sent_at + out + back``, the simulator's own arithmetic) and the cycle waits
        for it as if it had been sent."""
        at = self.at
        if not self.coasting or at is None:
            self.coasting = False  # the agent left the cycle meanwhile (a command): nothing to do
            return []
        self.coasting = False
        out, back, interval = self._out, self._back, self.interval
        while at < now or (inclusive and at == now):
            pong = at + out + back
            if pong > now:
                self.at = None
                self.pong_at = at + self.pong_timeout
                assert self.flow is not None
                return [InFlight(Send(self.flow, b""), at, Answered(out, back))]
            self.rounds_coasted += 1
            at = pong + interval
        self.at = at
        return []
