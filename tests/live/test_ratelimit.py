"""The token bucket in front of the log (emulator/live/ratelimit.py), on a hand-moved clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator.live.ratelimit import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.scheduled: list[tuple[float, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.scheduled.append((self.now + delay, callback))

    def run_due(self) -> None:
        due = [entry for entry in self.scheduled if entry[0] <= self.now]
        self.scheduled = [entry for entry in self.scheduled if entry[0] > self.now]
        for _, callback in due:
            callback()


def test_a_burst_passes_then_lines_are_counted_and_summed_up_before_the_next() -> None:
    clock = Clock()
    lines: list[str] = []
    log = RateLimitedLog(lines.append, label="bad-input lines", rate=2.0, burst=3, clock=clock)
    for n in range(10):
        log(f"bad {n}")
    assert lines == ["bad 0", "bad 1", "bad 2"]
    assert log.suppressed == 7
    clock.now = 0.5  # one token back (2 per second)
    log("bad 10")
    assert lines[3:] == ["... 7 more bad-input lines suppressed (at most 2/s)", "bad 10"]
    assert (log.suppressed, log.total_suppressed) == (0, 7)


def test_the_bucket_refills_up_to_the_burst_only() -> None:
    clock = Clock()
    lines: list[str] = []
    log = RateLimitedLog(lines.append, rate=1.0, burst=2, clock=clock)
    clock.now = 1000.0  # a long quiet time gives back no more than the burst
    for n in range(5):
        log(str(n))
    assert lines == ["0", "1"]


def test_the_summary_comes_when_a_token_is_back_without_a_new_line() -> None:
    clock = Clock()
    lines: list[str] = []
    log = RateLimitedLog(lines.append, rate=4.0, burst=1, clock=clock, call_later=clock.call_later)
    log("first")
    log("second")
    log("third")
    assert lines == ["first"]
    assert len(clock.scheduled) == 1  # one summary scheduled, not one per line
    clock.now = clock.scheduled[0][0]
    clock.run_due()
    assert lines == ["first", "... 2 more lines suppressed (at most 4/s)"]


def test_flush_writes_what_is_left() -> None:
    clock = Clock()
    lines: list[str] = []
    log = RateLimitedLog(lines.append, rate=1.0, burst=1, clock=clock)
    log("a")
    log("b")
    log.flush()
    assert lines == ["a", "... 1 more lines suppressed (at most 1/s)"]
    log.flush()  # nothing more
    assert len(lines) == 2


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimitedLog(print, rate=0.0)
    with pytest.raises(ValueError):
        RateLimitedLog(print, burst=0)
