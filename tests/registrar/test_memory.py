"""The registrar's leaner per-client state (issue 20, part 5) decides exactly as before."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.admin import Directory
from emulator.net import Flow
from emulator.registrar.admission import SWEEP_INTERVAL, Admission
from emulator.registrar.bindings import Binding, BindingStore
from emulator.sip.message import Response

from .harness import make_world, register, topology

FLOW = Flow("udp", ("127.0.0.11", 5060), ("127.0.0.100", 5070))
AORS = ("sip:a@x", "sip:b@x")
INSTANCES = ("i1", "i2", "i3")

# -- BindingStore: one binding per AOR held without a dict ---------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(("put", "remove", "remove_all", "expire")),
        st.sampled_from(AORS),
        st.sampled_from(INSTANCES),
        st.integers(1, 50),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_binding_store_matches_a_dict_of_dicts(ops: list[tuple[str, str, str, int]]) -> None:
    """The store against the model it replaced (a dict of instance -> binding per AOR, in
    insertion order): the same bindings, in the same order, after every step."""
    store = BindingStore()
    model: dict[str, dict[str, Binding]] = {}
    now = 0.0
    for n, (op, aor, instance, value) in enumerate(ops):
        now += 1.0
        if op == "put":
            binding = Binding(aor, instance, f"<sip:{instance}@h>", FLOW, "c", n, now + value, now)
            store.put(binding)
            model.setdefault(aor, {})[instance] = binding
        elif op == "remove":
            expected = model.get(aor, {}).pop(instance, None)
            if aor in model and not model[aor]:
                del model[aor]
            assert store.remove(aor, instance) is expected
        elif op == "remove_all":
            assert store.remove_all(aor) == list(model.pop(aor, {}).values())
        else:
            gone = store.expire(now)
            for binding in gone:
                del model[binding.aor][binding.instance]
                if not model[binding.aor]:
                    del model[binding.aor]
            assert all(b.expires_at > now for per in model.values() for b in per.values())
        for a in AORS:
            assert store.of(a) == list(model.get(a, {}).values())
            assert store.count(a) == len(model.get(a, {}))
            for i in INSTANCES:
                assert store.get(a, i) is model.get(a, {}).get(i)
        assert list(store) == [b for per in model.values() for b in per.values()]
        assert len(store) == sum(len(per) for per in model.values())


# -- Admission: sources as new ones are forgotten ------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from((0.0, 0.01, 0.3, 1.0, 7.0, 45.0, 200.0))),
        max_size=120,
    )
)
def test_forgetting_sources_changes_no_decision(steps: list[tuple[int, float]]) -> None:
    """Every decision, report and count of a sweeping Admission equals one that never
    forgets (its sweep put off for ever)."""
    sweeping = Admission(overload_rate=20, source_rate=3, retry_after=5)
    keeping = Admission(overload_rate=20, source_rate=3, retry_after=5)
    keeping._sweep_at = math.inf
    now = 0.0
    for source, step in steps:
        now += step
        address = f"10.0.0.{source}"
        assert sweeping.admit(address, now) is keeping.admit(address, now)
        assert sweeping.reports == keeping.reports
        assert (sweeping.answered, sweeping.dropped) == (keeping.answered, keeping.dropped)
        assert len(sweeping) <= len(keeping)


def test_a_quiet_source_is_forgotten_and_a_shed_one_is_not() -> None:
    admission = Admission(overload_rate=0, source_rate=1, retry_after=600)
    admission.admit("10.0.0.1", 0.0)  # one request: as new again within seconds
    for _ in range(5):  # past its bucket: shed for 600 s
        admission.admit("10.0.0.2", 0.0)
    assert admission.shed_until("10.0.0.2") == 600.0
    admission.admit("10.0.0.3", SWEEP_INTERVAL)  # the first request after the interval
    assert len(admission) == 2  # 10.0.0.1 forgotten; 10.0.0.2 (shed) and 10.0.0.3 kept
    assert admission.shed_until("10.0.0.1") is None
    assert admission.shed_until("10.0.0.2") == 600.0


# -- Inspection, interning, the directory ---------------------------------------------------


def only(messages: list[object]) -> Response:
    assert len(messages) == 1
    (message,) = messages
    assert isinstance(message, Response)
    return message


def test_a_bad_contact_is_refused_after_a_good_one_from_the_same_user() -> None:
    """The To value is remembered as inspected; the Contact is checked again (a Director
    parses no Contact, so nothing of it is remembered)."""
    world = make_world()
    for pool, good in (("fe1.contoso.test", 200), ("dir1.contoso.test", 301)):
        assert only(world.send(pool, register("clientuser1", call_id=pool))).status == good
        bad = register("clientuser1", call_id=pool, cseq=2, contact="sip:x@127.0.0.100?Route=x")
        assert only(world.send(pool, bad)).status == 400


def test_bindings_share_the_directory_s_address_and_the_contact_text() -> None:
    world = make_world()
    contact = "<sip:clientuser1@127.0.0.100:5070>"
    world.send("fe1.contoso.test", register("clientuser1", contact=contact))
    (binding,) = world.pools["fe1.contoso.test"].bindings()
    (user,) = (aor for aor in world.topology.users if aor == binding.aor)
    assert binding.aor is user  # one string per user: interned by the topology and the pool
    assert binding.contact == contact


def test_a_directory_reads_the_users_until_a_move_and_never_changes_them() -> None:
    topo = topology()
    first, second = Directory(topo.users), Directory(topo.users)
    before = dict(topo.users)
    first.move(["sip:clientuser1@contoso.test"], "fe3.contoso.test")
    assert first.get("sip:clientuser1@contoso.test") == "fe3.contoso.test"
    assert second.get("sip:clientuser1@contoso.test") == "fe1.contoso.test"
    assert dict(topo.users) == before
    first.move(["sip:clientuser2@contoso.test"], "fe3.contoso.test")
    assert first.users_of("fe3.contoso.test") == [
        "sip:clientuser1@contoso.test",
        "sip:clientuser2@contoso.test",
        "sip:loner@contoso.test",
    ]
    assert len(first) == len(second) == len(before)


def test_a_binding_dropped_or_moved_tells_its_old_contact() -> None:
    """What lets the pool's parse cache forget a Contact value no client sends any more."""
    store = BindingStore()
    dropped: list[str] = []
    store.on_dropped = dropped.append

    def put(instance: str, contact: str, at: float) -> None:
        store.put(Binding("sip:a@x", instance, contact, FLOW, "c", int(at), at + 60, at))

    put("i1", "<sip:h:1>", 1.0)
    put("i1", "<sip:h:1>", 2.0)  # a refresh: the same contact, nothing dropped
    assert dropped == []
    put("i1", "<sip:h:2>", 3.0)  # reconnected from another port
    put("i2", "<sip:h:3>", 4.0)
    assert dropped == ["<sip:h:1>"]
    store.remove("sip:a@x", "i2")
    store.expire(100.0)
    assert dropped == ["<sip:h:1>", "<sip:h:3>", "<sip:h:2>"]


def test_the_pool_forgets_the_contact_value_of_a_replaced_binding() -> None:
    """The same endpoint (its epid) from another port: the old Contact value's parse-cache
    entry goes with the binding it made."""
    world = make_world()
    pool = world.pools["fe1.contoso.test"]
    first, second = "<sip:clientuser1@127.0.0.100:5070>", "<sip:clientuser1@127.0.0.100:5071>"
    assert only(world.send(pool.fqdn, register("clientuser1", contact=first))).status == 200
    assert pool._rules.contacts_parsed([first])
    again = register("clientuser1", cseq=2, contact=second)
    assert only(world.send(pool.fqdn, again)).status == 200
    assert [b.contact for b in pool.bindings()] == [second]
    assert pool._rules.contacts_parsed([second])
    assert not pool._rules.contacts_parsed([first])
