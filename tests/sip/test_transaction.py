"""Non-INVITE transactions (RFC 3261 §17.1.2, §17.2.2) driven by hand from now = 0.0."""

from __future__ import annotations

import itertools

import pytest

from emulator.sip.errors import LocalProtocolError
from emulator.sip.transaction import (
    _CLIENT_TABLE,
    _SERVER_TABLE,
    ClientOutcome,
    ClientTransaction,
    Input,
    ServerTransactionTable,
    State,
    TimerSettings,
    _server_step,
)

REQUEST = b"REGISTER sip:example.com SIP/2.0\r\n...\r\n\r\n"
RESPONSE = b"SIP/2.0 200 OK\r\n...\r\n\r\n"


def started(reliable: bool, timers: TimerSettings | None = None) -> ClientTransaction:
    if timers is None:
        transaction = ClientTransaction("z9hG4bK-1", REQUEST, reliable=reliable)
    else:
        transaction = ClientTransaction("z9hG4bK-1", REQUEST, reliable=reliable, timers=timers)
    transaction.start(0.0)
    assert transaction.take_outgoing() == [REQUEST]
    return transaction


def run(transaction: ClientTransaction, until: float) -> list[float]:
    """Fire every deadline up to ``until``; the times at which the request was re-sent."""
    sent_at: list[float] = []
    while (deadline := transaction.next_deadline()) is not None and deadline <= until:
        transaction.handle_timer(deadline)
        for data in transaction.take_outgoing():
            assert data == REQUEST
            sent_at.append(deadline)
    return sent_at


# -- client: timers E and F ----------------------------------------------------------------------


def test_udp_retransmits_with_timer_e_doubling_to_t2_then_times_out_at_timer_f() -> None:
    transaction = started(reliable=False)
    assert transaction.next_deadline() == 0.5
    sent_at = run(transaction, until=100.0)
    # E: 0.5, 1, 2, 4, then capped at T2 = 4 s (§17.1.2.2); F = 64*T1 = 32 s.
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert transaction.state is State.TERMINATED
    assert transaction.done
    assert transaction.outcome is ClientOutcome.TIMED_OUT
    assert transaction.final_status is None
    assert transaction.next_deadline() is None


def test_udp_is_still_trying_just_before_timer_f() -> None:
    transaction = started(reliable=False)
    run(transaction, until=31.999)
    assert transaction.state is State.TRYING
    assert transaction.outcome is None
    assert transaction.next_deadline() == 32.0


def test_tcp_never_retransmits_and_times_out_at_32_s() -> None:
    transaction = started(reliable=True)
    assert transaction.next_deadline() == 32.0
    transaction.handle_timer(31.9)
    assert transaction.state is State.TRYING
    assert run(transaction, until=100.0) == []
    assert transaction.outcome is ClientOutcome.TIMED_OUT
    assert transaction.next_deadline() is None


def test_timers_derive_from_t1_t2_t4() -> None:
    timers = TimerSettings(t1=0.25, t2=1.0, t4=2.0)
    assert timers.timer_f == 16.0
    assert (timers.timer_j(False), timers.timer_j(True)) == (16.0, 0.0)
    assert (timers.timer_k(False), timers.timer_k(True)) == (2.0, 0.0)
    transaction = started(reliable=False, timers=timers)
    assert run(transaction, until=100.0) == [0.25, 0.75, 1.75, 2.75] + [
        2.75 + n for n in range(1, 14)
    ]
    assert transaction.outcome is ClientOutcome.TIMED_OUT


def test_default_timers_are_rfc_3261_table_4() -> None:
    timers = TimerSettings()
    assert (timers.t1, timers.t2, timers.t4, timers.timer_f) == (0.5, 4.0, 5.0, 32.0)
    assert (timers.timer_j(False), timers.timer_k(False)) == (32.0, 5.0)


def test_a_late_timer_call_past_f_times_out_without_a_last_retransmission() -> None:
    transaction = started(reliable=False)
    transaction.handle_timer(40.0)  # the driver overslept: E and F are both due, F wins
    assert transaction.take_outgoing() == []
    assert transaction.outcome is ClientOutcome.TIMED_OUT


def test_an_early_timer_call_does_nothing() -> None:
    transaction = started(reliable=False)
    transaction.handle_timer(0.4)
    assert transaction.take_outgoing() == []
    assert transaction.next_deadline() == 0.5
    assert transaction.state is State.TRYING


# -- client: provisional and final responses -----------------------------------------------------


def test_1xx_moves_to_proceeding_and_retransmissions_go_to_t2() -> None:
    transaction = started(reliable=False)
    assert run(transaction, until=1.0) == [0.5]
    assert transaction.receive_response(100, 1.0) is True
    assert transaction.state is State.PROCEEDING
    # The pending E (1.5) still fires; from then on every T2 (§17.1.2.2).
    assert run(transaction, until=31.9) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert transaction.receive_response(180, 31.9) is True  # more 1xx go up in Proceeding
    assert transaction.state is State.PROCEEDING
    assert run(transaction, until=100.0) == []
    assert transaction.outcome is ClientOutcome.TIMED_OUT


def test_1xx_on_tcp_moves_to_proceeding_without_retransmissions() -> None:
    transaction = started(reliable=True)
    assert transaction.receive_response(100, 0.2) is True
    assert transaction.state is State.PROCEEDING
    assert run(transaction, until=100.0) == []
    assert transaction.outcome is ClientOutcome.TIMED_OUT


@pytest.mark.parametrize("provisional_first", [False, True])
def test_final_response_on_udp_completes_and_timer_k_absorbs_retransmissions(
    provisional_first: bool,
) -> None:
    transaction = started(reliable=False)
    if provisional_first:
        transaction.receive_response(100, 0.1)
    assert transaction.receive_response(200, 2.0) is True
    assert transaction.state is State.COMPLETED
    assert transaction.outcome is ClientOutcome.RESPONSE
    assert transaction.final_status == 200
    assert transaction.next_deadline() == 7.0  # Timer K = T4 = 5 s
    # Retransmitted responses are absorbed, not news for the transaction user.
    assert transaction.receive_response(200, 3.0) is False
    assert transaction.receive_response(100, 3.5) is False
    assert transaction.state is State.COMPLETED
    assert run(transaction, until=6.99) == []  # no Timer E any more
    assert transaction.state is State.COMPLETED
    assert run(transaction, until=7.0) == []
    assert transaction.done  # Terminated
    assert transaction.next_deadline() is None
    assert transaction.receive_response(200, 8.0) is False
    assert (transaction.outcome, transaction.final_status) == (ClientOutcome.RESPONSE, 200)


def test_final_response_on_tcp_terminates_at_once() -> None:
    transaction = started(reliable=True)
    assert transaction.receive_response(301, 0.3) is True
    assert transaction.state is State.TERMINATED  # Timer K = 0 on reliable transports
    assert transaction.next_deadline() is None
    assert (transaction.outcome, transaction.final_status) == (ClientOutcome.RESPONSE, 301)
    assert transaction.receive_response(301, 0.4) is False


def test_final_after_timeout_is_not_news() -> None:
    transaction = started(reliable=False)
    run(transaction, until=32.0)
    assert transaction.receive_response(200, 33.0) is False
    assert (transaction.outcome, transaction.final_status) == (ClientOutcome.TIMED_OUT, None)


# -- client: transport errors and illegal use ----------------------------------------------------


@pytest.mark.parametrize("provisional_first", [False, True])
def test_transport_error_terminates_with_transport_error(provisional_first: bool) -> None:
    transaction = started(reliable=False)
    if provisional_first:
        transaction.receive_response(183, 0.2)
    transaction.transport_error(0.3)
    assert transaction.state is State.TERMINATED
    assert transaction.outcome is ClientOutcome.TRANSPORT_ERROR
    assert transaction.next_deadline() is None
    assert run(transaction, until=100.0) == []


def test_transport_error_after_the_final_response_changes_nothing() -> None:
    transaction = started(reliable=False)
    transaction.receive_response(200, 1.0)
    transaction.transport_error(1.5)
    assert transaction.state is State.COMPLETED
    assert transaction.outcome is ClientOutcome.RESPONSE
    assert transaction.next_deadline() == 6.0


def test_starting_twice_is_a_local_error_and_changes_nothing() -> None:
    transaction = started(reliable=False)
    with pytest.raises(LocalProtocolError):
        transaction.start(0.2)
    assert transaction.take_outgoing() == []
    assert transaction.state is State.TRYING
    assert transaction.next_deadline() == 0.5


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s, e in itertools.product(State, Input) if (s, e) not in _CLIENT_TABLE],
)
def test_every_transition_missing_from_the_table_raises_and_keeps_the_state(
    state: State, event: Input
) -> None:
    transaction = ClientTransaction("k", REQUEST, reliable=False)
    transaction.state = state
    with pytest.raises(LocalProtocolError):
        transaction._step(event)
    assert transaction.state is state


def test_the_table_follows_rfc_3261_figure_6() -> None:
    assert not any(state is State.TERMINATED for state, _ in _CLIENT_TABLE)
    assert _CLIENT_TABLE[State.TRYING, Input.TIMER_F] is State.TERMINATED
    assert _CLIENT_TABLE[State.PROCEEDING, Input.FINAL] is State.COMPLETED
    assert (State.COMPLETED, Input.TIMER_E) not in _CLIENT_TABLE
    assert (State.COMPLETED, Input.TIMER_F) not in _CLIENT_TABLE
    assert not any(event is Input.TIMER_J for _, event in _CLIENT_TABLE)  # server only


def test_the_server_table_follows_rfc_3261_figure_8() -> None:
    assert not any(state is State.TERMINATED for state, _ in _SERVER_TABLE)
    assert _SERVER_TABLE[State.TRYING, Input.FINAL] is State.COMPLETED
    assert _SERVER_TABLE[State.COMPLETED, Input.REQUEST_RETRANSMITTED] is State.COMPLETED
    assert _SERVER_TABLE[State.COMPLETED, Input.TIMER_J] is State.TERMINATED
    assert not any(
        event in (Input.TIMER_E, Input.TIMER_F, Input.TIMER_K) for _, event in _SERVER_TABLE
    )


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s, e in itertools.product(State, Input) if (s, e) not in _SERVER_TABLE],
)
def test_every_server_transition_missing_from_the_table_raises(state: State, event: Input) -> None:
    with pytest.raises(LocalProtocolError):
        _server_step(state, event)


# -- server: Timer J -----------------------------------------------------------------------------

KEY = ("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1", "REGISTER")


def test_retransmission_within_timer_j_gets_the_cached_response() -> None:
    table = ServerTransactionTable()
    assert table.lookup(KEY) is None
    table.completed(KEY, RESPONSE, now=0.0, reliable=False)
    assert len(table) == 1
    assert table.next_deadline() == 32.0
    table.handle_timer(31.9)
    assert table.lookup(KEY) == RESPONSE
    assert table.lookup((KEY[0], "OPTIONS")) is None  # the method is part of the key (§17.2.3)


def test_after_timer_j_the_transaction_is_gone() -> None:
    table = ServerTransactionTable()
    table.completed(KEY, RESPONSE, now=0.0, reliable=False)
    table.handle_timer(32.0)
    assert table.lookup(KEY) is None
    assert len(table) == 0
    assert table.next_deadline() is None


def test_reliable_transports_cache_nothing() -> None:
    table = ServerTransactionTable()
    table.completed(KEY, RESPONSE, now=0.0, reliable=True)
    assert table.lookup(KEY) is None
    assert len(table) == 0
    assert table.next_deadline() is None


def test_timer_j_expires_transactions_in_order() -> None:
    table = ServerTransactionTable(TimerSettings(t1=0.25))  # J = 16 s
    keys = [(f"SIP/2.0/UDP h;branch=z9hG4bK-{n}", "REGISTER") for n in range(3)]
    for n, key in enumerate(keys):
        table.completed(key, RESPONSE + bytes([n]), now=5.0 * n, reliable=False)
    assert table.next_deadline() == 16.0
    table.handle_timer(21.0)
    assert [table.lookup(key) for key in keys] == [None, None, RESPONSE + b"\x02"]
    assert table.next_deadline() == 26.0
    table.handle_timer(25.9)
    assert table.lookup(keys[2]) == RESPONSE + b"\x02"
    table.handle_timer(26.0)
    assert len(table) == 0
