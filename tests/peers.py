"""External peer programs (SIPp, dig, ...) for interop tests."""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require_program"]

_PACKAGES = {
    "sipp": "sip-tester",
    "dig": "bind9-dnsutils",
    "nsupdate": "bind9-dnsutils",
    "curl": "curl",
    "kamailio": "kamailio",
    "tshark": "tshark",
    "sngrep": "sngrep",
    "baresip": "baresip",
    "linphonec": "linphone-cli",
    "sipsak": "sipsak",
    "redis-server": "redis-server",
}


def require_program(name: str) -> str:
    """The path of a peer program: skipped when missing, failed when peers are required.

    ``SIPEMU_REQUIRE_PEERS=1`` (set by ``.ci/run``) turns the skip into a failure, so CI cannot
    go green by silently skipping the interop tests.
    """
    path = shutil.which(name)
    if path is None:
        package = _PACKAGES.get(name, name)
        if os.environ.get("SIPEMU_REQUIRE_PEERS") == "1":
            pytest.fail(f"{name} is not installed and SIPEMU_REQUIRE_PEERS=1 requires it")
        pytest.skip(f"{name} is not installed (Debian: apt-get install {package})")
    return path
