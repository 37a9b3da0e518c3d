"""pytest plugin (registered through the ``pytest11`` entry point ``sipemu``): live fixtures.

* ``sipemu_factory`` (session): ``sipemu_factory(topology=None, **kwargs) -> RunningDeployment``
  starts a deployment of ``topology`` (a path, a :class:`~emulator.topology.Topology`, or None
  for the default one) on ephemeral ports (addresses as in the topology); every deployment it
  made is stopped at the end of the session.
* ``sipemu`` (function): a fresh default-topology deployment, stopped after the test.  Its seed
  is recorded in the test's ``user_properties`` (``sipemu_seed``), e.g. for the JUnit XML.

This module is imported by every pytest run in an environment where sipemu is installed, so it
imports nothing heavy (and nothing that might be half-written) until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from emulator.testing import DeploymentFactory, RunningDeployment

__all__ = ["sipemu", "sipemu_factory"]


@pytest.fixture(scope="session")
def sipemu_factory() -> Iterator[DeploymentFactory]:
    """Session-wide factory of live deployments on ephemeral ports."""
    from emulator.testing import DeploymentFactory

    factory = DeploymentFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def sipemu(
    sipemu_factory: DeploymentFactory, request: pytest.FixtureRequest
) -> Iterator[RunningDeployment]:
    """A fresh live deployment of the default topology, stopped (and checked) after the test."""
    running = sipemu_factory()
    request.node.user_properties.append(("sipemu_seed", running.seed))
    try:
        yield running
    finally:
        running.stop()
