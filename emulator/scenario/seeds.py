"""A scenario that must hold over N seeds (``seeds = N``, ``sipemu run --seeds N``).

The seeds are ``seed``, ``seed + 1``, ... ``seed + N - 1``; the runs stop at the first seed
whose run fails, and say which (docs/scenarios.md, "Over several seeds").  Each run is the one
``sipemu run --seed S`` makes: its groups' sign-in times are drawn for that seed too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.scenario.model import Scenario
    from emulator.scenario.runner import RunResult

__all__ = ["SeedsResult", "run_seeds"]


@dataclass(frozen=True, slots=True)
class SeedsResult:
    seeds: tuple[int, ...]
    """The seeds asked for, in order."""
    held: tuple[int, ...]
    """Those whose runs held (every expectation passed), up to the first that failed."""
    failed: RunResult | None
    """The first failing run (its ``seed`` says which), or None when every seed held."""

    @property
    def passed(self) -> bool:
        return self.failed is None

    @property
    def seed(self) -> int:
        """The seed to show: the failing one, or the first."""
        return self.failed.seed if self.failed is not None else self.seeds[0]

    def line(self) -> str:
        """One sentence for the end of a report."""
        span = f"seeds {self.seeds[0]} to {self.seeds[-1]}"
        if self.failed is None:
            return f"seeds: held for all {len(self.seeds)} seeds ({span})"
        return (
            f"seeds: FAILED with seed {self.failed.seed} ({len(self.held)} of "
            f"{len(self.seeds)} held before it, {span}); rerun it with --seed {self.failed.seed}"
        )


def seeds_of(scenario: Scenario, count: int | None = None, first: int | None = None) -> list[int]:
    """The seeds a scenario runs over: ``count`` (default its ``seeds``) from ``first``
    (default its ``seed``)."""
    count = scenario.seeds if count is None else count
    first = scenario.seed if first is None else first
    return [first + k for k in range(count)]


def run_seeds(
    scenario: Scenario,
    count: int | None = None,
    first: int | None = None,
    *,
    coast: bool = True,
) -> SeedsResult:
    """Run ``scenario`` in virtual time for each seed until one fails."""
    from emulator.scenario.runner import run_scenario

    seeds = seeds_of(scenario, count, first)
    held: list[int] = []
    for seed in seeds:
        result = run_scenario(scenario, seed=seed, coast=coast)
        if not result.passed:
            return SeedsResult(tuple(seeds), tuple(held), result)
        held.append(seed)
    return SeedsResult(tuple(seeds), tuple(held), None)
