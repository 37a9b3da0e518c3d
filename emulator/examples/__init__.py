"""The example files that ship with sipemu, found by name (README.md, "Example files, by name").

The repository keeps them where people look for them: ``topologies/`` and ``scenarios/`` at the
top of the checkout (tests, docs and CI name those paths).  The package ships the same
directories without copying them: pyproject.toml maps the packages
``emulator.examples.topologies`` and ``emulator.examples.scenarios`` onto those two directories
(setuptools ``package-dir``), with their ``*.toml`` as package data.  An editable install
imports them from the checkout, a normal or compiled install from ``site-packages``; either
way :mod:`importlib.resources` finds them.  The example clients file lives here, in
``emulator/examples/clients/``.  A scenario's ``topology = "../topologies/r1-lab.toml"`` holds
in both layouts, since the two directories stay siblings.

:func:`resolve` turns what a user typed into a path: a file that exists is itself; otherwise a
bare name (``fast``, ``fast.toml``) of an example of that kind; otherwise an error listing the
examples of that kind.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from emulator.config import ConfigError, did_you_mean

__all__ = ["KINDS", "ExampleNotFound", "example_names", "resolve"]

Kind = Literal["topology", "scenario", "clients"]

KINDS: dict[Kind, str] = {
    "topology": "emulator.examples.topologies",
    "scenario": "emulator.examples.scenarios",
    "clients": "emulator.examples.clients",
}
"""Kind of file -> the package that holds its examples."""


class ExampleNotFound(ConfigError):
    """Neither a file nor the name of a shipped example (a sentence listing the examples)."""


def _directory(kind: Kind) -> Path:
    # The packages are plain directories (wheel or checkout, never a zip): a real path, which a
    # scenario's relative topology path needs.
    return Path(str(resources.files(KINDS[kind])))


def example_names(kind: Kind) -> list[str]:
    """The names of the shipped examples of ``kind`` (file names without ``.toml``), sorted."""
    return sorted(p.stem for p in _directory(kind).iterdir() if p.suffix == ".toml")


def resolve(kind: Kind, value: str | Path) -> Path:
    """The file ``value`` names: itself if it exists, or else the example of that name.

    Raises :class:`ExampleNotFound` when ``value`` is a bare name (no directory part) that no
    example has; a path with a directory part that does not exist is returned as it is, for the
    reader's own "no such file" sentence."""
    path = Path(value)
    if path.exists() or len(path.parts) != 1:
        return path
    name = path.name.removesuffix(".toml")
    candidate = _directory(kind) / f"{name}.toml"
    if name and candidate.is_file():
        return candidate

    commands = {"topology": "sipemu up", "scenario": "sipemu run", "clients": "sipemu clients run"}
    for other in KINDS:
        if other != kind and name in example_names(other):
            raise ExampleNotFound(
                f"{value}: a shipped {other} example, not a {kind}: run it with "
                f"`{commands[other]} {name}`"
            )
    names = example_names(kind)
    hint = did_you_mean(name, names, cutoff=0.5)
    raise ExampleNotFound(
        f"{value}: no such {kind} file, nor a shipped example of that name ({hint}examples: "
        f"{', '.join(names) or 'none'}); give a path or one of these names"
    )
