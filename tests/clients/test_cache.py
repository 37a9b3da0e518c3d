"""The endpoint cache stores (clients.cache): memory and file, format, errors, file names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clients.cache import (
    FORMAT,
    CacheEntry,
    CacheError,
    FileCacheStore,
    MemoryCacheStore,
    cache_file_name,
)

USER1 = "sip:clientuser1@contoso.test"
USER2 = "sip:clientuser2@contoso.test"


def entry(user: str = USER1, home: str = "fe1.contoso.test", saved_at: float = 12.5) -> CacheEntry:
    return CacheEntry(user, home, 5061, "tls", saved_at, "127.0.0.11")


def test_entry_is_built_positionally_as_the_agent_does() -> None:
    e = CacheEntry(USER1, "fe1.contoso.test", 5061, "tls", 3.0, "127.0.0.11")
    assert (e.home_server, e.port, e.transport, e.saved_at, e.address) == (
        "fe1.contoso.test",
        5061,
        "tls",
        3.0,
        "127.0.0.11",
    )
    assert CacheEntry(USER1, "fe1.contoso.test", 5061, "tls", 3.0).address is None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"transport": "sctp"}, "transport"),
        ({"home_server": " "}, "home_server"),
    ],
)
def test_entry_constructor_validates(kwargs: dict[str, object], fragment: str) -> None:
    values: dict[str, object] = {
        "user": USER1,
        "home_server": "fe1.contoso.test",
        "port": 5061,
        "transport": "tls",
        "saved_at": 0.0,
    }
    values.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        CacheEntry(**values)  # type: ignore[arg-type]


def test_memory_store_round_trip_clear_and_entries() -> None:
    store = MemoryCacheStore()
    assert store.load(USER1) is None
    store.save(entry(USER2, "fe2.contoso.test"))
    store.save(entry(USER1))
    store.save(entry(USER1, "fe2.contoso.test"))  # replaces
    assert store.load(USER1) == entry(USER1, "fe2.contoso.test")
    assert [e.user for e in store.entries()] == [USER1, USER2]
    store.clear(USER1)
    store.clear(USER1)  # no error when absent
    assert store.load(USER1) is None
    assert store.entries() == [entry(USER2, "fe2.contoso.test")]


def test_memory_store_of_one_user_then_two() -> None:
    # One entry is kept without a dict (memory, issue 20): the same answers as with two.
    store = MemoryCacheStore()
    store.save(entry(USER1))
    store.save(entry(USER1, "fe2.contoso.test"))  # replaces
    assert store.load(USER1) == entry(USER1, "fe2.contoso.test")
    assert store.load(USER2) is None
    store.clear(USER2)  # another user's: nothing happens
    assert store.entries() == [entry(USER1, "fe2.contoso.test")]
    store.save(entry(USER2))
    assert store.load(USER2) == entry(USER2)
    assert [e.user for e in store.entries()] == [USER1, USER2]
    store.clear(USER1)
    store.clear(USER2)
    assert store.entries() == []
    store.save(entry(USER2))
    assert store.entries() == [entry(USER2)]


def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path / "cache")
    assert store.load(USER1) is None
    assert store.entries() == []
    store.save(entry())
    path = tmp_path / "cache" / "clientuser1@contoso.test.json"
    assert path.is_file()
    assert json.loads(path.read_text()) == {
        "format": FORMAT,
        "user": USER1,
        "home_server": "fe1.contoso.test",
        "port": 5061,
        "transport": "tls",
        "address": "127.0.0.11",
        "saved_at": 12.5,
    }
    assert store.load(USER1) == entry()
    # A second store on the same directory (another process, a later run) sees it.
    assert FileCacheStore(tmp_path / "cache").load(USER1) == entry()


def test_file_store_is_the_same_user_with_or_without_scheme_and_host_case(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.save(entry())
    assert store.load("clientuser1@CONTOSO.test") == entry()


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    for n in range(5):
        store.save(entry(saved_at=float(n)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clientuser1@contoso.test.json"]
    assert store.load(USER1) == entry(saved_at=4.0)


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileCacheStore(tmp_path)
    store.save(entry())

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("clients.cache.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.save(entry(home="fe2.contoso.test"))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clientuser1@contoso.test.json"]
    assert store.load(USER1) == entry()


def test_corrupt_json_raises_cache_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "clientuser1@contoso.test.json"
    path.write_text('{"format": "sipemu-endpoint-cache/1", "user": ')
    with pytest.raises(CacheError) as info:
        FileCacheStore(tmp_path).load(USER1)
    message = str(info.value)
    assert str(path) in message and "not valid JSON" in message
    assert message.endswith(".")


def test_foreign_format_raises_cache_error(tmp_path: Path) -> None:
    path = tmp_path / "clientuser1@contoso.test.json"
    path.write_text(json.dumps({"format": "lync-endpoint-configuration", "user": USER1}))
    with pytest.raises(CacheError, match="not a sipemu endpoint cache file") as info:
        FileCacheStore(tmp_path).load(USER1)
    assert str(path) in str(info.value)


def test_non_object_json_raises_cache_error(tmp_path: Path) -> None:
    (tmp_path / "clientuser1@contoso.test.json").write_text("[1, 2]")
    with pytest.raises(CacheError, match="expected an object"):
        FileCacheStore(tmp_path).load(USER1)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("port", "5061", "a port number"),
        ("port", True, "a port number"),
        ("transport", "TLS", "one of udp, tcp, tls"),
        ("home_server", "", "FQDN"),
        ("saved_at", "yesterday", "a number of seconds"),
        ("address", 42, "an IP address or null"),
    ],
)
def test_bad_values_name_the_file_and_the_key(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    data = {
        "format": FORMAT,
        "user": USER1,
        "home_server": "fe1.contoso.test",
        "port": 5061,
        "transport": "tls",
        "address": None,
        "saved_at": 0,
    }
    data[key] = value
    path = tmp_path / "clientuser1@contoso.test.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CacheError) as info:
        FileCacheStore(tmp_path).load(USER1)
    message = str(info.value)
    assert str(path) in message and f'"{key}"' in message and expected in message


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    data = {
        "format": FORMAT,
        "user": USER1,
        "home_server": "fe1.contoso.test",
        "port": 5061,
        "transport": "tls",
        "address": None,
        "saved_at": 0,
        "backup": "fe2.contoso.test",
    }
    (tmp_path / "clientuser1@contoso.test.json").write_text(json.dumps(data))
    with pytest.raises(CacheError, match="unknown keys \\(backup\\)"):
        FileCacheStore(tmp_path).load(USER1)


def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.save(entry(USER2))
    (tmp_path / cache_file_name(USER2)).rename(tmp_path / cache_file_name(USER1))
    with pytest.raises(CacheError, match=re.escape(f"belongs to {USER2}, not to {USER1}")):
        store.load(USER1)


def test_clear_and_entries(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.save(entry(USER2, "fe2.contoso.test"))
    store.save(entry(USER1))
    (tmp_path / "notes.txt").write_text("not a cache file")
    assert [e.user for e in store.entries()] == [USER1, USER2]
    store.clear(USER2)
    store.clear(USER2)  # no error when absent
    assert store.entries() == [entry(USER1)]
    assert store.load(USER2) is None


def test_entries_reports_a_corrupt_file(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    store.save(entry())
    (tmp_path / "broken@contoso.test.json").write_text("{")
    with pytest.raises(CacheError, match=re.escape("broken@contoso.test.json")):
        store.entries()


def test_pre_seeded_file_is_loaded(tmp_path: Path) -> None:
    # What docs/clients.md tells users to write by hand.
    (tmp_path / "clientuser2@contoso.test.json").write_text(
        json.dumps(
            {
                "format": FORMAT,
                "user": USER2,
                "home_server": "fe2.contoso.test",
                "port": 5061,
                "transport": "tls",
                "address": None,
                "saved_at": 0,
            }
        )
    )
    assert FileCacheStore(tmp_path).load(USER2) == CacheEntry(
        USER2, "fe2.contoso.test", 5061, "tls", 0.0
    )


@pytest.mark.parametrize(
    ("user", "name"),
    [
        ("sip:clientuser1@contoso.test", "clientuser1@contoso.test.json"),
        ("sips:Alice@Contoso.TEST", "Alice@contoso.test.json"),
        ("sip:a/b@contoso.test", "a%2Fb@contoso.test.json"),
        ("sip:../../etc/passwd@x.test", "%2E.%2F..%2Fetc%2Fpasswd@x.test.json"),
        ("sip:a b;c=d@x.test", "a%20b%3Bc%3Dd@x.test.json"),
        ("sip:müller@x.test", "m%C3%BCller@x.test.json"),
        ("sip:.hidden@x.test", "%2Ehidden@x.test.json"),
        ("sip:a\\b:c@x.test", "a%5Cb%3Ac@x.test.json"),
    ],
)
def test_odd_user_names_map_to_safe_file_names(user: str, name: str) -> None:
    assert cache_file_name(user) == name
    assert "/" not in name and "\\" not in name and not name.startswith(".")


def test_odd_user_names_round_trip_through_files(tmp_path: Path) -> None:
    store = FileCacheStore(tmp_path)
    odd = "sip:../we ird/ü@contoso.test"
    store.save(entry(odd))
    assert [p.parent for p in tmp_path.iterdir()] == [tmp_path]
    assert store.load(odd) == entry(odd)


def test_empty_user_has_no_file_name() -> None:
    with pytest.raises(ValueError):
        cache_file_name("sip:")
