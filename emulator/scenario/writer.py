"""Write scenario files (the fuzzer's findings, ``sipemu check``'s reproducers) as readable TOML.

Values are serialised by tomli-w (quoting and escaping done right); the layout is ours, the
same as hand-written scenarios: scalars first, then ``[table]`` sections, then one
``[[table]]`` block per element of an array of tables (tomli-w writes those inline, which is
valid but hard to read and hides the line numbers error messages point at).

Files are written with :func:`write_atomically`: a reader (or a campaign killed half-way)
finds either the old file, or the whole new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

__all__ = ["dumps", "remove_stale_temporaries", "write_atomically"]


def write_atomically(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so that it is never seen half-written, even after a kill.

    The bytes go to a temporary file in the same directory (``.NAME.*.tmp``: same file
    system, so the rename is atomic), which is flushed to disk (fsync) and renamed over
    ``path`` (``os.replace``); the directory is then fsynced so that the rename survives a
    power cut too.  On any error the temporary file is removed.  A SIGKILL between the
    temporary file's creation and the rename can leave it behind: readers skip names that
    start with a dot.
    """
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o644)  # mkstemp's 0600 is for secrets; these are not
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def remove_stale_temporaries(directory: str | Path, *, before: float) -> list[Path]:
    """Remove the temporary files of :func:`write_atomically` (``.NAME.*.tmp``) under
    ``directory`` last changed before ``before`` (seconds since the epoch, as ``st_mtime``):
    what a kill in the middle of a write left.  A write in progress is younger: pass a time
    well before now (a minute).  Returns what was removed."""
    removed = []
    for path in Path(directory).rglob(".*.tmp"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < before:
                path.unlink()
                removed.append(path)
        except OSError:  # gone meanwhile, or not ours
            continue
    return removed


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every system opens directories (Windows): the rename is done anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dumps(data: Mapping[str, Any], *, comment: str = "") -> str:
    """``data`` (what tomllib would read back) as TOML text, with an optional header comment."""
    lines: list[str] = [f"# {line}".rstrip() for line in comment.splitlines()]
    if lines:
        lines.append("")
    _table(data, [], lines)
    return "\n".join(lines).rstrip() + "\n"


def _is_table_array(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


INLINE = frozenset({"ports", "options", "backoff"})
"""Small tables written inline (``ports = { udp = 5060 }``); other tables become sections."""


def _is_section(key: str, value: object) -> bool:
    return isinstance(value, Mapping) and key not in INLINE


def _value(key: str, value: object) -> str:
    return f"{_key(key)} = {_inline(value)}"


def _key(key: str) -> str:
    return tomli_w.dumps({key: 0}).split("=", 1)[0].strip()


def _inline(value: object) -> str:
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items())
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return tomli_w.dumps({"x": value}).split("=", 1)[1].strip()


def _table(data: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = [(k, v) for k, v in data.items() if not _is_table_array(v) and not _is_section(k, v)]
    sections = [(k, v) for k, v in data.items() if _is_section(k, v)]
    arrays = [(k, v) for k, v in data.items() if _is_table_array(v)]
    for key, value in scalars:
        lines.append(_value(key, value))
    for key, value in sections:
        lines.append("")
        lines.append(f"[{'.'.join([*path, key])}]")
        _table(value, [*path, key], lines)
    for key, items in arrays:
        for item in items:
            lines.append("")
            lines.append(f"[[{'.'.join([*path, key])}]]")
            _table(item, [*path, key], lines)
