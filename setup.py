"""Optional compiled build of the simulator's hot modules (docs/benchmarks.md).

``pip install .`` builds pure Python, as declared in pyproject.toml.  With ``SIPEMU_COMPILE=1``
in the environment the modules below are compiled to C extensions with mypyc (which comes with
mypy; a C compiler and the Python headers are needed): the same code, type-checked at run time,
about 1.3-1.6 times faster in the simulator.  Install it non-editable, in its own virtual
environment: an extension module next to its source would shadow later edits to the source.
"""

from __future__ import annotations

import os

from setuptools import setup

# The sans-IO cores, the simulator and what a fuzz case runs.  Not compiled: the drivers on
# real sockets (asyncio), the command line, Hypothesis's side of the fuzzer, clients/rng.py
# (it borrows random.Random's methods at import, which mypyc does not allow), emulator/values.py
# (typing marks its decorator, which a compiled function cannot carry), emulator/sip/wire.py (a
# compiled class cannot subclass bytes).
COMPILED = [
    "clients/agent.py",
    "clients/cache.py",
    "clients/dns.py",
    "clients/events.py",
    "clients/profile.py",
    "clients/srv.py",
    "emulator/admin.py",
    "emulator/backend.py",
    "emulator/config.py",
    "emulator/fuzz/case.py",
    "emulator/net.py",
    "emulator/operations.py",
    "emulator/registrar/bindings.py",
    "emulator/registrar/events.py",
    "emulator/registrar/monitor.py",
    "emulator/registrar/pool.py",
    "emulator/scenario/model.py",
    "emulator/scenario/runner.py",
    "emulator/sim/deployment.py",
    "emulator/sim/invariants.py",
    "emulator/sim/network.py",
    "emulator/sim/world.py",
    "emulator/sip/errors.py",
    "emulator/sip/framing.py",
    "emulator/sip/headers.py",
    "emulator/sip/message.py",
    "emulator/sip/transaction.py",
    "emulator/sip/uri.py",
    "emulator/topology.py",
    "fakedns/authority.py",
    "fakedns/records.py",
]


def _compile() -> bool:
    return os.environ.get("SIPEMU_COMPILE", "").strip() not in ("", "0")


def _ext_modules() -> list[object]:
    if not _compile():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # the first pass of an isolated build: setup_requires brings mypy
        return []
    return list(mypycify(COMPILED, opt_level="3"))


setup(
    ext_modules=_ext_modules(),
    setup_requires=["mypy>=1.10"] if _compile() else [],
)
