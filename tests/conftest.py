"""Suite-wide hooks: running the suite against the compiled build (setup.py, .ci/run)."""

from __future__ import annotations

import os

import pytest

from emulator.build import compiled


def pytest_configure(config: pytest.Config) -> None:
    # .ci/run sets this when it runs the suite against the compiled build: a run that
    # imported the sources instead would pass without testing what it claims to.
    if os.environ.get("SIPEMU_EXPECT_COMPILED") == "1" and not compiled():
        raise pytest.UsageError(
            "SIPEMU_EXPECT_COMPILED=1 but the sources were imported, not the compiled build"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not compiled():
        return
    skip = pytest.mark.skip(reason="patches a method, which a compiled class does not allow")
    for item in items:
        if item.get_closest_marker("interpreted_only") is not None:
            item.add_marker(skip)
