"""``@immutable``: a record that is cheap to make.

A frozen dataclass makes each instance through ``object.__setattr__``, once per field: about
four times the cost of a plain dataclass (0.7 µs against 0.2 µs for three fields), and the
simulator makes thousands per fuzz example (flows, sends, URIs, trace entries, client events).
``@immutable`` declares a frozen dataclass to the type checker (PEP 681 ``dataclass_transform``
with ``frozen_default``: mypy rejects any assignment to a field, and CI runs mypy strict) and
makes a plain slotted dataclass with a field hash at run time.  So immutability is checked
statically, not at run time: do not bypass it with ``setattr`` or ``object.__setattr__``.

Not compiled by the optional mypyc build (setup.py): it sets an attribute on the decorator,
which a compiled function does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

__all__ = ["immutable"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def immutable(cls: type[T]) -> type[T]:
    """A frozen dataclass to mypy; at run time slotted, compared and hashed by its fields."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
