"""The example database of ``sipemu fuzz``: Hypothesis's failing examples, kept on disk as they
are found, written atomically, and not thrown away because a campaign already knows them.

Hypothesis saves every failing example to its database the moment the property fails, and
deletes a stored example that no longer fails when it replays it.  A campaign's property fails
only for a finding it has not seen yet (campaign.py: each Hypothesis run shrinks one new
finding), so on the next run of the same campaign the stored examples of the findings already
known *pass*, and Hypothesis's own :class:`~hypothesis.database.DirectoryBasedExampleDatabase`
deleted them: a campaign ended (or was killed) with an empty database.  This one keeps a
stored failing example unless the campaign says it showed nothing at all
(:attr:`CampaignDatabase.passed_clean`, set by the property each time it returns).

The layout is Hypothesis's (a directory per key, a file per value, both named by the first 16
hex digits of their SHA-384), so a database written by either class is read by the other.
Each file is written by :func:`emulator.scenario.writer.write_atomically` (temporary file in
the same directory, fsync, ``os.replace``): a kill leaves whole files only.  Hypothesis's
class writes a temporary file in the system's temporary directory and renames it without an
fsync (across file systems it copies, so a kill can leave a truncated entry).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from hypothesis.database import ExampleDatabase

from emulator.scenario.writer import write_atomically

__all__ = ["CampaignDatabase"]

_SUFFIXES = (b".secondary", b".pareto")
"""Hypothesis's sub-keys (``KEY.secondary``: examples that once failed and were shrunk past;
``KEY.pareto``: targeting).  Every other key is a test's primary corpus."""

_METAKEYS = b".hypothesis-keys"


def _hash(data: bytes) -> str:
    return hashlib.sha384(data).hexdigest()[:16]


class CampaignDatabase(ExampleDatabase):
    """A directory of failing examples (see the module's docstring)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.passed_clean = False
        """Whether the example run last passed because it showed no finding at all (set by
        the campaign's property); only then may Hypothesis delete a primary example."""

    def __repr__(self) -> str:
        return f"CampaignDatabase({str(self.path)!r})"

    def _key_path(self, key: bytes) -> Path:
        return self.path / _hash(key)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        directory = self._key_path(key)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            if name.startswith("."):  # a temporary file a kill left behind
                continue
            with contextlib.suppress(OSError):
                yield (directory / name).read_bytes()

    def save(self, key: bytes, value: bytes) -> None:
        directory = self._key_path(key)
        path = directory / _hash(value)
        if path.exists():
            return
        directory.mkdir(parents=True, exist_ok=True)
        write_atomically(path, bytes(value))

    def delete(self, key: bytes, value: bytes) -> None:
        primary = key != _METAKEYS and not key.endswith(_SUFFIXES)
        if primary and not self.passed_clean:
            return  # it passed only because its finding is known: keep it (module docstring)
        self._remove(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        # Hypothesis moves an example it shrank past from the primary corpus to the
        # secondary one: both sides are done, whatever passed_clean says.
        if src == dest:
            self.save(src, value)
            return
        self.save(dest, value)
        self._remove(src, value)

    def _remove(self, key: bytes, value: bytes) -> None:
        directory = self._key_path(key)
        with contextlib.suppress(OSError):
            (directory / _hash(value)).unlink()
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty

    def _start_listening(self) -> None:
        pass  # change listening (watchdog) is not offered

    def _stop_listening(self) -> None:
        pass
