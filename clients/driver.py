"""The asyncio driver of client agents: each :class:`~clients.agent.Agent` on real sockets.

Thin, like the pools' driver (it *is* the pools' :class:`~emulator.live.driver.CoreDriver`):
one UDP socket per agent, on an ephemeral port of its local address, carries its SIP over UDP
and its DNS queries (the agent tells the two apart by the remote address); TCP and TLS flows
to registrars are opened on demand when the agent sends on them.  Every decision is the
agent's: the driver only hands it bytes, connection failures and timer ticks with
``now = loop.time() * time_scale``.

:class:`AgentHost` runs one agent; :class:`Fleet` runs many and waits for conditions on their
states (used by ``sipemu client signin``, ``sipemu clients run``, the live tests and the
benchmark).
"""

from __future__ import annotations

import asyncio
import random
import resource
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from clients.agent import Agent
from clients.cache import CacheStore, MemoryCacheStore, SaveCache, read_entry
from clients.events import AgentEvent, ClientStateChanged
from clients.profile import Profile, get_profile
from clients.rng import SmallRandom
from emulator.live.driver import CoreDriver
from emulator.net import Address, Effect
from emulator.wire.live import WireRecorder

__all__ = ["AgentHost", "ClientConfig", "Fleet", "client_ssl_context", "raise_file_limit"]

EventSink = Callable[[AgentEvent], None]


def client_ssl_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """TLS for agents: verify registrars against ``ca_file`` (a ``sipemu up`` CA), or not at all.

    Agents connect to a registrar by the address its name resolved to; certificates made by
    ``sipemu up`` name both the pool FQDN and its address, so verification by address works
    against the emulator.  Without a CA file, certificates are not verified (a real deployment's
    CA is usually not at hand; the point of these agents is registration behaviour).
    """
    if ca_file is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))


FILES_PER_AGENT = 3
"""Descriptors :meth:`Fleet.start` reserves per agent (the UDP socket, up to two streams)."""


def raise_file_limit(wanted: int) -> int:
    """Raise the soft limit of open files towards ``wanted`` (capped at the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One client to run: who, how, and where its endpoint cache lives."""

    name: str
    user: str
    profile: str | Profile = "lync2010"
    """A profile name (``clients.profile.PROFILES``) or a Profile (e.g. with short timers)."""
    local_ip: str = "127.0.0.1"
    domain: str | None = None
    password: str | None = None
    """The user's password, answered to a registrar's challenge (clients/credentials.py);
    None: the client answers none (a 401 fails the target)."""


class AgentHost:
    """One agent on its own UDP socket (plus on-demand TCP/TLS flows).

    Call from the event loop's thread.  ``on_event`` receives every agent event.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        dns_server: Address,
        cache: CacheStore,
        rng: random.Random,
        client_ssl: ssl.SSLContext | None = None,
        on_event: EventSink | None = None,
        time_scale: float = 1.0,
        recorder: WireRecorder | None = None,
    ) -> None:
        self.config = config
        self.profile: Profile = (
            config.profile if isinstance(config.profile, Profile) else get_profile(config.profile)
        )
        self.dns_server = dns_server
        self.cache = cache
        self.rng = rng
        self._on_event = on_event
        self.state: ClientStateChanged | None = None
        self.agent: Agent | None = None
        self.driver = CoreDriver(
            config.name,
            config.local_ip,
            {"udp": 0},
            client_ssl=client_ssl or client_ssl_context(None),
            on_events=self._events,
            on_effect=self._perform,
            expect_pongs=True,
            time_scale=time_scale,
        )
        if recorder is not None:  # every message it sends and receives (emulator/wire)
            recorder.dns.add(dns_server)
            self.driver.recorder = recorder

    async def start(self) -> None:
        """Bind the socket and build the agent (signed out until :meth:`sign_in`)."""
        await self.driver.open()
        self._new_agent()

    def _new_agent(self) -> None:
        port = self.driver.bound["udp"]
        self.agent = Agent(
            self.config.name,
            self.config.user,
            profile=self.profile,
            rng=self.rng,
            dns_server=self.dns_server,
            local_ip=self.config.local_ip,
            sip_port=port,
            dns_port=port,
            domain=self.config.domain,
            password=self.config.password,
        )
        self.driver.attach(self.agent)

    def restart(self, *, keep_cache: bool = True) -> None:
        """The client process restarts: in-memory state (primary and backup learned from a
        301) is lost without unregistering; the endpoint cache survives unless
        ``keep_cache=False``; then the user signs in again."""
        if self.agent is not None and self.agent.wanted:
            self.agent.sign_out(self.driver.now(), unregister=False)
            self.driver.poke()
        if not keep_cache:
            self.cache.clear(self.agent.user if self.agent else self.config.user)
        self._new_agent()
        self.sign_in()

    def clear_cache(self) -> None:
        """Empty the user's endpoint cache (the agent's later rounds find nothing)."""
        user = self.agent.user if self.agent is not None else self.config.user
        self.cache.clear(user)
        if self.agent is not None:
            self.agent.cache_cleared()

    def _perform(self, effect: Effect) -> None:
        """The agent's cache writes (the agent never touches the store itself).  Done here,
        after the input that asked for it, in the loop's thread: one small file with fsync
        per registration."""
        if not isinstance(effect, SaveCache):
            raise TypeError(f"{self.config.name} asked for {effect!r}")
        self.cache.save(effect.entry)

    @property
    def address(self) -> Address:
        return (self.config.local_ip, self.driver.bound["udp"])

    def _events(self, events: Sequence[object]) -> None:
        for event in events:
            if isinstance(event, ClientStateChanged):
                self.state = event
                flow = self.agent.registrar_flow if self.agent is not None else None
                if event.state == "registered" and flow is not None and flow.reliable:
                    # Registered over TCP/TLS: UDP serves only DNS until the next discovery,
                    # so the socket is closed until then (one descriptor per agent, not two).
                    self.driver.suspend_udp()
            if self._on_event is not None:
                self._on_event(event)  # type: ignore[arg-type]

    def sign_in(self) -> None:
        assert self.agent is not None, "start() first"
        cached = (
            read_entry(self.cache, self.agent.user) if self.profile.uses_endpoint_cache else None
        )
        self.agent.sign_in(self.driver.now(), cached=cached)
        self.driver.poke()

    def add_contact(self, uri: str) -> None:
        """The user adds ``uri`` to its contact list; the outcome comes as a
        :class:`~clients.events.ClientActionDone` event (refused at once when not signed in)."""
        assert self.agent is not None, "start() first"
        self.agent.add_contact(self.driver.now(), uri)
        self.driver.poke()

    def sign_out(self) -> None:
        if self.agent is None or not self.agent.wanted:
            return
        self.agent.sign_out(self.driver.now())
        self.driver.poke()

    async def stop(self, *, unregister: bool = True, grace: float = 2.0) -> None:
        """Sign out (sending the unregistering REGISTER, answered within ``grace``) and close."""
        if unregister and self.agent is not None and self.agent.wanted:
            self.sign_out()
            deadline = asyncio.get_running_loop().time() + grace
            while self.agent.pending_unregister and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)  # bounded: the unregister's answer, or the grace time
        await self.driver.close()


class Fleet:
    """Many agents against one deployment, with waits on their states."""

    def __init__(
        self,
        configs: Iterable[ClientConfig],
        *,
        dns_server: Address,
        seed: int,
        caches: Callable[[ClientConfig], CacheStore] | None = None,
        client_ssl: ssl.SSLContext | None = None,
        on_event: EventSink | None = None,
        recorder: WireRecorder | None = None,
    ) -> None:
        self.seed = seed
        self._on_event = on_event
        self._changed = asyncio.Event()
        ssl_context = client_ssl or client_ssl_context(None)
        self.hosts: dict[str, AgentHost] = {}
        for config in configs:
            if config.name in self.hosts:
                raise ValueError(f"two clients are named {config.name!r}")
            cache = caches(config) if caches is not None else MemoryCacheStore()
            self.hosts[config.name] = AgentHost(
                config,
                dns_server=dns_server,
                cache=cache,
                # 48 bytes instead of random.Random's 2.5 KB, the same interface (clients/rng.py)
                rng=cast(random.Random, SmallRandom(f"{seed}:client:{config.name}")),
                client_ssl=ssl_context,
                on_event=self._event,
                recorder=recorder,
            )

    def _event(self, event: AgentEvent) -> None:
        if isinstance(event, ClientStateChanged):
            self._changed.set()
        if self._on_event is not None:
            self._on_event(event)

    async def start(self) -> None:
        # Per agent: its UDP socket and a connection to its registrar, and now and then a
        # second one (a probe of the primary, the connection being left behind).
        raise_file_limit(FILES_PER_AGENT * len(self.hosts) + 256)
        for host in self.hosts.values():
            await host.start()

    def sign_in(self, names: Iterable[str] | None = None) -> None:
        for name in names if names is not None else list(self.hosts):
            self.hosts[name].sign_in()

    async def stop(self, *, unregister: bool = True) -> None:
        await asyncio.gather(*(h.stop(unregister=unregister) for h in self.hosts.values()))

    def states(self) -> dict[str, ClientStateChanged | None]:
        return {name: host.state for name, host in self.hosts.items()}

    async def wait_until(
        self,
        predicate: Callable[[dict[str, ClientStateChanged | None]], bool],
        timeout: float,
    ) -> bool:
        """Wait (event-driven, bounded) until ``predicate(states)``; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.states()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return predicate(self.states())
        return True

    async def wait_for_state(
        self, state: str, names: Iterable[str] | None = None, *, timeout: float
    ) -> bool:
        wanted = list(names) if names is not None else list(self.hosts)

        def reached(states: dict[str, ClientStateChanged | None]) -> bool:
            return all((s := states[n]) is not None and s.state == state for n in wanted)

        return await self.wait_until(reached, timeout)
