"""A client's generator that holds its Mersenne Twister only while the client draws from it.

Every simulated client draws from its own ``random.Random``, seeded from the run seed and its
name (:meth:`emulator.sim.world.World.rng_for`), and a seed reproduces a run byte for byte.
The Mersenne Twister keeps 2.5 KB of state inside each generator: an eighth of what a
simulated client held (issue 20 asks for at most 4 KB per client, benchmarks/sim_bench.py).
Yet a registered client draws nothing for most of a run: while it coasts (emulator/sim/
coasting.py) it waits for its refresh or for something to happen.

:class:`LazyRandom` gives the same numbers as ``random.Random(seed)``, in the same order,
from every method, and counts the 32-bit words it has drawn from the Twister.  The world
:meth:`~LazyRandom.park`\\ s it when its client begins to coast: the Twister is dropped,
leaving the seed and the count (a few dozen bytes).  The next draw seeds a new Twister and
skips the words already drawn (``getrandbits(32 * n)`` draws exactly ``n`` words), so it
goes on where the dropped one stopped.  A run with parked generators and one without give
the same trace (tests/sim/test_lazyrandom.py).

Only ``random()`` and ``getrandbits()`` draw from the Twister here; every other method of
``random.Random`` (``uniform``, ``randint``, ``choice``, ``shuffle``, ...) is borrowed from the
standard library, which builds them on those two, as ``clients.rng.SmallRandom`` does (and
like it, this module is not compiled: setup.py ``_NOT_COMPILED``).

How many words each draw takes is CPython's (Modules/_randommodule.c): ``random()`` two
(53 bits from a 27-bit and a 26-bit draw); ``getrandbits(k)`` one word for ``0 < k <= 32``,
``ceil(k / 32)`` for larger ``k``, none for ``k == 0``.
"""

from __future__ import annotations

import random as _random

__all__ = ["LazyRandom"]

_SKIP_CHUNK = 1 << 20
"""Words skipped per ``getrandbits`` call when a parked generator resumes (bounds the
temporary integer to 4 MB; a client draws a few hundred words in an hour)."""


class LazyRandom:
    """``random.Random(seed)``'s numbers, whose Twister can be dropped and rebuilt."""

    __slots__ = ("_seed", "_twister", "_words", "gauss_next")

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self._twister: _random.Random | None = _random.Random(seed)
        self._words = 0
        """32-bit words drawn from the Twister so far."""
        self.gauss_next: float | None = None  # random.Random.gauss keeps its second value here

    @property
    def parked(self) -> bool:
        """Whether the Twister is dropped (the next draw rebuilds it)."""
        return self._twister is None

    @property
    def words(self) -> int:
        """32-bit words drawn so far."""
        return self._words

    def park(self) -> None:
        """Drop the Twister; the next draw rebuilds it where it stopped."""
        self._twister = None

    def _resume(self) -> _random.Random:
        twister = _random.Random(self._seed)
        left = self._words
        while left:
            chunk = min(left, _SKIP_CHUNK)
            twister.getrandbits(32 * chunk)
            left -= chunk
        self._twister = twister
        return twister

    def random(self) -> float:
        twister = self._twister or self._resume()
        value = twister.random()
        self._words += 2
        return value

    def getrandbits(self, k: int) -> int:
        twister = self._twister or self._resume()
        value = twister.getrandbits(k)  # raises for k < 0, drawing nothing
        self._words += (k + 31) >> 5
        return value

    def getstate(self) -> tuple[object, ...]:
        """What ``random.Random(seed).getstate()`` is after the same draws (a parked
        generator stays parked: the Twister rebuilt here is not kept)."""
        twister = self._twister
        if twister is None:
            twister = self._resume()
            self._twister = None
        version, internal, _ = twister.getstate()
        return (version, internal, self.gauss_next)

    def seed(self, a: str, version: int = 2) -> None:
        """Start again from seed ``a`` (as ``random.Random.seed`` with a string)."""
        self._seed = a
        self._twister = _random.Random(a)
        self._words = 0
        self.gauss_next = None


_NOT_BORROWED = frozenset({"setstate"})
"""random.Random's setstate reaches into the C Twister (super()); a parked generator's state
is its seed and word count, which nothing outside this module sets."""


def _borrow() -> None:
    """Every pure-Python method of random.Random, which rests on random() and getrandbits()."""
    own = set(vars(LazyRandom))
    for name, value in vars(_random.Random).items():
        if name in own or name in _NOT_BORROWED or name.startswith("__") or not callable(value):
            continue
        if getattr(value, "__module__", None) != "random":
            continue
        setattr(LazyRandom, name, value)
    # random.Random chooses _randbelow by whether random() or getrandbits() was overridden.
    LazyRandom._randbelow = _random.Random._randbelow_with_getrandbits  # type: ignore[attr-defined]


_borrow()
