"""pytest plugin (registered through the ``pytest11`` entry point ``sipemu``): live fixtures.

* ``sipemu_factory`` (session): ``sipemu_factory(topology=None, **kwargs) -> RunningDeployment``
  starts a deployment of ``topology`` (a path, the name of a shipped example such as
  ``"fast"`` (emulator/examples), a :class:`~emulator.topology.Topology`, or None for the
  default one) on ephemeral ports (addresses as in the topology); every deployment it made is
  stopped at the end of the session.
* ``sipemu`` (function): a fresh default-topology deployment, stopped after the test.  Its seed
  is recorded in the test's ``user_properties`` (``sipemu_seed``), e.g. for the JUnit XML.
* ``sipemu_netns`` (function): a fresh default-topology deployment in a private network
  namespace of its own, with packet-level faults (``running.partition(...)``,
  ``running.disable_nic(fqdn, "tls")``...); the test reaches it with ``running.socket()``.
  Root only: skipped with the reason otherwise, failed if ``SIPEMU_REQUIRE_PEERS=1``.
  ``sipemu_factory(netns=True)`` (or a name, for ``ip netns exec NAME``) does the same.
* ``--sipemu-pcap DIR``: the ``sipemu`` fixture writes every SIP and DNS message of each test's
  deployment to ``DIR/<test>.pcapng`` (docs/capture.md); the file is kept when the test fails
  and removed when it passes, unless ``--sipemu-pcap-keep`` (then always kept).  Its path is
  in the test's ``user_properties`` (``sipemu_pcap``).

* pytest-asyncio (installed with sipemu's test extra) warns at every run of a project that does
  not set its ``asyncio_default_fixture_loop_scope``; where it is unset, this plugin sets it to
  ``function`` (pytest-asyncio's announced default; the fixtures here are not async).

This module is imported by every pytest run in an environment where sipemu is installed, so it
imports nothing heavy (and nothing that might be half-written) until a fixture is used.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from emulator.testing import DeploymentFactory, RunningDeployment

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "sipemu",
    "sipemu_factory",
    "sipemu_netns",
]

_LOOP_SCOPE = "asyncio_default_fixture_loop_scope"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sipemu")
    group.addoption(
        "--sipemu-pcap",
        metavar="DIR",
        help="write a pcapng of each test's sipemu deployment to DIR (kept if the test fails)",
    )
    group.addoption(
        "--sipemu-pcap-keep",
        action="store_true",
        help="with --sipemu-pcap: keep the files of passing tests too",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-asyncio reads it: its fixture loop scope, where the project leaves it unset.

    pytest has no public way for a plugin to give another plugin's ini option a value: this
    fills pytest's cache of ini values (``Config._inicache``, there since pytest 3), and does
    nothing should that ever change."""
    try:
        if config.getini(_LOOP_SCOPE):
            return  # the project chose
    except ValueError:  # pytest-asyncio is not installed (or not loaded)
        return
    cache = getattr(config, "_inicache", None)
    if isinstance(cache, dict):
        cache[_LOOP_SCOPE] = "function"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.failed:  # set up, call or teardown: the capture is kept
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


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
    directory = request.config.getoption("--sipemu-pcap")
    if directory is None:
        running = sipemu_factory()
        request.node.user_properties.append(("sipemu_seed", running.seed))
        try:
            yield running
        finally:
            running.stop()
        return
    from emulator.wire import Capture
    from emulator.wire.live import WireRecorder
    from emulator.wire.pcapng import PcapngWriter

    path = Path(directory) / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.nodeid)}.pcapng"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PcapngWriter(path, Capture(virtual=False, name=request.node.nodeid))
    kwargs: dict[str, Any] = {"recorder": WireRecorder(writer)}
    try:
        running = sipemu_factory(**kwargs)
        request.node.user_properties.append(("sipemu_seed", running.seed))
        request.node.user_properties.append(("sipemu_pcap", str(path)))
        try:
            yield running
        finally:
            running.stop()
    finally:
        writer.close()
        keep = request.config.getoption("--sipemu-pcap-keep")
        if not keep and not request.node.stash.get(_FAILED, False):
            path.unlink(missing_ok=True)


@pytest.fixture
def sipemu_netns(
    sipemu_factory: DeploymentFactory, request: pytest.FixtureRequest
) -> Iterator[RunningDeployment]:
    """A fresh default-topology deployment in a private network namespace (packet-level
    faults), stopped after the test; skipped with the reason where that cannot be had."""
    import os

    from emulator.live.netns import packet_fault_support

    reason = (
        "a deployment thread gets a namespace of its own only as root"
        if os.geteuid() != 0
        else packet_fault_support()
    )
    if reason is not None:
        if os.environ.get("SIPEMU_REQUIRE_PEERS") == "1":
            pytest.fail(
                f"packet-level faults are unavailable ({reason}) and SIPEMU_REQUIRE_PEERS=1"
            )
        pytest.skip(f"packet-level faults are unavailable: {reason}")
    running = sipemu_factory(netns=True)
    request.node.user_properties.append(("sipemu_seed", running.seed))
    try:
        yield running
    finally:
        running.stop()
