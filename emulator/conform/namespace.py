"""The private network (and mount) namespace ``sipemu conform`` runs in.

One small function, :func:`enter`, is the only place that knows how: the command re-runs
itself under ``unshare --net --mount`` with the loopback interface up, and waits for that
child.  (emulator/live/netns.py's ``isolate()`` makes a network namespace only; the programs
also need a mount namespace of their own, for the resolv.conf bind-mounted for them, and a
fresh process is the simplest way to have both before any thread starts.)  Whether a
namespace can be made at all is netns.py's ``namespace_support()``; inside, the deployment
runs in packet mode (its faults are netns.py's nftables rules).  The
child sees only its own ``lo``: the real program, the pools on 127.0.0.11/12, the fake DNS on
127.0.0.10 port 53 and the packet faults (nftables rules) cannot touch the host's network,
and a resolv.conf bind-mounted for the program is seen by it alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["INSIDE", "UNSHARE", "enter", "inside", "namespace_problem"]

INSIDE = "SIPEMU_CONFORM_NETNS"

UNSHARE = ("unshare", "--net", "--mount", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh")
"""The command prefix of a fresh network and mount namespace with ``lo`` up: the program and
its arguments follow."""
"""Set (to ``1``) in the child that runs inside the namespace."""


def inside() -> bool:
    return os.environ.get(INSIDE) == "1"


def namespace_problem() -> str | None:
    """Why a private network namespace cannot be made here (a sentence), or None: netns.py's
    ``namespace_support()``, and util-linux's ``unshare``, which :func:`enter` runs."""
    from emulator.live.netns import namespace_support

    problem = namespace_support()
    if problem is None and shutil.which("unshare") is None:
        return (
            "unshare is not installed: sipemu conform needs util-linux (unshare) to run the "
            "program in a private network and mount namespace (apt-get install -y util-linux)"
        )
    return problem


def enter(argv: Sequence[str]) -> int:
    """Run ``sipemu`` with ``argv`` again inside a fresh network and mount namespace, with
    ``lo`` up; return its exit status."""
    env = dict(os.environ, **{INSIDE: "1"})
    command = [
        *UNSHARE,
        sys.executable,
        "-m",
        "emulator.cli",
        *argv,
    ]
    return subprocess.run(command, env=env, check=False).returncode
