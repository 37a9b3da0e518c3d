"""A client's generator that never holds a Mersenne Twister between draws.

Every simulated client draws from its own ``random.Random``, seeded from the run seed and its
name (:meth:`emulator.sim.world.World.rng_for`), and a seed reproduces a run byte for byte.
The Mersenne Twister keeps 2.5 KB of state inside each generator: an eighth of what a
simulated client held (issue 20 asks for at most 4 KB per client, benchmarks/sim_bench.py).
Yet a client draws a few dozen 32-bit words in an hour, most of them while it signs in.

:class:`LazyRandom` gives the same numbers as ``random.Random(seed)``, in the same order,
from every method, and counts the 32-bit words it has drawn.  It takes words 64 at a time
from a Twister seeded alike, made for the purpose and dropped at once (``getrandbits(32 *
n)`` gives exactly the next ``n`` words, the first lowest), and serves draws from them; when
they run out, a new Twister skips the words already drawn and gives the next 64.  So no
client holds a Twister, even while every client signs in at once (the run's peak), and
between refills it holds one integer of the words drawn ahead (~300 bytes).  The world
:meth:`~LazyRandom.park`\\ s it when its client begins to coast: the words drawn ahead are
dropped too, leaving the seed and the count (a few dozen bytes).  A run with parked
generators and one without give the same trace (tests/sim/test_lazyrandom.py).

Only ``random()`` and ``getrandbits()`` draw words here, computing from them what CPython's
``random_random`` and ``random_getrandbits`` compute from the Twister's; every other method
of ``random.Random`` (``uniform``, ``randint``, ``choice``, ``shuffle``, ...) is borrowed from the
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
"""Words skipped per ``getrandbits`` call when a generator refills (bounds the temporary
integer to 4 MB; a client draws a few hundred words in an hour)."""

_FILL = 64
"""Words a refill takes from a Twister made for it, which is then dropped.  A client draws
24-35 words from its sign-in to its first coast and at most ~110 in an hour with an outage
(benchmarks/sim_bench.py, 2,000 clients), so one refill covers a sign-in.  The words are held
as one integer (~300 bytes instead of the Twister's 2.5 KB)."""

_MASK = 0xFFFFFFFF


class LazyRandom:
    """``random.Random(seed)``'s numbers without holding its Twister between draws."""

    __slots__ = ("_buffer", "_left", "_seed", "_words", "gauss_next")

    def __init__(self, seed: str) -> None:
        self._seed = seed
        self._buffer: int | None = None
        """The next ``_left`` words of the Twister's output, the next one lowest; None when
        parked (nothing drawn ahead)."""
        self._left = 0
        self._words = 0
        """32-bit words drawn so far."""
        self.gauss_next: float | None = None  # random.Random.gauss keeps its second value here

    @property
    def parked(self) -> bool:
        """Whether no words are drawn ahead (the next draw makes a Twister to refill)."""
        return self._buffer is None

    @property
    def words(self) -> int:
        """32-bit words drawn so far."""
        return self._words

    def park(self) -> None:
        """Drop the words drawn ahead; the next draw refills from where it stopped."""
        self._buffer = None
        self._left = 0

    def _twister(self) -> _random.Random:
        """A Twister seeded alike that has given the words drawn so far."""
        twister = _random.Random(self._seed)
        left = self._words
        while left:
            chunk = min(left, _SKIP_CHUNK)
            twister.getrandbits(32 * chunk)
            left -= chunk
        return twister

    def _fill(self) -> int:
        # getrandbits(32 n) gives n words in the order drawn, the first lowest (CPython's
        # Modules/_randommodule.c); the Twister goes when this returns.
        buffer = self._twister().getrandbits(32 * _FILL)
        self._left = _FILL
        return buffer

    def _word(self) -> int:
        buffer = self._buffer if self._left else self._fill()
        assert buffer is not None
        self._buffer = buffer >> 32
        self._left -= 1
        self._words += 1
        return buffer & _MASK

    def random(self) -> float:
        # As random_random in CPython: 27 bits of one word and 26 of the next.
        if self._left >= 2:
            buffer = self._buffer
            assert buffer is not None
            self._buffer = buffer >> 64
            self._left -= 2
            self._words += 2
            a = (buffer & _MASK) >> 5
            b = ((buffer >> 32) & _MASK) >> 6
        else:
            a = self._word() >> 5
            b = self._word() >> 6
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)

    def getrandbits(self, k: int) -> int:
        # As random_getrandbits in CPython: words from the least significant end, the last
        # one's low bits dropped when k is not a multiple of 32.
        if k <= 32:
            if k > 0:
                return self._word() >> (32 - k)
            if k == 0:
                return 0
            raise ValueError("number of bits must be non-negative")
        result = 0
        shift = 0
        while k > 0:
            word = self._word()
            if k < 32:
                word >>= 32 - k
            result |= word << shift
            shift += 32
            k -= 32
        return result

    def getstate(self) -> tuple[object, ...]:
        """What ``random.Random(seed).getstate()`` is after the same draws."""
        version, internal, _ = self._twister().getstate()
        return (version, internal, self.gauss_next)

    def seed(self, a: str, version: int = 2) -> None:
        """Start again from seed ``a`` (as ``random.Random.seed`` with a string)."""
        self._seed = a
        self._buffer = None
        self._left = 0
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
