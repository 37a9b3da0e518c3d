"""TLS material for a live deployment: a throw-away CA and one server certificate per pool.

The CA is made with trustme at start-up and its certificate is written to a PEM file so that
clients (the project's own, SIPp, openssl s_client) can be told to trust it.  Nothing here is
meant to be secure: keys live in memory and the CA dies with the deployment.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from pathlib import Path

import trustme

__all__ = ["CA_FILE_NAME", "TlsMaterial"]

CA_FILE_NAME = "sipemu-ca.pem"


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
            self._own_dir: Path | None = Path(tempfile.mkdtemp(prefix="sipemu-ca-"))
            self.directory = self._own_dir
        else:
            self._own_dir = None
            self.directory = Path(directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.directory / CA_FILE_NAME
        self._ca.cert_pem.write_to_path(str(self.ca_path))
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
        """Remove the temporary directory, if this object made it."""
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
