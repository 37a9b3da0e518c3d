"""Reading TOML files users write (topologies, scenarios) with errors that are sentences.

tomllib reports positions only for syntax errors, so :class:`TomlContext` finds the line of a
key by searching the source text for its ``[[table]]`` header and ``key =`` line (best effort).
Every validation error names the file, the line when it can be found, the key path and what was
expected: ``topologies/lab.toml:14: pool[1].backup: expected the FQDN of another pool``.

Limits every file shares (docs/topology.md, "Limits"): :func:`read_text` reads at most
:data:`MAX_FILE_BYTES` from a regular file or a pipe; :func:`parse_toml` refuses nesting deeper
than :data:`MAX_DEPTH`, ``nan`` and ``inf`` anywhere, and integers beyond 64 bits; the checkers
of :class:`TomlContext` bound every number they read.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INTEGER",
    "MAX_SECONDS",
    "ConfigError",
    "TomlContext",
    "check_values",
    "closest",
    "did_you_mean",
    "dns_name_problem",
    "number_text",
    "parse_toml",
    "read_text",
]

MAX_FILE_BYTES = 16 * 1024 * 1024
"""The largest file read (16 MiB; a scenario of 20,000 clients, each with a step and two
expectations, is 4.7 MB)."""
MAX_DEPTH = 32
"""The deepest nesting of tables and arrays (the files of docs/ use 4)."""
MAX_INTEGER = 2**63 - 1
"""No integer of any file is larger (or smaller than its negative); keys bound theirs further."""
MAX_SECONDS = 366 * 86_400.0
"""The longest time any key may give: a scenario's duration, a step's time, a timeout."""


class ConfigError(Exception):
    """A bad user file; ``str()`` is one sentence naming file, line, key and expectation."""


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def closest(value: object, known: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The known name closest to a misspelt ``value`` (difflib), or None: the one matcher
    behind every "did you mean" of the files and the command line."""
    found = difflib.get_close_matches(str(value), list(known), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(value: object, known: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"did you mean 'x'? "`` for the closest known name, or ``""``."""
    close = closest(value, known, cutoff=cutoff)
    return f"did you mean {close!r}? " if close is not None else ""


def read_text(path: str | Path, what: str, error: type[ConfigError] = ConfigError) -> str:
    """The UTF-8 text of a user's file, as a sentence-error when it cannot be had.

    Only a regular file or a pipe is read (``/dev/zero`` or a terminal would be read until
    memory or patience runs out), and at most :data:`MAX_FILE_BYTES` of it.  ``what`` names
    the kind of file in the messages (``topology``)."""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise error(f"{path}: is a directory, not a {what} file")
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                raise error(
                    f"{path}: not a regular file (a device or socket); give the path of a "
                    f"{what} file (TOML), or a pipe"
                )
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError:  # a NUL in the path (a TOML string may hold one: "\u0000")
        raise error(f"{str(path)!r}: not a file name (it holds a NUL character)") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(
            f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, the most a {what} file "
            "may hold; generate fewer tables (a [[user]] template stands for many users)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not a text file: byte {exc.start} is not UTF-8 (TOML files are UTF-8)"
        ) from None


def parse_toml(
    text: str,
    source: str,
    error: type[ConfigError] = ConfigError,
    infinite: Callable[[tuple[str | int, ...]], bool] | None = None,
) -> dict[str, Any]:
    """``text`` parsed by tomllib, refused with a sentence when it is not TOML, nests deeper
    than :data:`MAX_DEPTH`, or holds ``nan``, ``inf`` (but where ``infinite`` allows it) or an
    integer beyond 64 bits."""
    if len(text) > MAX_FILE_BYTES:
        raise error(f"{source}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from None
    except ValueError as exc:  # tomllib's int() of 4,300 digits and more; impossible dates
        what = "an integer of more than 4300 digits" if "digits" in str(exc) else str(exc)
        raise error(f"{source}: not valid TOML: a value cannot be read ({what})") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise error(
            f"{source}: arrays or inline tables nested too deeply to read (at most {MAX_DEPTH} "
            "levels); flatten them"
        ) from None
    check_values(data, TomlContext(source, text, error=error), infinite)
    return data


def check_values(
    data: Mapping[str, Any],
    ctx: TomlContext,
    infinite: Callable[[tuple[str | int, ...]], bool] | None = None,
) -> None:
    """What no key accepts, anywhere in a document: nesting deeper than :data:`MAX_DEPTH`,
    ``nan`` (it compares false with every bound), ``inf`` (``duration = inf`` would never
    end) except at the paths ``infinite`` allows, integers beyond +-:data:`MAX_INTEGER`.
    Iterative, so no depth can overflow it."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            if len(path) >= MAX_DEPTH:
                ctx.fail_path(path, f"at most {MAX_DEPTH} levels of nested tables and arrays")
            stack.extend(reversed([(v, (*path, str(k))) for k, v in value.items()]))
        elif isinstance(value, list):
            if len(path) >= MAX_DEPTH:
                ctx.fail_path(path, f"at most {MAX_DEPTH} levels of nested tables and arrays")
            stack.extend(reversed([(v, (*path, i)) for i, v in enumerate(value)]))
        elif isinstance(value, float):
            if math.isnan(value) or (
                math.isinf(value) and (infinite is None or not infinite(path))
            ):
                ctx.fail_path(
                    path,
                    f"a finite number, not {value} (nan and inf mean nothing here; numbers "
                    "beyond 1.8e308 read as inf)",
                )
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_INTEGER:
                digits = int(value.bit_length() * math.log10(2)) + 1  # str() may refuse it
                ctx.fail_path(
                    path, f"an integer of at most {MAX_INTEGER}, not one of about {digits} digits"
                )


_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_SERVICE_LABEL = re.compile(r"^_[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def dns_name_problem(name: str, *, service: bool = False) -> str | None:
    """Why ``name`` (lower-case, no trailing dot) is not a DNS host name, or None.

    RFC 1035 §2.3.4: labels of 1 to 63 octets, at most 255 octets on the wire (253 characters
    written); RFC 1123 §2.1: letters, digits and hyphens, no hyphen first or last.  ``service``
    also allows labels starting with ``_`` (``_sipinternaltls._tcp``, RFC 2782)."""
    if not name:
        return "an empty name"
    if not name.isascii():
        return "non-ASCII characters (write an internationalised name in its xn-- form)"
    if len(name) > 253:
        return f"{len(name)} characters (at most 253, 255 octets on the wire; RFC 1035 §2.3.4)"
    for label in name.split("."):
        if not label:
            return "an empty label (two dots in a row, or a leading dot)"
        if len(label) > 63:
            return f"a label of {len(label)} octets (at most 63; RFC 1035 §2.3.4)"
        if not (_LABEL.match(label) or (service and _SERVICE_LABEL.match(label))):
            return (
                f"the label {label!r} (letters, digits and hyphens, no hyphen first or last; "
                "RFC 1123 §2.1)"
            )
    return None


class TomlContext:
    """Where the keys of one TOML document are, for error messages.

    ``prefix`` is the dotted path of the document inside its file (``topology`` for a scenario's
    inline ``[topology]`` table), so headers are looked up as ``[[topology.pool]]``.
    """

    def __init__(
        self,
        source: str,
        text: str,
        *,
        prefix: str = "",
        error: type[ConfigError] = ConfigError,
    ) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.prefix = prefix
        self.error = error
        self._index: _HeaderIndex | None = None

    def child(self, prefix: str) -> TomlContext:
        full = f"{self.prefix}.{prefix}" if self.prefix else prefix
        ctx = TomlContext(self.source, "", prefix=full, error=self.error)
        ctx.lines = self.lines
        ctx._index = self._headers()  # built once, shared by the children
        return ctx

    # -- locating ----------------------------------------------------------------------------

    def _headers(self) -> _HeaderIndex:
        """Every table header of the text, scanned once: a scenario with 20,000 ``[[step]]``
        tables asks for a line per step, and a scan per question made loading quadratic."""
        if self._index is None:
            self._index = _HeaderIndex(self.lines)
        return self._index

    def line_of(self, table: str | None, index: int | None, key: str | None) -> int | None:
        """Best-effort 1-based line of ``key`` in the ``index``-th ``[[table]]`` (or ``[table]``).

        ``table`` may be dotted (``dns.srv``); ``key`` may be dotted too (``ports.tls``), in
        which case the last part is searched for.
        """
        if not self.lines:
            return None
        full = ".".join(p for p in (self.prefix, table) if p)
        start, end = 0, len(self.lines)
        index_ = self._headers()
        headers = index_.headers
        if full:
            positions = index_.by_name.get(full, [])
            wanted = 0 if index is None else index
            if not 0 <= wanted < len(positions):
                return None
            found = positions[wanted]
            start = headers[found][0]
            end = len(self.lines)
            nested = full + "."
            for position in range(found + 1, len(headers)):  # no slice: a copy per call
                number, name = headers[position]
                if name == full or not name.startswith(nested):
                    end = number
                    break
        elif headers:
            end = headers[0][0]
        if key is None:
            return start + 1
        # The innermost part first (``tls`` of ``ports.tls``), then its parents (an inline
        # table ``ports = { tls = 1 }`` is found by ``ports``).
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):
            pattern = re.compile(rf"^\s*\"?{re.escape(parts[depth - 1])}\"?\s*=")
            for number in range(start, end):
                if pattern.match(self.lines[number]):
                    return number + 1
        return start + 1 if full else None

    def locate(self, path: tuple[str | int, ...]) -> tuple[str | None, int | None, str | None]:
        """``(table, index, key)`` of a value's path in the parsed document (keys and array
        positions), for :meth:`fail`: the longest prefix that has a header in the text is the
        table (``pool``, 1 for ``[[pool]]`` number 1), the rest the key (``backend.rto``)."""
        by_name = self._headers().by_name
        for k in range(len(path), 0, -1):
            head, last = path[:k], path[k - 1]
            names = [p for p in head if isinstance(p, str)]
            table = ".".join(names)
            full = ".".join(p for p in (self.prefix, table) if p)
            index = last if isinstance(last, int) else None
            if index is not None and index >= len(by_name.get(full, ())):
                continue
            if full in by_name and table:
                rest = [p for p in path[k:] if isinstance(p, str)]
                return table, index, ".".join(rest) or None
        keys = [p for p in path if isinstance(p, str)]
        return None, None, ".".join(keys) or None

    # -- failing -----------------------------------------------------------------------------

    def fail_path(self, path: tuple[str | int, ...], expected: str) -> NoReturn:
        """:meth:`fail` for a value found by its path (:func:`check_values`)."""
        table, index, key = self.locate(path)
        self.fail(table, index, key, expected)

    def path(self, table: str | None, index: int | None, key: str | None) -> str:
        parts = []
        if self.prefix:
            parts.append(self.prefix)
        if table:
            parts.append(f"{table}[{index}]" if index is not None else table)
        if key:
            parts.append(key)
        return ".".join(parts)

    def fail(
        self, table: str | None, index: int | None, key: str | None, expected: str
    ) -> NoReturn:
        line = self.line_of(table, index, key)
        where = f"{self.source}:{line}" if line else self.source
        raise self.error(f"{where}: {self.path(table, index, key)}: expected {expected}")

    def fail_text(
        self, table: str | None, index: int | None, key: str | None, text: str
    ) -> NoReturn:
        line = self.line_of(table, index, key)
        where = f"{self.source}:{line}" if line else self.source
        raise self.error(f"{where}: {self.path(table, index, key)}: {text}")

    # -- checking ----------------------------------------------------------------------------

    def unknown(
        self,
        data: Mapping[str, Any],
        allowed: Iterable[str],
        table: str | None,
        index: int | None,
    ) -> None:
        """Fail on the first key not in ``allowed``, suggesting the closest one."""
        allowed = sorted(allowed)
        for key in data:
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                self.fail_text(
                    table,
                    index,
                    key,
                    f"unknown key ({hint}known keys: {', '.join(allowed)})",
                )

    def table(self, data: Mapping[str, Any], key: str, parent: str | None = None) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.fail(parent, None, key, f"a table ([{key}])")
        return value

    def tables(
        self, data: Mapping[str, Any], key: str, parent: str | None = None
    ) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            name = f"{parent}.{key}" if parent else key
            self.fail(parent, None, key, f"an array of tables ([[{name}]])")
        return value

    def string(
        self,
        data: Mapping[str, Any],
        key: str,
        table: str | None,
        index: int | None,
        *,
        default: str | None = None,
        required: bool = False,
        choices: Iterable[str] | None = None,
    ) -> str:
        value = data.get(key)
        if value is None:
            if required or default is None:
                self.fail(table, index, key, "a string (this key is required)")
            return default
        if choices is not None:
            options = list(choices)
            if value not in options:
                self.fail(table, index, key, "one of " + ", ".join(repr(o) for o in options))
        if not isinstance(value, str) or not value.strip():
            self.fail(table, index, key, "a non-empty string")
        return value

    def integer(
        self,
        data: Mapping[str, Any],
        key: str,
        table: str | None,
        index: int | None,
        *,
        default: int | None = None,
        low: int | None = None,
        high: int | None = None,
    ) -> int:
        value = data.get(key)
        if value is None:
            if default is None:
                self.fail(table, index, key, "an integer (this key is required)")
            return default
        if high is None:
            high = MAX_INTEGER
        if low is None:
            low = -MAX_INTEGER
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(table, index, key, _range_text("an integer", low, high))
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(table, index, key, _range_text("an integer", low, high) + f", not {value}")
        return value

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        table: str | None,
        index: int | None,
        *,
        default: float | None = None,
        low: float | None = None,
        high: float | None = None,
        positive: bool = False,
    ) -> float:
        value = data.get(key)
        if value is None:
            if default is None:
                self.fail(table, index, key, "a number (this key is required)")
            return default
        if positive:
            what = "a number > 0" + (f" and <= {number_text(high)}" if high is not None else "")
        else:
            what = _range_text("a number", low, high)
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.fail(table, index, key, what)
        if not math.isfinite(value):  # nan passes every comparison below
            self.fail(table, index, key, f"{what}, not {value}")
        if (
            (positive and value <= 0)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            self.fail(table, index, key, f"{what}, not {value:g}")
        return float(value)

    def boolean(
        self, data: Mapping[str, Any], key: str, table: str | None, index: int | None, default: bool
    ) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.fail(table, index, key, "true or false")
        return value


class _HeaderIndex:
    """The table headers of a text: ``(line number, name)`` in order, and by name the
    positions in that list (so the n-th ``[[step]]`` is found without a scan)."""

    def __init__(self, lines: list[str]) -> None:
        self.headers: list[tuple[int, str]] = []
        self.by_name: dict[str, list[int]] = {}
        for number, raw in enumerate(lines):
            if "[" not in raw:
                continue
            match = _HEADER.match(raw)
            if match:
                name = match.group(1).strip()
                self.by_name.setdefault(name, []).append(len(self.headers))
                self.headers.append((number, name))


def number_text(value: float) -> str:
    """``value`` as a message shows it: ``0.25``, ``86400``, ``31622400`` (not ``3.16e+07``)."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def _range_text(what: str, low: float | None, high: float | None) -> str:
    if low == -MAX_INTEGER:
        low = None
    if high == MAX_INTEGER:
        high = None
    if low is not None and high is not None:
        return f"{what} from {number_text(low)} to {number_text(high)}"
    if low is not None:
        return f"{what} >= {number_text(low)}"
    if high is not None:
        return f"{what} <= {number_text(high)}"
    return what
