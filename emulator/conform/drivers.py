"""How ``sipemu conform`` starts and stops each real SIP client program.

The driver interface (docs/conform.md): a driver is an object with

* ``name``: the program's name on the command line (``sipemu conform NAME``);
* ``profile``: the client profile (clients/profile.py) it is judged against;
* ``settings``: one line on the program settings the profile assumes;
* ``problem() -> str | None``: why it cannot run here (not installed), as a sentence;
* ``version() -> str``: the program's version, for the report;
* ``start(account, workdir) -> Program``: write its configuration into ``workdir`` (a fresh
  directory per situation) and start it, signing in as ``account``;
* ``stop(program)``: stop it (and wait for it).

:class:`Account` is everything a program is told: user, domain, the transport the situation
serves, the DNS server, the CA file of the pools' certificates, the Expires to ask for (None:
the program's default) and the local address to bind when the program can be told one.
Everything runs inside the private namespace (emulator/conform/namespace.py), as root there.

Adding a program (pjsua, SIPE through finch, a desk phone on a bridge): a class with the
attributes above, registered in :data:`DRIVERS`, and a client profile of the same behaviour.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["DRIVERS", "Account", "Baresip", "Driver", "Linphonec", "Program", "Sipe", "get_driver"]

CLIENT_ADDRESS = "127.0.0.100"
"""Where a program is told to bind, when it can be (any 127/8 address is on lo)."""


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    domain: str
    transport: str
    """``udp``, ``tcp`` or ``tls``: the transport the situation serves (SRV records exist for
    it); a driver that discovers the transport itself may ignore it."""
    dns_server: tuple[str, int]
    ca_file: Path
    expires: int | None = None
    local_address: str = CLIENT_ADDRESS


@dataclass
class Program:
    """A started program."""

    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    cleanup: list[list[str]]
    """Commands to run after it stopped (e.g. undo a bind mount)."""
    handle: object = None
    """What else the driver needs to stop it (SIPE: its
    :class:`~emulator.conform.purple.Purple`)."""


class Driver(Protocol):
    name: str
    profile: str
    settings: str
    transports: tuple[str, ...]
    """Transports the driver can make the program use; other situations are skipped."""
    not_judged: dict[str, str]
    """Situations this program is not run through, each with the reason (a sentence)."""

    def problem(self) -> str | None: ...

    def version(self) -> str: ...

    def start(self, account: Account, workdir: Path) -> Program: ...

    def stop(self, program: Program) -> None: ...


def _stop(program: Program) -> None:
    process = program.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    for command in program.cleanup:
        subprocess.run(command, capture_output=True, check=False)


def _missing(executable: str, package: str) -> str | None:
    if shutil.which(executable) is None:
        return (
            f"{executable} is not installed: install the Debian package {package} "
            f"(apt-get install -y {package}) to judge it"
        )
    return None


class Baresip:
    """baresip 1.0 (Debian ``baresip``): a config directory with ``config`` and ``accounts``."""

    name = "baresip"
    profile = "baresip"
    not_judged: dict[str, str] = {}
    transports: tuple[str, ...] = ("udp", "tcp", "tls")
    settings = (
        "an account <sip:USER@DOMAIN> without outbound proxy (RFC 3263 discovery: NAPTR, then "
        "SRV for TLS, TCP, UDP), default regint 3600, no RFC 5626 outbound, dns_server set "
        "to the fake DNS, sip_cafile the pools' CA"
    )

    def problem(self) -> str | None:
        return _missing("baresip", "baresip")

    def version(self) -> str:
        out = subprocess.run(
            ["baresip", "-h"], capture_output=True, text=True, check=False, timeout=10
        )
        found = re.search(r"baresip v(\S+)", out.stdout + out.stderr)
        return found.group(1) if found else "unknown"

    def start(self, account: Account, workdir: Path) -> Program:
        config = workdir / "baresip"
        config.mkdir(parents=True, exist_ok=True)
        host, port = account.dns_server
        (config / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"net_interface {account.local_address}",
                    f"sip_listen {account.local_address}:5060",
                    f"sip_cafile {account.ca_file}",
                    f"dns_server {host}:{port}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module_tmp uuid.so",
                    "module_tmp account.so",
                    "",
                ]
            )
        )
        params = "" if account.expires is None else f";regint={account.expires}"
        (config / "accounts").write_text(f"<sip:{account.user}@{account.domain}>{params}\n")
        (config / "contacts").write_text("")
        log = workdir / "baresip.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["baresip", "-f", str(config), "-s"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        return Program(process, workdir, log, [])

    def stop(self, program: Program) -> None:
        _stop(program)


def _wait_for(log: Path, marker: bytes, *, timeout: float) -> None:
    """Until the program's output holds ``marker`` (its prompt), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in log.read_bytes():
            return
        time.sleep(0.05)


class Linphonec:
    """linphonec 5.x (Debian ``linphone-cli``): a linphonerc; it resolves with the system's
    resolver configuration, so /etc/resolv.conf is bind-mounted (inside the private mount
    namespace only) to one naming the fake DNS, which listens on port 53."""

    name = "linphonec"
    profile = "linphone"
    not_judged: dict[str, str] = {}
    transports: tuple[str, ...] = ("udp",)
    """Only UDP: linphonec's command line sets no TCP or TLS port (see :meth:`start`)."""
    settings = (
        "one proxy config sip:DOMAIN;transport=T with identity sip:USER@DOMAIN, default "
        "reg_expires 3600, no STUN/ICE, root_ca the pools' CA, the system resolver pointed at "
        "the fake DNS"
    )

    def problem(self) -> str | None:
        return _missing("linphonec", "linphone-cli")

    def version(self) -> str:
        out = subprocess.run(
            ["linphonec", "-v"],
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )
        found = re.search(r"(\d+\.\d+(?:\.\d+)?)", out.stdout + out.stderr)
        return found.group(1) if found else "unknown"

    def start(self, account: Account, workdir: Path) -> Program:
        host, port = account.dns_server
        if port != 53:
            raise ValueError("linphonec asks the system resolver: the fake DNS must be on port 53")
        resolv = workdir / "resolv.conf"
        resolv.write_text(f"nameserver {host}\noptions timeout:2 attempts:1\n")
        subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
        rc = workdir / "linphonerc"
        expires = 3600 if account.expires is None else account.expires
        transport = account.transport
        parameter = "" if transport == "udp" else f";transport={transport}"
        rc.write_text(
            "\n".join(
                [
                    "[sip]",
                    "default_proxy=0",
                    f"root_ca={account.ca_file}",
                    "verify_server_certs=1",
                    "register_only_when_network_is_up=0",
                    "ipv6_enabled=0",
                    "[net]",
                    "firewall_policy=0",
                    "[sound]",
                    "playback_dev_id=",
                    "ringer_dev_id=",
                    "capture_dev_id=",
                    "[video]",
                    "capture=0",
                    "display=0",
                    "[proxy_0]",
                    f"reg_proxy=<sip:{account.domain}{parameter}>",
                    f"reg_identity=sip:{account.user}@{account.domain}",
                    f"reg_expires={expires}",
                    "reg_sendregister=1",
                    "publish=0",
                    "",
                ]
            )
        )
        log = workdir / "linphonec.log"
        env = dict(os.environ, HOME=str(workdir))
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["linphonec", "-c", str(rc), "-d", "6", "-l", str(workdir / "linphone-debug.log")],
                stdin=subprocess.PIPE,  # kept open: linphonec quits at the end of its input
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
            )
        program = Program(process, workdir, log, [["umount", "/etc/resolv.conf"]])
        # linphonec 5.1 reads no SIP port from the linphonerc ("ports" says 0: no listening
        # point, and the first REGISTER fails inside it, off the wire); its "ports sip N"
        # command sets the UDP port, and it then listens and registers.  3P, linphonec 5.1.65.
        _wait_for(log, b"linphonec>", timeout=15.0)
        assert process.stdin is not None
        process.stdin.write(b"ports sip 5070\n")
        process.stdin.flush()
        return program

    def stop(self, program: Program) -> None:
        process = program.process
        if process.poll() is None and process.stdin is not None:
            try:
                process.stdin.write(b"quit\n")
                process.stdin.flush()
                process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _stop(program)


def _resolver(workdir: Path, dns_server: tuple[str, int]) -> list[list[str]]:
    """Point the system resolver at the fake DNS: /etc/resolv.conf bind-mounted, in the
    private mount namespace only (emulator/conform/namespace.py); the command undoing it."""
    host, port = dns_server
    if port != 53:
        raise ValueError("the system resolver asks port 53: the fake DNS must be on port 53")
    resolv = workdir / "resolv.conf"
    resolv.write_text(f"nameserver {host}\noptions timeout:2 attempts:1\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    return [["umount", "/etc/resolv.conf"]]


def _trust(workdir: Path, ca_file: Path) -> list[list[str]]:
    """Make the pools' CA the only one libpurple trusts: its CA pool reads /etc/ssl/certs
    and /usr/share/purple/ca-certs, never a user directory, so a directory holding the CA
    alone is bind-mounted on /etc/ssl/certs (private mount namespace only); the command
    undoing it."""
    certs = workdir / "ca-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(ca_file, certs / "sipemu-ca.pem")
    subprocess.run(["mount", "--bind", str(certs), "/etc/ssl/certs"], check=True)
    return [["umount", "/etc/ssl/certs"]]


class Sipe:
    """pidgin-sipe 1.25 (Debian ``pidgin-sipe``) loaded by finch, headless under tmux, read
    over libpurple's D-Bus API (emulator/conform/purple.py).  libpurple resolves through the
    system resolver (SRV with res_query, A with getaddrinfo), so /etc/resolv.conf is
    bind-mounted as for linphonec.  The account has no server: SIPE discovers it (Lync
    Autodiscover names, then SRV), transport ``auto``: TLS or TCP (SIPE has no UDP)."""

    name = "sipe"
    profile = "sipe"
    transports: tuple[str, ...] = ("tcp", "tls")
    not_judged: dict[str, str] = {
        name: (
            "SIPE tries only the first SRV target, so with fe1 silent from the start it waits "
            "on its TCP connect (the kernel's SYN retries, 68-70 s) and never reaches fe2: "
            "there is no failback to judge, and the simulator does not retry a SYN that "
            "vanished; tests/interop/test_sipe.py covers SIPE's failback by a redirected "
            "refresh"
        )
        for name in ("failback-notify", "failback-redirect")
    }
    settings = (
        "a finch (libpurple) SIPE account USER@DOMAIN, server empty (auto-discovery), "
        "transport auto, authentication NTLM (used only when challenged), the pools' CA the "
        "only one trusted, the system resolver pointed at the fake DNS"
    )

    def problem(self) -> str | None:
        from emulator.conform.purple import purple_problem

        return purple_problem()

    def version(self) -> str:
        from emulator.conform.purple import sipe_version

        return sipe_version()

    def start(self, account: Account, workdir: Path) -> Program:
        from emulator.conform.purple import Purple, PurpleAccount

        cleanup = _resolver(workdir, account.dns_server) + _trust(workdir, account.ca_file)
        purple = Purple(workdir, PurpleAccount(f"{account.user}@{account.domain}"))
        try:
            purple.start()
            if not purple.wait_for_bus():
                raise RuntimeError(f"finch did not come up on D-Bus (see {purple.debug_log})")
            purple.sign_in()
        except BaseException:
            purple.stop()
            for command in cleanup:
                subprocess.run(command, capture_output=True, check=False)
            raise
        assert purple.dbus is not None
        return Program(purple.dbus, workdir, purple.debug_log, cleanup, handle=purple)

    def stop(self, program: Program) -> None:
        from emulator.conform.purple import Purple

        if isinstance(program.handle, Purple):
            program.handle.stop()
        _stop(program)


DRIVERS: dict[str, Driver] = {d.name: d for d in (Baresip(), Linphonec(), Sipe())}
"""Every program ``sipemu conform`` knows, by name (``linphone`` is an alias of linphonec)."""


def get_driver(name: str) -> Driver:
    """The driver for ``name``; ValueError (a sentence) when there is none."""
    if name == "linphone":
        name = "linphonec"
    try:
        return DRIVERS[name]
    except KeyError:
        raise ValueError(
            f"no driver for {name!r} (known programs: {', '.join(DRIVERS)}; docs/conform.md "
            "says how to add one)"
        ) from None
