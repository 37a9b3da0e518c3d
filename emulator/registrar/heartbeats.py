"""A backup pool's heartbeats to the primaries it backs up (the pool's one periodic behaviour).

Emulator choice (no source gives the wire protocol; docs/protocol.md): every
``heartbeat_interval`` the backup sends an OPTIONS to each primary it backs up, unless the
previous one is still pending; one unanswered for ``heartbeat_timeout`` (or refused) is
missed, any final response is an answer.  Each primary's :class:`.monitor.PeerMonitor` turns
the outcomes into failover and failback; what its transitions trigger comes back as pool
events and a :class:`.monitor.SendUsersHome`, which the pool carries out.

The :class:`Heartbeater` is a :class:`emulator.coasting.Cycle`: a simulator whose network
does not change may skip its rounds (see the section "coasting" below, and
docs/simulation.md).  A live driver never does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from emulator.coasting import Answered, InFlight, Path
from emulator.net import Flow, Send
from emulator.registrar.endpoints import PoolEndpoints, flow_between
from emulator.registrar.monitor import MonitorOutput, PeerMonitor, PeerState, SendUsersHome
from emulator.registrar.outgoing import Identifiers, Outbox, Outgoing
from emulator.sip.transaction import ClientTransaction
from emulator.topology import ResiliencySettings

__all__ = ["Heartbeater"]


@dataclass(slots=True)
class _Heartbeat:
    peer: str
    transaction: ClientTransaction
    flow: Flow
    missed_at: float
    sent_at: float


@dataclass(slots=True)
class _Coast:
    """Heartbeat rounds being skipped: per peer, what becomes of its heartbeats (Answered or
    None: silent); per peer, the latest heartbeat (pending at the start, or skipped since) as
    when it went out and its identifiers (or the real one, taken in at the start); the answers
    on their way at the last catch-up (peer, round sent at, arrival); the rounds skipped."""

    paths: dict[str, Answered | None]
    latest: dict[str, tuple[float, Identifiers | _Heartbeat]]
    answers: list[tuple[str, float, float]]


class Heartbeater:
    """The heartbeats of one backup pool to its primaries, and their monitors."""

    __slots__ = (
        "_beats",
        "_box",
        "_coast",
        "_flows",
        "_next_at",
        "_outgoing",
        "_rounds",
        "_send_home",
        "monitors",
        "settings",
        "trace",
    )

    def __init__(
        self,
        monitors: Mapping[str, PeerMonitor],
        me: PoolEndpoints,
        endpoints: Mapping[str, PoolEndpoints],
        settings: ResiliencySettings,
        outgoing: Outgoing,
        box: Outbox,
        send_home: Callable[[str, float], None],
        *,
        trace: bool,
    ) -> None:
        self.monitors = dict(monitors)
        self.settings = settings
        self.trace = trace
        self._outgoing = outgoing
        self._box = box
        self._send_home = send_home
        self._flows = {peer: flow_between(me, endpoints[peer]) for peer in self.monitors}
        self._beats: dict[str, _Heartbeat] = {}
        self._next_at: float | None = None
        self._coast: _Coast | None = None
        self._rounds = 0

    # -- the pool's inputs ------------------------------------------------------------------

    def reconfigure(
        self,
        monitors: Mapping[str, PeerMonitor],
        me: PoolEndpoints,
        endpoints: Mapping[str, PoolEndpoints],
        settings: ResiliencySettings,
        now: float,
    ) -> None:
        """The administrator changed the pairings or the timers (emulator/pairing.py): go on
        with these monitors (a new one's first heartbeat goes out now, a dropped one's pending
        heartbeat is forgotten) and these timers (from the next round).  Not while coasting:
        the simulator ends every coast first (it settles the world)."""
        assert self._coast is None, "reconfigured while coasting"
        self.settings = settings
        added = [peer for peer in monitors if peer not in self.monitors]
        for peer in [peer for peer in self.monitors if peer not in monitors]:
            beat = self._beats.pop(peer, None)
            if beat is not None:
                self._outgoing.forget(beat.transaction)
            del self._flows[peer]
        self.monitors = dict(monitors)
        for peer in added:
            self._flows[peer] = flow_between(me, endpoints[peer])
        if not self.monitors:
            self._next_at = None
        elif added or self._next_at is None:
            self._next_at = now

    def start(self, now: float) -> None:
        """Begin: every monitored primary counts as heard now; the first round goes out now."""
        for monitor in self.monitors.values():
            monitor.last_answer_at = now
        if self.monitors:
            self._next_at = now

    def deadline(self) -> float | None:
        """The next round, a pending heartbeat's miss, a monitor's detection deadline.  While
        coasting, only the deadlines of monitors that are not ``up`` (a ``heartbeat-lost``
        one's failover, a ``recovering`` one's failback): the rounds are skipped, and answers
        keep an ``up`` one's failover deadline ahead."""
        if self._coast is not None:
            return self._monitor_deadline(skip_up=True)
        best = self._next_at
        at = self._outgoing.deadline(heartbeats=True)  # retransmissions of pending ones
        if at is not None and (best is None or at < best):
            best = at
        for beat in self._beats.values():
            if best is None or beat.missed_at < best:
                best = beat.missed_at
        at = self._monitor_deadline(skip_up=False)
        if at is not None and (best is None or at < best):
            best = at
        return best

    def _monitor_deadline(self, *, skip_up: bool) -> float | None:
        best: float | None = None
        for monitor in self.monitors.values():
            if skip_up and monitor.state is PeerState.UP:
                continue
            at = monitor.next_deadline()
            if at is not None and (best is None or at < best):
                best = at
        return best

    def handle_timer(self, now: float) -> None:
        """Misses, detection deadlines, then the round due (after the pool's transactions'
        timers: a heartbeat's retransmissions are the pool's :class:`.outgoing.Outgoing`'s)."""
        for peer, beat in list(self._beats.items()):
            if now >= beat.missed_at:
                del self._beats[peer]
                self._outgoing.forget(beat.transaction)
                self._apply(self.monitors[peer].missed(now))
        for monitor in self.monitors.values():
            self._apply(monitor.handle_timer(now))
        at = self._next_at
        if self._coast is None and at is not None and now >= at:
            for peer in self.monitors:
                if peer not in self._beats:  # else the previous one is still pending
                    self._send(peer, now, None)
            self._next_at = now + self.settings.heartbeat_interval

    def answered(self, tx: ClientTransaction, now: float) -> None:
        """``tx`` (a heartbeat's transaction) got its final response."""
        for peer, beat in list(self._beats.items()):
            if beat.transaction is tx:
                del self._beats[peer]
                self._apply(self.monitors[peer].answered(now))

    def flow_failed(self, flow: Flow, now: float) -> None:
        for peer, beat in list(self._beats.items()):
            if beat.flow == flow:
                # A refused heartbeat is a missed one, at once (RFC 3261 §8.1.3.1: like 503).
                del self._beats[peer]
                self._apply(self.monitors[peer].missed(now))

    def _send(
        self, peer: str, now: float, ids: Identifiers | None, *, send: bool = True
    ) -> Flow | None:
        """The heartbeat to ``peer`` sent at ``now`` (``ids``: drawn already by a skipped round;
        ``send`` False: its first transmission is the simulator's to carry, or vanished)."""
        flow = self._flows[peer]
        if flow is None:
            return None
        request = self._outgoing.new_request("OPTIONS", f"sip:{peer}", f"sip:{peer}", flow, ids)
        tx = self._outgoing.start(request, flow, "heartbeat", now, send=send)
        self._beats[peer] = _Heartbeat(peer, tx, flow, now + self.settings.heartbeat_timeout, now)
        return flow

    def _apply(self, outputs: Sequence[MonitorOutput]) -> None:
        """What a monitor's transition triggered: events, and users sent home (failback)."""
        for output in outputs:
            if isinstance(output, SendUsersHome):
                self._send_home(output.peer, output.now)
            else:
                self._box.events.append(output)

    # -- coasting (emulator/coasting.py: a Cycle) -------------------------------------------
    #
    # A simulator whose network does not change knows what becomes of every heartbeat: each
    # peer either answers it after fixed delays (Answered) or never hears of it or is never
    # heard back (None, silent).  While no answer and no miss would move a monitor to another
    # state, the rounds change nothing but times and the generator, so the simulator may skip
    # them: begin_coast() says whether that holds and begins; before every input to the pool
    # the simulator calls catch_up(), which applies what the skipped rounds did (answers that
    # have arrived; identifiers drawn through Outgoing.identifiers, as a real round draws
    # them), and end_coast() ends it when the network changes.

    @property
    def coasting(self) -> bool:
        return self._coast is not None

    @property
    def rounds_coasted(self) -> int:
        return self._rounds

    def coast_flows(self) -> Sequence[Flow] | None:
        """The UDP flow to each peer, if the exchanges are not traced (verbose runs show every
        heartbeat) and every peer is heartbeaten over UDP; else None."""
        if self.trace or self._next_at is None or not self.monitors or self._coast is not None:
            return None
        flows: list[Flow] = []
        for flow in self._flows.values():
            if flow is None or flow.transport != "udp":
                return None
            flows.append(flow)
        return flows

    def begin_coast(self, paths: Mapping[Flow, Path], other: float | None) -> bool:
        """Begin coasting if the next round is the pool's next deadline and the rounds would
        change no monitor's state: an answered peer's monitor is ``up`` or ``recovering``
        (a heartbeat interval plus the round trip shorter than the failover interval, so that
        answers keep the failover deadline ahead; the round trip shorter than the heartbeat
        interval and timeout, so that each answer comes before the next round and the miss);
        a silent peer's is ``heartbeat-lost`` or ``failed-over`` (and a heartbeat is missed
        before the next is due).  A heartbeat to a silent peer still pending is taken into
        the coast.  ``other``: the pool's next deadline besides this cycle."""
        at = self._next_at
        settings = self.settings
        if at is None or self._coast is not None:
            return False
        by_peer: dict[str, Answered | None] = {}
        for peer, monitor in self.monitors.items():
            flow = self._flows[peer]
            if flow is None or flow not in paths:
                return False
            path = paths[flow]
            by_peer[peer] = path
            state = monitor.state
            if path is not None:
                if state is not PeerState.UP and state is not PeerState.RECOVERING:
                    return False
                rtt = path.out + path.back
                if not settings.heartbeat_interval + rtt < monitor.failover_interval:
                    return False
                if not (rtt < settings.heartbeat_interval and rtt < settings.heartbeat_timeout):
                    return False
                if peer in self._beats:
                    return False  # its answer is on its way: coast once it is in
            else:
                if state is not PeerState.HEARTBEAT_LOST and state is not PeerState.FAILED_OVER:
                    return False
                if settings.heartbeat_timeout > settings.heartbeat_interval:
                    return False
                beat = self._beats.get(peer)
                if beat is not None and beat.sent_at + settings.heartbeat_interval != at:
                    return False
        # Nothing else may fall due before the round (the deadlines of monitors that are not
        # up stay armed, but they too must come after it).
        mine = self._monitor_deadline(skip_up=True)
        if mine is not None and (other is None or mine < other):
            other = mine
        if other is not None and other <= at:
            return False
        latest: dict[str, tuple[float, Identifiers | _Heartbeat]] = {}
        for peer, beat in self._beats.items():  # pending heartbeats to silent peers
            self._outgoing.forget(beat.transaction)
            latest[peer] = (beat.sent_at, beat)
        self._beats = {}
        self._coast = _Coast(by_peer, latest, [])
        return True

    def catch_up(self, now: float, *, inclusive: bool) -> None:
        """Apply the rounds skipped up to ``now`` (answers that have arrived by then; to
        silent peers, nothing) and go on coasting; each skipped heartbeat draws its
        identifiers as a real one does.  ``inclusive``: a round due exactly at ``now`` went
        out already."""
        coast = self._coast
        if coast is None:
            return
        at = self._next_at
        assert at is not None
        if at > now or (at == now and not inclusive):
            if coast.answers:
                self._answers_in(coast, now)
            return
        interval = self.settings.heartbeat_interval
        rounds = 0
        last = at
        while at < now or (inclusive and at == now):
            last = at
            rounds += 1
            at = at + interval
        # The same draws, in the same order, as the real rounds would make: each heartbeat of
        # each round (peers in order) draws through the code a real heartbeat's request
        # draws with; only the last round's identifiers are kept (its request may still be
        # under way when the coast ends).
        identifiers = self._outgoing.identifiers
        peers = list(self.monitors)
        self._outgoing.skip_identifiers((rounds - 1) * len(peers))  # as many identifiers()
        ids = [identifiers() for _ in peers]
        self._next_at = at
        self._rounds += rounds
        # Every answer of a round comes before the next round (begin_coast): only the last
        # round's may still be on its way, earlier ones have all arrived.
        answers = coast.answers
        for peer, drawn in zip(peers, ids, strict=True):
            path = coast.paths[peer]
            coast.latest[peer] = (last, drawn)
            if path is not None:
                if rounds > 1:
                    answers.append((peer, last - interval, last - interval + path.out + path.back))
                answers.append((peer, last, last + path.out + path.back))
        self._answers_in(coast, now)

    def _answers_in(self, coast: _Coast, now: float) -> None:
        """Apply the answers that have arrived by ``now`` (an answer to an up or recovering
        monitor changes nothing but when it last heard the peer: only the latest per peer is
        told), keeping those still on their way."""
        latest: dict[str, float] = {}
        on_the_way: list[tuple[str, float, float]] = []
        for peer, sent_at, arrival in coast.answers:
            if arrival <= now:
                latest[peer] = arrival
            else:
                on_the_way.append((peer, sent_at, arrival))
        coast.answers = on_the_way
        for peer, arrival in latest.items():
            self._apply(self.monitors[peer].answered(arrival))

    def end_coast(self, now: float, *, inclusive: bool) -> list[InFlight]:
        """Catch up to ``now`` and stop: a round still under way at ``now`` is sent for real as
        of when it went out, with the identifiers it drew (its heartbeats to silent peers
        vanish, their retransmissions until ``now`` too, and their transactions are pending
        as they would be); the heartbeats whose answers are on their way are handed back for
        the simulator to carry."""
        coast = self._coast
        if coast is None:
            return []
        self.catch_up(now, inclusive=inclusive)
        self._coast = None
        timeout = self.settings.heartbeat_timeout
        for peer, path in coast.paths.items():
            if path is not None or peer not in coast.latest:
                continue
            sent_at, what = coast.latest[peer]
            if sent_at + timeout < now:
                continue  # missed already, which changed nothing
            if isinstance(what, _Heartbeat):  # the real one, taken in at the start
                self._beats[peer] = what
                tx = what.transaction
            else:
                self._send(peer, sent_at, what, send=False)
                tx = self._beats[peer].transaction
            while (deadline := tx.next_deadline()) is not None and deadline < now:
                tx.handle_timer(deadline)  # retransmissions: vanished too
                tx.take_outgoing()
            self._outgoing.track(tx, self._beats[peer].flow, "heartbeat")
        in_flight: list[InFlight] = []
        for peer, sent_at, _ in coast.answers:
            path = coast.paths[peer]
            latest_at, what = coast.latest[peer]
            assert path is not None and latest_at == sent_at and not isinstance(what, _Heartbeat)
            flow = self._send(peer, sent_at, what, send=False)
            assert flow is not None
            data = self._beats[peer].transaction.data
            in_flight.append(InFlight(Send(flow, data), sent_at, path))
        if coast.answers:
            self._rounds -= 1  # that round was not skipped after all
        return in_flight
