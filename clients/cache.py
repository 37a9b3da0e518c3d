"""The Lync endpoint cache (EndpointConfiguration.cache), emulated.

What the real cache does [3P, DD-BLOG; protocol-notes §3]: after the first sign-in the client
keeps its *primary* registrar (home server) and, on later sign-ins, connects to it directly: no
DNS query, hence no 301 and no knowledge of the backup registrar.  The backup is never cached.
RFC 3261 §21.3.2 (a 301 SHOULD update local caches) is the standard's side of the same idea.

The agent (:mod:`clients.agent`) never touches a store: its driver reads the entry at sign-in
(:func:`read_entry`) and hands it in (``Agent.sign_in(now, cached=...)``), and the agent asks
for writes with a :class:`SaveCache` action, which the driver performs after the input that
produced it (live, a file write with fsync has no place inside an event-loop callback).  The
stores: :class:`MemoryCacheStore` for the simulator and tests, :class:`FileCacheStore` for
live clients (one small JSON file per client, see docs/clients.md, "Endpoint cache").  The
stores do no time or randomness: ``saved_at`` is whatever ``now`` the agent passed in.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from emulator.config import ConfigError
from emulator.net import TRANSPORTS, Effect, TransportName
from emulator.values import static_frozen

__all__ = [
    "FORMAT",
    "CacheEntry",
    "CacheError",
    "CacheStore",
    "CacheUnreadable",
    "FileCacheStore",
    "MemoryCacheStore",
    "SaveCache",
    "cache_file_name",
    "read_entry",
]

FORMAT = "sipemu-endpoint-cache/1"
"""The value of the ``format`` key of every cache file; any other value is refused."""

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@._-")
_KEYS = ("format", "user", "home_server", "port", "transport", "address", "saved_at")


class CacheError(ConfigError):
    """An endpoint cache file cannot be used; ``str()`` names the file and what is wrong."""


@static_frozen
class CacheEntry:
    """What the endpoint cache remembers for one user: the home server and how to reach it."""

    user: str
    """The user's SIP URI (``sip:clientuser1@contoso.test``)."""
    home_server: str
    """FQDN (or address) of the primary registrar the user last registered with."""
    port: int
    transport: TransportName
    saved_at: float
    """The agent's ``now`` when it saved the entry (seconds on the run's timeline)."""
    address: str | None = None
    """The home server's IP address, when known: a cached sign-in then needs no DNS at all."""

    def __post_init__(self) -> None:
        if not self.user.strip():
            raise ValueError("a cache entry needs a user")
        if not self.home_server.strip():
            raise ValueError(f"cache entry for {self.user}: home_server must not be empty")
        if isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise ValueError(
                f"cache entry for {self.user}: port must be 1..65535, got {self.port!r}"
            )
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"cache entry for {self.user}: transport must be one of "
                f"{', '.join(TRANSPORTS)}, got {self.transport!r}"
            )
        if not math.isfinite(self.saved_at):
            raise ValueError(f"cache entry for {self.user}: saved_at must be a finite number")


@static_frozen
class CacheUnreadable:
    """The store could not read the user's entry (a corrupt file): the agent notes ``reason``
    at each sign-in round and goes on as with an empty cache."""

    reason: str


@static_frozen
class SaveCache(Effect):
    """Action: write ``entry`` to the client's endpoint cache (replacing the user's entry)."""

    entry: CacheEntry


def read_entry(store: CacheStore, user: str) -> CacheEntry | CacheUnreadable | None:
    """What a driver hands the agent at sign-in: the user's entry, None, or why it could not
    be read (a corrupt cache file must not stop sign-in)."""
    try:
        return store.load(user)
    except Exception as exc:
        return CacheUnreadable(str(exc))


class CacheStore(Protocol):
    """Where an agent keeps its endpoint cache (one entry per user)."""

    def load(self, user: str) -> CacheEntry | None:
        """The user's entry, or None; a store that cannot read it raises :class:`CacheError`."""
        ...

    def save(self, entry: CacheEntry) -> None:
        """Remember ``entry``, replacing the user's previous one."""
        ...

    def clear(self, user: str) -> None:
        """Forget the user's entry (no error if there is none)."""
        ...

    def entries(self) -> list[CacheEntry]:
        """Every entry, sorted by user."""
        ...


def _user_key(user: str) -> str:
    """The user's URI without its scheme, host part lower-cased (RFC 3261 §19.1.4)."""
    text = user.strip()
    for scheme in ("sip:", "sips:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
            break
    local, at, host = text.rpartition("@")
    return f"{local}{at}{host.lower()}" if at else text.lower()


class MemoryCacheStore:
    """An endpoint cache in a dict (the simulator's store; state dies with the object)."""

    __slots__ = ("_entries",)  # memory: one per simulated client (benchmarks/sim_bench.py)

    def __init__(self) -> None:
        self._entries: CacheEntry | dict[str, CacheEntry] | None = None
        """By user key; one entry is kept as itself, a dict only from a second user (memory,
        issue 20: a simulated client's store holds its one user, and a dict of one entry and
        its key cost about 260 bytes)."""

    def load(self, user: str) -> CacheEntry | None:
        entries = self._entries
        if isinstance(entries, CacheEntry):
            return entries if _holds(entries, user) else None
        return None if entries is None else entries.get(_user_key(user))

    def save(self, entry: CacheEntry) -> None:
        entries = self._entries
        if entries is None or (isinstance(entries, CacheEntry) and _holds(entries, entry.user)):
            self._entries = entry
            return
        if isinstance(entries, CacheEntry):
            entries = self._entries = {_user_key(entries.user): entries}
        entries[_user_key(entry.user)] = entry

    def clear(self, user: str) -> None:
        entries = self._entries
        if isinstance(entries, CacheEntry):
            if _holds(entries, user):
                self._entries = None
        elif entries is not None:
            entries.pop(_user_key(user), None)

    def entries(self) -> list[CacheEntry]:
        entries = self._entries
        if entries is None:
            return []
        if isinstance(entries, CacheEntry):
            return [entries]
        return [entries[key] for key in sorted(entries)]


def _holds(entry: CacheEntry, user: str) -> bool:
    """Whether ``entry`` is ``user``'s (their addresses compared as the store keys them)."""
    return _user_key(entry.user) == _user_key(user)


def cache_file_name(user: str) -> str:
    """The file name of a user's cache file: ``clientuser1@contoso.test.json``.

    The scheme is dropped and the host part lower-cased; every character outside
    ``[A-Za-z0-9@._-]`` (and a leading dot, which would hide the file) is percent-encoded as
    UTF-8 bytes, so the name never contains a path separator.
    """
    key = _user_key(user)
    if not key:
        raise ValueError(f"no file name for the empty user {user!r}")
    out: list[str] = []
    for index, char in enumerate(key):
        if char in _SAFE and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out) + ".json"


class FileCacheStore:
    """An endpoint cache in a directory: one JSON file per user, written atomically.

    File format (docs/clients.md, "Endpoint cache")::

        {"format": "sipemu-endpoint-cache/1", "user": "sip:clientuser1@contoso.test",
         "home_server": "fe1.contoso.test", "port": 5061, "transport": "tls",
         "address": "127.0.0.11", "saved_at": 12.5}

    A save writes a temporary file in the same directory and renames it over the old one
    (``os.replace``), so a reader sees the old file or the new one, never half a file.  A file
    that is not JSON, not this format, or belongs to another user raises :class:`CacheError`.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path_for(self, user: str) -> Path:
        return self.directory / cache_file_name(user)

    def load(self, user: str) -> CacheEntry | None:
        path = self.path_for(user)
        entry = self._read(path)
        if entry is not None and _user_key(entry.user) != _user_key(user):
            raise CacheError(f"Endpoint cache file {path} belongs to {entry.user}, not to {user}.")
        return entry

    def save(self, entry: CacheEntry) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(entry.user)
        data = {
            "format": FORMAT,
            "user": entry.user,
            "home_server": entry.home_server,
            "port": entry.port,
            "transport": entry.transport,
            "address": entry.address,
            "saved_at": entry.saved_at,
        }
        text = json.dumps(data, indent=2) + "\n"
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def clear(self, user: str) -> None:
        self.path_for(user).unlink(missing_ok=True)

    def entries(self) -> list[CacheEntry]:
        """Every entry in the directory, sorted by user; a bad file raises :class:`CacheError`."""
        if not self.directory.is_dir():
            return []
        found: list[CacheEntry] = []
        for path in sorted(self.directory.glob("*.json")):
            if path.name.startswith("."):
                continue
            entry = self._read(path)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: _user_key(e.user))

    # -- reading ------------------------------------------------------------------------------

    @staticmethod
    def _read(path: Path) -> CacheEntry | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise CacheError(f"Endpoint cache file {path} is not UTF-8 text.") from None
        except OSError as exc:
            raise CacheError(
                f"Endpoint cache file {path} cannot be read ({exc.strerror or exc})."
            ) from None
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CacheError(
                f"Endpoint cache file {path} is not valid JSON "
                f"(line {exc.lineno}, column {exc.colno}: {exc.msg})."
            ) from None
        return _entry_from_json(path, data)


def _entry_from_json(path: Path, data: Any) -> CacheEntry:
    if not isinstance(data, dict):
        raise CacheError(
            f"Endpoint cache file {path} holds a JSON {type(data).__name__}, expected an object."
        )
    if data.get("format") != FORMAT:
        raise CacheError(
            f"Endpoint cache file {path} is not a sipemu endpoint cache file: "
            f'its "format" is {data.get("format")!r}, expected {FORMAT!r}.'
        )
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise CacheError(
            f"Endpoint cache file {path} has unknown keys "
            f"({', '.join(unknown)}); expected only {', '.join(_KEYS)}."
        )

    def bad(key: str, expected: str) -> CacheError:
        return CacheError(
            f'Endpoint cache file {path}: "{key}" is {data.get(key)!r}, expected {expected}.'
        )

    user, home, port = data.get("user"), data.get("home_server"), data.get("port")
    transport, address, saved_at = data.get("transport"), data.get("address"), data.get("saved_at")
    if not isinstance(user, str) or not user.strip():
        raise bad("user", "the user's SIP URI")
    if not isinstance(home, str) or not home.strip():
        raise bad("home_server", "the FQDN of the home server")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise bad("port", "a port number 1..65535")
    if transport not in TRANSPORTS:
        raise bad("transport", f"one of {', '.join(TRANSPORTS)}")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise bad("address", "an IP address or null")
    if (
        not isinstance(saved_at, int | float)
        or isinstance(saved_at, bool)
        or not math.isfinite(saved_at)
    ):
        raise bad("saved_at", "a number of seconds")
    return CacheEntry(user, home, port, transport, float(saved_at), address)
