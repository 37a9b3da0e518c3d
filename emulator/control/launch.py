"""What ``sipemu up`` adds for the control plane: its options, and starting and stopping the
control API and the DNS update policy around the deployment (emulator/cli.py calls these)."""

from __future__ import annotations

import argparse
from typing import TextIO

from emulator.control.server import (
    DEFAULT_CONTROL,
    TOKEN_ENV,
    ControlServer,
    parse_control_address,
)
from emulator.live.deployment import Deployment, DeploymentError
from fakedns.authority import TsigKey

__all__ = ["add_up_options", "after_start", "before_start", "parse_tsig_key"]


def add_up_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--control",
        metavar="ADDR:PORT",
        help=f"serve the HTTP/JSON control API there (default {DEFAULT_CONTROL}, or an "
        "ephemeral port when that is taken; port 0: ephemeral; off: none)",
    )
    parser.add_argument(
        "--control-token",
        metavar="TOKEN",
        help=f"require this bearer token on the control API (default: ${TOKEN_ENV} if set)",
    )
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


def before_start(deployment: Deployment, args: argparse.Namespace) -> ControlServer | None:
    """Check the options and subscribe the control API (before the deployment starts)."""
    try:
        keys = [parse_tsig_key(k) for k in args.dns_tsig_key]
        if keys and args.no_dns_updates:
            raise ValueError("--dns-tsig-key and --no-dns-updates contradict each other")
        given = args.control
        if given is not None and str(given).strip().lower() in ("off", "none", "no", ""):
            return None
        host, port = parse_control_address(given or DEFAULT_CONTROL)
    except ValueError as exc:
        raise DeploymentError(str(exc)) from None
    return ControlServer(
        deployment,
        host,
        port,
        token=args.control_token,
        allow_non_loopback=args.allow_non_loopback,
        fallback=given is None,  # the default port may be another sipemu's: take any other
    )


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
        await control.start()
        if control.fell_back:
            out.write(
                f"control API: {DEFAULT_CONTROL} is in use (another sipemu up?); serving on an "
                "ephemeral port instead (sipemu ctl --control ADDR:PORT)\n"
            )
        guarded = " (bearer token required)" if control.token else ""
        out.write(f"control API: {control.url}/ (OpenAPI: {control.url}/openapi.json){guarded}\n")
    keys = deployment.dns.update_keys
    if keys is None:
        out.write("DNS updates: refused\n")
    else:
        signed = f"TSIG-signed with {', '.join(k.name for k in keys)}" if keys else "any"
        out.write(f"DNS updates (RFC 2136): {signed}\n")
