"""Private network namespaces and packet-level faults made by the kernel (Linux).

Two things live here (docs/live.md, "Packet-level faults"):

* :func:`isolate` puts the calling process in a new, private network namespace with only
  ``lo`` (up): 127.0.0.0/8 is then sipemu's alone, and faults on it touch nothing else on the
  machine.  As root it is a plain ``unshare(CLONE_NEWNET)``; otherwise an unprivileged user
  namespace owning the network namespace (``CLONE_NEWUSER | CLONE_NEWNET``) where the kernel
  allows it.  With a name, the namespace is also bind-mounted at ``/run/netns/NAME`` (root
  only), so ``ip netns exec NAME program`` runs a real client beside the pools.
  :func:`isolate_thread` does the same for one thread (root only): the pytest fixture's
  deployment thread, which must not move the test process.
* :class:`PacketFaults` applies faults in the current namespace with the kernel's own
  machinery, by IP address: nftables rules for silence (drop both ways), refusal (ICMP port
  unreachable, TCP RST) and partitions; tc netem (latency, loss, jitter) on ``lo`` for links.

Library choices (CHOICE, recorded in the commit too):

* Namespaces: ``ctypes`` on libc's ``unshare(2)`` and ``mount(2)``.  Python 3.11 has no
  ``os.unshare``/``os.setns`` (3.12 does); pyroute2's ``netns`` helpers create a namespace in a
  forked helper and enter it with ``setns``, which needs root and cannot make the user
  namespace of the unprivileged case.  Three syscalls do not justify a dependency.
* nftables: the libnftables JSON API (libnftables-json(5)), one atomic batch per change (the
  whole ``inet sipemu`` table is rebuilt, so no rule handles are tracked).  It goes through the
  ``nftables`` Python binding (Debian's python3-nftables) when it can be imported, else
  through the same library, ``libnftables.so.1`` (Debian's libnftables1, which ``nft``
  itself uses), called with ``ctypes`` exactly as that binding does: the binding is not on
  PyPI (only unofficial copies are) and is not importable from a virtual environment.
  pyroute2's nftables module (0.9) was looked at and rejected: it offers helpers for address
  matches, verdicts and masquerade only, so reject, transport-port and ``meta priority``
  expressions would have to be encoded by hand in netlink attributes.
* Netlink and tc: pyroute2 (``IPRoute``), for bringing ``lo`` up and the HTB + netem qdiscs.
  Its synchronous ``IPRoute`` runs an event loop of its own, so calls are made on a short-lived
  helper thread (it inherits the caller's namespace), which works inside a running loop too.

Nothing here is imported by the sans-IO cores.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import ctypes.util
import errno
import ipaddress
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TextIO, TypeVar

__all__ = [
    "FaultMode",
    "Isolation",
    "LinkShape",
    "NamespaceError",
    "PacketFaults",
    "add_netns_options",
    "current_isolation",
    "enter_netns",
    "in_private_namespace",
    "isolate",
    "isolate_thread",
    "mark_private",
    "namespace_support",
    "netem_support",
    "packet_fault_support",
]

FaultMode = Literal["packet", "in-process"]
"""How a live deployment makes its faults: kernel rules in its namespace, or its own drivers."""

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
MS_BIND = 4096
MNT_DETACH = 2
NETNS_DIR = Path("/run/netns")
TABLE = "sipemu"
"""The nftables table (family ``inet``) that holds every rule :class:`PacketFaults` makes."""

T = TypeVar("T")


class NamespaceError(Exception):
    """A namespace or a packet-level fault cannot be had; ``str()`` is a sentence that says why
    and what to do."""


# -- namespaces -------------------------------------------------------------------------------


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


_PROBE = """
import ctypes, ctypes.util, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
flags = 0x40000000 if os.geteuid() == 0 else 0x50000000
if libc.unshare(flags) != 0:
    sys.exit(os.strerror(ctypes.get_errno()))
"""


@cache
def namespace_support() -> str | None:
    """None if this process can create a network namespace (root, or an unprivileged user
    namespace where the kernel allows it), else the reason, a sentence.  Probed once, in a
    child process: this one does not move."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are a Linux feature (this is {sys.platform})"
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode == 0:
        return None
    why = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
    if os.geteuid() == 0:
        return f"cannot create a network namespace even as root ({why})"
    return _unprivileged_advice(why)


def _unprivileged_advice(why: str) -> str:
    return (
        f"cannot create an unprivileged user + network namespace ({why}); run as root, or "
        "allow user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
        "user.max_user_namespaces > 0, or the AppArmor restriction lifted)"
    )


@dataclass
class Isolation:
    """The private namespace :func:`isolate` put this process (or thread) in.

    ``mode``: ``root`` (a network namespace made as root) or ``user`` (inside an unprivileged
    user namespace); ``name``: the name under /run/netns, or None.  :meth:`close` removes the
    name (the namespace itself lives as long as a process or socket is in it)."""

    mode: Literal["root", "user"]
    name: str | None = None
    path: Path | None = None

    def describe(self) -> str:
        named = f" named {self.name} (ip netns exec {self.name} ...)" if self.name else ""
        kind = "as root" if self.mode == "root" else "in an unprivileged user namespace"
        return f"private network namespace{named}, {kind}"

    def close(self) -> None:
        path, self.path = self.path, None
        if path is None:
            return
        _libc().umount2(str(path).encode(), ctypes.c_int(MNT_DETACH))
        path.unlink(missing_ok=True)

    def __enter__(self) -> Isolation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_current: Isolation | None = None


def isolate(name: str | None = None) -> Isolation:
    """Put the calling process in a new private network namespace, with ``lo`` up.

    Call it before the event loop starts and before any thread (a user namespace can only be
    entered by a single-threaded process, and threads made earlier stay where they were).
    ``name``: also make it ``/run/netns/NAME`` (root only).  NamespaceError (a sentence) when
    that cannot be done."""
    global _current
    _check_name(name)
    if threading.active_count() > 1:
        raise NamespaceError(
            "a network namespace must be entered before any thread starts "
            f"({threading.active_count()} threads run); call isolate() first"
        )
    if not sys.platform.startswith("linux"):
        raise NamespaceError(f"network namespaces are a Linux feature (this is {sys.platform})")
    root = os.geteuid() == 0
    if name is not None and not root:
        raise NamespaceError(
            f"naming the namespace ({name}) needs root (it is bind-mounted under {NETNS_DIR}); "
            "run without a name, or as root"
        )
    uid, gid = os.getuid(), os.getgid()
    try:
        _unshare(CLONE_NEWNET if root else CLONE_NEWUSER | CLONE_NEWNET)
    except OSError as exc:
        if root:
            raise NamespaceError(
                f"cannot create a network namespace even as root ({exc.strerror})"
            ) from None
        raise NamespaceError(_unprivileged_advice(str(exc.strerror))) from None
    if not root:
        # Map this user to root inside, so that the namespace's owner may configure it.
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    isolation = Isolation("root" if root else "user")
    _remember()
    _loopback_up()
    if name is not None:
        isolation.name, isolation.path = name, _bind_name(name, "/proc/self/ns/net")
        atexit.register(isolation.close)  # the name must not outlive the process
    _current = isolation
    return isolation


def isolate_thread(name: str | None = None) -> Isolation:
    """Put the calling THREAD (only) in a new network namespace with ``lo`` up: threads it
    starts afterwards are in it too; the rest of the process is not.  Root only (a user
    namespace needs a single-threaded process).  ``name``: also /run/netns/NAME."""
    _check_name(name)
    if os.geteuid() != 0:
        raise NamespaceError(
            "a thread of its own can enter a new network namespace only as root; "
            "run the deployment in a process of its own (sipemu up --netns) instead"
        )
    try:
        _unshare(CLONE_NEWNET)
    except OSError as exc:
        raise NamespaceError(f"cannot create a network namespace: {exc.strerror}") from None
    isolation = Isolation("root")
    _remember()
    _loopback_up()
    if name is not None:
        isolation.name, isolation.path = name, _bind_name(name, "/proc/thread-self/ns/net")
    return isolation


def current_isolation() -> Isolation | None:
    """What :func:`isolate` did in this process, or None."""
    return _current


def in_private_namespace() -> bool:
    """Whether the calling thread is in a network namespace other than the machine's (its
    init process's): made by :func:`isolate`, :func:`isolate_thread`, ``unshare -n`` or
    ``ip netns exec``.  False when that cannot be told (no permission to read init's)."""
    try:
        mine = os.readlink("/proc/thread-self/ns/net")
    except OSError:
        return _current is not None
    if mine in _made:
        return True
    try:
        return mine != os.readlink("/proc/1/ns/net")
    except OSError:
        return False


_made: set[str] = set()
"""The namespaces :func:`isolate` and :func:`isolate_thread` made (``net:[inode]``)."""


def mark_private() -> None:
    """Say that the calling thread's network namespace is a private one its process made
    itself (a child of ``unshare --net`` that sipemu started, as ``sipemu conform`` does),
    for where :func:`in_private_namespace` cannot tell: once a process has left the
    machine's namespace, the kernel may refuse it a look at init's (``/proc/1/ns/net``:
    permission denied), and then packet mode would be refused."""
    _remember()


def _remember() -> None:
    try:
        _made.add(os.readlink("/proc/thread-self/ns/net"))
    except OSError:
        pass


def _check_name(name: str | None) -> None:
    if name is not None and (not name or "/" in name or name in (".", "..")):
        raise NamespaceError(f"{name!r} is not a namespace name (a file name under {NETNS_DIR})")


def _bind_name(name: str, source: str) -> Path:
    """Make the namespace of ``source`` reachable as /run/netns/NAME, as ``ip netns add``."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    path = NETNS_DIR / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        raise NamespaceError(
            f"a network namespace named {name} exists already ({path}); choose another name "
            f"or remove it with `ip netns delete {name}`"
        ) from None
    os.close(fd)
    if _libc().mount(source.encode(), str(path).encode(), b"none", MS_BIND, None) != 0:
        code = ctypes.get_errno()
        path.unlink(missing_ok=True)
        raise NamespaceError(f"cannot name the namespace {path}: {os.strerror(code)}")
    return path


def _in_thread(function: Callable[[], T]) -> T:
    """Run ``function`` on a helper thread (same namespace as the caller) and return its result:
    pyroute2's synchronous API runs an event loop, which cannot nest in a running one."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(function())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="sipemu-netlink", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _loopback_up() -> None:
    from pyroute2 import IPRoute

    def up() -> None:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname="lo")[0]
            ipr.link("set", index=index, state="up")

    _in_thread(up)


# -- nftables -----------------------------------------------------------------------------------


class _Nft:
    """The libnftables JSON API: the ``nftables`` binding if importable, else libnftables."""

    def __init__(self) -> None:
        self._binding: Any = None
        self._lib: ctypes.CDLL | None = None
        self._ctx: int | None = None
        try:
            import nftables

            nft = nftables.Nftables()
            nft.set_json_output(True)
            self._binding = nft
            return
        except ImportError:
            pass
        try:
            lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        except OSError:
            raise NamespaceError(
                "packet-level faults need libnftables (apt install libnftables1, or nftables); "
                "it was not found"
            ) from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_output_set_flags(ctx, 1 << 4)  # NFT_CTX_OUTPUT_JSON: JSON in and out
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._lib, self._ctx = lib, ctx

    def run(self, batch: list[dict[str, Any]]) -> str:
        """Run one JSON batch (atomically); returns the output.  NamespaceError on failure."""
        text = json.dumps({"nftables": batch})
        if self._binding is not None:
            rc, output, error = self._binding.json_cmd(json.loads(text))
            if rc != 0:
                raise NamespaceError(f"nftables refused the rules: {str(error).strip()}")
            return json.dumps(output)
        lib, ctx = self._lib, self._ctx
        assert lib is not None and ctx is not None
        rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
        output = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        if rc != 0:
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode().splitlines()
            raise NamespaceError(
                f"nftables refused the rules: {error[0] if error else 'no reason given'} "
                "(packet-level faults need CAP_NET_ADMIN in the namespace and nf_tables)"
            )
        return output

    def close(self) -> None:
        if self._lib is not None and self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None


def _match(left: dict[str, Any], right: object) -> dict[str, Any]:
    return {"match": {"op": "==", "left": left, "right": right}}


def _addr(field: str, address: str) -> dict[str, Any]:
    protocol = "ip6" if ipaddress.ip_address(address).version == 6 else "ip"
    return _match({"payload": {"protocol": protocol, "field": field}}, address)


def _l4(protocol: str) -> dict[str, Any]:
    return _match({"meta": {"key": "l4proto"}}, protocol)


def _port(field: str, port: int) -> dict[str, Any]:
    return _match({"payload": {"protocol": "th", "field": field}}, port)


# -- the faults ---------------------------------------------------------------------------------

Protocol = Literal["udp", "tcp"]
HostKey = tuple[str, Protocol | None, int | None]
"""(address, L4 protocol or None for all, port or None for all)."""


@dataclass(frozen=True, slots=True)
class LinkShape:
    """netem parameters of one direction of a link: seconds, and a fraction for loss."""

    latency: float = 0.0
    loss: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0 or not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"bad link shape {self}: latency, jitter >= 0, 0 <= loss <= 1")

    @property
    def neutral(self) -> bool:
        return self.latency == 0 and self.loss == 0 and self.jitter == 0


@cache
def netem_support() -> str | None:
    """None if the kernel has the netem qdisc (sch_netem), else the reason.  Probed once in a
    throw-away namespace (a child process)."""
    reason = namespace_support()
    if reason is not None:
        return reason
    probe = subprocess.run(
        [sys.executable, "-c", _NETEM_PROBE], capture_output=True, text=True, timeout=60
    )
    if probe.returncode == 0:
        return None
    return (
        "this kernel has no netem queueing discipline (CONFIG_NET_SCH_NETEM, module "
        "sch_netem): link faults (latency, loss, jitter) need it; modprobe sch_netem"
    )


_NETEM_PROBE = """
from emulator.live.netns import isolate, PacketFaults
isolate()
faults = PacketFaults()
faults.link("127.0.0.1", "127.0.0.2", latency=0.001)
"""


@cache
def packet_fault_support() -> str | None:
    """None if :class:`PacketFaults` works in a namespace this process can create (nftables
    rules can be made there), else the reason."""
    reason = namespace_support()
    if reason is not None:
        return reason
    probe = subprocess.run(
        [sys.executable, "-c", _NFT_PROBE], capture_output=True, text=True, timeout=60
    )
    if probe.returncode == 0:
        return None
    return (probe.stderr.strip().splitlines() or ["packet-level faults do not work here"])[-1]


_NFT_PROBE = """
import sys
from emulator.live.netns import isolate, PacketFaults, NamespaceError
isolate()
try:
    PacketFaults().silence("127.0.0.1")
except NamespaceError as exc:
    sys.exit(str(exc))
"""


class PacketFaults:
    """Kernel-level faults in the current network namespace, by IP address.

    Rules are in the nftables table ``inet sipemu`` (input hook: drops and refusals happen
    where the packet arrives, so the sender's send succeeds as on a real network) and, for
    :meth:`link`, in an HTB qdisc on ``lo`` whose classes carry a netem qdisc each, chosen
    per packet by ``meta priority`` set in the output hook.  Every change rebuilds the table
    in one atomic batch.  Use it only inside a private namespace: the rules apply to every
    process there.  Methods are synchronous and quick (a netlink round trip or two).
    """

    def __init__(self) -> None:
        self._nft = _Nft()
        self._hosts: dict[HostKey, Literal["silent", "refused"]] = {}
        self._cuts: set[tuple[str, str]] = set()
        self._links: dict[tuple[str, str], LinkShape] = {}
        self._tc_links: dict[tuple[str, str], LinkShape] = {}

    # -- hosts -------------------------------------------------------------------------------

    def silence(self, host: str, transport: str | None = None, port: int | None = None) -> None:
        """Drop every packet to and from ``host`` (optionally only ``transport``'s protocol,
        ``udp``/``tcp``/``tls``, and ``port`` on the host): TCP peers see retransmission
        timeouts and nothing sent meanwhile is delivered unless TCP retransmits it after
        :meth:`restore`."""
        self._hosts[_key(host, transport, port)] = "silent"
        self._apply()

    def refuse(self, host: str, transport: str | None = None, port: int | None = None) -> None:
        """Answer every packet to ``host`` with a refusal: ICMP port unreachable for UDP (and
        other protocols), a TCP RST for TCP."""
        self._hosts[_key(host, transport, port)] = "refused"
        self._apply()

    def restore(self, host: str, transport: str | None = None, port: int | None = None) -> None:
        """Undo :meth:`silence`/:meth:`refuse` of ``host``: without ``transport``, every fault
        of the host; with it, that one."""
        address = _address(host)
        if transport is None and port is None:
            for key in [k for k in self._hosts if k[0] == address]:
                del self._hosts[key]
        else:
            self._hosts.pop(_key(host, transport, port), None)
        self._apply()

    def host_state(self, host: str) -> Literal["silent", "refused"] | None:
        """The whole-host fault of ``host`` now, if any."""
        return self._hosts.get((_address(host), None, None))

    # -- between hosts -----------------------------------------------------------------------

    def partition(self, a: str, b: str, oneway: bool = False) -> None:
        """Drop packets from ``a`` to ``b`` (and from ``b`` to ``a`` unless ``oneway``)."""
        src, dst = _address(a), _address(b)
        self._cuts.add((src, dst))
        if not oneway:
            self._cuts.add((dst, src))
        self._apply()

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Undo partitions: all (no argument), every one involving ``a``, or those between
        ``a`` and ``b`` (both directions), as the simulator's ``heal``."""
        if a is None:
            self._cuts.clear()
        else:
            x = _address(a)
            y = _address(b) if b is not None else None
            self._cuts = {
                (s, d)
                for (s, d) in self._cuts
                if not (x in (s, d) and (y is None or {s, d} == {x, y}))
            }
        self._apply()

    def link(
        self,
        a: str,
        b: str,
        latency: float = 0.0,
        loss: float = 0.0,
        jitter: float = 0.0,
        oneway: bool = False,
    ) -> None:
        """Shape packets from ``a`` to ``b`` (and back unless ``oneway``) with netem: seconds of
        ``latency`` and ``jitter``, ``loss`` a fraction.  All zero: the link is plain again.
        NamespaceError when the kernel has no netem."""
        shape = LinkShape(latency, loss, jitter)
        src, dst = _address(a), _address(b)
        pairs = [(src, dst)] if oneway else [(src, dst), (dst, src)]
        before = dict(self._links)
        for pair in pairs:
            if shape.neutral:
                self._links.pop(pair, None)
            else:
                self._links[pair] = shape
        try:
            self._apply()
        except NamespaceError:
            self._links = before  # the other faults must not fail with it from now on
            raise

    @property
    def links(self) -> dict[tuple[str, str], LinkShape]:
        return dict(self._links)

    def clear(self) -> None:
        """Remove every fault: the table and the qdisc."""
        self._hosts.clear()
        self._cuts.clear()
        self._links.clear()
        self._apply()
        self._nft.run([{"add": {"table": _TABLE}}, {"delete": {"table": _TABLE}}])

    def close(self) -> None:
        self.clear()
        self._nft.close()

    def ruleset(self) -> str:
        """The table as nftables lists it (JSON), for diagnostics and tests."""
        return self._nft.run([{"list": {"table": _TABLE}}])

    # -- applying ----------------------------------------------------------------------------

    def _apply(self) -> None:
        classes = self._shape_tc()
        rules: list[tuple[str, list[dict[str, Any]]]] = []
        for (address, protocol, port), state in self._hosts.items():
            protocols: list[Protocol | None] = [protocol]
            if state == "refused" and protocol is None:
                protocols = ["tcp", "udp", None]
            for proto in protocols:
                to = [_addr("daddr", address)]
                if proto is not None:
                    to.append(_l4(proto))
                if port is not None:
                    to.append(_port("dport", port))
                if state == "silent":
                    back = [_addr("saddr", address)]
                    if proto is not None:
                        back.append(_l4(proto))
                    if port is not None:
                        back.append(_port("sport", port))
                    rules.append(("input", [*to, {"drop": None}]))
                    rules.append(("input", [*back, {"drop": None}]))
                elif proto == "tcp":
                    rules.append(("input", [*to, {"reject": {"type": "tcp reset"}}]))
                else:
                    verdict = {"reject": {"type": "icmpx", "expr": "port-unreachable"}}
                    rules.append(("input", [*to, verdict]))
        for src, dst in sorted(self._cuts):
            rules.append(("input", [_addr("saddr", src), _addr("daddr", dst), {"drop": None}]))
        for (src, dst), classid in sorted(classes.items()):
            mark = {"mangle": {"key": {"meta": {"key": "priority"}}, "value": classid}}
            rules.append(("output", [_addr("saddr", src), _addr("daddr", dst), mark]))
        batch: list[dict[str, Any]] = [
            {"add": {"table": _TABLE}},
            {"delete": {"table": _TABLE}},
            {"add": {"table": _TABLE}},
        ]
        for chain in ("input", "output"):
            batch.append(
                {
                    "add": {
                        "chain": {
                            **_TABLE,
                            "table": TABLE,
                            "name": chain,
                            "type": "filter",
                            "hook": chain,
                            "prio": 0,
                            "policy": "accept",
                        }
                    }
                }
            )
        for chain, expr in rules:
            batch.append(
                {"add": {"rule": {"family": "inet", "table": TABLE, "chain": chain, "expr": expr}}}
            )
        self._nft.run(batch)

    def _shape_tc(self) -> dict[tuple[str, str], str]:
        """Make the qdiscs on ``lo`` match :attr:`_links`; returns each link's class id."""
        links = dict(sorted(self._links.items()))
        classes = {pair: f"1:{n + 16:x}" for n, pair in enumerate(links)}
        if links == self._tc_links:
            return classes
        _in_thread(lambda: _set_qdiscs(list(links.values())))
        self._tc_links = links
        return classes


_TABLE = {"family": "inet", "name": TABLE}


def _set_qdiscs(shapes: list[LinkShape]) -> None:
    """Replace lo's root qdisc: none when no link is shaped, else HTB 1: with a default class
    1:1 and class 1:(16+n) holding netem for the n-th shape.  The classes' rate (10 Gbit/s,
    a 1 MiB burst) only has to stay out of the way: netem does the shaping."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname="lo")[0]
        try:
            ipr.tc("del", index=index, handle=0x10000, parent=0xFFFFFFFF)
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.EINVAL):
                raise
        if not shapes:
            return
        ipr.tc("add", "htb", index, 0x10000, default=0x1)
        ipr.tc(
            "add-class",
            "htb",
            index,
            0x10001,
            parent=0x10000,
            rate="10gbit",
            burst=1 << 20,
            cburst=1 << 20,
        )
        for n, shape in enumerate(shapes):
            classid = 0x10000 + 16 + n
            ipr.tc(
                "add-class",
                "htb",
                index,
                classid,
                parent=0x10000,
                rate="10gbit",
                burst=1 << 20,
                cburst=1 << 20,
            )
            try:
                ipr.tc(
                    "add",
                    "netem",
                    index,
                    (16 + n + 1) << 16,
                    parent=classid,
                    delay=int(shape.latency * 1_000_000),
                    jitter=int(shape.jitter * 1_000_000),
                    loss=shape.loss * 100,
                )
            except NetlinkError as exc:
                ipr.tc("del", index=index, handle=0x10000, parent=0xFFFFFFFF)
                if exc.code == errno.ENOENT:
                    raise NamespaceError(
                        "this kernel has no netem queueing discipline (sch_netem): link "
                        "faults (latency, loss, jitter) need it; modprobe sch_netem"
                    ) from None
                raise NamespaceError(f"cannot shape the link with netem: {exc}") from None


def _address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip()))
    except ValueError:
        raise NamespaceError(f"{host!r} is not an IP address") from None


def _key(host: str, transport: str | None, port: int | None) -> HostKey:
    if transport is None:
        protocol: Protocol | None = None
    elif transport in ("udp", "tcp", "tls"):
        protocol = "udp" if transport == "udp" else "tcp"
    else:
        raise NamespaceError(f"{transport!r} is not a transport (udp, tcp or tls)")
    if port is not None and protocol is None:
        raise NamespaceError("a port needs a transport (udp, tcp or tls)")
    return (_address(host), protocol, port)


# -- the command line ---------------------------------------------------------------------------


def add_netns_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--netns [NAME]`` and ``--faults MODE`` (``sipemu up``, ``sipemu run --realtime``)."""
    parser.add_argument(
        "--netns",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help=f"{prefix}run in a private network namespace of its own (root, or where user "
        "namespaces are allowed), so faults are packet-level; with NAME, also reachable as "
        "`ip netns exec NAME program` (root); put it after the file, or write --netns=NAME "
        "(docs/live.md, Packet-level faults)",
    )
    parser.add_argument(
        "--faults",
        choices=("auto", "packet", "in-process"),
        default="auto",
        help=f"{prefix}how faults are made: packet (nftables/netem, needs a private "
        "namespace), in-process (the pool drivers), auto (default: packet in a private "
        "namespace, else in-process)",
    )


def enter_netns(value: str | None, out: TextIO) -> Isolation | None:
    """Carry out ``--netns`` (``value``: None not given, ``""`` anonymous, else the name):
    :func:`isolate`, and a line on ``out`` saying where the run is.  NamespaceError."""
    if value is None:
        return None
    isolation = isolate(value or None)
    out.write(f"network namespace: {isolation.describe()}\n")
    return isolation
