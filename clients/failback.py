"""The failback-probe cycle of a client registered away from its primary registrar: an OPTIONS
to the primary every ``failback_probe_interval``; once the primary has answered them for
``failback_detection_timeout``, the client goes home (docs/clients.md, "Failback").

:class:`FailbackCycle` owns the cycle's deadline and how long the primary has been answering,
and implements the coasting protocol (:mod:`emulator.coasting`) for one case: a primary cut
off from the client over a stream transport, whose connection attempts vanish (each probe's
transaction ends at Timer F and the next follows an interval later).  A skipped probe is
made by the agent's request builder as a sent one's are (:meth:`ProbeHost.skip_probe`: the
same function draws and counts them, without building the message), so it draws from the
generator and counts its CSeq exactly as a sent one: no hand-written copy of the draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from emulator.coasting import InFlight, Path
from emulator.net import Flow, Send

__all__ = ["FailbackCycle", "ProbeHost"]


class ProbeHost(Protocol):
    """What the cycle needs of its agent."""

    def probe_flow(self) -> Flow | None:
        """The flow of the next probe, while the agent waits for nothing but it (registered
        away from a resolved primary, no transaction in flight); else None."""
        ...

    def send_probe(self, now: float) -> Send | None:
        """Send a probe as of ``now`` (its transaction starts then); what went out."""
        ...

    def skip_probe(self) -> None:
        """Make the identifiers the probe of a skipped round would have had (its draws and
        CSeq), with the function that makes a sent probe's."""
        ...


class FailbackCycle:
    """One registration's failback probes (see the module docstring)."""

    __slots__ = ("_host", "at", "coasting", "interval", "ok_since", "rounds_coasted", "timeout")

    def __init__(self, host: ProbeHost, interval: float, timeout: float) -> None:
        self.at: float | None = None
        """When the next probe goes out; None: not probing, or a probe in flight."""
        self.ok_since: float | None = None
        """Since when the primary has answered every probe (None: the last one failed)."""
        self.interval = interval
        self.timeout = timeout
        """How long a probe's transaction waits for an answer (Timer F)."""
        self._host = host
        self.coasting = False
        """Whether a simulator is skipping the probes (emulator/coasting.py)."""
        self.rounds_coasted = 0
        """Probes skipped so far."""

    # -- the cycle, as the agent drives it ------------------------------------------------

    def start(self, now: float) -> None:
        """Registered away from the primary: probe it after an interval."""
        self.ok_since = None
        self.at = now + self.interval
        self.coasting = False

    def stop(self) -> None:
        """Not probing (any more): nothing to coast either."""
        self.at = None
        self.coasting = False

    def answered(self, now: float, detection: float) -> bool:
        """A probe was answered; True once the primary has answered for ``detection``
        seconds (time to go home), else the next probe after an interval."""
        if self.ok_since is None:
            self.ok_since = now
        if now - self.ok_since >= detection:
            return True
        self.at = now + self.interval
        return False

    def failed(self, now: float) -> None:
        """A probe got no answer: the count starts again, the next probe after an interval."""
        self.ok_since = None
        self.at = now + self.interval

    # -- coasting (emulator/coasting.py) --------------------------------------------------

    def deadline(self) -> float | None:
        return None if self.coasting else self.at

    def coast_flows(self) -> Sequence[Flow] | None:
        if self.at is None:
            return None
        flow = self._host.probe_flow()
        if flow is None or not flow.reliable:
            return None
        return (flow,)

    def begin_coast(self, paths: Mapping[Flow, Path], other: float | None) -> bool:
        """Coast when every probe vanishes (an answered one changes ``ok_since``).  ``other``
        does not matter: a round due at the core's own timer is left to it (the simulator
        catches up non-inclusively there), so the probes' draws keep their order among the
        core's others."""
        flows = self.coast_flows()
        if flows is None or flows[0] not in paths or paths[flows[0]] is not None:
            return False
        self.coasting = True
        return True

    def catch_up(self, now: float, *, inclusive: bool) -> None:
        """Apply the probes that failed by ``now``; one still in flight stays skipped."""
        at = self.at
        if not self.coasting or at is None:
            return  # the agent left the cycle meanwhile (a command): nothing skipped
        while at < now or (inclusive and at == now):
            failed = at + self.timeout
            if failed > now or (failed == now and not inclusive):
                break
            self._skip()
            at = failed + self.interval
        self.at = at

    def end_coast(self, now: float, *, inclusive: bool) -> list[InFlight]:
        """Catch up and stop coasting; a probe still in flight is sent for real as of when
        it went out (its Send is among the agent's actions, its Timer F runs from then) and
        handed back: its connection attempt vanished."""
        at = self.at
        if not self.coasting or at is None:
            self.coasting = False  # the agent left the cycle meanwhile (a command): nothing to do
            return []
        self.coasting = False
        while at < now or (inclusive and at == now):
            failed = at + self.timeout
            if failed > now or (failed == now and not inclusive):
                self.at = None
                send = self._host.send_probe(at)
                return [] if send is None else [InFlight(send, at, None)]
            self._skip()
            at = failed + self.interval
        self.at = at
        return []

    def _skip(self) -> None:
        self._host.skip_probe()
        self.ok_since = None
        self.rounds_coasted += 1
