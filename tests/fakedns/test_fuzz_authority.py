"""Fuzzing the fake DNS's answering core (issue 21: no traceback from any input).

Arbitrary bytes and mutations of real queries (``tests/mutations.py``: flips, truncations,
63-octet labels, compression pointers, bad counts) go to ``Authority.answer`` over UDP and
TCP.  It never raises; it answers None (dropped) or a well-formed response with the query's
ID and QR=1; a malformed input leaves an event naming its problem, never an internal error.
The bounded profile runs here; ``benchmarks/parse_fuzz.py`` runs 10^6 inputs.
"""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.rcode
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fakedns.authority import Authority
from fakedns.records import AddressRecord, NaptrRecord, SrvRecord
from tests.mutations import dns_input, dns_seeds, mutate

FUZZ = settings(derandomize=True, max_examples=300, deadline=None, database=None)

SEEDS = dns_seeds()


def make_authority() -> Authority:
    return Authority(
        ["contoso.test"],
        [
            SrvRecord("_sipinternaltls._tcp.contoso.test", 0, 0, 5061, "fe1.contoso.test"),
            AddressRecord("fe1.contoso.test", "127.0.0.11"),
            AddressRecord("fe2.contoso.test", "::1"),
            NaptrRecord("contoso.test", 10, 10, "s", "SIPS+D2T", "", "_sips._tcp.contoso.test"),
        ],
        trace=False,
    )


def check(data: bytes) -> None:
    for transport in ("udp", "tcp"):
        authority = make_authority()
        wire = authority.answer(data, transport, 0.0)
        events = authority.events()
        assert all(
            e.problem is None or not e.problem.startswith("internal error") for e in events
        ), events
        if wire is None:
            continue
        assert len(data) >= 12 and wire[:2] == data[:2]  # the query's ID
        reply = dns.message.from_wire(wire)  # well-formed
        assert reply.flags & dns.flags.QR
        if transport == "udp":
            assert len(wire) <= 4096
        if reply.rcode() == dns.rcode.FORMERR:
            assert [e.problem for e in events if e.problem]  # said why


@FUZZ
@given(st.randoms(use_true_random=False))
@example(random.Random(0))
def test_authority_survives_any_input(rng: random.Random) -> None:
    check(dns_input(rng, SEEDS))


@FUZZ
@given(st.sampled_from(SEEDS), st.randoms(use_true_random=False))
def test_heavily_mutated_queries(seed: bytes, rng: random.Random) -> None:
    check(mutate(seed, rng, 10))
