"""A headless libpurple client: finch (pidgin's text UI) under tmux, read over D-Bus.

SIPE (pidgin-sipe, Debian ``pidgin-sipe``) is a libpurple protocol plugin, so a program
that loads it is needed.  finch is libpurple's own console UI: it runs in a tmux session of
its own (a terminal nobody looks at), with a configuration directory of its own
(``finch -c DIR``: ``accounts.xml``, ``prefs.xml``, the pools' CA under
``certificates/x509/ca``), and a private D-Bus session bus (a ``dbus-daemon`` started for it)
on which libpurple exports its API.  The account's state and a buddy's presence are read
from there with ``dbus-send`` (dbus-bin).

Why this shape, and not a libpurple driver of our own: finch is the program users run, its
reconnection policy (gntconn.c) is part of what a user sees; libpurple's D-Bus API reads
state without screen-scraping; ``dbus-send`` needs no Python binding (dbus-python needs
the system's Python, jeepney would be a new dependency for four calls).

finch runs with emulator/conform/xmlshim.py's library in ``LD_PRELOAD``: Debian 12's
pidgin-sipe 1.25.0 parses no XML body without it (3P; the module says why), so it would
never reach full mode whatever the server sends.  ``Purple(..., xml_shim=False)`` runs the
package as shipped.

Nothing here is sans-IO: it is a driver (processes, files, a clock for waiting).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from emulator.conform import xmlshim

__all__ = ["Purple", "PurpleAccount", "purple_problem", "sipe_version"]

_SERVICE = "im.pidgin.purple.PurpleService"
_OBJECT = "/im/pidgin/purple/PurpleObject"
_INTERFACE = "im.pidgin.purple.PurpleInterface"

_PACKAGES = {
    "finch": "finch",
    "tmux": "tmux",
    "dbus-daemon": "dbus-daemon",
    "dbus-send": "dbus-bin",
}
SIPE_PLUGIN = Path("/usr/lib/purple-2/libsipe.so")


def purple_problem(xml_shim: bool = True) -> str | None:
    """Why SIPE cannot be driven here, as a sentence; None when it can (``xml_shim``: the
    XML shim must be buildable too)."""
    if xml_shim and (reason := xmlshim.problem()) is not None:
        return reason
    missing = [pkg for exe, pkg in _PACKAGES.items() if shutil.which(exe) is None]
    if not SIPE_PLUGIN.exists():
        missing.insert(0, "pidgin-sipe")
    if missing:
        packages = " ".join(dict.fromkeys(missing))
        return (
            f"SIPE cannot be driven here: install the Debian packages {packages} "
            f"(apt-get install -y {packages})"
        )
    return None


def sipe_version() -> str:
    """``1.25.0 (finch 2.14.12)``: the packaged SIPE and the libpurple UI that loads it
    (``unknown`` for what cannot be asked)."""
    sipe = _output(["dpkg-query", "-W", "-f", "${Version}", "pidgin-sipe"]).strip()
    found = re.search(r"Finch (\S+)", _output(["finch", "--version"]))
    sipe = sipe.split("-")[0] if sipe else "unknown"
    return f"{sipe} (finch {found.group(1) if found else 'unknown'})"


def _output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


@dataclass(frozen=True, slots=True)
class PurpleAccount:
    """A SIPE account as libpurple stores it (``accounts.xml``)."""

    user: str
    """``clientuser2@contoso.test``: the sign-in address (SIPE's account name)."""
    password: str = "sipemu"
    transport: str = "auto"
    """SIPE's ``transport`` setting: ``auto`` (SRV for TLS then TCP), ``tls``, ``tcp``."""
    server: str = ""
    """``host[:port]``; empty: SIPE discovers the registrar (Lync Autodiscover, SRV, A)."""
    authentication: str = "ntlm"
    """SIPE's ``authentication`` setting (``ntlm``, ``krb5``, ``tls-dsk``); used only when the
    registrar challenges."""
    login: str = ""
    """``DOMAIN\\user`` for NTLM; empty: SIPE uses the account name."""
    buddies: tuple[str, ...] = ()
    """Contacts put in the local buddy list (``blist.xml``), in group ``Contacts``."""


def _account_xml(account: PurpleAccount) -> str:
    name = account.user if not account.login else f"{account.user},{account.login}"
    settings = {
        "server": account.server,
        "transport": account.transport,
        "authentication": account.authentication,
        "useragent": "",
    }
    lines = [
        "<?xml version='1.0' encoding='UTF-8' ?>",
        "<account version='1.0'>",
        " <account>",
        "  <protocol>prpl-sipe</protocol>",
        f"  <name>{escape(name)}</name>",
        f"  <password>{escape(account.password)}</password>",
        "  <settings>",
        *(
            f"   <setting name='{key}' type='string'>{escape(value)}</setting>"
            for key, value in settings.items()
        ),
        "   <setting name='sso' type='bool'>0</setting>",
        "  </settings>",
        "  <settings ui='gnt-purple'>",
        "   <setting name='auto-login' type='bool'>1</setting>",
        "  </settings>",
        " </account>",
        "</account>",
        "",
    ]
    return "\n".join(lines)


def _blist_xml(account: PurpleAccount) -> str:
    buddies = "".join(
        f"<contact><buddy account='{escape(account.user)}' proto='prpl-sipe'>"
        f"<name>sip:{escape(b)}</name></buddy></contact>"
        for b in account.buddies
    )
    return (
        "<?xml version='1.0' encoding='UTF-8' ?>\n<purple version='1.0'><blist>"
        f"<group name='Contacts'>{buddies}</group></blist><privacy/></purple>\n"
    )


_PREFS = """<?xml version='1.0' encoding='UTF-8' ?>
<pref version='1' name='/'>
 <pref name='purple'>
  <pref name='debug'><pref name='timestamps' type='bool' value='1'/></pref>
  <pref name='away'><pref name='idle_reporting' type='string' value='none'/></pref>
 </pref>
 <pref name='finch'>
  <pref name='sound'><pref name='method' type='string' value='nosound'/></pref>
 </pref>
</pref>
"""


@dataclass
class Purple:
    """One finch with one SIPE account, started and stopped as a unit."""

    workdir: Path
    account: PurpleAccount
    ca_file: Path | None = None
    xml_shim: bool = True
    """Start finch with the XML shim preloaded (emulator/conform/xmlshim.py)."""
    env: dict[str, str] = field(default_factory=dict)
    dbus: subprocess.Popen[bytes] | None = None
    bus: str = ""
    started: bool = False

    @property
    def config(self) -> Path:
        return self.workdir / "purple"

    @property
    def debug_log(self) -> Path:
        """finch's ``-d`` output: libpurple's and SIPE's debug lines (every SIP message)."""
        return self.workdir / "finch-debug.log"

    @property
    def tmux_socket(self) -> Path:
        return self.workdir / "tmux.sock"

    def start(self) -> None:
        """Write the configuration and start dbus-daemon and finch (in tmux)."""
        config = self.config
        (config / "certificates" / "x509" / "ca").mkdir(parents=True, exist_ok=True)
        if self.ca_file is not None:
            shutil.copy(self.ca_file, config / "certificates" / "x509" / "ca" / "sipemu-ca.pem")
        (config / "accounts.xml").write_text(_account_xml(self.account))
        (config / "blist.xml").write_text(_blist_xml(self.account))
        (config / "prefs.xml").write_text(_PREFS)
        self.dbus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        assert self.dbus.stdout is not None
        self.bus = self.dbus.stdout.readline().decode().strip()
        if not self.bus:
            raise RuntimeError("dbus-daemon printed no bus address")
        self.env = dict(
            os.environ,
            HOME=str(self.workdir),
            TERM="xterm",
            DBUS_SESSION_BUS_ADDRESS=self.bus,
            NCURSES_NO_UTF8_ACS="1",
            PURPLE_VERBOSE_DEBUG="1",
        )
        # The shim is preloaded into finch only (not tmux, not the bus).
        preload = f"LD_PRELOAD={shlex.quote(str(xmlshim.build()))} " if self.xml_shim else ""
        command = f"exec env {preload}finch -c {config} -d 2>{self.debug_log}"
        subprocess.run(
            [
                "tmux",
                "-S",
                str(self.tmux_socket),
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "50",
                command,
            ],
            env=self.env,
            check=True,
            cwd=self.workdir,
        )
        self.started = True

    def wait_for_bus(self, timeout: float = 15.0) -> bool:
        """Until libpurple answers on the bus (it has loaded the accounts)."""
        return _poll(lambda: self.call("PurpleAccountsGetAllActive") is not None, timeout, 0.1)

    def call(self, method: str, *args: str) -> str | None:
        """A libpurple D-Bus call (``int32:5`` style arguments); its reply's values as text,
        None when the call failed (finch not up yet, gone)."""
        if not self.bus:
            return None
        done = subprocess.run(
            [
                "dbus-send",
                "--session",
                "--print-reply=literal",
                f"--dest={_SERVICE}",
                _OBJECT,
                f"{_INTERFACE}.{method}",
                *args,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if done.returncode != 0:
            return None
        return done.stdout.strip()

    def sign_in(self) -> None:
        """Enable the account for finch and make an Available status current: libpurple
        connects it (finch does not sign in a new profile's account on its own)."""
        reply = self.call("PurpleAccountsGetAll")
        found = re.findall(r"int32 (\d+)", reply or "")
        if not found:
            raise RuntimeError(f"finch loaded no account from {self.config / 'accounts.xml'}")
        self.call("PurpleAccountSetEnabled", f"int32:{found[0]}", "string:gnt-purple", "int32:1")
        self.set_status("available")

    def _account_id(self) -> str | None:
        reply = self.call("PurpleAccountsGetAllActive")
        if not reply:
            return None
        found = re.findall(r"int32 (\d+)", reply) or re.findall(r"(\d+)", reply)
        return found[0] if found else None

    def state(self) -> str:
        """``connected``, ``connecting``, ``disconnected`` or ``disabled`` (no active
        account), ``unknown`` when finch does not answer."""
        account = self._account_id()
        if account is None:
            return "disabled" if self.call("PurpleAccountsGetAll") is not None else "unknown"
        for method, name in (
            ("PurpleAccountIsConnected", "connected"),
            ("PurpleAccountIsConnecting", "connecting"),
        ):
            reply = self.call(method, f"int32:{account}")
            if reply is not None and reply.split()[-1] == "1":
                return name
        return "disconnected"

    def buddy_status(self, buddy: str) -> str | None:
        """The status id (``available``, ``away``, ``busy``, ``offline`` ...) libpurple shows
        for ``buddy`` (``user@domain``), None when it is not in the list."""
        account = self._account_id()
        if account is None:
            return None
        reply = self.call("PurpleFindBuddy", f"int32:{account}", f"string:sip:{buddy}")
        if not reply or reply.split()[-1] == "0":
            return None
        handle = reply.split()[-1]
        presence = self.call("PurpleBuddyGetPresence", f"int32:{handle}")
        if not presence:
            return None
        status = self.call("PurplePresenceGetActiveStatus", f"int32:{presence.split()[-1]}")
        if not status:
            return None
        sid = self.call("PurpleStatusGetId", f"int32:{status.split()[-1]}")
        return sid.strip() if sid else None

    def set_status(self, primitive: str, message: str = "") -> None:
        """Make a saved status of ``primitive`` (``available``, ``away``...) current."""
        ids = {"offline": 1, "available": 2, "unavailable": 3, "invisible": 4, "away": 5}
        reply = self.call("PurpleSavedstatusNew", "string:", f"int32:{ids[primitive]}")
        if reply:
            handle = reply.split()[-1]
            if message:
                self.call("PurpleSavedstatusSetMessage", f"int32:{handle}", f"string:{message}")
            self.call("PurpleSavedstatusActivate", f"int32:{handle}")

    def wait_state(self, wanted: set[str], timeout: float) -> str:
        """Poll :meth:`state` until it is one of ``wanted`` or ``timeout`` passes; the last
        state seen."""
        deadline = time.monotonic() + timeout
        seen = self.state()
        while seen not in wanted and time.monotonic() < deadline:
            time.sleep(0.25)
            seen = self.state()
        return seen

    def running(self) -> bool:
        """Whether finch's tmux session is still there."""
        done = subprocess.run(
            ["tmux", "-S", str(self.tmux_socket), "has-session"],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def stop(self) -> None:
        """Quit finch (it signs out), stop tmux and the bus."""
        if self.started:
            self.call("PurpleCoreQuit")
            _poll(lambda: not self.running(), 5.0, 0.1)
            subprocess.run(
                ["tmux", "-S", str(self.tmux_socket), "kill-server"],
                capture_output=True,
                check=False,
            )
            self.started = False
        if self.dbus is not None and self.dbus.poll() is None:
            self.dbus.send_signal(signal.SIGTERM)
            try:
                self.dbus.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.dbus.kill()
                self.dbus.wait(timeout=5)


def _poll(check: Callable[[], bool], timeout: float, step: float) -> bool:
    """Call ``check`` every ``step`` seconds until it holds (True) or ``timeout`` passes
    (False): libpurple's state is read over D-Bus, which tells nothing unasked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False
