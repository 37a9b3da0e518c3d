"""Issue 21: bounded bindings, answers too large for UDP, bounded Timer J store, load shedding
and bindings replaced from another source, in virtual time (objects counted, no wall time)."""

from __future__ import annotations

import pytest

from emulator.net import Flow
from emulator.registrar.admission import Admission, Decision
from emulator.registrar.bindings import Binding, BindingStore
from emulator.registrar.events import (
    AnswerTrimmed,
    BindingLimitReached,
    BindingRefreshed,
    BindingRemoved,
    BindingReplaced,
    LoadShed,
    describe,
)
from emulator.registrar.reply import UDP_MAX_PAYLOAD
from emulator.sip.headers import parse_contacts
from emulator.sip.message import Request, Response, parse_message
from emulator.sip.transaction import ServerTransactionTable
from emulator.topology import RegistrarSettings, TopologyError

from .harness import CLIENT, make_world, register, topology

FE1 = "fe1.contoso.test"
USER = "clientuser1"


def only_response(messages: list[Response | Request]) -> Response:
    assert len(messages) == 1, messages
    response = messages[0]
    assert isinstance(response, Response)
    return response


def endpoint(n: int, pad: int = 0) -> str:
    """A Contact for endpoint ``n`` of USER (its own +sip.instance), padded to make it long."""
    extra = f";x-pad={'p' * pad}" if pad else ""
    return f'<sip:{USER}@127.0.0.100:{6000 + n}>{extra};+sip.instance="<urn:uuid:{n:08d}>"'


# -- the per-user binding limit -------------------------------------------------------------


def test_settings_default_to_lyncs_eight_endpoints_per_user_evicting_the_oldest() -> None:
    settings = RegistrarSettings()
    assert settings.max_bindings_per_user == 8
    assert settings.binding_limit == "evict-oldest"
    assert topology().registrar == settings


def test_a_client_with_a_new_epid_every_time_keeps_getting_200_and_at_most_the_limit() -> None:
    """What SIPp does (a new epid per call): every REGISTER is answered 200, listing at most
    8 bindings, and the pool holds 8."""
    world = make_world()
    for n in range(50):
        data = register(USER, call_id=f"c{n}").replace(b"epid=0123456789", f"epid={n}".encode())
        ok = only_response(world.send(FE1, data))
        assert ok.status == 200
        assert len(parse_contacts(ok.headers)) == min(n + 1, 8)
        world.run_until(world.now + 1)
    assert len(world.pools[FE1].bindings()) == 8
    # reported once a minute for the user, with what happened in between (no line per REGISTER)
    reports = [e for e in world.kinds(BindingLimitReached) if isinstance(e, BindingLimitReached)]
    assert [(e.now, e.unreported) for e in reports] == [(8.0, 0)]
    for n in range(50, 70):
        data = register(USER, call_id=f"c{n}").replace(b"epid=0123456789", f"epid={n}".encode())
        assert only_response(world.send(FE1, data)).status == 200
        world.run_until(world.now + 1)
    reports = [e for e in world.kinds(BindingLimitReached) if isinstance(e, BindingLimitReached)]
    assert [(e.now, e.unreported) for e in reports] == [(8.0, 0), (68.0, 59)]
    assert "59 more since the last report" in describe(reports[-1])[1]


def test_evict_oldest_removes_the_binding_nearest_its_expiry_and_says_so() -> None:
    world = make_world("max_bindings_per_user = 3")
    for n in range(3):
        world.send(FE1, register(USER, call_id=f"c{n}", contact=endpoint(n)))
        world.run_until(world.now + 10)
    # endpoint 0 refreshes: endpoint 1 is now the one nearest its expiry
    world.send(FE1, register(USER, call_id="c0", cseq=2, contact=endpoint(0)))
    ok = only_response(world.send(FE1, register(USER, call_id="c3", contact=endpoint(3))))
    assert ok.status == 200
    listed = sorted(c.uri for c in parse_contacts(ok.headers))
    assert listed == [f"sip:{USER}@127.0.0.100:{6000 + n}" for n in (0, 2, 3)]
    (limit,) = world.kinds(BindingLimitReached)
    assert isinstance(limit, BindingLimitReached)
    assert (limit.limit, limit.action) == (3, "evicted")
    assert "127.0.0.100:6001" in limit.contact
    removed = [e for e in world.kinds(BindingRemoved) if isinstance(e, BindingRemoved)]
    assert [e.cause for e in removed] == ["limit"]
    assert describe(limit)[0] == "pool"  # logged live, not only counted


def test_refuse_answers_403_and_changes_nothing_but_refreshes_still_pass() -> None:
    world = make_world('max_bindings_per_user = 2\nbinding_limit = "refuse"')
    for n in range(2):
        assert only_response(world.send(FE1, register(USER, call_id=f"c{n}", contact=endpoint(n))))
    refused = only_response(world.send(FE1, register(USER, call_id="c9", contact=endpoint(9))))
    assert refused.status == 403
    assert "at most 2 endpoints" in (refused.headers.get("warning") or "")
    assert len(world.pools[FE1].bindings()) == 2
    (limit,) = world.kinds(BindingLimitReached)
    assert isinstance(limit, BindingLimitReached) and limit.action == "refused"
    refresh = only_response(
        world.send(FE1, register(USER, call_id="c1", cseq=2, contact=endpoint(1)))
    )
    assert refresh.status == 200


def test_limit_settings_are_checked_when_the_topology_is_read() -> None:
    with pytest.raises(TopologyError, match="binding_limit"):
        topology('binding_limit = "oldest"')
    with pytest.raises(TopologyError, match="max_bindings_per_user"):
        topology("max_bindings_per_user = 0")
    with pytest.raises(TopologyError, match="transaction_bytes"):
        topology("transaction_bytes = 10")
    settings = topology("overload_rate = 0\nsource_rate = 5\nshed_retry_after = 9").registrar
    assert (settings.overload_rate, settings.source_rate, settings.shed_retry_after) == (0, 5, 9)


# -- a 200 too large for one UDP datagram ---------------------------------------------------


def test_a_200_too_large_for_udp_lists_the_requests_own_binding_and_is_logged() -> None:
    world = make_world("max_bindings_per_user = 40")
    for n in range(30):  # 30 contacts of ~3 kB: all of them make a 200 of ~90 kB
        ok = only_response(
            world.send(FE1, register(USER, call_id=f"c{n}", contact=endpoint(n, pad=3000)))
        )
        assert ok.status == 200
    sent = world.to_clients[-1][0]
    assert sent.transport == "udp"
    assert len(ok.to_bytes()) <= UDP_MAX_PAYLOAD
    (listed,) = parse_contacts(ok.headers)
    assert listed.uri.endswith(":6029")
    assert ok.headers.get("expires") == "3600"
    trimmed = world.kinds(AnswerTrimmed)
    assert trimmed, "never silent: the trimmed answers are logged"
    last = trimmed[-1]
    assert isinstance(last, AnswerTrimmed)
    assert (last.listed, last.total) == (1, 30) and last.size > UDP_MAX_PAYLOAD
    # over TCP the same 200 lists every binding (a stream has no datagram limit)
    pool = world.pools[FE1]
    me = pool.endpoints[FE1]
    data = register(USER, call_id="c0", cseq=2, contact=endpoint(0, pad=3000), transport="TCP")
    pool.receive(data, Flow("tcp", (me.address, 5060), CLIENT), world.now)
    (send,) = pool.actions()
    full = parse_message(send.data, max_size=1 << 20, stream=True)  # type: ignore[union-attr]
    assert isinstance(full, Response) and full.status == 200
    assert len(parse_contacts(full.headers)) == 30


def test_a_query_whose_answer_cannot_fit_udp_gets_513_not_silence() -> None:
    world = make_world("max_bindings_per_user = 40")
    for n in range(30):
        world.send(FE1, register(USER, call_id=f"c{n}", contact=endpoint(n, pad=3000)))
    query = only_response(world.send(FE1, register(USER, call_id="q", contact="", expires=None)))
    assert query.status == 513
    last = world.kinds(AnswerTrimmed)[-1]
    assert isinstance(last, AnswerTrimmed) and last.listed == 0


# -- the Timer J store ----------------------------------------------------------------------


def test_the_timer_j_store_holds_its_bounds_in_count_and_bytes() -> None:
    table = ServerTransactionTable(max_entries=1000, max_bytes=200_000)
    response = b"SIP/2.0 200 OK\r\n" + b"x" * 300
    for n in range(20_000):
        table.completed((f"SIP/2.0/UDP h;branch=z9hG4bK{n}", "REGISTER"), response, n * 1e-4, False)
        assert len(table) <= 1000
        assert table.size <= 200_000
    per_entry = ServerTransactionTable.cost(
        ("SIP/2.0/UDP h;branch=z9hG4bK19999", "REGISTER"), response
    )
    assert len(table) == 200_000 // per_entry  # the byte bound is the tighter one here
    assert table.evicted == 20_000 - len(table)
    # the newest are kept and still answer their retransmissions; the oldest are gone
    assert table.retransmitted(("SIP/2.0/UDP h;branch=z9hG4bK19999", "REGISTER")) == response
    assert table.retransmitted(("SIP/2.0/UDP h;branch=z9hG4bK0", "REGISTER")) is None
    table.handle_timer(2.0 + 32.0)  # Timer J of every one of them
    assert len(table) == 0 and table.size == 0


def test_a_single_response_larger_than_the_byte_bound_is_still_kept_alone() -> None:
    table = ServerTransactionTable(max_entries=10, max_bytes=1000)
    table.completed(("a", "REGISTER"), b"x" * 100, 0.0, False)
    table.completed(("b", "REGISTER"), b"y" * 5000, 0.0, False)
    assert len(table) == 1 and table.lookup(("b", "REGISTER")) == b"y" * 5000


def test_a_pool_under_many_requests_keeps_its_transaction_bounds() -> None:
    world = make_world("transaction_limit = 500\noverload_rate = 0\nsource_rate = 0")
    pool = world.pools[FE1]
    me = pool.endpoints[FE1]
    flow = Flow("udp", (me.address, 5060), CLIENT)
    for n in range(5000):
        pool.receive(register(USER, call_id=f"flood{n}"), flow, n * 1e-3)
        pool.actions()
        pool.events()
        assert len(pool.transactions) <= 500
    assert pool.transactions.evicted == 4500
    assert pool.transactions.size <= RegistrarSettings().transaction_bytes


# -- load shedding ---------------------------------------------------------------------------


def test_admission_sheds_a_flooding_source_and_serves_a_quiet_one() -> None:
    admission = Admission(overload_rate=100, source_rate=10, retry_after=5)
    decisions: dict[str, list[Decision]] = {"flood": [], "quiet": []}
    now = 0.0
    for n in range(10_000):  # 10,000/s from one source for 1 s; the other sends 10/s
        now = n * 1e-4
        decisions["flood"].append(admission.admit("127.0.0.66", now))
        if n % 1000 == 0:
            decisions["quiet"].append(admission.admit("127.0.0.77", now))
    flood, quiet = decisions["flood"], decisions["quiet"]
    assert set(quiet) == {Decision.ADMIT}
    admitted = flood.count(Decision.ADMIT)
    assert admitted <= 10 + 1 + 20  # the global burst (0.1 s of 100/s) and its own
    assert flood.count(Decision.ANSWER_503) == 1  # one 503 a second while shed
    until = admission.shed_until("127.0.0.66")
    assert until is not None and 5.0 < until < 5.01  # out of tokens within 10 ms, for 5 s
    (report,) = admission.reports
    assert report.source == "127.0.0.66"
    # shed for 5 s, then served again when it behaves
    assert admission.admit("127.0.0.66", now + 1.0) is not Decision.ADMIT
    assert admission.admit("127.0.0.66", now + 6.0) is Decision.ADMIT


def test_the_global_cap_sheds_busy_sources_and_serves_quiet_ones() -> None:
    """A flood from many addresses, each under its own rate: past the global cap the busy
    ones get 503s (without being shed for longer) and a quiet client is still served."""
    admission = Admission(overload_rate=100, source_rate=50, retry_after=5)
    busy: list[Decision] = []
    quiet: list[Decision] = []
    for n in range(800):  # 20 sources at 40/s each for 1 s: 800/s in all
        now = n / 800
        busy.append(admission.admit(f"10.0.0.{n % 20}", now))
        if n % 400 == 0:
            quiet.append(admission.admit("127.0.0.77", now))
    assert set(quiet) == {Decision.ADMIT}
    assert busy.count(Decision.ADMIT) <= 100 + 10 + 20 * 10  # the cap, its burst, quiet starts
    assert Decision.ANSWER_503 in busy
    assert all(admission.shed_until(f"10.0.0.{k}") is None for k in range(20))


def test_thousands_of_clients_at_one_instant_are_all_served() -> None:
    """A simulator signs thousands of clients in at one virtual instant: each is quiet."""
    admission = Admission(overload_rate=100, source_rate=200, retry_after=5)
    decisions = {admission.admit(f"127.2.{n // 256}.{n % 256}", 0.0) for n in range(20_000)}
    assert decisions == {Decision.ADMIT}


def test_admission_remembers_a_bounded_number_of_sources_and_never_sheds_peers() -> None:
    admission = Admission(
        overload_rate=10, source_rate=1, retry_after=5, exempt=["127.0.0.12"], max_sources=100
    )
    for n in range(10_000):
        admission.admit(f"10.0.{n // 256}.{n % 256}", n * 1e-3)
        assert len(admission) <= 100
    assert all(admission.admit("127.0.0.12", 10.0) is Decision.ADMIT for _ in range(1000))


def test_a_pool_answers_503_retry_after_to_a_flood_and_200_to_another_source() -> None:
    world = make_world("overload_rate = 200\nsource_rate = 20\nshed_retry_after = 7")
    pool = world.pools[FE1]
    me = pool.endpoints[FE1]
    flood = Flow("udp", (me.address, 5060), ("127.0.0.66", 5999))
    legit = Flow("udp", (me.address, 5060), ("127.0.0.77", 5070))
    statuses: dict[str, list[int]] = {"flood": [], "legit": []}

    def answers(name: str) -> None:
        for action in pool.actions():
            message = parse_message(action.data)  # type: ignore[union-attr]
            assert isinstance(message, Response)
            statuses[name].append(message.status)
            if message.status == 503:
                assert message.headers.get("retry-after") == "7"

    for n in range(20_000):  # 10,000 requests a second for 2 s
        now = n * 1e-4
        pool.receive(register(USER, call_id=f"flood{n}"), flood, now)
        answers("flood")
        if n % 2000 == 0:  # a REGISTER every 0.2 s from elsewhere
            pool.receive(register("clientuser1", call_id=f"legit{n}"), legit, now)
            answers("legit")
    assert statuses["legit"] == [200] * 10
    assert 1 <= statuses["flood"].count(503) <= 3  # one a second while shed, not one each
    assert statuses["flood"].count(200) < 200  # the burst before the pool counted as overloaded
    assert len(statuses["flood"]) < 300  # the rest dropped unanswered
    shed = [e for e in pool.events() if isinstance(e, LoadShed)]
    assert [e.source for e in shed] == ["127.0.0.66"]
    assert "OVERLOADED" in describe(shed[0])[1]


def test_admission_off_sheds_nothing() -> None:
    world = make_world("overload_rate = 0\nsource_rate = 0")
    pool = world.pools[FE1]
    me = pool.endpoints[FE1]
    flow = Flow("udp", (me.address, 5060), ("127.0.0.66", 5999))
    for n in range(3000):
        pool.receive(register(USER, call_id=f"c{n}"), flow, n * 1e-5)
    sent = [parse_message(a.data) for a in pool.actions()]  # type: ignore[union-attr]
    assert len(sent) == 3000
    assert all(isinstance(m, Response) and m.status == 200 for m in sent)


# -- a binding replaced from another source (a hijack, or a client that moved) -------------


def test_the_same_endpoint_from_another_source_is_logged_as_replaced() -> None:
    world = make_world()
    world.send(FE1, register(USER, contact=endpoint(1)))
    world.send(FE1, register(USER, cseq=2, contact=endpoint(1)))  # same source: refreshed
    assert len(world.kinds(BindingRefreshed)) == 1
    assert world.kinds(BindingReplaced) == []
    attacker = ("127.0.0.99", 5080)
    hijack = register(
        USER, call_id="evil", contact=endpoint(1).replace("127.0.0.100", "127.0.0.99")
    )
    assert only_response(world.send(FE1, hijack, client=attacker)).status == 200
    assert len(world.kinds(BindingRefreshed)) == 1  # not "refreshed"
    (replaced,) = world.kinds(BindingReplaced)
    assert isinstance(replaced, BindingReplaced)
    assert replaced.previous == "UDP 127.0.0.100:5070"
    assert replaced.source == "UDP 127.0.0.99:5080"
    assert "127.0.0.100:6001" in replaced.previous_contact
    assert "127.0.0.99:6001" in replaced.contact
    kind, text = describe(replaced)
    assert kind == "pool"
    assert "replaced from another source" in text and "127.0.0.99:5080" in text
    (binding,) = world.pools[FE1].bindings()
    assert binding.flow.remote == attacker


def test_evicted_bindings_leave_no_expiry_entries_behind() -> None:
    """A client with a new endpoint every time, each evicting another: the expiry heap stays
    about as large as the store, not one entry per REGISTER for an hour."""
    store = BindingStore()
    flow = Flow("udp", ("127.0.0.11", 5060), CLIENT)
    for n in range(20_000):
        store.put(Binding("sip:a@x", f"i{n}", "<sip:a@h>", flow, f"c{n}", 1, 3600.0 + n, n))
        if store.count("sip:a@x") > 8:
            victim = store.oldest("sip:a@x")
            assert victim is not None and victim.instance == f"i{n - 8}"
            store.remove("sip:a@x", victim.instance)
        assert len(store._heap) <= 2 * 9 + 1024 + 1  # private: the structure under test
    assert [b.expires_at for b in store.expire(3600.0 + 19_995)] == [
        3600.0 + n for n in range(19_992, 19_996)
    ]
