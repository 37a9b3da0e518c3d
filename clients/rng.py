"""A seeded generator with the interface of ``random.Random`` and 8 bytes of state.

Each agent of a :class:`~clients.driver.Fleet` draws from its own generator, seeded from the run
seed and its name, so that its choices (SRV order, back-off delays, Call-IDs, tags, instance)
are reproducible per agent.  ``random.Random`` keeps a Mersenne Twister state of 2.5 KB inside
the object, which was a fifth of an idle TCP agent's memory (docs/benchmarks.md, many agents).
:class:`SmallRandom` is SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014): a 64-bit counter stepped by the golden ratio and a mixing function.
Not cryptographic, like the Mersenne Twister it replaces.

Only ``random()`` and ``getrandbits()`` are its own; every other method of ``random.Random``
(``uniform``, ``randint``, ``choice``, ``shuffle``, ...) is borrowed from the standard library,
which builds them on those two, so an agent can use any of them.
"""

from __future__ import annotations

import hashlib
import random as _random

__all__ = ["SmallRandom"]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class SmallRandom:
    """``random.Random``'s interface over SplitMix64; seeded by a string, bytes or an int."""

    __slots__ = ("_state", "gauss_next")

    def __init__(self, seed: str | bytes | int = 0) -> None:
        self._state = 0
        self.gauss_next: float | None = None  # random.Random.gauss keeps its second value here
        self.seed(seed)

    def seed(self, a: str | bytes | int = 0, version: int = 2) -> None:
        data = a.encode() if isinstance(a, str) else a if isinstance(a, bytes) else str(a).encode()
        self._state = int.from_bytes(hashlib.sha512(data).digest()[:8], "big")
        self.gauss_next = None

    def getstate(self) -> int:
        return self._state

    def setstate(self, state: int) -> None:
        self._state = state & _MASK

    def _next(self) -> int:
        self._state = z = (self._state + _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        value, have = 0, 0
        while have < k:
            value = (value << 64) | self._next()
            have += 64
        return value >> (have - k)

    def random(self) -> float:
        """A float in [0, 1), 53 random bits."""
        return (self._next() >> 11) * (1.0 / (1 << 53))

    def randbytes(self, n: int) -> bytes:
        return self.getrandbits(n * 8).to_bytes(n, "little")


def _borrow() -> None:
    """Every pure-Python method of random.Random, which rests on random() and getrandbits()."""
    own = set(vars(SmallRandom))
    for name, value in vars(_random.Random).items():
        if name in own or name.startswith("__") or not callable(value):
            continue
        if getattr(value, "__module__", None) != "random":
            continue
        setattr(SmallRandom, name, value)
    # random.Random chooses _randbelow by whether random() or getrandbits() was overridden.
    SmallRandom._randbelow = _random.Random._randbelow_with_getrandbits  # type: ignore[attr-defined]


_borrow()
