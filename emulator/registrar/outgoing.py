"""The requests a pool sends itself (heartbeat OPTIONS, NOTIFYs) and their client transactions.

Every identifier a request of the pool draws from its generator is drawn by
:meth:`Outgoing.identifiers`, so that a pool's requests draw in one way only: a heartbeat
round the simulator skips draws through it as a real one does (emulator/registrar/heartbeats.py),
and the generator ends in the same state.  (A response's To tag is drawn by
:meth:`.register.RegisterRules.tag`.)
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

from emulator.net import CloseFlow, Flow, Send
from emulator.registrar.bindings import Binding
from emulator.registrar.events import PoolEvent
from emulator.registrar.reply import SERVER
from emulator.sip.headers import Diagnostics, NameAddr
from emulator.sip.message import Headers, Request, Response
from emulator.sip.transaction import ClientTransaction

__all__ = ["Identifiers", "Outbox", "Outgoing"]

Identifiers = tuple[int, int, int]
"""What a new request of the pool draws, in this order: its branch (64 bits), its From tag
(48 bits) and its Call-ID (64 bits); :meth:`Outgoing.new_request` writes them out."""


_BRANCH_BITS, _TAG_BITS, _CALL_ID_BITS = 64, 48, 64
_WORDS_PER_REQUEST = sum(-(-bits // 32) for bits in (_BRANCH_BITS, _TAG_BITS, _CALL_ID_BITS))
"""32-bit generator outputs one :meth:`Outgoing.identifiers` takes (see skip_identifiers)."""


class Outbox:
    """What a pool's parts have to say since the driver last asked: actions, events."""

    __slots__ = ("actions", "events")

    def __init__(self) -> None:
        self.actions: list[Send | CloseFlow] = []
        self.events: list[PoolEvent] = []


class Outgoing:
    """The pool's own requests: built here, sent in client transactions (RFC 3261 §17.1.2)."""

    __slots__ = ("_beat_heap", "_box", "_client_tx", "_tx_heap", "fqdn", "rng", "signer")

    def __init__(self, fqdn: str, rng: random.Random, box: Outbox) -> None:
        self.fqdn = fqdn
        self.rng = rng
        self._box = box
        self._client_tx: dict[str, tuple[ClientTransaction, Flow, str]] = {}
        # Deadlines of the client transactions, with lazy deletion: at failback a pool may have
        # thousands of NOTIFYs pending, and next_deadline() runs after every input (an O(n)
        # scan made failback O(n^2): benchmarks/sim_bench.py).
        self._tx_heap: list[tuple[float, str]] = []
        # The heartbeats' transactions apart (their deadlines are the heartbeater's, which a
        # simulator may skip: emulator/coasting.py); handle_timer takes both heaps in one order.
        self._beat_heap: list[tuple[float, str]] = []
        self.signer: Callable[[Request, Flow], None] | None = None
        """Signs a request the pool sends before it is written (issue 16: the NTLM SA of the
        flow, emulator/registrar/auth.py); None: authentication off."""

    # -- building ---------------------------------------------------------------------------

    def identifiers(self) -> Identifiers:
        """Draw the identifiers of one new request (the only way the pool draws them)."""
        bits = self.rng.getrandbits
        return bits(_BRANCH_BITS), bits(_TAG_BITS), bits(_CALL_ID_BITS)

    def skip_identifiers(self, count: int) -> None:
        """Leave the generator as ``count`` calls of :meth:`identifiers` leave it, without
        building them (speed: a pool that coasts for hours skips thousands of heartbeats).

        ``Random.getrandbits(k)`` takes ``ceil(k / 32)`` 32-bit outputs of the Mersenne Twister
        and nothing else, so one identifiers() takes :data:`_WORDS_PER_REQUEST` of them, and
        one draw of ``32 * n`` bits takes ``n``: the same outputs, in the same order
        (tests/registrar/test_heartbeats.py checks the state against the slow path)."""
        bits = self.rng.getrandbits
        words = count * _WORDS_PER_REQUEST
        while words > 0:
            chunk = min(words, 4096)  # bounded big ints
            bits(32 * chunk)
            words -= chunk

    def new_request(
        self, method: str, uri: str, to: str, flow: Flow, ids: Identifiers | None = None
    ) -> Request:
        """A request from the pool on ``flow``; ``ids`` drawn already, or drawn now."""
        branch, tag, call_id = self.identifiers() if ids is None else ids
        local = flow.local
        headers = Headers()
        headers.add(
            "Via",
            f"SIP/2.0/{flow.transport.upper()} {local[0]}:{local[1]};branch=z9hG4bK{branch:016x}",
        )
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:{self.fqdn}>;tag={tag:012x}")
        headers.add("To", f"<{to}>")
        headers.add("Call-ID", f"{call_id:016x}@{self.fqdn}")
        headers.add("CSeq", f"1 {method}")
        headers.add("User-Agent", SERVER)
        return Request(method, uri, headers)

    def registration_notify(
        self,
        binding: Binding,
        body: str,
        error_id: int | None,
        reason: str,
        now: float,
        preferred: str | None = None,
    ) -> None:
        """A registration-notify NOTIFY to a binding's endpoint (MS-SIPREGE §4.1.3)."""
        target = NameAddr.parse(binding.contact).uri
        request = self.new_request("NOTIFY", target, binding.aor, binding.flow)
        headers = request.headers
        headers.add("Event", "registration-notify")
        terminated = body.startswith("deregistered")
        headers.add("Subscription-State", "terminated;expires=0" if terminated else "active")
        headers.add("Content-Type", "text/registration-event")
        if preferred is not None:
            headers.add("P-Preferred-Registrar", preferred)
        if error_id is not None:
            headers.add("ms-diagnostics-public", str(Diagnostics(error_id, reason)))
        request.body = body.encode()
        self.start(request, binding.flow, "notify", now)

    # -- transactions -----------------------------------------------------------------------

    def start(
        self, request: Request, flow: Flow, purpose: str, now: float, *, send: bool = True
    ) -> ClientTransaction:
        """Send ``request`` in a new client transaction started at ``now`` (``send`` False:
        its first transmission is not the pool's to send: a simulator carries it, or it
        vanished)."""
        branch = request.branch or ""
        tx = ClientTransaction(branch, b"", reliable=flow.reliable)
        if self.signer is not None and purpose != "heartbeat":
            self.signer(request, flow)  # MS-SIPAE: signed when the flow has an NTLM SA
        tx.data = request.to_bytes()
        tx.start(now)
        for data in tx.take_outgoing():
            if send:
                self._box.actions.append(Send(flow, data))
        self._client_tx[branch] = (tx, flow, purpose)
        self._push(branch, tx)
        return tx

    def forget(self, tx: ClientTransaction) -> None:
        """Stop tracking ``tx`` (its owner is done with it)."""
        self._client_tx.pop(tx.key, None)

    def track(self, tx: ClientTransaction, flow: Flow, purpose: str) -> None:
        """Track ``tx`` again (after :meth:`forget`), with its deadlines."""
        self._client_tx[tx.key] = (tx, flow, purpose)
        self._push(tx.key, tx)

    def _push(self, key: str, tx: ClientTransaction) -> None:
        deadline = tx.next_deadline()
        if deadline is not None:
            heartbeat = self._client_tx[key][2] == "heartbeat"
            heapq.heappush(self._beat_heap if heartbeat else self._tx_heap, (deadline, key))

    @property
    def pending(self) -> bool:
        return bool(self._client_tx)

    def deadline(self, *, heartbeats: bool) -> float | None:
        """The earliest deadline of the heartbeats' transactions, or of the others (stale
        heap entries dropped)."""
        heap = self._beat_heap if heartbeats else self._tx_heap
        while heap:
            deadline, key = heap[0]
            entry = self._client_tx.get(key)
            if entry is not None and entry[0].next_deadline() == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Every transaction timer due by ``now``, in (deadline, key) order over both heaps."""
        tx_heap, beat_heap = self._tx_heap, self._beat_heap
        actions = self._box.actions
        while True:
            if tx_heap and tx_heap[0][0] <= now:
                heap = beat_heap if beat_heap and beat_heap[0] < tx_heap[0] else tx_heap
            elif beat_heap and beat_heap[0][0] <= now:
                heap = beat_heap
            else:
                break
            deadline, key = heapq.heappop(heap)
            entry = self._client_tx.get(key)
            if entry is None or entry[0].next_deadline() != deadline:
                continue  # stale: the transaction ended or moved on
            tx, flow, _ = entry
            tx.handle_timer(now)
            for data in tx.take_outgoing():
                actions.append(Send(flow, data))
            if tx.done:
                del self._client_tx[key]
            else:
                self._push(key, tx)

    def receive_response(self, response: Response, now: float) -> ClientTransaction | None:
        """Feed a response to its transaction; the transaction if the response is a final
        answer to a heartbeat, news to the heartbeater (else None)."""
        branch = response.branch
        if branch is None:
            return None
        entry = self._client_tx.get(branch)
        if entry is None:
            return None  # stray or late: absorbed (§17.1.3)
        tx, _, purpose = entry
        news = tx.receive_response(response.status, now)
        if tx.done or (purpose == "heartbeat" and response.status >= 200):
            # A heartbeat's transaction ends with its answer: a retransmitted answer is then
            # absorbed as a stray (§17.1.3), which is all Timer K would do with it.
            del self._client_tx[branch]
        else:
            self._push(branch, tx)  # Timer K now
        if not news or response.status < 200 or purpose != "heartbeat":
            return None
        return tx

    def flow_failed(self, flow: Flow, now: float) -> None:
        """The transport failed on ``flow``: its transactions end (§17.1.4)."""
        for key, (tx, tx_flow, _) in list(self._client_tx.items()):
            if tx_flow == flow:
                tx.transport_error(now)
                del self._client_tx[key]
