"""Loading: the topology file (TOML) -> a validated, frozen :class:`Topology`.

docs/topology.md is the reference; ``emulator/data/default.toml`` is the embedded default
(the lab of field report R1) and a commented example.

Errors are sentences naming the file, the line, the key and what was expected
(:class:`TopologyError`); loading never raises anything else for a bad file.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from emulator.admin import PersistentChatSpec
from emulator.backend import BackEndSpec
from emulator.config import (
    ConfigError,
    TomlContext,
    check_values,
    did_you_mean,
    dns_name_problem,
    parse_toml,
    read_text,
)
from emulator.net import TRANSPORTS, TransportName
from emulator.sip.errors import SipError
from emulator.sip.uri import SipUri, normalize_aor
from emulator.topology.dns import srv_transport
from emulator.topology.model import (
    AUTH_SCHEMES,
    DEFAULT_PORTS,
    DIGEST_ALGORITHMS,
    PRODUCT_PROFILES,
    AuthSettings,
    DnsSpec,
    PoolSpec,
    RegistrarSettings,
    ResiliencySettings,
    Topology,
)
from fakedns.records import AddressRecord, DnsRecord, SrvRecord, normalize_name

__all__ = [
    "TopologyError",
    "default_topology",
    "load_topology",
    "parse_topology",
    "topology_from_dict",
]

MAX_GENERATED_USERS = 1_000_000
"""The most users a topology may home, generated or not."""
MIN_INTERVAL = 0.001
"""The shortest resiliency interval or timeout: one simulated millisecond (shorter ones would
make the simulator spin on heartbeats without virtual time moving)."""
MAX_INTERVAL = 86_400.0
"""The longest resiliency interval, timeout or back-end delay: a day."""
MAX_EXPIRES = 2**32 - 1
"""RFC 3261 §20.19: Expires values are delta-seconds below 2**32."""


class TopologyError(ConfigError):
    """A bad topology: the message names the file, the line, the key and what was expected."""


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file, or the shipped example of that name (``"fast"``,
    emulator/examples).  Raises :class:`TopologyError` (a sentence)."""
    from emulator.examples import ExampleNotFound, resolve

    try:
        path = resolve("topology", path)
    except ExampleNotFound as exc:
        raise TopologyError(str(exc)) from None
    text = read_text(path, "topology", TopologyError)  # bounded; regular files and pipes
    return parse_topology(text, str(path))


_DEFAULT: Topology | None = None


def default_topology() -> Topology:
    """The embedded default: the R1 lab (``emulator/data/default.toml``)."""
    global _DEFAULT
    if _DEFAULT is None:
        text = resources.files("emulator").joinpath("data/default.toml").read_text("utf-8")
        _DEFAULT = parse_topology(text, "<embedded default topology>")
    return _DEFAULT


def parse_topology(text: str, source: str = "<string>") -> Topology:
    """Validate topology TOML text; ``source`` names it in error messages."""
    data = parse_toml(text, source, TopologyError)  # no nan, inf, deep nesting (config.py)
    return topology_from_dict(data, source, text=text)


def topology_from_dict(
    data: Mapping[str, Any], source: str, *, text: str = "", prefix: str = ""
) -> Topology:
    """Validate an already-parsed topology table (e.g. a scenario's inline ``[topology]``)."""
    ctx = TomlContext(source, text, prefix=prefix, error=TopologyError)
    if not prefix:  # a scenario checked its whole file, [topology] included
        check_values(data, ctx)
    return _Builder(ctx, data).build()


_TOP_KEYS = {
    "domain",
    "profile",
    "description",
    "resiliency",
    "registrar",
    "pool",
    "user",
    "dns",
    "cms",
    "persistent_chat",
    "auth",
}
_SCENARIO_KEYS = frozenset({"step", "expect", "client", "topology"})
"""Top-level keys of a scenario file that no topology has: a scenario given as a topology."""
_POOL_KEYS = {"fqdn", "role", "site", "address", "ports", "backup", "backend", "product"}
_USER_KEYS = {"uri", "pool", "template", "count", "start", "contacts", "password"}
_AUTH_KEYS = {
    "scheme",
    "realm",
    "digest_algorithms",
    "nonce_timeout",
    "sa_timeout",
    "default_password",
}
_BACKEND_KEYS = {"principal", "mirror", "witness", "rto", "grace"}
_CHAT_KEYS = {"pool", "primary_db", "backup_db", "primary_site", "backup_site"}
_DNS_KEYS = {"address", "port", "zones", "pool_records", "additional", "ttl", "srv", "a", "naptr"}
_SRV_KEYS = {"name", "priority", "weight", "port", "target", "ttl"}
_A_KEYS = {"name", "address", "ttl"}
_NAPTR_KEYS = {"name", "order", "preference", "flags", "service", "regexp", "replacement", "ttl"}
_USER_PART = re.compile(r"^(?:[A-Za-z0-9\-_.!~*'()&=+$,/]|%[0-9A-Fa-f]{2})+$")
"""RFC 3261 §25.1 ``user`` (unreserved, escaped, user-unreserved), less ``;`` and ``?``,
which the URI parser reads as the start of parameters and headers."""


def _is_hostname(name: str, *, service: bool = False) -> bool:
    return dns_name_problem(name, service=service) is None


class _Builder:
    def __init__(self, ctx: TomlContext, data: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.data = data

    def build(self) -> Topology:
        ctx, data = self.ctx, self.data
        scenario = sorted(k for k in data if k in _SCENARIO_KEYS)
        if scenario and not ctx.prefix:
            shown = ", ".join(f"[[{k}]]" if k != "topology" else k for k in scenario)
            raise TopologyError(
                f"{ctx.source}: this is a scenario file ({shown}), not a topology: run it with "
                "`sipemu run FILE`; its topology is the file its topology key names"
            )
        ctx.unknown(data, _TOP_KEYS, None, None)
        domain = normalize_name(ctx.string(data, "domain", None, None, required=True))
        problem = dns_name_problem(domain)
        if problem is not None:
            ctx.fail(
                None,
                None,
                "domain",
                f"a DNS domain name such as contoso.test, not {domain[:80]!r} ({problem})",
            )
        profile = ctx.string(
            data, "profile", None, None, default="lync2010", choices=PRODUCT_PROFILES
        )
        description = data.get("description", "")
        if not isinstance(description, str):
            ctx.fail(None, None, "description", "a string")
        resiliency = self.resiliency()
        registrar = self.registrar()
        pools = self.pools(profile)
        users, contacts, passwords = self.users(pools, domain)
        dns = self.dns(domain, pools)
        auth = self.auth()
        return Topology(
            domain,
            pools,
            users,
            dns,
            resiliency,
            registrar,
            profile,
            ctx.source,
            description,
            contacts,
            self.cms(pools),
            self.persistent_chat(),
            auth,
            passwords,
        )

    def product(self, t: Mapping[str, Any], i: int, profile: str) -> str:
        """A pool's ``product`` (its ``Server`` header, docs/topology.md): one of
        PRODUCT_PROFILES, by default the topology's ``profile``."""
        value = t.get("product", profile)
        if value not in PRODUCT_PROFILES:
            hint = did_you_mean(value, PRODUCT_PROFILES)
            self.ctx.fail_text(
                "pool",
                i,
                "product",
                f"unknown product {str(value)[:40]!r} ({hint}known products: "
                f"{', '.join(PRODUCT_PROFILES)})",
            )
        return str(value)

    def auth(self) -> AuthSettings:
        """``[auth]``: authentication of users' requests (emulator/registrar/auth.py)."""
        ctx = self.ctx
        t = ctx.table(self.data, "auth")
        ctx.unknown(t, _AUTH_KEYS, "auth", None)
        d = AuthSettings()
        scheme = t.get("scheme", d.scheme)
        if scheme not in AUTH_SCHEMES:
            hint = did_you_mean(str(scheme), AUTH_SCHEMES) if isinstance(scheme, str) else ""
            ctx.fail_text(
                "auth",
                None,
                "scheme",
                f"{hint}expected one of {', '.join(repr(s) for s in AUTH_SCHEMES)}, not {scheme!r}",
            )
        algorithms = t.get("digest_algorithms", list(d.digest_algorithms))
        if (
            not isinstance(algorithms, list)
            or not algorithms
            or any(a not in DIGEST_ALGORITHMS for a in algorithms)
            or len(set(algorithms)) != len(algorithms)
        ):
            ctx.fail(
                "auth",
                None,
                "digest_algorithms",
                'a list of Digest algorithms, preferred first, from "SHA-256" and "MD5" '
                '(RFC 8760), e.g. ["SHA-256", "MD5"]',
            )
        realm = t.get("realm", "")
        if not isinstance(realm, str) or '"' in realm or "\\" in realm:
            ctx.fail("auth", None, "realm", "a string without quotes or backslashes")
        return AuthSettings(
            scheme,
            realm,
            tuple(algorithms),
            ctx.number(
                t, "nonce_timeout", "auth", None, default=d.nonce_timeout, low=1, high=MAX_INTERVAL
            ),
            ctx.number(
                t, "sa_timeout", "auth", None, default=d.sa_timeout, low=1, high=MAX_INTERVAL
            ),
            self.password(t, "default_password", "auth", None, d.default_password),
        )

    def password(
        self, t: Mapping[str, Any], key: str, table: str, i: int | None, default: str
    ) -> str:
        value = t.get(key, default)
        if not isinstance(value, str) or not value or len(value) > 256:
            self.ctx.fail(table, i, key, "a password: a non-empty string of at most 256 characters")
        return value

    def cms(self, pools: tuple[PoolSpec, ...]) -> str | None:
        ctx = self.ctx
        t = ctx.table(self.data, "cms")
        ctx.unknown(t, {"pool"}, "cms", None)
        front = [p.fqdn for p in pools if not p.is_director]
        if "pool" not in t:
            return front[0] if front else None
        name = normalize_name(ctx.string(t, "pool", "cms", None))
        if name not in {p.fqdn for p in pools}:
            ctx.fail("cms", None, "pool", f"the FQDN of a pool (known: {', '.join(front)})")
        return name

    def persistent_chat(self) -> PersistentChatSpec | None:
        ctx = self.ctx
        if "persistent_chat" not in self.data:
            return None
        t = ctx.table(self.data, "persistent_chat")
        ctx.unknown(t, _CHAT_KEYS, "persistent_chat", None)
        d = PersistentChatSpec()
        return PersistentChatSpec(
            **{
                k: ctx.string(t, k, "persistent_chat", None, default=getattr(d, k))
                for k in _CHAT_KEYS
            }
        )

    def backend(self, t: Mapping[str, Any], i: int) -> BackEndSpec:
        ctx = self.ctx
        raw = t.get("backend")
        if raw is None:
            return BackEndSpec()
        if not isinstance(raw, dict):
            ctx.fail(
                "pool",
                i,
                "backend",
                'a table such as { principal = "sql01", mirror = "sql02", witness = "witness01" }',
            )
        ctx.unknown(raw, _BACKEND_KEYS, "pool", i)
        d = BackEndSpec()
        names: dict[str, str | None] = {}
        for key in ("principal", "mirror", "witness"):
            value = raw.get(key, d.principal if key == "principal" else None)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                ctx.fail("pool", i, f"backend.{key}", "a server name")
            names[key] = value
        if names["witness"] and not names["mirror"]:
            ctx.fail("pool", i, "backend.witness", "a mirror too (a witness arbitrates mirroring)")
        if len({v for v in names.values() if v}) != len([v for v in names.values() if v]):
            ctx.fail("pool", i, "backend", "three different server names")
        return BackEndSpec(
            names["principal"] or d.principal,
            names["mirror"],
            names["witness"],
            *(
                ctx.number(
                    # keyed backend.rto, so that errors name the key as the file writes it
                    {f"backend.{k}": raw[k]} if k in raw else {},
                    f"backend.{k}",
                    "pool",
                    i,
                    default=getattr(d, k),
                    low=MIN_INTERVAL,
                    high=MAX_INTERVAL,
                )
                for k in ("rto", "grace")
            ),
        )

    # -- sections ----------------------------------------------------------------------------

    def resiliency(self) -> ResiliencySettings:
        ctx = self.ctx
        table = ctx.table(self.data, "resiliency")
        defaults = ResiliencySettings()
        ctx.unknown(table, ResiliencySettings.__dataclass_fields__, "resiliency", None)
        values = {
            name: ctx.number(
                table,
                name,
                "resiliency",
                None,
                default=getattr(defaults, name),
                low=MIN_INTERVAL,
                high=MAX_INTERVAL,
            )
            for name in ResiliencySettings.__dataclass_fields__
        }
        return ResiliencySettings(**values)

    def registrar(self) -> RegistrarSettings:
        ctx = self.ctx
        t = ctx.table(self.data, "registrar")
        d = RegistrarSettings()
        ctx.unknown(t, RegistrarSettings.__dataclass_fields__, "registrar", None)
        name = "registrar"
        unknown_user = ctx.integer(
            t, "unknown_user", name, None, default=d.unknown_user, low=300, high=699
        )
        primary_q = ctx.number(t, "primary_q", name, None, default=d.primary_q, low=0, high=1)
        backup_q = ctx.number(t, "backup_q", name, None, default=d.backup_q, low=0, high=1)
        min_expires = ctx.integer(
            t, "min_expires", name, None, default=d.min_expires, low=1, high=MAX_EXPIRES
        )
        max_expires = ctx.integer(
            t, "max_expires", name, None, default=d.max_expires, low=1, high=MAX_EXPIRES
        )
        if max_expires < min_expires:
            ctx.fail(name, None, "max_expires", f"at least min_expires ({min_expires})")
        default_expires = ctx.integer(
            t, "default_expires", name, None, default=min(d.default_expires, max_expires), low=1
        )
        failback_error_id = ctx.integer(
            t, "failback_error_id", name, None, default=d.failback_error_id, low=0
        )
        return RegistrarSettings(
            unknown_user=unknown_user,
            redirect_reason=ctx.string(t, "redirect_reason", name, None, default=d.redirect_reason),
            primary_q=primary_q,
            backup_q=backup_q,
            redirect_transport=ctx.string(
                t,
                "redirect_transport",
                name,
                None,  # type: ignore[arg-type]
                default=d.redirect_transport,
                choices=("tls", "tcp", "udp", "same"),
            ),
            redirect_host=ctx.string(
                t,
                "redirect_host",
                name,
                None,  # type: ignore[arg-type]
                default=d.redirect_host,
                choices=("fqdn", "address"),
            ),
            redirect_expires=ctx.integer(
                t,
                "redirect_expires",
                name,
                None,
                default=d.redirect_expires,
                low=0,
                high=MAX_EXPIRES,
            ),
            keep_alive_timeout=ctx.integer(
                t,
                "keep_alive_timeout",
                name,
                None,
                default=d.keep_alive_timeout,
                low=1,
                high=86_400,
            ),
            min_expires=min_expires,
            max_expires=max_expires,
            default_expires=default_expires,
            require_endpoint_id=ctx.boolean(
                t, "require_endpoint_id", name, None, d.require_endpoint_id
            ),
            before_failover=ctx.string(
                t,
                "before_failover",
                name,
                None,  # type: ignore[arg-type]
                default=d.before_failover,
                choices=("redirect", "service-unavailable", "temporarily-unavailable"),
            ),
            retry_after=ctx.integer(
                t, "retry_after", name, None, default=d.retry_after, low=0, high=MAX_EXPIRES
            ),
            failback=ctx.string(
                t,
                "failback",
                name,
                None,
                default=d.failback,  # type: ignore[arg-type]
                choices=("notify", "redirect-on-refresh", "drop"),
            ),
            failback_error_id=failback_error_id,
            user_services_notify=ctx.boolean(
                t, "user_services_notify", name, None, d.user_services_notify
            ),
            services=ctx.boolean(t, "services", name, None, d.services),
            presence_poll_interval=ctx.number(
                t,
                "presence_poll_interval",
                name,
                None,
                default=d.presence_poll_interval,
                low=0.05,
                high=3600,
            ),
            deregister=ctx.string(
                t,
                "deregister",
                name,
                None,
                default=d.deregister,  # type: ignore[arg-type]
                choices=("accept", "rules"),
            ),
            **self._registrar_limits(t, d),
        )

    def _registrar_limits(self, t: dict[str, Any], d: RegistrarSettings) -> dict[str, Any]:
        """The ``[registrar]`` limits and defences (docs/live.md, "Limits and defences")."""
        ctx, name = self.ctx, "registrar"
        limits: dict[str, Any] = {
            key: ctx.integer(t, key, name, None, default=getattr(d, key), low=low, high=high)
            for key, low, high in (
                ("max_bindings_per_user", 1, 10_000),
                ("transaction_limit", 1, 10_000_000),
                ("transaction_bytes", 65_536, 1 << 40),
                ("overload_rate", 0, 10_000_000),
                ("source_rate", 0, 10_000_000),
                ("shed_retry_after", 1, 86_400),
            )
        }
        limits["binding_limit"] = ctx.string(
            t,
            "binding_limit",
            name,
            None,
            default=d.binding_limit,
            choices=("evict-oldest", "refuse"),
        )
        return limits

    def pools(self, profile: str = "lync2010") -> tuple[PoolSpec, ...]:
        ctx = self.ctx
        tables = ctx.tables(self.data, "pool")
        if not tables:
            ctx.fail(None, None, "pool", "at least one [[pool]] table")
        pools: list[PoolSpec] = []
        seen: dict[str, int] = {}
        sockets: dict[tuple[str, str, int], str] = {}
        for i, t in enumerate(tables):
            ctx.unknown(t, _POOL_KEYS, "pool", i)
            fqdn = normalize_name(ctx.string(t, "fqdn", "pool", i, required=True))
            problem = dns_name_problem(fqdn)
            if problem is not None or "." not in fqdn:
                why = f" ({problem})" if problem else ""
                ctx.fail("pool", i, "fqdn", f"a fully qualified host name, not {fqdn[:80]!r}{why}")
            if fqdn in seen:
                ctx.fail("pool", i, "fqdn", f"a unique FQDN ({fqdn} is also pool[{seen[fqdn]}])")
            seen[fqdn] = i
            role = ctx.string(
                t, "role", "pool", i, default="frontend", choices=("frontend", "director")
            )
            address = self.address(t, "address", "pool", i)
            site = t.get("site")
            if site is not None and (not isinstance(site, str) or not site):
                ctx.fail("pool", i, "site", "a non-empty string")
            ports = self.ports(t, i)
            for transport, port in ports.items():
                if port == 0:
                    continue
                # UDP and TCP may share a number; the same transport and port may not.
                key = (address, "udp" if transport == "udp" else "stream", port)
                other = sockets.get(key)
                if other is not None:
                    ctx.fail(
                        "pool",
                        i,
                        "ports",
                        f"a free port: {address}:{port} ({transport.upper()}) is also "
                        f"used by {other}",
                    )
                sockets[key] = fqdn
            backup = t.get("backup")
            if backup is not None:
                if not isinstance(backup, str) or not backup.strip():
                    ctx.fail("pool", i, "backup", "the FQDN of another pool")
                backup = normalize_name(backup)
            pools.append(
                PoolSpec(
                    fqdn,
                    role,  # type: ignore[arg-type]
                    address,
                    ports,
                    site,
                    backup,
                    self.backend(t, i),
                    self.product(t, i, profile),
                )
            )
        names = {p.fqdn: p for p in pools}
        for i, pool in enumerate(pools):
            if pool.backup is None:
                continue
            if pool.is_director:
                ctx.fail("pool", i, "backup", "no backup on a director (directors home no users)")
            if pool.backup == pool.fqdn:
                ctx.fail("pool", i, "backup", "another pool than the pool itself")
            target = names.get(pool.backup)
            if target is None:
                ctx.fail(
                    "pool",
                    i,
                    "backup",
                    f"the FQDN of another pool (known: {', '.join(names)}), not {pool.backup!r}",
                )
            if target.is_director:
                ctx.fail("pool", i, "backup", f"a front end pool ({target.fqdn} is a director)")
        return tuple(pools)

    def ports(self, t: Mapping[str, Any], i: int) -> dict[TransportName, int]:
        ctx = self.ctx
        raw = t.get("ports")
        if raw is None:
            return dict(DEFAULT_PORTS)
        if not isinstance(raw, dict) or not raw:
            ctx.fail("pool", i, "ports", "a table such as { udp = 5060, tcp = 5060, tls = 5061 }")
        ctx.unknown(raw, TRANSPORTS, "pool", i)
        ports: dict[TransportName, int] = {}
        for transport in TRANSPORTS:
            if transport in raw:
                value = raw[transport]
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
                    ctx.fail("pool", i, f"ports.{transport}", "a port from 0 (ephemeral) to 65535")
                ports[transport] = value
        return ports

    def address(self, t: Mapping[str, Any], key: str, table: str | None, i: int | None) -> str:
        ctx = self.ctx
        value = ctx.string(t, key, table, i, required=True)
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            ctx.fail(table, i, key, f"an IP address such as 127.0.0.11, not {value!r}")

    def users(
        self, pools: tuple[PoolSpec, ...], domain: str
    ) -> tuple[dict[str, str], dict[str, tuple[str, ...]], dict[str, str]]:
        ctx = self.ctx
        names = {p.fqdn: p for p in pools}
        users: dict[str, str] = {}
        contacts: dict[str, tuple[str, ...]] = {}
        passwords: dict[str, str] = {}
        for i, t in enumerate(ctx.tables(self.data, "user")):
            ctx.unknown(t, _USER_KEYS, "user", i)
            home = normalize_name(ctx.string(t, "pool", "user", i, required=True))
            pool = names.get(home)
            if pool is None:
                ctx.fail(
                    "user",
                    i,
                    "pool",
                    f"the FQDN of a pool (known: {', '.join(names)}), not {home!r}",
                )
            if pool.is_director:
                ctx.fail("user", i, "pool", f"a front end pool ({home} is a director)")
            if "uri" in t and "template" in t:
                ctx.fail("user", i, "template", "either uri or template (with count), not both")
            if "uri" in t:
                for key in ("count", "start"):
                    if key in t:
                        ctx.fail("user", i, key, "count and start only with template")
                uris = [
                    self.user_uri(ctx.string(t, "uri", "user", i, required=True), domain, "uri", i)
                ]
            elif "template" in t:
                template = ctx.string(t, "template", "user", i, required=True)
                if "{n" not in template:
                    ctx.fail(
                        "user",
                        i,
                        "template",
                        'a template with {n} in it, e.g. "user{n:05d}@contoso.test"',
                    )
                room = MAX_GENERATED_USERS - len(users)
                if room < 1:
                    ctx.fail("user", i, "count", f"at most {MAX_GENERATED_USERS} users in all")
                count = ctx.integer(t, "count", "user", i, low=1, high=room)
                start = ctx.integer(
                    t, "start", "user", i, default=1, low=0, high=MAX_GENERATED_USERS
                )
                try:
                    uris = [
                        self.user_uri(template.format(n=n), domain, "template", i)
                        for n in range(start, start + count)
                    ]
                except (ValueError, KeyError, IndexError) as exc:
                    ctx.fail("user", i, "template", f"a Python format with only {{n}} ({exc})")
            else:
                ctx.fail("user", i, "uri", "uri (one user) or template and count (many)")
            for aor in uris:
                if aor in users:
                    ctx.fail(
                        "user",
                        i,
                        "uri" if "uri" in t else "template",
                        f"users homed once ({aor} is already homed on {users[aor]})",
                    )
                users[aor] = home
            if "password" in t:
                # One password for a user, or for every user of a template.
                own = self.password(t, "password", "user", i, "")
                passwords.update(dict.fromkeys(uris, own))
            if "contacts" in t:
                raw = t["contacts"]
                if (
                    "uri" not in t
                    or not isinstance(raw, list)
                    or not all(isinstance(c, str) for c in raw)
                ):
                    ctx.fail(
                        "user",
                        i,
                        "contacts",
                        "a list of SIP URIs, for a single user "
                        '(uri = ...), e.g. ["sip:bob@contoso.test"]',
                    )
                # A contact list may name users of other domains (federation).
                contacts[uris[0]] = tuple(
                    self.user_uri(c, domain, "contacts", i, in_domain=False) for c in raw
                )
            if len(users) > MAX_GENERATED_USERS:
                ctx.fail("user", i, "uri", f"at most {MAX_GENERATED_USERS} users in all")
        return users, contacts, passwords

    def user_uri(self, value: str, domain: str, key: str, i: int, *, in_domain: bool = True) -> str:
        """The address of record of a user's URI (``alice`` and ``alice@contoso.test`` are
        ``sip:alice@contoso.test``), refused unless it is a SIP URI whose user part is one
        (RFC 3261 §25.1), whose host is a DNS name, and (``in_domain``) that host the
        deployment's SIP domain: its pools home no one else."""
        uri = value if value.startswith(("sip:", "sips:")) else f"sip:{value}"
        if "@" not in uri:
            uri = f"{uri}@{domain}"
        example = f"a SIP URI such as sip:alice@{domain}"
        shown = repr(value[:80])
        try:
            parsed = SipUri.parse(uri)
            aor = normalize_aor(uri)
        except SipError:
            self.ctx.fail("user", i, key, f"{example}, not {shown}")
        if parsed.user is None or parsed.scheme not in ("sip", "sips"):
            self.ctx.fail("user", i, key, f"{example} (with a user part), not {shown}")
        if not _USER_PART.match(parsed.user):
            self.ctx.fail(
                "user",
                i,
                key,
                f"{example}, not {shown}: a user part holds letters, digits and -_.!~*'()&=+$,/ "
                "(others escaped as %XX; RFC 3261 §25.1)",
            )
        problem = dns_name_problem(parsed.host)
        if problem is not None:
            self.ctx.fail("user", i, key, f"{example}, not {shown}: its host has {problem}")
        if in_domain and parsed.host != domain:
            self.ctx.fail(
                "user",
                i,
                key,
                f"a user of the deployment's SIP domain (sip:...@{domain}), not {shown}: its "
                "pools home no other domain's users",
            )
        # Interned: the registrar's caches and bindings intern the AORs they normalise too
        # (emulator/registrar/register.py), so a user's address is one string in the process.
        return sys.intern(aor)

    def dns(self, domain: str, pools: tuple[PoolSpec, ...]) -> DnsSpec:
        ctx = self.ctx
        t = ctx.table(self.data, "dns")
        ctx.unknown(t, _DNS_KEYS, "dns", None)
        address = self.address(t, "address", "dns", None) if "address" in t else "127.0.0.10"
        port = ctx.integer(t, "port", "dns", None, default=5353, low=0, high=65535)
        zones_raw = t.get("zones", [domain])
        if (
            not isinstance(zones_raw, list)
            or not zones_raw
            or not all(isinstance(z, str) for z in zones_raw)
        ):
            ctx.fail("dns", None, "zones", 'a list of zone names, e.g. ["contoso.test"]')
        for zone in zones_raw:
            problem = dns_name_problem(normalize_name(zone))
            if problem is not None:
                ctx.fail("dns", None, "zones", f"DNS names, not {zone[:80]!r} ({problem})")
        zones = tuple(dict.fromkeys(normalize_name(z) for z in zones_raw))
        ttl = ctx.integer(t, "ttl", "dns", None, default=300, low=0, high=2**31 - 1)
        pool_records = ctx.boolean(t, "pool_records", "dns", None, True)
        additional = ctx.boolean(t, "additional", "dns", None, False)

        def in_zone(name: str) -> bool:
            return any(name == z or name.endswith("." + z) for z in zones)

        if pool_records:
            for i, pool in enumerate(pools):
                if not in_zone(pool.fqdn):
                    ctx.fail(
                        "pool",
                        i,
                        "fqdn",
                        f"a name inside a zone of the fake DNS ({', '.join(zones)}); add "
                        f"its zone to dns.zones",
                    )
        records: list[DnsRecord] = []
        pinned: list[bool] = []
        dns_ctx = ctx.child("dns")
        for i, srv in enumerate(dns_ctx.tables(t, "srv")):
            dns_ctx.unknown(srv, _SRV_KEYS, "srv", i)
            name = normalize_name(dns_ctx.string(srv, "name", "srv", i, required=True))
            target = normalize_name(dns_ctx.string(srv, "target", "srv", i, required=True))
            _check_name(dns_ctx, "srv", i, "name", name, service=True)
            if target != ".":  # "." means "no service here" (RFC 2782)
                _check_name(dns_ctx, "srv", i, "target", target)
            if not in_zone(name):
                dns_ctx.fail("srv", i, "name", f"a name inside a zone ({', '.join(zones)})")
            if srv_transport(name) is None:
                dns_ctx.fail(
                    "srv",
                    i,
                    "name",
                    "an SRV owner name of the form _service._proto.domain, e.g. "
                    f"_sipinternaltls._tcp.{domain}",
                )
            pool_target = next((p for p in pools if p.fqdn == target), None)
            port_given = "port" in srv
            if not port_given and pool_target is None and target != ".":
                dns_ctx.fail("srv", i, "port", "a port (required when the target is not a pool)")
            transport = srv_transport(name)
            if (
                not port_given
                and pool_target is not None
                and transport is not None
                and pool_target.port(transport) is None
            ):
                dns_ctx.fail(
                    "srv",
                    i,
                    "target",
                    f"a pool serving {transport.upper()} ({target} does not), or give a port",
                )
            pool_port = pool_target.port(transport) if pool_target and transport else None
            srv_port = dns_ctx.integer(
                srv, "port", "srv", i, default=pool_port or 0, low=0, high=65535
            )
            records.append(
                SrvRecord(
                    name,
                    dns_ctx.integer(srv, "priority", "srv", i, default=0, low=0, high=65535),
                    dns_ctx.integer(srv, "weight", "srv", i, default=0, low=0, high=65535),
                    srv_port,
                    target,
                    dns_ctx.integer(srv, "ttl", "srv", i, default=ttl, low=0, high=2**31 - 1),
                )
            )
            pinned.append(port_given and srv_port != pool_port)
        for i, a in enumerate(dns_ctx.tables(t, "a")):
            dns_ctx.unknown(a, _A_KEYS, "a", i)
            name = normalize_name(dns_ctx.string(a, "name", "a", i, required=True))
            _check_name(dns_ctx, "a", i, "name", name)
            if not in_zone(name):
                dns_ctx.fail("a", i, "name", f"a name inside a zone ({', '.join(zones)})")
            value = dns_ctx.string(a, "address", "a", i, required=True)
            try:
                record = AddressRecord(
                    name,
                    value,
                    dns_ctx.integer(a, "ttl", "a", i, default=ttl, low=0, high=2**31 - 1),
                )
            except ValueError:
                dns_ctx.fail("a", i, "address", f"an IPv4 or IPv6 address, not {value!r}")
            records.append(record)
            pinned.append(True)
        for i, n in enumerate(dns_ctx.tables(t, "naptr")):
            records.append(_naptr(dns_ctx, n, i, domain, ttl, in_zone))
            pinned.append(True)
        return DnsSpec(
            address, port, zones, tuple(records), tuple(pinned), pool_records, additional, ttl
        )


def _check_name(
    ctx: TomlContext, table: str, i: int, key: str, name: str, *, service: bool = False
) -> None:
    problem = dns_name_problem(name, service=service)
    if problem is not None:
        ctx.fail(table, i, key, f"a DNS name, not {name[:80]!r} ({problem})")


def _naptr(
    ctx: TomlContext,
    n: Mapping[str, Any],
    i: int,
    domain: str,
    ttl: int,
    in_zone: Callable[[str], bool],
) -> DnsRecord:
    """One ``[[dns.naptr]]`` (RFC 3403; for SIP, RFC 3263 §4.1): a NAPTR record of the domain
    pointing at an SRV name, e.g. ``service = "SIPS+D2T"``, ``replacement =
    "_sips._tcp.contoso.test"``."""
    from fakedns.records import NaptrRecord

    ctx.unknown(n, _NAPTR_KEYS, "naptr", i)
    name = normalize_name(ctx.string(n, "name", "naptr", i, default=domain))
    _check_name(ctx, "naptr", i, "name", name)
    replacement = normalize_name(ctx.string(n, "replacement", "naptr", i, default="."))
    if replacement not in ("", "."):
        _check_name(ctx, "naptr", i, "replacement", replacement, service=True)
    if not in_zone(name):
        ctx.fail("naptr", i, "name", "a name inside a zone of the fake DNS")
    regexp = n.get("regexp", "")
    if not isinstance(regexp, str):
        ctx.fail("naptr", i, "regexp", 'a string ("" for SIP, RFC 3263 §4.1)')
    try:
        return NaptrRecord(
            name,
            ctx.integer(n, "order", "naptr", i, default=10, low=0, high=65535),
            ctx.integer(n, "preference", "naptr", i, default=10, low=0, high=65535),
            ctx.string(n, "flags", "naptr", i, default="s"),
            ctx.string(n, "service", "naptr", i, required=True),
            regexp,
            ctx.string(n, "replacement", "naptr", i, default="."),
            ctx.integer(n, "ttl", "naptr", i, default=ttl, low=0, high=2**31 - 1),
        )
    except ValueError as exc:
        ctx.fail_text("naptr", i, None, str(exc))
