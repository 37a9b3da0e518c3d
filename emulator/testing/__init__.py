"""Run a live sipemu deployment from tests: :class:`RunningDeployment` and a factory.

:class:`RunningDeployment` runs a :class:`~emulator.live.deployment.Deployment` on a
background thread with its own event loop, and offers the same control API synchronously, so it
works from plain tests and from async tests alike (calls block the caller for as long as the
server thread needs, at most ``timeout`` seconds each).  An exception raised inside the server
thread (a bug in a core, say) is re-raised in the test at the next call or at :meth:`stop`
(pytest-httpserver style).

``netns=True`` (or a name) runs the deployment's thread in a private network namespace of its
own (root only: :func:`emulator.live.netns.isolate_thread`), so its faults are packet-level;
the test process stays where it is, and reaches the pools through sockets made in that
namespace (:meth:`RunningDeployment.socket`) or, with a name, ``ip netns exec NAME program``.

The pytest fixtures built on it (``sipemu``, ``sipemu_factory``, ``sipemu_netns``) live in
:mod:`emulator.testing.plugin`, registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from emulator.live.deployment import Deployment, EndpointRow
    from emulator.live.netns import FaultMode, Isolation
    from emulator.net import Address, TransportName
    from emulator.operations import Outcome
    from emulator.registrar.pool import Binding, PoolStatus
    from emulator.topology import Topology

__all__ = ["DeploymentFactory", "RunningDeployment", "ServerThreadError", "resolve_topology"]

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
LOG_LINES_KEPT = 100_000


class ServerThreadError(RuntimeError):
    """The deployment's thread died or stopped answering; the cause is chained."""


def resolve_topology(topology: str | Path | Topology | None) -> Topology:
    """``None``: the default topology; a path: that file; a Topology: itself."""
    from emulator.topology import Topology, default_topology, load_topology

    if topology is None:
        return default_topology()
    if isinstance(topology, Topology):
        return topology
    return load_topology(topology)


class RunningDeployment:
    """A :class:`Deployment` on its own thread and event loop, driven synchronously.

    ``kwargs`` go to :class:`Deployment` (``seed``, ``quiet``, ``ca_dir``,
    ``allow_non_loopback``, ``log``...).  Without a ``log``, lines are kept in memory and read
    with :meth:`log_lines`.  Use as a context manager or call :meth:`start` / :meth:`stop`.
    ``netns``: True (or a name under /run/netns) runs the deployment in a private network
    namespace (see the module docstring); its faults are then packet-level.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        netns: bool | str = False,
        **kwargs: Any,
    ) -> None:
        from emulator.live.deployment import Deployment

        self.topology = topology
        self.netns = netns
        self.isolation: Isolation | None = None
        """The deployment thread's namespace (with ``netns``), once started."""
        self.timeout = timeout
        self._lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._user_log: Callable[[str], None] | None = kwargs.pop("log", None)
        self.deployment: Deployment = Deployment(topology, log=self._on_log, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._errors: list[BaseException] = []
        self._errors_lock = threading.Lock()
        self._stopped = False

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> RunningDeployment:
        """Start the thread and the deployment; raises what ``Deployment.start`` raised."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(
            target=self._run, name=f"sipemu-{self.topology.domain}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(self.timeout):
            raise ServerThreadError(f"the deployment did not start within {self.timeout} s")
        if self._start_error is not None:
            self._thread.join(self.timeout)
            self._stopped = True
            raise self._start_error
        return self

    def _run(self) -> None:
        if self.netns is not False:
            from emulator.live.netns import isolate_thread

            try:  # before the loop: its executor threads are made from this one
                self.isolation = isolate_thread(self.netns if isinstance(self.netns, str) else None)
            except BaseException as exc:
                self._start_error = exc
                self._ready.set()
                return
        try:
            self._serve()
        finally:
            if self.isolation is not None:
                self.isolation.close()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_loop_error)
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self.deployment.start())
            except BaseException as exc:  # handed to the starting thread, which re-raises
                self._start_error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def stop(self) -> None:
        """Stop the deployment and the thread (idempotent); re-raises server-thread errors."""
        if self._stopped:
            self.check()
            return
        self._stopped = True
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            try:
                future = asyncio.run_coroutine_threadsafe(self.deployment.stop(), loop)
                future.result(self.timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(self.timeout)
        self.check()

    def __enter__(self) -> RunningDeployment:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- errors ------------------------------------------------------------------------------

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        # Socket-level noise (a peer resetting, a failed TLS handshake) is the network's
        # business, not a bug: only other exceptions fail the test.
        if isinstance(exc, Exception) and not isinstance(exc, OSError):
            with self._errors_lock:
                self._errors.append(exc)
        loop.default_exception_handler(context)

    def check(self) -> None:
        """Raise the first exception the server thread hit since the last check, if any."""
        with self._errors_lock:
            if not self._errors:
                return
            first = self._errors[0]
            self._errors.clear()
        first.add_note("(raised in the sipemu deployment thread)")
        raise first

    # -- calling into the loop ---------------------------------------------------------------

    def _run_coroutine(self, coroutine: Coroutine[Any, Any, T], what: str) -> T:
        self.check()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive() or self._stopped:
            coroutine.close()
            raise ServerThreadError(f"cannot {what}: the deployment is not running")
        if threading.get_ident() == thread.ident:
            coroutine.close()
            raise ServerThreadError(f"cannot {what} from the deployment's own thread (deadlock)")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            result = future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ServerThreadError(f"{what} did not finish within {self.timeout} s") from None
        self.check()
        return result

    def call(self, function: Callable[[Deployment], T], what: str = "call") -> T:
        """Run ``function(deployment)`` on the deployment's thread and return its result."""

        async def run() -> T:
            return function(self.deployment)

        return self._run_coroutine(run(), what)

    # -- control API (the Deployment's, synchronous) -----------------------------------------

    def stop_pool(self, fqdn: str) -> None:
        self._run_coroutine(self.deployment.stop_pool(fqdn), f"stop pool {fqdn}")

    def start_pool(self, fqdn: str) -> None:
        self._run_coroutine(self.deployment.start_pool(fqdn), f"start pool {fqdn}")

    def disable_nic(self, fqdn: str, transport: TransportName | None = None) -> None:
        """Silence the pool's host (``transport``: that one only, packet mode)."""
        self._run_coroutine(
            self.deployment.disable_nic(fqdn, transport), f"disable the NIC of {fqdn}"
        )

    def enable_nic(self, fqdn: str, transport: TransportName | None = None) -> None:
        self._run_coroutine(
            self.deployment.enable_nic(fqdn, transport), f"enable the NIC of {fqdn}"
        )

    # -- packet-level faults (a deployment in a private namespace: netns=True) ---------------

    @property
    def fault_mode(self) -> FaultMode:
        """``packet`` or ``in-process``."""
        return self.call(lambda d: d.fault_mode, "read the fault mode")

    def refuse(self, fqdn: str, transport: TransportName | None = None) -> None:
        """The pool's host refuses (ICMP port unreachable, TCP RST); packet mode."""
        self._run_coroutine(self.deployment.refuse(fqdn, transport), f"make {fqdn} refuse")

    def partition(self, a: str, b: str, *, oneway: bool = False) -> None:
        """Drop packets between ``a`` and ``b`` (pools, ``dns`` or addresses); packet mode."""
        self.call(lambda d: d.partition(a, b, oneway=oneway), "make a partition")

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        self.call(lambda d: d.heal(a, b), "heal partitions")

    def link(
        self,
        a: str,
        b: str,
        *,
        latency: float = 0.0,
        loss: float = 0.0,
        jitter: float = 0.0,
        oneway: bool = False,
    ) -> None:
        """Shape the link between ``a`` and ``b`` with netem; packet mode."""
        self.call(
            lambda d: d.link(a, b, latency=latency, loss=loss, jitter=jitter, oneway=oneway),
            "shape a link",
        )

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A new socket in the deployment's network namespace (made on its thread; a socket
        stays in the namespace it was made in), for the test's own client side."""
        return self.call(lambda d: socket.socket(family, kind), "make a socket")

    def admin(self, action: str, **params: object) -> Outcome:
        """An administrative or DR action (``emulator.operations.ADMIN_ACTIONS``), applied to
        the running pools before this returns; the outcome says whether it was refused.
        ``force-move`` names its source pool with ``**{"from": fqdn, "to": fqdn}``."""
        return self._run_coroutine(self.deployment.admin(action, **params), f"perform {action}")

    def chat_available(self) -> bool | None:
        """Whether the Persistent Chat service works (None: the topology has none)."""
        return self.call(lambda d: d.chat_available(), "read the Persistent Chat state")

    def bindings(self, fqdn: str | None = None) -> list[Binding]:
        return self.call(lambda d: d.bindings(fqdn), "read bindings")

    def pool_status(self, fqdn: str) -> PoolStatus:
        return self.call(lambda d: d.pool_status(fqdn), f"read the status of {fqdn}")

    def is_running(self, fqdn: str) -> bool:
        return self.call(lambda d: d.is_running(fqdn), f"read the state of {fqdn}")

    def endpoints(self) -> list[EndpointRow]:
        return self.call(lambda d: d.endpoints(), "list endpoints")

    def pool_address(self, fqdn: str, transport: TransportName = "udp") -> Address:
        return self.call(lambda d: d.pool_address(fqdn, transport), "read a pool address")

    @property
    def dns(self) -> Any:
        """The fake DNS authority, proxied: every method call runs on the deployment's thread.

        ``running.dns.add(record)``, ``running.dns.set_fault(...)``: same signatures as
        :class:`fakedns.authority.Authority`.
        """
        return _AuthorityProxy(self)

    @property
    def dns_address(self) -> Address:
        return self.call(lambda d: d.dns_address, "read the DNS address")

    @property
    def ca_path(self) -> Path:
        return self.call(lambda d: d.ca_path, "read the CA path")

    @property
    def seed(self) -> int:
        return self.deployment.seed

    def log_lines(self) -> list[str]:
        """The log lines so far (the last 100,000), when no ``log`` callback was given."""
        return list(self._lines)

    def _on_log(self, line: str) -> None:
        self._lines.append(line)
        if self._user_log is not None:
            self._user_log(line)

    # -- bounded waiting ---------------------------------------------------------------------

    def wait_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        interval: float = 0.02,
        what: str = "the condition",
    ) -> None:
        """Poll ``predicate`` (in the calling thread) until true; TimeoutError after ``timeout``.

        A bounded poll: for conditions the deployment has no event for (a peer state, a
        binding appearing).
        """
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} did not happen within {timeout} s")
            self.check()
            time.sleep(interval)

    def wait_for_peer_state(
        self, fqdn: str, peer: str, state: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until pool ``fqdn`` sees ``peer`` in ``state`` (``up``, ``heartbeat-lost``...)."""
        self.wait_until(
            lambda: self.pool_status(fqdn).peers.get(peer) == state,
            timeout=timeout,
            what=f"{fqdn} seeing {peer} {state}",
        )

    def __repr__(self) -> str:
        return f"<RunningDeployment {self.topology.domain} seed={self.seed}>"


class _AuthorityProxy:
    """Forwards attribute reads and method calls to the Authority on the deployment's thread."""

    def __init__(self, running: RunningDeployment) -> None:
        self._running = running

    def __getattr__(self, name: str) -> Any:
        value = self._running.call(lambda d: getattr(d.dns, name), f"read dns.{name}")
        if not callable(value):
            return value

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._running.call(
                lambda d: getattr(d.dns, name)(*args, **kwargs), f"call dns.{name}"
            )

        return method


class DeploymentFactory:
    """Makes :class:`RunningDeployment` objects on ephemeral ports; :meth:`stop_all` at the end."""

    def __init__(self) -> None:
        self._running: list[RunningDeployment] = []

    def __call__(
        self, topology: str | Path | Topology | None = None, **kwargs: Any
    ) -> RunningDeployment:
        resolved = resolve_topology(topology).with_ephemeral_ports()
        running = RunningDeployment(resolved, **kwargs)
        self._running.append(running)
        return running.start()

    def __iter__(self) -> Iterator[RunningDeployment]:
        return iter(list(self._running))

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for running in self._running:
            try:
                running.stop()
            except Exception as exc:  # stop them all, then report the first failure
                errors.append(exc)
        self._running.clear()
        if errors:
            raise errors[0]
