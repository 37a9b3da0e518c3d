"""Inputs for fuzzing the parsing cores: valid seed messages (SIP and DNS) and mutations of them.

Shared by the bounded property tests (tests/sip/test_fuzz_cores.py, which hands these
functions a Hypothesis-controlled ``random.Random``) and by ``benchmarks/parse_fuzz.py``
(10^6 inputs from a seeded one).  Every choice comes from the ``rng`` given, so a seed
reproduces an input byte for byte.
"""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path

__all__ = ["dns_input", "dns_seeds", "mutate", "sip_input", "sip_seeds"]

_TESTS = Path(__file__).resolve().parent

# Numbers a mutation puts in place of a number: digits that str.isdigit() accepts but are not
# DIGIT ("²", "٣", fullwidth 7), numbers just past a bound and far past int()'s 4,300 digits.
BAD_NUMBERS = (
    b"\xc2\xb2", b"\xd9\xa3", b"\xef\xbc\x97", b"-1", b"+1", b"1e3", b"0x10", b"", b"0",
    b"00000000000000000000001", b"256", b"65536", b"4294967296", b"18446744073709551616",
    b"9" * 12, b"9" * 5000,
)  # fmt: skip

# What a mutation inserts: line ends, separators, quotes, NUL, bytes that are not UTF-8, a
# 63-octet DNS label, compression pointers, and the bad numbers.
INSERTS = (
    b"\r", b"\n", b"\r\n", b"\r\n\r\n", b" ", b"\t", b":", b";", b",", b"=", b'"', b"<", b">",
    b"\\", b"/", b"?", b"@", b"%", b"\x00", b"\xff", b"\xc0", b"\x3f" + b"a" * 63, b"\xc0\x0c",
    b"\xc0\xff", *BAD_NUMBERS,
)  # fmt: skip

_DIGITS = re.compile(rb"[0-9]+")

REGISTER = (
    b"REGISTER sip:contoso.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.100:5070;branch=z9hG4bK-fuzz;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:clientuser1@contoso.test>;tag=a1;epid=0123456789\r\n"
    b"To: <sip:clientuser1@contoso.test>\r\n"
    b"Call-ID: fuzz-1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'Contact: <sip:127.0.0.100:5070;transport=udp>;+sip.instance="<urn:uuid:1>";expires=600\r\n'
    b"Expires: 3600\r\n"
    b"Supported: gruu-10, ms-userservices-state-notification\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def sip_seeds() -> list[bytes]:
    """Valid and invalid SIP messages: a Lync-style REGISTER, the golden vectors (CRLF) and
    the 49 RFC 4475 messages."""
    seeds = [REGISTER]
    for path in sorted((_TESTS / "vectors").glob("*.txt")):
        seeds.append(path.read_bytes().replace(b"\n", b"\r\n"))
    seeds.extend(path.read_bytes() for path in sorted((_TESTS / "sip" / "rfc4475").glob("*.dat")))
    return seeds


def _query(qid: int, name: bytes, qtype: int, *, edns: bool = False, opcode: int = 0) -> bytes:
    labels = b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\0"
    flags = 0x0100 | (opcode << 11)
    header = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0) if edns else b""
    return header + labels + struct.pack(">HH", qtype, 1) + opt


def dns_seeds() -> list[bytes]:
    """DNS queries a Lync client asks (SRV, A, AAAA, NAPTR), with and without EDNS, a
    compression pointer, and an UPDATE (RFC 2136) with a zone section."""
    return [
        _query(1, b"_sipinternaltls._tcp.contoso.test", 33),
        _query(2, b"fe1.contoso.test", 1, edns=True),
        _query(3, b"fe2.contoso.test", 28),
        _query(4, b"contoso.test", 35, edns=True),
        _query(5, b"nothere.contoso.test", 1),
        _query(6, b"example.org", 1),
        _query(7, b"contoso.test", 6, opcode=5),  # UPDATE: the zone section is a question
        struct.pack(">HHHHHH", 8, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",  # a loop
    ]


def mutate(data: bytes, rng: random.Random, rounds: int) -> bytes:
    """``data`` after ``rounds`` mutations: byte flips, truncations, insertions, deletions,
    a duplicated line (header duplication), a number replaced by a huge or non-ASCII one,
    or a splice with itself."""
    out = bytearray(data)
    for _ in range(rounds):
        kind = rng.randrange(8)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:  # flip bits of one byte
            out[min(at, len(out) - 1)] ^= rng.randrange(1, 256)
        elif kind == 1:  # truncate
            del out[at:]
        elif kind == 2:  # insert something meaningful
            out[at:at] = rng.choice(INSERTS)
        elif kind == 3:  # delete a span
            del out[at : at + rng.randrange(1, 16)]
        elif kind == 4:  # duplicate a line (a header field twice)
            start = out.rfind(b"\n", 0, at) + 1
            end = out.find(b"\n", at)
            if end > start:
                out[end + 1 : end + 1] = out[start : end + 1]
        elif kind == 5:  # replace a number by a bad one
            runs = [m.span() for m in _DIGITS.finditer(out)]
            if runs:
                i, j = rng.choice(runs)
                out[i:j] = rng.choice(BAD_NUMBERS)
        elif kind == 6:  # random bytes
            out[at:at] = rng.randbytes(rng.randrange(1, 8))
        else:  # splice: a piece of the message again somewhere else
            piece = bytes(out[at : at + rng.randrange(1, 64)])
            where = rng.randrange(len(out) + 1)
            out[where:where] = piece
    return bytes(out)


def sip_input(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One fuzz input for the SIP core: random bytes one time in five, else a mutated seed."""
    if rng.randrange(5) == 0:
        return rng.randbytes(rng.randrange(0, 600))
    return mutate(rng.choice(seeds), rng, rng.randrange(1, 5))


def dns_input(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One fuzz input for the DNS core: random bytes one time in five (often with a plausible
    header), else a mutated seed."""
    if rng.randrange(5) == 0:
        header = struct.pack(">HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, 0)
        body = rng.randbytes(rng.randrange(0, 300))
        return header + body if rng.randrange(2) else body
    return mutate(rng.choice(seeds), rng, rng.randrange(1, 4))
