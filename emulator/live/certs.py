"""TLS material for a live deployment: a throw-away CA and one server certificate per pool.

The CA is made with trustme at start-up and its certificate is written to a PEM file so that
clients (the project's own, SIPp, openssl s_client) can be told to trust it.  Nothing here is
meant to be secure: keys live in memory and the CA dies with the deployment.

Writing the PEM never follows a symbolic link: an existing ``sipemu-ca.pem`` that is a link is
refused with a sentence (:class:`CaFileError`), and the file is written to a fresh temporary
file (``O_EXCL``) in the same directory and renamed over the old one (``os.replace``), so a
link planted meanwhile is replaced, never written through.

A temporary CA directory (no ``--ca-dir``) is named ``sipemu-ca-<pid>-<random>`` in the system's
temporary directory and removed on every exit path that runs Python code: :meth:`TlsMaterial.
cleanup` (a deployment's stop, after an exception too), at interpreter exit (``atexit``: the end
of ``main``, an uncaught exception, ``sys.exit``, Ctrl-C), and on SIGTERM once
:func:`exit_on_sigterm` made SIGTERM an orderly exit.  SIGKILL runs nothing: the directory is
left, and the next :class:`TlsMaterial` removes every ``sipemu-ca-<pid>-*`` of this user whose
process is gone (:func:`remove_stale_ca_dirs`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import ssl
import stat
import sys
import tempfile
from pathlib import Path

import trustme

__all__ = [
    "CA_DIR_PREFIX",
    "CA_FILE_NAME",
    "CaFileError",
    "TlsMaterial",
    "exit_on_sigterm",
    "remove_stale_ca_dirs",
    "write_file_no_follow",
]

CA_FILE_NAME = "sipemu-ca.pem"

CA_DIR_PREFIX = "sipemu-ca-"
"""Temporary CA directories are ``<tmp>/sipemu-ca-<pid>-<random>``: the pid tells a later run
whether the owner is still alive."""


class CaFileError(OSError):
    """The CA file cannot be written where asked; ``str()`` is a sentence with the fix."""


class TlsMaterial:
    """A CA, its PEM file, and server/client :class:`ssl.SSLContext` objects signed by it.

    ``directory``: where to write :data:`CA_FILE_NAME` (created if missing).  ``None`` makes a
    fresh temporary directory, removed again by :meth:`cleanup`; a directory given by the caller
    is left in place (only the PEM file is written, and it is kept: a client started later may
    still want it).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self._ca = trustme.CA(organization_name="sipemu emulated deployment")
        if directory is None:
            remove_stale_ca_dirs()
            prefix = f"{CA_DIR_PREFIX}{os.getpid()}-"
            self._own_dir: Path | None = Path(tempfile.mkdtemp(prefix=prefix))
            self.directory = self._own_dir
            atexit.register(self.cleanup)
        else:
            self._own_dir = None
            self.directory = Path(directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.directory / CA_FILE_NAME
        try:
            write_file_no_follow(self.ca_path, self._ca.cert_pem.bytes(), mode=0o644)
        except BaseException:
            self.cleanup()
            raise
        self._server: dict[tuple[str, str], ssl.SSLContext] = {}
        self._client: ssl.SSLContext | None = None

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (PEM), e.g. for ``ssl.SSLContext.load_verify_locations(cadata=)``."""
        return bytes(self._ca.cert_pem.bytes())

    def server_context(self, fqdn: str, address: str) -> ssl.SSLContext:
        """A server context whose certificate names ``fqdn`` and ``address`` (both as SANs).

        Cached per (fqdn, address), so a pool restarted by ``start_pool`` presents the same
        certificate as before.
        """
        key = (fqdn, address)
        context = self._server.get(key)
        if context is None:
            # SIP over TLS clients match the SRV target (the pool FQDN, RFC 5922 §7.2); tests
            # that connect by IP literal match the IP SAN.
            leaf = self._ca.issue_cert(fqdn, address, common_name=fqdn)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            leaf.configure_cert(context)
            # No TLS 1.3 session tickets: a SIP client keeps its one connection up with
            # keep-alives and does not resume sessions (the Lync 2010/2013 servers modelled
            # here predate TLS 1.3), and each ticket a client stores costs it about 6 KB of
            # OpenSSL memory (benchmarks/agents_bench.py, docs/benchmarks.md).
            context.num_tickets = 0
            self._server[key] = context
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (used by pools for outbound TLS flows)."""
        if self._client is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            self._ca.configure_trust(context)
            self._client = context
        return self._client

    def cleanup(self) -> None:
        """Remove the temporary directory, if this object made it (idempotent)."""
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
            atexit.unregister(self.cleanup)


def write_file_no_follow(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` without following a symbolic link: refuse (CaFileError) if
    ``path`` is one; else write a new file beside it (``O_EXCL``, never an existing one) and
    rename it over ``path`` (a link planted meanwhile is replaced, not written through)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(path)
            raise CaFileError(
                f"{path} is a symbolic link (to {target}); sipemu does not write through links, "
                f"which would overwrite {target}: remove the link or give another --ca-dir"
            )
        if not stat.S_ISREG(info.st_mode):
            raise CaFileError(
                f"{path} exists and is not a regular file: remove it or give another --ca-dir"
            )
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_stale_ca_dirs(root: str | Path | None = None) -> list[Path]:
    """Remove the temporary CA directories (``sipemu-ca-<pid>-*`` in ``root``, default the
    system's temporary directory) of this user whose process is gone (killed with SIGKILL,
    say).  Returns what was removed.  Directories without a pid (older sipemu) are left."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.glob(f"{CA_DIR_PREFIX}*-*"))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        pid_text = entry.name[len(CA_DIR_PREFIX) :].split("-", 1)[0]
        if not pid_text.isascii() or not pid_text.isdigit() or len(pid_text) > 10:
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or _alive(int(pid_text)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process has that pid: not ours to judge
    except OverflowError:
        return False
    return True


def exit_on_sigterm() -> None:
    """Make SIGTERM an orderly exit (``SystemExit`` 143 in the main thread), so that
    ``finally`` blocks and ``atexit`` run and a temporary CA directory is removed.  For
    commands that have no SIGTERM handler of their own (``sipemu up`` has one); call it from
    the main thread before the run starts.  An event loop's own handler, if installed later,
    takes precedence."""

    def terminate(signum: int, frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
