"""Non-INVITE client and server transactions (RFC 3261 §17.1.2, §17.2.2), sans-IO.

Time is passed in as ``now`` (float seconds); each transaction keeps absolute deadlines and
reports the earliest through ``next_deadline()``.  Nothing here sends anything: the owner pulls
the bytes to send and the outcome.

Rules of this file:

* Every state change of a transaction goes through one table: :data:`_CLIENT_TABLE` (RFC 3261
  Figure 6) for a client transaction, :data:`_SERVER_TABLE` (Figure 8) for a server one, each
  ``(state, input) -> next state``.  Nothing else assigns a state.  (A registrar's server
  transaction always takes the same two per request, final response sent and Timer J: they
  are read from the table once, at import, as ``_ON_FINAL_SENT`` and ``_ON_TIMER_J``.)
* Inputs have the RFC's names (:class:`Input`): a provisional or final response received (or,
  server side, sent), a request retransmission received, Timers E, F, J and K fired, a
  transport error.  Timers K and J are zero on reliable transports (§17.1.2.2, §17.2.2): the
  transaction still takes the transition, at once.
* An input the table does not list for the current state is a bug of the caller: it raises
  :class:`~emulator.sip.errors.LocalProtocolError` and leaves the state unchanged.  Inputs
  that the RFC says are absorbed (a late response, a late timer) are absorbed before the table
  is consulted, where the code says so.

State tables (RFC 3261 Figures 6 and 8)::

    client: trying --1xx--> proceeding --final--> completed --K--> terminated
            trying/proceeding --F--> terminated (TimedOut) ; --transport error--> terminated
    server: trying --final sent--> completed --J--> terminated
            completed --request retransmitted--> completed (the final response again)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from emulator.sip.errors import LocalProtocolError

__all__ = [
    "ClientOutcome",
    "ClientTransaction",
    "Input",
    "ServerTransactionTable",
    "State",
    "TimerSettings",
]


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """RFC 3261 §17.1.1.1 / Table 4 base timers; every other timer derives from these."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timer_f(self) -> float:
        """Non-INVITE transaction timeout, 64*T1 = 32 s (§17.1.2.2)."""
        return 64 * self.t1

    def timer_j(self, reliable: bool) -> float:
        """How long a server transaction absorbs retransmissions (§17.2.2): 64*T1 or 0."""
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """How long a client transaction absorbs response retransmissions (§17.1.2.2): T4 or 0."""
        return 0.0 if reliable else self.t4


DEFAULT_TIMERS = TimerSettings()


class State(Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class ClientOutcome(Enum):
    """How a client transaction ended (RFC 3261 §8.1.3.1: timeout = 408, transport = 503)."""

    RESPONSE = "response"
    TIMED_OUT = "timed-out"
    TRANSPORT_ERROR = "transport-error"


class Input(Enum):
    """What drives a transaction (RFC 3261 §17.1.2.2, §17.2.2 names)."""

    PROVISIONAL = "1xx"
    """A provisional response received (client) or sent (server)."""
    FINAL = "final"
    """A final response (200-699) received (client) or sent (server)."""
    REQUEST_RETRANSMITTED = "request retransmitted"
    """The request again (server side)."""
    TIMER_E = "Timer E"
    """Retransmit the request (client, unreliable transports)."""
    TIMER_F = "Timer F"
    """The transaction timed out (client)."""
    TIMER_K = "Timer K"
    """Stop absorbing response retransmissions (client; zero on reliable transports)."""
    TIMER_J = "Timer J"
    """Stop absorbing request retransmissions (server; zero on reliable transports)."""
    TRANSPORT_ERROR = "transport error"
    """The transport reported a failure (§17.1.4)."""


_TRYING, _PROCEEDING = State.TRYING, State.PROCEEDING
_COMPLETED, _TERMINATED = State.COMPLETED, State.TERMINATED
_1XX, _FINAL, _E, _F, _K = (
    Input.PROVISIONAL,
    Input.FINAL,
    Input.TIMER_E,
    Input.TIMER_F,
    Input.TIMER_K,
)

_CLIENT_TABLE: dict[tuple[State, Input], State] = {
    (_TRYING, _1XX): _PROCEEDING,
    (_TRYING, _FINAL): _COMPLETED,
    (_TRYING, _E): _TRYING,
    (_TRYING, _F): _TERMINATED,
    (_TRYING, Input.TRANSPORT_ERROR): _TERMINATED,
    (_PROCEEDING, _1XX): _PROCEEDING,
    (_PROCEEDING, _FINAL): _COMPLETED,
    (_PROCEEDING, _E): _PROCEEDING,
    (_PROCEEDING, _F): _TERMINATED,
    (_PROCEEDING, Input.TRANSPORT_ERROR): _TERMINATED,
    (_COMPLETED, _1XX): _COMPLETED,  # late retransmissions are absorbed
    (_COMPLETED, _FINAL): _COMPLETED,
    (_COMPLETED, _K): _TERMINATED,
}
"""The client transaction, RFC 3261 Figure 6 (non-INVITE)."""

_SERVER_TABLE: dict[tuple[State, Input], State] = {
    (_TRYING, _1XX): _PROCEEDING,
    (_TRYING, _FINAL): _COMPLETED,
    (_PROCEEDING, _1XX): _PROCEEDING,
    (_PROCEEDING, _FINAL): _COMPLETED,
    (_PROCEEDING, Input.REQUEST_RETRANSMITTED): _PROCEEDING,
    (_COMPLETED, Input.REQUEST_RETRANSMITTED): _COMPLETED,  # the final response again
    (_COMPLETED, Input.TIMER_J): _TERMINATED,
}
"""The server transaction, RFC 3261 Figure 8 (non-INVITE)."""


class ClientTransaction:
    """A non-INVITE client transaction for one request (REGISTER, OPTIONS, NOTIFY...).

    Usage: create with the request bytes; ``start(now)``; send what ``take_outgoing()`` returns;
    feed responses with ``receive_response(status, now)``; call ``handle_timer(now)`` at
    ``next_deadline()``.  ``outcome`` is set once the transaction has a result (a final response,
    a timeout, or a transport error); the final status is ``final_status``.
    """

    __slots__ = (
        "_deadline_e",
        "_deadline_f",
        "_deadline_k",
        "_interval_e",
        "_outgoing",
        "data",
        "final_status",
        "key",
        "outcome",
        "reliable",
        "state",
        "timers",
    )

    def __init__(
        self, key: str, data: bytes, *, reliable: bool, timers: TimerSettings = DEFAULT_TIMERS
    ) -> None:
        self.key = key
        self.data = data
        self.reliable = reliable
        self.timers = timers
        self.state = State.TRYING
        self.outcome: ClientOutcome | None = None
        self.final_status: int | None = None
        self._outgoing: list[bytes] = []
        self._interval_e = timers.t1
        self._deadline_e: float | None = None
        self._deadline_f: float | None = None
        self._deadline_k: float | None = None

    def start(self, now: float) -> None:
        if self._deadline_f is not None:
            raise LocalProtocolError("transaction already started")
        self._outgoing.append(self.data)
        self._deadline_f = now + self.timers.timer_f
        if not self.reliable:  # Timer E only on unreliable transports (§17.1.2.2)
            self._deadline_e = now + self._interval_e

    def take_outgoing(self) -> list[bytes]:
        out, self._outgoing = self._outgoing, []
        return out

    def _step(self, event: Input) -> None:
        """The one place a client transaction changes state (:data:`_CLIENT_TABLE`)."""
        nxt = _CLIENT_TABLE.get((self.state, event))
        if nxt is None:
            raise LocalProtocolError(
                f"client transaction: {event.value} in state {self.state.value}"
            )
        self.state = nxt

    def receive_response(self, status: int, now: float) -> bool:
        """Feed a response; True if it is news for the transaction user (not a retransmission)."""
        if self.state is _TERMINATED:
            return False  # §17.1.3: no transaction matches any more; absorbed
        if status < 200:
            was = self.state
            self._step(_1XX)
            if was is _TRYING and not self.reliable:
                self._interval_e = self.timers.t2  # §17.1.2.2: Proceeding retransmits at T2
            return self.state is not _COMPLETED
        if self.state is _COMPLETED:
            self._step(_FINAL)  # a retransmitted final response: absorbed
            return False
        self._step(_FINAL)
        self.final_status = status
        self.outcome = ClientOutcome.RESPONSE
        self._deadline_e = self._deadline_f = None
        self._deadline_k = now + self.timers.timer_k(self.reliable)
        if self._deadline_k <= now:  # Timer K is zero (reliable): it fires at once
            self._deadline_k = None
            self._step(_K)
        return True

    def transport_error(self, now: float) -> None:
        if self.state is _TRYING or self.state is _PROCEEDING:  # later: nothing to fail (§17.1.4)
            self._step(Input.TRANSPORT_ERROR)
            self.outcome = ClientOutcome.TRANSPORT_ERROR
            self._deadline_e = self._deadline_f = self._deadline_k = None

    def next_deadline(self) -> float | None:
        # Written out (no list, no min()): owners ask after every input, a pool sending
        # thousands of failback NOTIFYs asks each of them after every answer.
        best = self._deadline_e or None
        deadline = self._deadline_f
        if deadline and (best is None or deadline < best):
            best = deadline
        deadline = self._deadline_k
        if deadline and (best is None or deadline < best):
            best = deadline
        return best

    def handle_timer(self, now: float) -> None:
        if self._deadline_f is not None and now >= self._deadline_f:
            self._step(_F)
            self.outcome = ClientOutcome.TIMED_OUT
            self._deadline_e = self._deadline_f = None
            return
        if self._deadline_e is not None and now >= self._deadline_e:
            self._step(_E)
            self._outgoing.append(self.data)
            if self.state is _TRYING:
                self._interval_e = min(2 * self._interval_e, self.timers.t2)
            else:
                self._interval_e = self.timers.t2
            self._deadline_e = now + self._interval_e
        if self._deadline_k is not None and now >= self._deadline_k:
            self._step(_K)
            self._deadline_k = None

    @property
    def done(self) -> bool:
        return self.state is State.TERMINATED


def _server_step(state: State, event: Input) -> State:
    """The one place a server transaction changes state (:data:`_SERVER_TABLE`)."""
    nxt = _SERVER_TABLE.get((state, event))
    if nxt is None:
        raise LocalProtocolError(f"server transaction: {event.value} in state {state.value}")
    return nxt


# A registrar answers every request at once, so its server transactions take only these
# transitions, read from the table once, here (speed: the per-request path looks nothing up;
# the table stays the one place that says what they are).
_ON_FINAL_SENT = _server_step(_TRYING, _FINAL)
_ON_TIMER_J = _server_step(_ON_FINAL_SENT, Input.TIMER_J)
assert _ON_FINAL_SENT is _COMPLETED and _ON_TIMER_J is _TERMINATED


ENTRY_OVERHEAD = 160
"""Bytes a Completed server transaction costs besides its response and key text (the dict
entry, the key tuple, the bytes and str headers, its expiry entry), for the byte bound of
:class:`ServerTransactionTable` (an estimate on CPython 3.11, 64-bit)."""


class ServerTransactionTable:
    """Non-INVITE server transactions of one core, reduced to what the state machine does.

    A registrar answers every request at once, so each transaction goes straight from Trying to
    Completed; what remains is §17.2.2's Completed state, held as the transaction's entry in the
    table (no entry: Terminated, or never seen): for Timer J, a retransmitted request gets the
    same final response again and is not passed to the core.  Timer J has one value
    per transport, so expiries are FIFO and a deque replaces a timer heap (cheap at 10k/s).

    The key is the top Via value as received plus the CSeq method (§17.2.3: branch, sent-by and
    method; the whole top Via contains the first two, and a retransmission repeats it exactly).

    Bounded (issue 21): at most ``max_entries`` Completed transactions and ``max_bytes`` bytes
    (:meth:`cost` each).  Past either bound the oldest are Terminated early, as if their Timer J
    had fired (the same table transition), and counted in :attr:`evicted`: a flood keeps what a
    few seconds of it left, not 32 s of it.  The price is that a retransmission of a forgotten
    transaction reaches the core as a new request (an emulator choice; the knobs are the
    registrar settings ``transaction_limit`` and ``transaction_bytes``).
    """

    __slots__ = ("_bytes", "_expiry", "_responses", "evicted", "max_bytes", "max_entries", "timers")

    def __init__(
        self,
        timers: TimerSettings = DEFAULT_TIMERS,
        *,
        max_entries: int = 50_000,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise LocalProtocolError("a server transaction table needs room for one entry")
        self.timers = timers
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.evicted = 0
        """Completed transactions forgotten before their Timer J because of the bounds."""
        self._bytes = 0
        self._responses: dict[tuple[str, str], bytes] = {}
        self._expiry: deque[tuple[float, tuple[str, str]]] = deque()

    @staticmethod
    def cost(key: tuple[str, str], response: bytes) -> int:
        """What one Completed transaction counts against ``max_bytes``."""
        return len(response) + len(key[0]) + len(key[1]) + ENTRY_OVERHEAD

    @property
    def size(self) -> int:
        """Bytes held, as counted against ``max_bytes``."""
        return self._bytes

    def lookup(self, key: tuple[str, str]) -> bytes | None:
        """The final response already sent for this transaction, if it is still Completed."""
        return self._responses.get(key)

    def completed(self, key: tuple[str, str], response: bytes, now: float, reliable: bool) -> None:
        """The final response was sent: the transaction is Completed, and at once Terminated
        on a reliable transport (Timer J is zero there)."""
        if reliable:  # _ON_FINAL_SENT, then at once _ON_TIMER_J (Timer J is zero)
            return
        responses = self._responses
        old = responses.get(key)
        if old is None:
            self._expiry.append((now + self.timers.timer_j(False), key))
        else:
            self._bytes -= self.cost(key, old)
        responses[key] = response
        self._bytes += self.cost(key, response)
        if len(responses) > self.max_entries or self._bytes > self.max_bytes:
            self._evict(key)

    def _evict(self, keep: tuple[str, str]) -> None:
        """Terminate the oldest transactions until the table is within its bounds again (the
        newest, ``keep``, stays even if it alone is over the byte bound: it was just sent)."""
        expiry, responses = self._expiry, self._responses
        while expiry and (len(responses) > self.max_entries or self._bytes > self.max_bytes):
            if expiry[0][1] == keep:
                break
            _, key = expiry.popleft()
            response = responses.pop(key, None)  # _ON_TIMER_J, early
            if response is not None:
                self._bytes -= self.cost(key, response)
                self.evicted += 1

    def retransmitted(self, key: tuple[str, str]) -> bytes | None:
        """A request arrived again: the final response to send again if its transaction is
        Completed (None: no transaction; the request is new to the core)."""
        response = self._responses.get(key)
        if response is not None:
            _server_step(_COMPLETED, Input.REQUEST_RETRANSMITTED)
        return response

    def next_deadline(self) -> float | None:
        return self._expiry[0][0] if self._expiry else None

    def handle_timer(self, now: float) -> None:
        expiry = self._expiry
        responses = self._responses
        while expiry and expiry[0][0] <= now:
            _, key = expiry.popleft()
            response = responses.pop(key, None)  # _ON_TIMER_J: Terminated
            if response is not None:
                self._bytes -= self.cost(key, response)

    def __len__(self) -> int:
        return len(self._responses)
