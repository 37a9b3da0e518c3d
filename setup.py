"""Optional compiled build of the simulator's hot modules (docs/benchmarks.md).

``pip install .`` builds pure Python, as declared in pyproject.toml.  With ``SIPEMU_COMPILE=1``
in the environment the modules below are compiled to C extensions with mypyc (which comes with
mypy; a C compiler and the Python headers are needed): the same code, type-checked at run time,
about 1.3-1.6 times faster in the simulator.  Install it non-editable, in its own virtual
environment: an extension module next to its source would shadow later edits to the source.
"""

from __future__ import annotations

import os
from fnmatch import fnmatch
from pathlib import Path

from setuptools import find_packages, setup

# The sans-IO cores, the simulator and what a fuzz case runs: every module of the three packages
# except those below, so that a new or split core module is compiled without a line here.
# Not compiled: package __init__ files, the drivers on real sockets (asyncio), the command
# lines, Hypothesis's side of the fuzzer, the testing plugin, clients/rng.py and
# emulator/sim/lazyrandom.py (they borrow random.Random's methods at import, which mypyc does
# not allow), emulator/sim/history.py (its classes are collections.abc sequences and mappings,
# which a compiled class cannot inherit from; it runs a few times per client and hour),
# emulator/values.py (typing
# marks its decorator, which a compiled function cannot carry), emulator/report (the HTML report
# builder: run once after a run, nothing to gain, and it reads its assets as package data).
_NOT_COMPILED = (
    "*/__init__.py",
    "clients/cli.py",
    "clients/driver.py",
    "clients/rng.py",
    "emulator/build.py",
    "emulator/cli.py",
    "emulator/conform/*",
    "emulator/control/*",
    "emulator/fuzz/analysis.py",
    "emulator/fuzz/campaign.py",
    "emulator/fuzz/check.py",
    "emulator/fuzz/cluster.py",
    "emulator/fuzz/database.py",
    "emulator/fuzz/strategies.py",
    "emulator/fuzz/worst.py",
    "emulator/live/*",
    "emulator/report/*",
    "emulator/scenario/output.py",
    "emulator/scenario/realtime.py",
    "emulator/scenario/writer.py",
    "emulator/sim/history.py",
    "emulator/sim/lazyrandom.py",
    "emulator/testing/*",
    "emulator/values.py",
    "emulator/wire/*",
    "fakedns/server.py",
    "fakedns/update.py",
)


def _compiled_modules() -> list[str]:
    here = Path(__file__).parent
    found = sorted(
        path.relative_to(here).as_posix()
        for package in ("clients", "emulator", "fakedns")
        for path in (here / package).rglob("*.py")
    )
    return [name for name in found if not any(fnmatch(name, pattern) for pattern in _NOT_COMPILED)]


def _compile() -> bool:
    return os.environ.get("SIPEMU_COMPILE", "").strip() not in ("", "0")


def _ext_modules() -> list[object]:
    if not _compile():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # the first pass of an isolated build: setup_requires brings mypy
        return []
    return list(mypycify(_compiled_modules(), opt_level="3"))


# The example topologies and scenarios: top-level directories, mapped onto these packages by
# pyproject.toml's package-dir (emulator/examples/__init__.py). No search finds them there.
_EXAMPLE_PACKAGES = ["emulator.examples.topologies", "emulator.examples.scenarios"]

setup(
    packages=[*find_packages(include=["emulator*", "fakedns*", "clients*"]), *_EXAMPLE_PACKAGES],
    ext_modules=_ext_modules(),
    # pyspnego too: mypyc type-checks emulator/sip/sipae.py and emulator/registrar/auth.py
    # against its NTLM modules, and an isolated build has only what is listed here.
    setup_requires=["mypy>=1.10", "pyspnego>=0.11"] if _compile() else [],
)
