"""The values of the expectation forms over groups (docs/scenarios.md, "Expectations over
groups"): how many of a group must be in a state, and how a group must spread over targets.

Plain values with no dependencies, so that :class:`emulator.scenario.model.Expectation` can
hold them; :mod:`emulator.scenario.aggregate` parses and judges them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SPREAD_OF", "Share", "Spread"]

SPREAD_OF = ("registrar", "first-register")
"""What a spread counts: each registered client's registrar, or the host each client sent
its first REGISTER to (an SRV pick, for a client with an empty cache)."""


@dataclass(frozen=True, slots=True)
class Share:
    """How many members of a group must match: ``at_least`` / ``at_most`` a fraction of the
    group, ``count`` at least that many (any of them, all must hold)."""

    at_least: float | None = None
    at_most: float | None = None
    count: int | None = None

    def holds(self, matching: int, size: int) -> bool:
        if self.count is not None and matching < self.count:
            return False
        if self.at_least is not None and matching < self.at_least * size - 1e-9:
            return False
        return not (self.at_most is not None and matching > self.at_most * size + 1e-9)

    def describe(self) -> str:
        parts = []
        if self.at_least is not None:
            parts.append(f"at least {self.at_least:.4g} of")
        if self.at_most is not None:
            parts.append(f"at most {self.at_most:.4g} of")
        if self.count is not None:
            parts.append(f"at least {self.count} of")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class Spread:
    """The members of a group spread over targets in these percentages, each within
    ``tolerance`` percentage points; targets not named must get none beyond the tolerance."""

    shares: tuple[tuple[str, float], ...]
    """Target -> percentage (the weights given, normalised to 100)."""
    tolerance: float
    of: str
    """One of :data:`SPREAD_OF`."""

    def describe(self) -> str:
        shown = ", ".join(f"{t} {p:.4g}%" for t, p in self.shares)
        return f"{self.of} spread {shown} (± {self.tolerance:g})"
