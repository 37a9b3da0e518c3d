"""@static_frozen: cheap records, frozen to the type checker only (emulator/values.py).

What is guaranteed is tested here: mypy refuses assigning a field (statically), slots refuse any
other attribute and records compare and hash by their fields (at run time), and no module that
makes records bypasses the checker with ``object.__setattr__``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from emulator.net import Flow
from emulator.values import static_frozen

ROOT = Path(__file__).resolve().parent.parent


@static_frozen
class Point:
    x: int
    y: int = 0


def test_records_compare_and_hash_by_their_fields_and_have_slots() -> None:
    assert Point(1, 2) == Point(1, 2) != Point(2, 1)
    assert len({Point(1, 2), Point(1, 2), Point(1)}) == 2
    assert not hasattr(Point(1), "__dict__")
    assert dataclasses.replace(Point(1, 2), y=5) == Point(1, 5)
    flow = Flow("udp", ("127.0.0.1", 5060), ("127.0.0.2", 5060))
    assert {flow: 1}[Flow("udp", ("127.0.0.1", 5060), ("127.0.0.2", 5060))] == 1


def test_at_run_time_a_record_refuses_attributes_that_are_not_fields() -> None:
    point = Point(1)
    with pytest.raises(AttributeError):
        point.z = 3  # type: ignore[attr-defined]
    assert point == Point(1)


def _mypy(tmp_path: Path, source: str) -> tuple[str, int]:
    api = pytest.importorskip("mypy.api")  # a dev dependency: CI's compiled run has no mypy
    snippet = tmp_path / "snippet.py"
    snippet.write_text(source)
    out, _, status = api.run(
        [
            "--no-incremental",
            "--follow-imports=silent",
            f"--cache-dir={tmp_path / 'cache'}",
            str(snippet),
        ]
    )
    return out, status


def test_the_type_checker_rejects_assigning_a_field(tmp_path: Path) -> None:
    out, status = _mypy(
        tmp_path,
        "from emulator.net import Flow\n"
        "from emulator.values import static_frozen\n"
        "@static_frozen\n"
        "class Record:\n"
        "    size: int\n"
        "def f(flow: Flow, record: Record) -> None:\n"
        "    flow.transport = 'tcp'\n"
        "    record.size = 2\n",
    )
    assert status == 1
    assert 'Property "transport" defined in "Flow" is read-only' in out
    assert 'Property "size" defined in "Record" is read-only' in out


def test_the_type_checker_accepts_making_and_reading_records(tmp_path: Path) -> None:
    # The other half: the snippet above fails for the assignments, not for anything else.
    out, status = _mypy(
        tmp_path,
        "from emulator.values import static_frozen\n"
        "@static_frozen\n"
        "class Record:\n"
        "    size: int\n"
        "def f() -> int:\n"
        "    return Record(1).size\n",
    )
    assert status == 0, out


def test_no_module_that_makes_records_assigns_around_the_checker() -> None:
    # object.__setattr__ is how a frozen dataclass's __post_init__ normalizes a field; on a
    # @static_frozen record it would be a silent mutation, which mypy cannot see.
    makes_records = re.compile(r"@static_frozen\b")
    offenders = []
    for package in ("emulator", "clients", "fakedns"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "values.py":
                continue
            text = path.read_text()
            if makes_records.search(text) and "object.__setattr__" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
