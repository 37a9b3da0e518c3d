"""Reading TOML files users write (topologies, scenarios) with errors that are sentences.

tomllib reports positions only for syntax errors, so :class:`TomlContext` finds the line of a
key by searching the source text for its ``[[table]]`` header and ``key =`` line (best effort).
Every validation error names the file, the line when it can be found, the key path and what was
expected: ``topologies/lab.toml:14: pool[1].backup: expected the FQDN of another pool``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

__all__ = ["ConfigError", "TomlContext"]


class ConfigError(Exception):
    """A bad user file; ``str()`` is one sentence naming file, line, key and expectation."""


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


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

    def child(self, prefix: str) -> TomlContext:
        full = f"{self.prefix}.{prefix}" if self.prefix else prefix
        ctx = TomlContext(self.source, "", prefix=full, error=self.error)
        ctx.lines = self.lines
        return ctx

    # -- locating ----------------------------------------------------------------------------

    def _headers(self) -> list[tuple[int, str, bool]]:
        out = []
        for number, raw in enumerate(self.lines):
            match = _HEADER.match(raw)
            if match:
                out.append((number, match.group(1).strip(), raw.strip().startswith("[[")))
        return out

    def line_of(self, table: str | None, index: int | None, key: str | None) -> int | None:
        """Best-effort 1-based line of ``key`` in the ``index``-th ``[[table]]`` (or ``[table]``).

        ``table`` may be dotted (``dns.srv``); ``key`` may be dotted too (``ports.tls``), in
        which case the last part is searched for.
        """
        if not self.lines:
            return None
        full = ".".join(p for p in (self.prefix, table) if p)
        start, end = 0, len(self.lines)
        headers = self._headers()
        if full:
            seen = -1
            found = None
            for position, (_, name, _) in enumerate(headers):
                if name != full:
                    continue
                seen += 1
                if index is None or seen == index:
                    found = position
                    break
            if found is None:
                return None
            start = headers[found][0]
            end = len(self.lines)
            for number, name, _ in headers[found + 1 :]:
                if name == full or not name.startswith(full + "."):
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

    # -- failing -----------------------------------------------------------------------------

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
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
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
        what = "a number > 0" if positive else _range_text("a number", low, high)
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.fail(table, index, key, what)
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


def _range_text(what: str, low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"{what} from {low:g} to {high:g}"
    if low is not None:
        return f"{what} >= {low:g}"
    if high is not None:
        return f"{what} <= {high:g}"
    return what
