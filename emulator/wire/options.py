"""The capture options every command shares: ``--pcap FILE``, ``--hep HOST:PORT`` and, for
runs with live TLS, ``--keylog FILE`` (docs/capture.md).

:func:`open_sinks` turns the options into one :class:`~emulator.wire.Taps` (or None when no
capture is asked for); the command closes it on every exit path (``try``/``finally``) and
prints :func:`summary`.
"""

from __future__ import annotations

import argparse

from emulator.config import ConfigError
from emulator.wire import Capture, Taps

__all__ = ["add_capture_options", "open_sinks", "summary"]


def add_capture_options(parser: argparse.ArgumentParser, *, keylog: bool = True) -> None:
    """Add ``--pcap``, ``--hep`` and (``keylog``) ``--keylog`` to ``parser``."""
    group = parser.add_argument_group("capture (docs/capture.md)")
    group.add_argument(
        "--pcap",
        metavar="FILE",
        help="write every SIP and DNS message to FILE (pcapng; TLS as its plaintext SIP)",
    )
    group.add_argument(
        "--hep",
        metavar="HOST:PORT",
        help="send every SIP and DNS message as HEPv3 over UDP to a Homer/heplify/sngrep collector",
    )
    if keylog:
        group.add_argument(
            "--keylog",
            metavar="FILE",
            help="append the TLS session keys to FILE (SSLKEYLOGFILE format, for Wireshark)",
        )


def open_sinks(args: argparse.Namespace, capture: Capture) -> Taps | None:
    """The taps asked for by ``--pcap`` and ``--hep``, or None.  ConfigError (a sentence) for
    a bad ``--hep``; OSError for a file that cannot be written."""
    pcap: str | None = getattr(args, "pcap", None)
    hep: str | None = getattr(args, "hep", None)
    if pcap is None and hep is None:
        return None
    # Imported here: every command builds its parser with these options, and only a capture
    # needs dpkt and the writers.
    from emulator.wire.hep import HepSender, parse_destination
    from emulator.wire.pcapng import PcapngWriter

    taps = Taps()
    try:
        if hep is not None:
            try:
                host, port = parse_destination(hep)
                taps.add(HepSender(host, port, capture))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            except OSError as exc:
                raise ConfigError(f"--hep {hep}: {exc.strerror or exc}") from None
        if pcap is not None:
            taps.add(PcapngWriter(pcap, capture))
    except BaseException:
        taps.close()
        raise
    return taps


def summary(taps: Taps) -> list[str]:
    """One line per sink: what it wrote or sent."""
    from emulator.wire.hep import HepSender
    from emulator.wire.pcapng import PcapngWriter

    lines = []
    for tap in taps.taps:
        if isinstance(tap, PcapngWriter):
            lines.append(f"capture: {tap.packets} message(s) written to {tap.path}")
        elif isinstance(tap, HepSender):
            host, port = tap.destination
            lost = f", {tap.errors} not sent" if tap.errors else ""
            lines.append(f"capture: {tap.sent} HEP message(s) sent to {host}:{port}{lost}")
    return lines
