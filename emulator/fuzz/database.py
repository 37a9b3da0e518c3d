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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hypothesis.database import ExampleDatabase

from emulator.scenario.writer import write_atomically

__all__ = [
    "REDIS_SCHEMES",
    "CampaignDatabase",
    "DatabaseUnreachable",
    "RedisCampaignDatabase",
    "is_redis",
    "open_database",
    "redis_client",
    "shown",
]

_SUFFIXES = (b".secondary", b".pareto")
"""Hypothesis's sub-keys (``KEY.secondary``: examples that once failed and were shrunk past;
``KEY.pareto``: targeting).  Every other key is a test's primary corpus."""

_METAKEYS = b".hypothesis-keys"


def _primary(key: bytes) -> bool:
    return key != _METAKEYS and not key.endswith(_SUFFIXES)


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
        if _primary(key) and not self.passed_clean:
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


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""What ``--db`` takes for a Redis database (redis-py's URL forms); anything else is a
directory."""

REDIS_PREFIX = b"sipemu-fuzz:"
"""The Redis keys of the campaigns' examples start with this, so that a Redis database shared
with other Hypothesis users (whose default prefix is ``hypothesis-example:``) keeps them apart."""


class DatabaseUnreachable(Exception):
    """The Redis server of ``--db`` did not answer (the message is a sentence)."""


def is_redis(spec: str | Path) -> bool:
    return isinstance(spec, str) and spec.startswith(REDIS_SCHEMES)


def shown(url: str) -> str:
    """``url`` with its password (``redis://:SECRET@HOST``) masked, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def redis_client(url: str, *, timeout: float = 10.0) -> Any:
    """A redis-py client for ``url``; :class:`DatabaseUnreachable` when redis-py is missing
    or the server does not answer a PING."""
    try:
        from redis import Redis
        from redis.exceptions import RedisError
    except ImportError:
        raise DatabaseUnreachable(
            f"--db {shown(url)} needs redis-py, which is not installed: "
            "pip install 'sipemu[cluster]'"
        ) from None
    try:
        client = Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        client.ping()
    except ValueError as exc:
        raise DatabaseUnreachable(
            f"--db {shown(url)} is not a Redis URL redis-py reads ({exc}); "
            "write redis://HOST:PORT/N or unix:///PATH?db=N"
        ) from None
    except (RedisError, OSError) as exc:
        raise DatabaseUnreachable(
            f"cannot reach the Redis server of --db {shown(url)} ({exc}); start it "
            "(redis-server) or fix the address"
        ) from None
    return client


class RedisCampaignDatabase(ExampleDatabase):
    """The campaign's examples in Redis, shared by every shard on every machine: Hypothesis's
    own :class:`~hypothesis.extra.redis.RedisExampleDatabase` (a Redis set per key), with the
    same rule as :class:`CampaignDatabase` for deleting (a primary example that passed only
    because its finding is known is kept).

    A Redis server lost in the middle of a campaign does not stop it: the first error is kept
    in :attr:`lost` (a sentence), and from then on the database is empty and forgets what it is
    told (the findings go to the campaign by other ways; only the sharing of examples stops).
    """

    def __init__(self, url: str) -> None:
        from hypothesis.extra.redis import RedisExampleDatabase

        super().__init__()
        self.url = url
        self.inner = RedisExampleDatabase(redis_client(url), key_prefix=REDIS_PREFIX)
        self.passed_clean = False
        self.lost: str | None = None

    def __repr__(self) -> str:
        return f"RedisCampaignDatabase({shown(self.url)!r})"

    @contextlib.contextmanager
    def _guard(self) -> Iterator[bool]:
        """Yields whether the server is still there; a Redis error marks it lost."""
        from redis.exceptions import RedisError

        if self.lost is not None:
            yield False
            return
        try:
            yield True
        except (RedisError, OSError) as exc:
            self.lost = (
                f"the Redis server of --db {shown(self.url)} stopped answering ({exc}); the shard "
                "went on without the shared example database"
            )

    def fetch(self, key: bytes) -> Iterable[bytes]:
        values: list[bytes] = []
        with self._guard() as up:
            if up:
                values = list(self.inner.fetch(key))
        return values

    def save(self, key: bytes, value: bytes) -> None:
        with self._guard() as up:
            if up:
                self.inner.save(key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        if _primary(key) and not self.passed_clean:
            return  # as CampaignDatabase.delete
        with self._guard() as up:
            if up:
                self.inner.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        with self._guard() as up:
            if up:
                self.inner.move(src, dest, value)

    def _start_listening(self) -> None:
        pass  # change listening (Redis pub/sub) is not used

    def _stop_listening(self) -> None:
        pass


def open_database(spec: str | Path) -> CampaignDatabase | RedisCampaignDatabase:
    """``--db``: a Redis URL (:data:`REDIS_SCHEMES`) or a directory."""
    if is_redis(spec):
        return RedisCampaignDatabase(str(spec))
    return CampaignDatabase(spec)
