"""The control API's server: aiohttp on the deployment's event loop.

:class:`ControlServer` subscribes the event hub and the metrics to the deployment
(:meth:`Deployment.subscribe`, before the deployment starts so that every pool core traces its
exchanges), then serves :func:`emulator.control.api.build_app` on one TCP address.  Addresses
outside the loopback range are refused unless allowed, like the pools' (docs/live.md).
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable

from aiohttp import web

from emulator.control.api import CLOSING, build_app
from emulator.control.events import EventHub
from emulator.control.metrics import DeploymentMetrics
from emulator.control.steps import ClientAgents
from emulator.live.deployment import Deployment, DeploymentError
from emulator.live.sockets import describe_os_error

__all__ = [
    "DEFAULT_CONTROL",
    "TOKEN_ENV",
    "ControlServer",
    "parse_control_address",
]

DEFAULT_CONTROL = "127.0.0.1:5380"
"""Where ``sipemu up`` serves the control API unless told otherwise (``--control``), and
where ``sipemu ctl`` looks for it (a fixed port, so that a script needs no discovery)."""
TOKEN_ENV = "SIPEMU_CONTROL_TOKEN"
"""The environment variable both ``sipemu up`` and ``sipemu ctl`` read the bearer token from."""
ADDRESS_ENV = "SIPEMU_CONTROL"
"""The environment variable ``sipemu ctl`` reads the API's ADDR:PORT from."""


def parse_control_address(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ValueError (a sentence)."""
    raw = text.strip()
    if raw.startswith("http://"):
        raw = raw[len("http://") :].rstrip("/")
    if raw.startswith("["):
        host, sep, port_text = raw[1:].partition("]:")
    else:
        host, sep, port_text = raw.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not ADDR:PORT (e.g. 127.0.0.1:5380, [::1]:5380)")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number 0..65535") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: the port must be a number 0..65535")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ControlServer:
    """The HTTP/JSON control API of ``deployment`` on ``host``:``port`` (0: ephemeral).

    ``token``: a bearer token every request must carry (None: read :data:`TOKEN_ENV`; an
    empty string: no token).  ``fallback``: listen on an ephemeral port when ``port`` is taken
    (``sipemu up``'s default address; :attr:`fell_back` says it happened).  ``agents``: the
    client agents running beside the deployment (``sipemu run --realtime``): ``POST /steps``
    then takes client steps, and ``/status`` lists them; feed their state changes to
    :meth:`DeploymentMetrics.observe_client` (:attr:`metrics`) for ``sipemu_clients``.
    Construct it before ``deployment.start()``; :meth:`start` after.
    """

    def __init__(
        self,
        deployment: Deployment,
        host: str,
        port: int,
        *,
        token: str | None = None,
        allow_non_loopback: bool = False,
        fallback: bool = False,
        agents: ClientAgents | None = None,
    ) -> None:
        if not allow_non_loopback and not is_loopback(host):
            raise DeploymentError(
                f"the control API address {host} is not a loopback address; it would let "
                "anyone who reaches it stop pools and edit DNS (use --allow-non-loopback, "
                "and a --control-token)"
            )
        self.deployment = deployment
        self.host = host
        self.port = port
        self.token = os.environ.get(TOKEN_ENV, "") if token is None else token
        self.hub = EventHub()
        self.metrics = DeploymentMetrics(deployment)
        self.hub.listeners.append(self.metrics.observe)
        self._unsubscribe: Callable[[], None] | None = deployment.subscribe(self.hub)
        self.agents = agents
        self._app = build_app(
            deployment, self.hub, self.metrics, token=self.token or None, agents=agents
        )
        self._runner: web.AppRunner | None = None
        self._bound: tuple[str, int] | None = None
        self._fallback = fallback
        self.fell_back = False
        """True when ``port`` was taken and ``fallback`` made it listen on an ephemeral one."""

    @property
    def address(self) -> tuple[str, int]:
        if self._bound is None:
            raise RuntimeError("the control API is not started")
        return self._bound

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def start(self) -> None:
        """Listen.  DeploymentError (a sentence) when the address cannot be bound."""
        # shutdown_timeout: how long stop() lets requests in progress finish.
        runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            try:
                await site.start()
            except OSError as exc:
                if not (self._fallback and exc.errno == errno.EADDRINUSE):
                    raise
                site = web.TCPSite(runner, self.host, 0)
                await site.start()
                self.fell_back = True
        except OSError as exc:
            await runner.cleanup()
            raise DeploymentError(
                f"cannot serve the control API on {self.host}:{self.port}: "
                f"{describe_os_error(exc)} (choose another with --control ADDR:PORT, port 0 "
                "for an ephemeral one, or --control off)"
            ) from None
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        name = sockets[0].getsockname() if sockets else (self.host, self.port)
        self._bound = (str(name[0]), int(name[1]))

    async def stop(self) -> None:
        """Close the listener and end every event stream (idempotent)."""
        self._app[CLOSING].set()
        self.hub.wake_all()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
