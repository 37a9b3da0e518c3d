"""RFC 2782 SRV ordering (clients.srv): priority, weights, reproducibility, target '.'."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from clients.srv import order_srv, service_unavailable
from fakedns.records import SrvRecord

NAME = "_sipinternaltls._tcp.contoso.test"


def rec(target: str, priority: int = 0, weight: int = 0) -> SrvRecord:
    return SrvRecord(NAME, priority, weight, 5061, target)


def targets(records: list[SrvRecord]) -> list[str]:
    return [r.target for r in records]


def test_lower_priority_first_whatever_the_server_order_and_weights() -> None:
    records = [rec("c", 20, 100), rec("a", 0, 0), rec("b", 10, 50)]
    for seed in range(20):
        assert targets(order_srv(records, random.Random(seed))) == ["a", "b", "c"]


def test_all_zero_weights_keep_the_server_order_within_a_priority() -> None:
    # RFC 2782: with all weights 0 the draw is r = 0 and the first listed record is taken.
    records = [rec("fe2", 0), rec("fe1", 0), rec("fe3", 0), rec("dir", 10)]
    for seed in range(50):
        assert targets(order_srv(records, random.Random(seed))) == ["fe2", "fe1", "fe3", "dir"]


def test_input_is_not_modified_and_empty_input_gives_empty_order() -> None:
    records = [rec("x", 0, 5), rec("y", 0, 5)]
    before = list(records)
    order_srv(records, random.Random(1))
    assert records == before
    assert order_srv([], random.Random(1)) == []


def test_same_seed_gives_the_same_order() -> None:
    records = [rec(f"t{i}", i % 3, (i * 7) % 11) for i in range(12)]
    first = order_srv(records, random.Random(42))
    assert order_srv(records, random.Random(42)) == first
    orders = {tuple(targets(order_srv(records, random.Random(seed)))) for seed in range(30)}
    assert len(orders) > 1  # the weights do randomize


def first_pick_shares(records: list[SrvRecord], draws: int = 20_000) -> dict[str, float]:
    rng = random.Random(2782)
    counts = Counter(order_srv(records, rng)[0].target for _ in range(draws))
    return {r.target: counts[r.target] / draws for r in records}


def test_weighted_selection_frequencies_are_close_to_weight_over_sum() -> None:
    records = [rec("a", 0, 10), rec("b", 0, 30), rec("c", 0, 60)]
    shares = first_pick_shares(records)
    for record in records:
        assert abs(shares[record.target] - record.weight / 100) < 0.02, shares


def test_weight_zero_records_get_a_very_small_share_when_others_weigh() -> None:
    # Picked first only when r = 0: 1 chance in sum + 1 (here 1/101).
    records = [rec("b", 0, 40), rec("zero", 0, 0), rec("c", 0, 60)]
    shares = first_pick_shares(records)
    assert 0 < shares["zero"] < 0.02, shares
    assert abs(shares["b"] - 0.4) < 0.02 and abs(shares["c"] - 0.6) < 0.02, shares


def test_second_place_follows_the_remaining_weights() -> None:
    # After "c" (60) is taken, "a" (10) and "b" (30) share second place as 11:31 (r inclusive).
    records = [rec("a", 0, 10), rec("b", 0, 30), rec("c", 0, 60)]
    rng = random.Random(5)
    seconds = Counter(
        order[1].target
        for order in (order_srv(records, rng) for _ in range(20_000))
        if order[0].target == "c"
    )
    total = seconds["a"] + seconds["b"]
    assert abs(seconds["b"] / total - 31 / 42) < 0.03, seconds


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20)), max_size=12),
    st.integers(0, 2**32),
)
def test_order_is_a_permutation_sorted_by_priority(specs: list[tuple[int, int]], seed: int) -> None:
    records = [rec(f"t{i}", priority, weight) for i, (priority, weight) in enumerate(specs)]
    ordered = order_srv(records, random.Random(seed))
    assert sorted(targets(ordered)) == sorted(targets(records))
    assert [r.priority for r in ordered] == sorted(r.priority for r in records)


def test_a_single_record_with_target_dot_means_service_unavailable() -> None:
    assert service_unavailable([rec(".")])
    assert not service_unavailable([rec("fe1.contoso.test")])
    assert not service_unavailable([])
    # Only a lone "." record says so (RFC 2782 usage rules).
    assert not service_unavailable([rec("."), rec("fe1.contoso.test")])
