"""A tap that writes a pcapng file Wireshark, tshark and sngrep read (docs/capture.md).

Rules of this file:

* Blocks are written by dpkt (``dpkt.pcapng``, docs/capture.md says why dpkt): one Section
  Header Block, one Interface Description Block (link type RAW: each packet is an IPv4 or
  IPv6 packet, framed by :mod:`emulator.wire.frames`), then one Enhanced Packet Block per
  frame.
* The file is flushed after every packet, so whatever ends the run (an exception, Ctrl-C, a
  kill) leaves a file that reads up to its last packet; :meth:`PcapngWriter.close` closes it
  once and is safe to call again.
* Timestamps: a live run's packets carry wall-clock time already; a simulation's virtual
  seconds are written from :data:`VIRTUAL_EPOCH` (2000-01-01 00:00:00 UTC), so that virtual
  second 0 of every simulated run reads as that instant (CHOICE, the ``epoch`` argument).
* Packets on a TLS flow hold the plaintext SIP (sipemu terminates the TLS); each says so in an
  ``opt_comment``: :data:`TLS_COMMENT`.  The synthetic TCP handshakes say so too.
* A live run's packets carry their direction (``epb_flags``: inbound or outbound, as seen by
  the sipemu host that recorded them).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import dpkt

from emulator.wire import Capture, Packet
from emulator.wire.frames import Framer

__all__ = ["HANDSHAKE_COMMENT", "LINKTYPE_RAW", "TLS_COMMENT", "VIRTUAL_EPOCH", "PcapngWriter"]

VIRTUAL_EPOCH = 946684800.0
"""Where a simulation's virtual second 0 is put in the file: 2000-01-01 00:00:00 UTC."""

LINKTYPE_RAW = 101
"""pcapng link type: raw IPv4/IPv6 packets, no link-layer header."""

TLS_COMMENT = "TLS plaintext (sipemu terminated the TLS)"
HANDSHAKE_COMMENT = "synthetic TCP handshake (sipemu made up the framing)"

_OPT_EPB_FLAGS = 2
_INBOUND = 1
_OUTBOUND = 2


def _option(code: int, data: bytes) -> dpkt.pcapng.PcapngOptionLE:
    return dpkt.pcapng.PcapngOptionLE(code=code, data=data)


def _comment(text: str) -> dpkt.pcapng.PcapngOptionLE:
    return dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_COMMENT, text=text)


_END = dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_ENDOFOPT)


class PcapngWriter:
    """A :class:`~emulator.wire.Tap` writing every packet to ``path`` as pcapng."""

    def __init__(self, path: str | Path, capture: Capture, *, epoch: float = VIRTUAL_EPOCH):
        self.path = Path(path)
        self.capture = capture
        self.epoch = epoch if capture.virtual else 0.0
        self.packets = 0
        """Packets written (messages, not frames: a handshake adds frames, not packets)."""
        self._framer = Framer()
        self._file: BinaryIO | None = self.path.open("wb")
        try:
            self._writer = dpkt.pcapng.Writer(self._file, shb=self._shb(), idb=self._idb())
            self._file.flush()
        except BaseException:
            self._file.close()
            raise

    def _shb(self) -> dpkt.pcapng.SectionHeaderBlockLE:
        clock = (
            f"virtual time: second 0 of the run is {_utc(self.epoch)}"
            if self.capture.virtual
            else "wall-clock time"
        )
        comment = f"{self.capture.name}; {clock}; IP/UDP/TCP framing synthesised by sipemu"
        opts = [
            _option(dpkt.pcapng.PCAPNG_OPT_SHB_USERAPPL, b"sipemu"),
            _comment(comment),
            _END,
        ]
        return dpkt.pcapng.SectionHeaderBlockLE(opts=opts)

    def _idb(self) -> dpkt.pcapng.InterfaceDescriptionBlockLE:
        opts = [
            _option(dpkt.pcapng.PCAPNG_OPT_IF_NAME, b"sipemu"),
            _option(
                dpkt.pcapng.PCAPNG_OPT_IF_DESCRIPTION,
                b"every SIP and DNS message of the run, one IP packet each",
            ),
            _END,
        ]
        # snaplen 0: no limit (a large NOTIFY is written whole).
        return dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=LINKTYPE_RAW, snaplen=0, opts=opts)

    def packet(self, packet: Packet) -> None:
        file = self._file
        if file is None:
            return  # closed: a late packet of a stopping run is not an error
        ts = packet.time + self.epoch
        for frame in self._framer.frames(packet):
            opts = []
            if frame.handshake:
                opts.append(_comment(HANDSHAKE_COMMENT))
            elif packet.transport == "tls":
                opts.append(_comment(TLS_COMMENT))
            if not self.capture.virtual:
                flags = _OUTBOUND if packet.sent else _INBOUND
                opts.append(_option(_OPT_EPB_FLAGS, struct.pack("<I", flags)))
            if opts:
                opts.append(_END)
            block = dpkt.pcapng.EnhancedPacketBlockLE(pkt_data=frame.data, opts=opts)
            self._writer.writepkt(block, ts=ts)
        file.flush()  # readable up to here whatever ends the run
        self.packets += 1

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()


def _utc(epoch: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
