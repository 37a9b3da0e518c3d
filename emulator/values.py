"""``@static_frozen``: a record frozen to the type checker only, cheap to make at run time.

What it guarantees, and where:

* **Statically** (mypy ``--strict``, run by CI and by tests/test_values.py): every field is
  read-only.  The decorator is a PEP 681 ``dataclass_transform`` with ``frozen_default``, so
  mypy rejects ``record.field = value`` as it would on a frozen dataclass.
* **At run time**: a slotted dataclass compared and hashed by its fields.  Slots refuse any
  attribute that is not a field; assigning a *field* is NOT refused at run time.  Code that
  bypasses the type checker (``setattr``, ``object.__setattr__``, ``# type: ignore``) can change
  a record, and with it the hash of a dict key: don't (tests/test_values.py scans the packages
  for ``object.__setattr__`` in modules that make records).

Why not enforced at run time, as dnspython's ``@immutable`` is: refusing assignment needs a
``__setattr__`` that raises, so ``__init__`` must store each field around it
(``object.__setattr__`` or the slot's ``__set__``), which makes each record about two to three
times as dear to make (0.4 µs against 0.9-1.3 µs for three fields, measured for issue 14), and
the simulator makes thousands per fuzz example (flows, sends, URIs, trace entries, client
events): a frozen dataclass cost about 8% of a fuzz example (docs/benchmarks.md).  The name
says what holds instead.

Until issue 14 the decorator was called ``immutable``, a name that claimed more than it holds.

Not compiled by the optional mypyc build (setup.py): it sets an attribute on the decorator,
which a compiled function does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

__all__ = ["static_frozen"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def static_frozen(cls: type[T]) -> type[T]:
    """A frozen dataclass to mypy; at run time slotted, compared and hashed by its fields (an
    assignment to a field is refused by the type checker only)."""
    return dataclass(slots=True, unsafe_hash=True)(cls)
