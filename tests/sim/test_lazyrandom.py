"""A client's parkable generator (emulator/sim/lazyrandom.py) gives random.Random's numbers,
parked or not, and parking it while its client coasts changes nothing in a run."""

from __future__ import annotations

import gc
import random

import pytest

from emulator.sim.deployment import ClientSpec, SimulatedDeployment
from emulator.sim.lazyrandom import LazyRandom
from emulator.topology import parse_topology
from tests.scenario.test_coasting import ROOT, canonical, draws


def draw_all(rng: random.Random | LazyRandom, step: int) -> object:
    """One draw of each method a core uses (and a few more), chosen by ``step``."""
    match step % 9:
        case 0:
            return rng.random()
        case 1:
            return rng.getrandbits((step * 13) % 160)  # 0, short, one word, several
        case 2:
            return rng.randint(0, 10 ** (step % 25))
        case 3:
            return rng.uniform(1.0, 5.0)
        case 4:
            return rng.choice("abcdefg")
        case 5:
            items = list(range(20))
            rng.shuffle(items)
            return items
        case 6:
            return rng.gauss(0.0, 1.0)  # keeps a second value in gauss_next
        case 7:
            return rng.randbytes(step % 17)
        case _:
            return rng.sample(range(100), 5)


@pytest.mark.parametrize("park_every", [1, 3, 7, 1000])
def test_the_same_numbers_as_random_random_however_often_it_is_parked(park_every: int) -> None:
    plain, lazy = random.Random("1:client:c00001:0"), LazyRandom("1:client:c00001:0")
    for step in range(1500):
        if step % park_every == 0:
            lazy.park()
            assert lazy.parked
        assert draw_all(lazy, step) == draw_all(plain, step), step
    assert not lazy.parked
    assert lazy.getstate() == plain.getstate()
    lazy.park()
    assert lazy.getstate() == plain.getstate()
    assert lazy.parked  # reading the state does not keep a rebuilt Twister


def test_words_count_what_the_twister_gave() -> None:
    lazy = LazyRandom("words")
    lazy.random()  # two 32-bit words (53 bits)
    lazy.getrandbits(0)  # none
    lazy.getrandbits(32)  # one
    lazy.getrandbits(33)  # two
    lazy.getrandbits(128)  # four
    assert lazy.words == 2 + 0 + 1 + 2 + 4
    with pytest.raises(ValueError):
        lazy.getrandbits(-1)
    assert lazy.words == 9


def test_draws_across_refills_and_word_by_word_are_the_twisters() -> None:
    """Single words past the 64 drawn ahead at a time, and a draw that straddles a refill
    (random() with one word left, getrandbits(100) with two), are random.Random's."""
    plain, lazy = random.Random("refills"), LazyRandom("refills")
    for _ in range(63):
        assert lazy.getrandbits(32) == plain.getrandbits(32)
    assert lazy.random() == plain.random()  # one word from this fill, one from the next
    for _ in range(61):
        assert lazy.getrandbits(7) == plain.getrandbits(7)
    assert lazy.getrandbits(100) == plain.getrandbits(100)  # 2 words here, 2 after a refill
    assert lazy.words == 63 + 2 + 61 + 4
    assert lazy.getstate() == plain.getstate()


def test_no_client_holds_a_twister_while_every_client_signs_in() -> None:
    """The run's memory peak is every client signing in at once: the clients' generators
    then hold words drawn ahead, never a 2.5 KB Twister (issue 20)."""
    topology = parse_topology((ROOT / "topologies" / "r1-lab.toml").read_text())
    gc.collect()
    before = {id(obj) for obj in gc.get_objects() if isinstance(obj, LazyRandom)}
    sim = SimulatedDeployment(
        topology,
        [ClientSpec(f"ClientUser{n}", f"sip:clientuser{n}@contoso.test") for n in (1, 2)],
        seed=3,
    )
    for name in sim.agents:
        sim.sign_in(name)
    generators = [
        obj for obj in gc.get_objects() if isinstance(obj, LazyRandom) and id(obj) not in before
    ]
    assert len(generators) == 2
    holding = 0
    for step in range(1, 401):  # the first 4 s, 10 ms at a time: DNS, 301, REGISTER, 200
        sim.run_until(step / 100)
        for generator in generators:
            assert not any(isinstance(ref, random.Random) for ref in gc.get_referents(generator))
            holding += not generator.parked
    assert holding > 0  # words were held ahead between draws, as one integer
    assert all(generator.words > 0 for generator in generators)


def test_a_run_with_parked_generators_is_the_run_without() -> None:
    """Two clients through an hour with an outage of fe2 and its recovery, once with the
    generators parked whenever their clients coast and once never parked: the same trace and
    the same generator states at the end.  The clients did coast and draw again after it."""
    topology = parse_topology((ROOT / "topologies" / "r1-lab.toml").read_text())

    def hour() -> SimulatedDeployment:
        sim = SimulatedDeployment(
            topology,
            [
                ClientSpec("ClientUser1", "sip:clientuser1@contoso.test"),
                ClientSpec("ClientUser2", "sip:clientuser2@contoso.test"),
            ],
            seed=5,
        )
        sim.sign_in("ClientUser1")
        sim.sign_in("ClientUser2")
        sim.world.call_at(1000.3, lambda: sim.disable_nic("fe2.contoso.test"))
        sim.world.call_at(1400.7, lambda: sim.enable_nic("fe2.contoso.test"))
        sim.run_until(3600)
        sim.world.settle()
        return sim

    parks: list[int] = []
    real_park = LazyRandom.park

    def counted_park(self: LazyRandom) -> None:
        parks.append(self.words)
        real_park(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LazyRandom, "park", counted_park)
        parked = hour()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LazyRandom, "park", lambda self: None)
        kept = hour()
    assert len(parks) >= 4  # each client coasted after signing in and again after the outage
    assert len(set(parks)) > 2  # ... having drawn more in between
    assert canonical(parked.world.trace) == canonical(kept.world.trace)
    assert any("limited" in line for line in canonical(kept.world.trace))
    assert draws(parked) == draws(kept)
