"""Live tests: the transport tests run on both event loops (``sipemu up`` uses uvloop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import pytest_asyncio.plugin

_BOTH_LOOPS = ("test_transports.py", "test_streams.py")


if hasattr(pytest_asyncio.plugin, "PytestAsyncioSpecs"):  # pytest-asyncio >= 1.4

    def pytest_asyncio_loop_factories(
        config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
        factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
            "asyncio": asyncio.new_event_loop
        }
        if item.path.name not in _BOTH_LOOPS:
            return factories
        try:
            import uvloop
        except ImportError:
            return factories
        factories["uvloop"] = uvloop.new_event_loop
        return factories
