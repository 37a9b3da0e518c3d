"""What binding a listening socket needs, for the UDP and the stream transports alike: the
address family of a host address, and :class:`BindError`, a failed bind as a sentence."""

from __future__ import annotations

import errno
import ipaddress
import socket

from emulator.net import TransportName

__all__ = ["BindError", "describe_os_error", "family", "raise_open_files_limit"]


class BindError(Exception):
    """A listening socket could not be bound; ``str()`` is a sentence naming who, where, why."""

    def __init__(
        self, name: str, address: str, port: int, transport: TransportName, cause: OSError
    ) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.transport = transport
        self.errno = cause.errno
        super().__init__(
            f"cannot listen on {address}:{port} ({transport.upper()}) for {name}: "
            f"{describe_os_error(cause)}"
        )


def describe_os_error(exc: OSError) -> str:
    """The end of a sentence saying why a bind failed, in words a user can act on."""
    if exc.errno == errno.EADDRINUSE:
        return "the port is already in use (is another sipemu or SIP server running?)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "the address is not assigned to any interface of this machine"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return exc.strerror or str(exc)


def family(address: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal, else AF_INET."""
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files (RLIMIT_NOFILE) to its hard limit, so
    that connections, not descriptors, are what runs out first (the common soft limit, 1,024,
    is reached by 1,000 idle connections).  Returns the soft limit now in force; leaves it
    as it is when the system refuses (an unlimited hard limit is capped at 1,048,576)."""
    import resource  # POSIX only; the live drivers run on Linux and macOS

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
