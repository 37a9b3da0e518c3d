"""@immutable: cheap records, immutable to the type checker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from emulator.net import Flow
from emulator.values import immutable


@immutable
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


def test_the_type_checker_rejects_assigning_a_field(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")  # a dev dependency: CI's compiled run has no mypy
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from emulator.net import Flow\ndef f(flow: Flow) -> None:\n    flow.transport = 'tcp'\n"
    )
    out, _, status = api.run(["--no-incremental", "--follow-imports=silent", str(snippet)])
    assert status == 1
    assert 'Property "transport" defined in "Flow" is read-only' in out
