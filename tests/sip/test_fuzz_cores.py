"""Fuzzing the SIP parsing core and a registrar pool (issue 21: no traceback from any input).

Arbitrary bytes and mutations of valid and RFC 4475 messages (byte flips, truncations,
header duplication, huge and non-ASCII numbers: ``tests/mutations.py``) go to
``parse_message`` and to ``Pool.receive`` over UDP and TCP.  The parser raises nothing but a
SipError carrying a status to answer; the pool raises nothing at all, and whatever it sends
is a well-formed response to a request, never an answer to a response.  A bounded profile
(derandomized, a few hundred examples) runs in the suite; ``benchmarks/parse_fuzz.py`` runs
10^6 inputs.
"""

from __future__ import annotations

import random
from functools import cache

from hypothesis import example, given, settings
from hypothesis import strategies as st

from emulator.admin import Directory
from emulator.net import CloseFlow, Flow, Send
from emulator.operations import contact_store
from emulator.registrar.pool import Pool, PoolEndpoints
from emulator.sip.errors import SipError
from emulator.sip.message import Request, Response, parse_message
from emulator.topology import Topology
from tests.mutations import REGISTER, mutate, sip_input, sip_seeds
from tests.registrar.harness import topology

FUZZ = settings(derandomize=True, max_examples=300, deadline=None, database=None)
"""The bounded profile: the same 300 examples on every run (house style: reproducible)."""

STATUSES = {400, 413, 505}
"""What the parser may refuse a message with (RFC 3261 §21.4: 400, 413, 505)."""

SEEDS = sip_seeds()
UDP = Flow("udp", ("127.0.0.11", 5060), ("127.0.0.100", 5070))
TCP = Flow("tcp", ("127.0.0.11", 5060), ("127.0.0.100", 40000))


@cache
def _setup() -> tuple[Topology, dict[str, PoolEndpoints]]:
    topo = topology()
    endpoints = {
        spec.fqdn: PoolEndpoints(
            spec.fqdn, spec.address, {t: spec.port(t) or 0 for t in spec.transports}
        )
        for spec in topo.pools
    }
    return topo, endpoints


def make_pool() -> Pool:
    topo, endpoints = _setup()
    return Pool(
        topo.pool("fe1.contoso.test"),
        topo,
        endpoints,
        random.Random(21),
        now=0.0,
        directory=Directory(topo.users),
        contacts=contact_store(topo),
    )


@st.composite
def fuzz_inputs(draw: st.DrawFn) -> bytes:
    """Random bytes, or a seed message mutated 1-4 times (Hypothesis drives the choices)."""
    rng = draw(st.randoms(use_true_random=False))
    return sip_input(rng, SEEDS)


def check_parser(data: bytes) -> Request | Response | None:
    """Parse ``data``, datagram and stream; only a SipError with an answerable status escapes."""
    result: Request | Response | None = None
    for stream in (False, True):
        try:
            message = parse_message(data, stream=stream)
        except SipError as exc:
            assert exc.status in STATUSES, exc
            assert isinstance(exc.response, bool)
            continue
        if not stream:
            result = message
    return result


def check_pool(data: bytes) -> None:
    """``Pool.receive`` never raises; every answer parses and is a response to a request."""
    for flow in (UDP, TCP):
        pool = make_pool()
        pool.receive(data, flow, 1.0)
        actions = pool.actions()
        pool.events()
        sends = [a for a in actions if isinstance(a, Send)]
        assert len(sends) <= 1 + len(pool.bindings())  # one answer (NOTIFYs only with bindings)
        for send in sends:
            answer = parse_message(send.data, stream=flow.reliable)  # well-formed, framable
            if isinstance(answer, Response):
                assert 100 <= answer.status <= 699
                assert answer.headers.get("via") is not None  # §8.2.6.2: routed back by Via
                assert not data.lstrip(b"\r\n").startswith(b"SIP/")  # responses are not answered
        if not flow.reliable:
            assert not any(isinstance(a, CloseFlow) for a in actions)


@FUZZ
@given(fuzz_inputs())
@example(REGISTER.replace(b"Expires: 3600", b"Expires: \xc2\xb2"))  # "²": isdigit(), not int()
@example(REGISTER.replace(b"Expires: 3600", b"Expires: \xd9\xa3"))  # "٣": int() reads 3
@example(REGISTER.replace(b"Expires: 3600", b"Expires: " + b"9" * 5000))
@example(REGISTER.replace(b";expires=600", b";expires=" + b"9" * 5000))
@example(REGISTER.replace(b"CSeq: 1", b"CSeq: 4294967296"))
@example(REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: \xef\xbc\x97"))
@example(REGISTER.replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 0"))
def test_parser_and_pool_survive_any_input(data: bytes) -> None:
    check_parser(data)
    check_pool(data)


@FUZZ
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False))
def test_heavily_mutated_seeds(seed: bytes, rng: random.Random) -> None:
    data = mutate(seed, rng, 12)
    check_parser(data)
    check_pool(data)


def test_expires_that_is_digits_but_not_a_number_gets_400() -> None:
    # Issue 21, item 3: "Expires: ²" or 5,000 digits used to raise ValueError out of the core
    # (no answer over UDP, TCP connection torn down); "Expires: ٣" was read as 3.
    for value in (b"\xc2\xb2", b"9" * 5000, b"\xd9\xa3"):
        data = REGISTER.replace(b"Expires: 3600", b"Expires: " + value)
        for flow in (UDP, TCP):
            pool = make_pool()
            pool.receive(data, flow, 1.0)
            (send,) = [a for a in pool.actions() if isinstance(a, Send)]
            answer = parse_message(send.data)
            assert isinstance(answer, Response)
            assert (answer.status, answer.reason) == (400, "Bad Expires")
            assert pool.bindings() == []
