"""Every ``# example:`` block of docs/scenarios.md runs and holds over its seeds (a block
marked ``(after X)`` is appended to example X)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emulator.scenario.model import parse_scenario
from emulator.scenario.seeds import run_seeds

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "scenarios.md"
_BLOCK = re.compile(r"```toml\n(# example: ([\w-]+)(?: \(after ([\w-]+)\))?\n.*?)```", re.S)


def examples() -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _BLOCK.finditer(DOCS.read_text(encoding="utf-8")):
        text, name, after = match.group(1), match.group(2), match.group(3)
        found[name] = (found[after] + "\n" + text) if after else text
    return found


EXAMPLES = examples()


def test_the_docs_have_an_example_of_each_new_form() -> None:
    assert {"groups", "spread", "relative", "reasons"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docs_example_holds(name: str) -> None:
    scenario = parse_scenario(EXAMPLES[name], f"docs/scenarios.md:{name}", base=DOCS.parent)
    outcome = run_seeds(scenario)
    assert outcome.passed, outcome.failed.report(timeline=False) if outcome.failed else ""
    assert len(outcome.held) == scenario.seeds
