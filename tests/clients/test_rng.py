"""The fleet's small generator: random.Random's interface, reproducible per seed."""

from __future__ import annotations

import pytest

from clients.rng import SmallRandom
from clients.srv import order_srv
from fakedns.records import SrvRecord


def test_same_seed_same_draws_and_other_seeds_differ() -> None:
    a, b = SmallRandom("1:client:c1"), SmallRandom("1:client:c1")
    assert [a.getrandbits(64) for _ in range(5)] == [b.getrandbits(64) for _ in range(5)]
    others = {SmallRandom(f"1:client:c{n}").getrandbits(64) for n in range(1000)}
    assert len(others) == 1000


@pytest.mark.parametrize("bits", [1, 16, 40, 63, 64, 65, 128, 200])
def test_getrandbits_is_that_wide(bits: int) -> None:
    rng = SmallRandom(bits)
    draws = [rng.getrandbits(bits) for _ in range(200)]
    assert all(0 <= d < 1 << bits for d in draws)
    assert max(draws).bit_length() == bits  # the top bit is drawn too (200 tries)


def test_getrandbits_zero_and_negative() -> None:
    rng = SmallRandom(0)
    assert rng.getrandbits(0) == 0
    with pytest.raises(ValueError):
        rng.getrandbits(-1)


def test_random_uniform_randint_in_their_ranges() -> None:
    rng = SmallRandom("ranges")
    floats = [rng.random() for _ in range(2000)]
    assert all(0.0 <= f < 1.0 for f in floats)
    assert min(floats) < 0.01 and max(floats) > 0.99
    assert all(0.75 * 30 <= rng.uniform(0.75 * 30, 30) <= 30 for _ in range(500))
    ints = {rng.randint(0, 5) for _ in range(500)}
    assert ints == {0, 1, 2, 3, 4, 5}  # both ends included, as random.Random.randint


def test_borrowed_methods_work_on_the_small_state() -> None:
    rng = SmallRandom("api")
    assert rng.choice("abc") in "abc"
    items = list(range(10))
    rng.shuffle(items)
    assert sorted(items) == list(range(10))
    assert len(set(rng.sample(range(100), 10))) == 10
    assert isinstance(rng.gauss(0.0, 1.0), float)
    assert isinstance(rng.gauss(0.0, 1.0), float)  # the second value kept by the first call
    assert rng.expovariate(1.0) > 0
    assert len(rng.randbytes(7)) == 7


def test_state_replays() -> None:
    rng = SmallRandom("state")
    saved = rng.getstate()
    first = [rng.randint(0, 1000) for _ in range(10)]
    rng.setstate(saved)
    assert [rng.randint(0, 1000) for _ in range(10)] == first


def test_srv_ordering_draws_from_it_like_from_random() -> None:
    # The agent's SRV ordering (RFC 2782 weights) only needs randint: same seed, same order.
    name = "_sipinternaltls._tcp.contoso.test"
    records = [SrvRecord(name, 0, w, 5061, t) for w, t in [(60, "a."), (20, "b."), (20, "c.")]]
    orders = {tuple(r.target for r in order_srv(records, SmallRandom(n))) for n in range(200)}
    assert len(orders) > 1  # weighted, not fixed
    assert order_srv(records, SmallRandom(7)) == order_srv(records, SmallRandom(7))
