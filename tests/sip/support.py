"""Helpers shared by the SIP tests: golden-vector loading, structural comparison, Hypothesis
settings."""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings

from emulator.sip.message import Request, Response, canonical_name

VECTORS = Path(__file__).resolve().parent.parent / "vectors"

BOUNDED = settings(derandomize=True, max_examples=200, deadline=None, database=None)
"""Every property runs the same 200 examples on every run (house style: reproducible)."""

Structure = tuple[str, tuple[object, ...], list[tuple[str, str]], bytes]


def vector_names() -> list[str]:
    return sorted(path.name for path in VECTORS.glob("*.txt"))


def load_vector(name: str) -> bytes:
    """The message in ``tests/vectors/<name>`` with every LF turned into CRLF (see README)."""
    text = (VECTORS / name).read_bytes()
    if b"\r" in text:
        raise ValueError(f"{name}: vectors are stored with LF line ends (tests/vectors/README)")
    return text.replace(b"\n", b"\r\n")


def structure(message: Request | Response) -> Structure:
    """What a message *is*, regardless of spelling: start line, header fields by canonical
    lower-case name in order, body.

    Content-Length is left out: the serializer always writes its own (the body's length, last),
    so its spelling and place are not part of the message's structure.
    """
    if isinstance(message, Request):
        start: tuple[object, ...] = ("request", message.method, message.uri, message.version)
    else:
        start = ("response", message.status, message.reason, message.version)
    fields = [
        (canonical_name(name).lower(), value)
        for name, value in message.headers
        if canonical_name(name).lower() != "content-length"
    ]
    return (type(message).__name__, start, fields, message.body)
