"""Values no key of a user's file should accept silently, for the property tests that put them
into every key of a topology (tests/test_topology_limits.py) and of a scenario
(tests/scenario/test_scenario_limits.py): each file must load or be refused with a sentence."""

from __future__ import annotations

from hypothesis import strategies as st

HOSTILE = st.sampled_from(
    [
        "nan",
        "inf",
        "-inf",
        "-1",
        "0",
        "1e309",
        "1e-300",
        "99999999999999999999999999",
        '""',
        '"not a uri"',
        f'"{"a" * 300}"',
        '"\\u0000"',
        "[]",
        "[0, 1e300]",
        "[[[[1]]]]",
        "{}",
        "true",
        "1979-05-27T07:32:00Z",
        "[" * 200 + "]" * 200,
    ]
)
"""TOML values: not numbers, numbers out of any range, wrong types, deep nesting."""

WORDS = st.from_regex(r"[-0-9.e+a-z]{1,12}", fullmatch=True)
"""Short bare words, for keys and values that look almost right."""
