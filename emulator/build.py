"""Which build is running: pure Python, or the hot modules compiled by mypyc (setup.py,
``SIPEMU_COMPILE=1``).  Benchmarks print it; the test suite skips what a compiled class does
not allow (patching a method) and checks that a compiled run really is compiled."""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES

# One module of the compiled set (setup.py COMPILED) stands for all of them: they are built
# together or not at all.
_PROBE = "emulator.sim.world"


def compiled() -> bool:
    """True when the simulator's modules were compiled (extension modules, not sources)."""
    path = getattr(importlib.import_module(_PROBE), "__file__", None) or ""
    return path.endswith(tuple(EXTENSION_SUFFIXES))


def describe() -> str:
    return "compiled (mypyc)" if compiled() else "interpreted (pure Python)"
