"""What ``sipemu up`` (and ``sipemu run --realtime``) add for the control plane: their options,
and starting and stopping the control API and the DNS update policy around the deployment
(emulator/cli.py and emulator/scenario/realtime.py call these)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TextIO

from emulator.control.server import (
    DEFAULT_CONTROL,
    TOKEN_ENV,
    ControlServer,
    parse_control_address,
)
from emulator.control.steps import ClientAgents
from emulator.live.deployment import Deployment, DeploymentError
from fakedns.authority import TsigKey

__all__ = [
    "ControlOptions",
    "add_control_options",
    "add_up_options",
    "after_start",
    "before_start",
    "control_options",
    "parse_tsig_key",
    "start_control",
]


def add_control_options(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """``--control`` and ``--control-token`` (``prefix``: words that start their help)."""
    parser.add_argument(
        "--control",
        metavar="ADDR:PORT",
        help=f"{prefix}serve the HTTP/JSON control API there (default {DEFAULT_CONTROL}, or an "
        "ephemeral port when that is taken; port 0: ephemeral; off: none)",
    )
    parser.add_argument(
        "--control-token",
        metavar="TOKEN",
        help=f"{prefix}require this bearer token on the control API (default: ${TOKEN_ENV} if set)",
    )


def add_up_options(parser: argparse.ArgumentParser) -> None:
    add_control_options(parser)
    parser.add_argument(
        "--dns-tsig-key",
        metavar="[ALG:]NAME:SECRET",
        action="append",
        default=[],
        help="accept only RFC 2136 updates signed with this TSIG key (repeatable; as "
        "nsupdate -y; ALG default hmac-sha256)",
    )
    parser.add_argument(
        "--no-dns-updates",
        action="store_true",
        help="refuse RFC 2136 updates (NOTIMP); by default any update is accepted",
    )


def parse_tsig_key(text: str) -> TsigKey:
    """``[ALG:]NAME:SECRET`` (nsupdate -y's syntax) -> a key; ValueError (a sentence)."""
    parts = text.split(":")
    try:
        if len(parts) == 2:
            return TsigKey(parts[0], parts[1])
        if len(parts) == 3:
            return TsigKey(parts[1], parts[2], parts[0])
    except ValueError as exc:
        raise ValueError(f"--dns-tsig-key: {exc}") from None
    raise ValueError(f"--dns-tsig-key {text!r}: expected [ALG:]NAME:SECRET")


@dataclass(frozen=True, slots=True)
class ControlOptions:
    """Where and how to serve the control API (``--control``, ``--control-token``)."""

    host: str
    port: int
    token: str | None = None
    """None: read ``$SIPEMU_CONTROL_TOKEN``."""
    allow_non_loopback: bool = False
    fallback: bool = False
    """Listen on an ephemeral port when ``port`` is taken (the default address only)."""

    def server(self, deployment: Deployment, agents: ClientAgents | None = None) -> ControlServer:
        """The control API of ``deployment`` (subscribed: construct it before the deployment
        starts); ``agents``: the client agents running beside it, if any."""
        return ControlServer(
            deployment,
            self.host,
            self.port,
            token=self.token,
            allow_non_loopback=self.allow_non_loopback,
            fallback=self.fallback,
            agents=agents,
        )


def control_options(args: argparse.Namespace) -> ControlOptions | None:
    """``--control`` and ``--control-token`` -> options (None: ``--control off``).
    DeploymentError (a sentence) for a bad address."""
    given = args.control
    if given is not None and str(given).strip().lower() in ("off", "none", "no", ""):
        return None
    try:
        host, port = parse_control_address(given or DEFAULT_CONTROL)
    except ValueError as exc:
        raise DeploymentError(f"--control: {exc}") from None
    return ControlOptions(
        host,
        port,
        token=args.control_token,
        allow_non_loopback=bool(getattr(args, "allow_non_loopback", False)),
        fallback=given is None,  # the default port may be another sipemu's: take any other
    )


def before_start(deployment: Deployment, args: argparse.Namespace) -> ControlServer | None:
    """Check the options and subscribe the control API (before the deployment starts)."""
    try:
        keys = [parse_tsig_key(k) for k in args.dns_tsig_key]
        if keys and args.no_dns_updates:
            raise ValueError("--dns-tsig-key and --no-dns-updates contradict each other")
    except ValueError as exc:
        raise DeploymentError(str(exc)) from None
    options = control_options(args)
    return None if options is None else options.server(deployment)


async def start_control(control: ControlServer, out: TextIO) -> None:
    """Start the control API and print where it is."""
    await control.start()
    if control.fell_back:
        out.write(
            f"control API: {DEFAULT_CONTROL} is in use (another sipemu?); serving on an "
            "ephemeral port instead (sipemu ctl --control ADDR:PORT)\n"
        )
    guarded = " (bearer token required)" if control.token else ""
    out.write(f"control API: {control.url}/ (OpenAPI: {control.url}/openapi.json){guarded}\n")


async def after_start(
    deployment: Deployment,
    control: ControlServer | None,
    args: argparse.Namespace,
    out: TextIO,
) -> None:
    """Set the DNS update policy, start the control API and print where it is."""
    if not args.no_dns_updates:
        deployment.dns.accept_updates([parse_tsig_key(k) for k in args.dns_tsig_key])
    if control is not None:
        await start_control(control, out)
    keys = deployment.dns.update_keys
    if keys is None:
        out.write("DNS updates: refused\n")
    else:
        signed = f"TSIG-signed with {', '.join(k.name for k in keys)}" if keys else "any"
        out.write(f"DNS updates (RFC 2136): {signed}\n")
