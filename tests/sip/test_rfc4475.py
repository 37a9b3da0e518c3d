"""RFC 4475 (SIP torture test messages): every message of the RFC's archive, sent to a
registrar pool over UDP, gets the answer the RFC asks for, or the one docs/protocol.md
("RFC 4475 torture messages") documents as the emulator's choice.

The vectors are in ``tests/sip/rfc4475/`` (see its README); the pool serves ``example.com``,
the RFC's domain, so that the REGISTERs reach the registrar's rules instead of stopping at
"unknown domain".
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from emulator.admin import Directory
from emulator.net import CloseFlow, Flow, Send
from emulator.operations import contact_store
from emulator.registrar.events import BadMessage
from emulator.registrar.pool import Pool, PoolEndpoints
from emulator.sip.headers import split_commas
from emulator.sip.message import Response, parse_message
from emulator.topology import parse_topology

VECTORS = Path(__file__).resolve().parent / "rfc4475"

TOPOLOGY = """
domain = "example.com"

[registrar]
require_endpoint_id = false

[[pool]]
fqdn = "fe1.example.com"
role = "frontend"
address = "127.0.0.11"
[pool.ports]
udp = 5060

[[user]]
uri = "sip:user@example.com"
pool = "fe1.example.com"

[[user]]
uri = "sip:j.user@example.com"
pool = "fe1.example.com"

[[user]]
uri = "sip:watson@example.com"
pool = "fe1.example.com"

[[user]]
uri = "sip:null-%00-null@example.com"
pool = "fe1.example.com"
"""

DROPPED = None

# name -> (RFC section, valid per the RFC, status sipemu answers or DROPPED, reason for a 400).
# Each row is a row of the table in docs/protocol.md.
EXPECTED: dict[str, tuple[str, bool, int | None, str | None]] = {
    # 3.1.1 valid messages
    "wsinv": ("3.1.1.1", True, 405, None),  # INVITE: not served (§8.2.1, method first)
    "intmeth": ("3.1.1.2", True, 501, None),  # unknown method
    "esc01": ("3.1.1.3", True, 405, None),
    "escnull": ("3.1.1.4", True, 200, None),
    "esc02": ("3.1.1.5", True, 501, None),  # RE%47IST%45R is not REGISTER
    "lwsdisp": ("3.1.1.6", True, 200, None),
    "longreq": ("3.1.1.7", True, 405, None),
    "dblreq": ("3.1.1.8", True, 200, None),  # the REGISTER; trailing octets ignored
    "semiuri": ("3.1.1.9", True, 200, None),
    "transports": ("3.1.1.10", True, 200, None),
    "mpart01": ("3.1.1.11", True, 405, None),
    "unreason": ("3.1.1.12", True, DROPPED, None),  # a response to no transaction
    "noreason": ("3.1.1.13", True, DROPPED, None),
    # 3.1.2 invalid messages
    "badinv01": ("3.1.2.1", False, 400, "Bad Via"),
    "clerr": ("3.1.2.2", False, 400, "Bad Request"),
    "ncl": ("3.1.2.3", False, 400, "Bad Content-Length"),
    "scalar02": ("3.1.2.4", False, 400, "Bad CSeq"),
    "scalarlg": ("3.1.2.5", False, DROPPED, None),  # a response: never answered
    "quotbal": ("3.1.2.6", False, 400, "Bad To"),
    "ltgtruri": ("3.1.2.7", False, 400, "Bad Request-URI"),
    "lwsruri": ("3.1.2.8", False, 400, "Bad Request"),
    "lwsstart": ("3.1.2.9", False, 400, "Bad Request"),
    "trws": ("3.1.2.10", False, 400, "Bad Request"),
    "escruri": ("3.1.2.11", False, 400, "Bad Request-URI"),
    "baddate": ("3.1.2.12", False, 405, None),  # Date is not read; INVITE not served
    "regbadct": ("3.1.2.13", False, 400, "Bad Contact"),
    "badaspec": ("3.1.2.14", False, 400, "Bad To"),
    "baddn": ("3.1.2.15", False, 400, "Bad From"),
    "badvers": ("3.1.2.16", False, 505, None),
    "mismatch01": ("3.1.2.17", False, 400, "Bad Request"),
    "mismatch02": ("3.1.2.18", False, 400, "Bad Request"),
    "bigcode": ("3.1.2.19", False, DROPPED, None),  # a response: never answered
    # 3.2 transaction layer
    "badbranch": ("3.2.1", True, 200, None),  # answered; the whole Via keys the transaction
    # 3.3 application layer
    "insuf": ("3.3.1", True, 400, "Bad Request"),
    "unkscm": ("3.3.2", True, 416, None),
    "novelsc": ("3.3.3", True, 416, None),
    "unksm2": ("3.3.4", True, 416, None),
    "bext01": ("3.3.5", True, 420, None),
    "invut": ("3.3.6", True, 405, None),  # 415 would follow 405 (§8.2 order)
    "regaut01": ("3.3.7", True, 200, None),  # no authentication: Authorization ignored
    "multi01": ("3.3.8", True, 400, "Bad Call-ID"),
    "mcl01": ("3.3.9", True, 400, "Bad Content-Length"),
    "bcast": ("3.3.10", True, DROPPED, None),
    "zeromf": ("3.3.11", True, 200, None),  # the registrar is the target: Max-Forwards 0 is fine
    "cparam01": ("3.3.12", True, 200, None),
    "cparam02": ("3.3.13", True, 200, None),
    "regescrt": ("3.3.14", True, 200, None),
    "sdp01": ("3.3.15", True, 405, None),  # 406 would follow 405 (§8.2 order)
    # 3.4 backward compatibility
    "inv2543": ("3.4.1", True, 405, None),
}

# SHA-256 of each file, so that an editor or a line-end conversion cannot change a vector
# unnoticed (README: the bytes are the RFC archive's).
SHA256 = {
    path.stem: hashlib.sha256(path.read_bytes()).hexdigest() for path in VECTORS.glob("*.dat")
}

CLIENT_FLOW = Flow("udp", ("127.0.0.11", 5060), ("192.0.2.1", 5060))


def make_pool() -> Pool:
    topology = parse_topology(TOPOLOGY, "<rfc4475>")
    endpoints = {
        spec.fqdn: PoolEndpoints(
            spec.fqdn, spec.address, {t: spec.port(t) or 0 for t in spec.transports}
        )
        for spec in topology.pools
    }
    spec = topology.pools[0]
    return Pool(
        spec,
        topology,
        endpoints,
        random.Random(4475),
        now=0.0,
        directory=Directory(topology.users),
        contacts=contact_store(topology),
    )


def test_every_message_of_the_rfc_is_a_vector() -> None:
    assert sorted(path.stem for path in VECTORS.glob("*.dat")) == sorted(EXPECTED)
    assert len(EXPECTED) == 49


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_is_answered_as_documented(name: str) -> None:
    _, _, status, reason = EXPECTED[name]
    pool = make_pool()
    pool.receive((VECTORS / f"{name}.dat").read_bytes(), CLIENT_FLOW, 1.0)
    sends = [a for a in pool.actions() if isinstance(a, Send)]
    if status is DROPPED:
        assert sends == []
        return
    assert len(sends) == 1
    answer = parse_message(sends[0].data)  # the answer is itself well-formed
    assert isinstance(answer, Response)
    assert answer.status == status
    if reason is not None:
        assert answer.reason == reason
    # §8.2.6.2: the answer copies Via and CSeq (and From, To, Call-ID when there are any).
    assert answer.headers.get("via") is not None and answer.headers.get("cseq") is not None


def test_invalid_vectors_are_never_accepted() -> None:
    # Whatever the emulator chose for an invalid message, it is never a 2xx.
    for name, (_, valid, status, _) in EXPECTED.items():
        if not valid:
            assert status is DROPPED or status >= 400, name


def test_bad_extension_lists_the_unsupported_options() -> None:
    pool = make_pool()
    pool.receive((VECTORS / "bext01.dat").read_bytes(), CLIENT_FLOW, 1.0)
    (send,) = [a for a in pool.actions() if isinstance(a, Send)]
    answer = parse_message(send.data)
    # RFC 3261 §8.2.2.3: Require's tags; Proxy-Require is for proxies.
    unsupported = split_commas(answer.headers.get("unsupported") or "")
    assert unsupported == ["nothingSupportsThis", "nothingSupportsThisEither"]


def test_broken_responses_are_dropped_and_never_answered() -> None:
    # bigcode cannot be parsed: a BadMessage, but no 400 (RFC 3261 §17.1.3).
    pool = make_pool()
    pool.receive((VECTORS / "bigcode.dat").read_bytes(), CLIENT_FLOW, 1.0)
    assert [a for a in pool.actions() if isinstance(a, Send | CloseFlow)] == []
    (event,) = [e for e in pool.events() if isinstance(e, BadMessage)]
    assert event.status == 0
    # scalarlg parses (its Retry-After ignored: docs/protocol.md "Strict numbers") and
    # matches no transaction: dropped.
    pool = make_pool()
    pool.receive((VECTORS / "scalarlg.dat").read_bytes(), CLIENT_FLOW, 1.0)
    assert [a for a in pool.actions() if isinstance(a, Send | CloseFlow)] == []


def test_dblreq_registers_and_ignores_the_trailing_invite() -> None:
    # RFC 4475 §3.1.1.8: over UDP, the bytes after Content-Length are discarded.
    pool = make_pool()
    pool.receive((VECTORS / "dblreq.dat").read_bytes(), CLIENT_FLOW, 1.0)
    (send,) = [a for a in pool.actions() if isinstance(a, Send)]
    assert parse_message(send.data).cseq == (8, "REGISTER")
    assert [b.aor for b in pool.bindings()] == ["sip:j.user@example.com"]


def test_vector_bytes_are_the_archive_bytes() -> None:
    # The archive's messages end their lines with CRLF; a checkout converting them to LF
    # (or an editor) would change what they test.
    for name in ("wsinv", "intmeth", "mpart01", "trws"):
        data = (VECTORS / f"{name}.dat").read_bytes()
        assert data.count(b"\r\n") >= data.count(b"\n") - (name == "mpart01") * 3
    assert (VECTORS / "trws.dat").read_bytes().split(b"\r\n")[0].endswith(b"SIP/2.0  ")
    assert b"\x00" in (VECTORS / "intmeth.dat").read_bytes()
    assert SHA256 == EXPECTED_SHA256


EXPECTED_SHA256 = {
    "badaspec": "f8f6e2f4247287b0be6adb5ac222a6db4759395e44d27d2ddb9b39393e94867e",
    "badbranch": "cb049c727f16b5ec49e822f9e8b7d0ee20ca2d20ffb50baecd0b411a5e64fa7d",
    "baddate": "1208a6e3e0c8a8c33a06a1f3733d158413cb72e58c379d094c4ecea11e9d4c28",
    "baddn": "9d9428e8017092f194ec11077ba6865c251308cdfd7fd9db6a993b28e5748951",
    "badinv01": "9ee2b88f2e0b5a9eeb9bf729b6177f0a0c7d0b5e6c84be593e0480d7962f3ab8",
    "badvers": "037d702d19e934bfeebbd2609050d7d54928d590cf90c78f3914522771dd8e03",
    "bcast": "073637c63597199179cf5fc91b980b2d530c066a0048ea3b908772def57b4c36",
    "bext01": "57181987c02c4f5752b7aa8c2847311f6184216ce7621e40303015949e70761c",
    "bigcode": "f79450070975da54c3525c9a5cbe75bae3c9d8cb92eba609772c26f66f225c2e",
    "clerr": "d9da629086a38df433438fb0fb19a8730f34516f049a5520dd0cac3285485290",
    "cparam01": "dfa6b5cdb289adc694b9b7e103ebfa7a2167335c46e5dc9de67055021910ae1c",
    "cparam02": "e93574215bd1d804bb46cc15ca6176b567def7ea1b15f72ab2c2dcf598af465a",
    "dblreq": "a6be48426565c2a705389c4ce2ea17e57b891cb13f80490a2cb9392c797b46ef",
    "esc01": "be3a316d4ce5f69cad474646191e390dd4b50fc8371e44b5197fe1237781973e",
    "esc02": "9a9c59449f00327b02071feafc8e5c2a261c98c818044167894cc17809a12199",
    "escnull": "263fe2ecd12a5ccbb6c67b3174e9211d11da9b600e7d69666a86d2ee42873e90",
    "escruri": "c3cf30af13a9d107829cc105effd79355f1139c6ecc683a048b4c27951f8f416",
    "insuf": "1e3efd9f3b238c6351ba12bc7eb46d843f2761b5d4a6b82b63bffdf07f2c5aee",
    "intmeth": "b957a8292c1c0a9851fe94705b90f94320738f43aacde64998e401f742ef688d",
    "inv2543": "76fac8afe22dee49ea696b511621946694897ac7030fc5d07f57c8b487ce0521",
    "invut": "9b39e824947df46f90f824cd308fb3c118f548d94637f581101e355b381a0d92",
    "longreq": "185739292bc676760e5b1cca77c87705aa570240171c506ad76f8c35af0ecdaa",
    "ltgtruri": "bcacb2dc17610e8cc8f9b8b0e3d6ee65ab473f93787a03bbd33579e1cea473df",
    "lwsdisp": "d1b36b6316c12824f6f04bf6b1fd1f021cade9b74871693b9c3474cd9fa7f4e6",
    "lwsruri": "3e22ceeca585ad23cc180208e2dad94e0a5aa4bb877a61cac443aa927f758b9e",
    "lwsstart": "f884e5626c6c5b1210cfc4a3540b8a28bd52939cff092f3f0c5c971e032adb0e",
    "mcl01": "887191619bf003b7e87399200b5cf4c3b5397344dbf70288ad5e23bd157b7fe4",
    "mismatch01": "a2c285636e451e75420da0cc62ee55ca3e398827008418befbfb078726bf0793",
    "mismatch02": "01b287f9a9c492f7f57405c36c8a2af0e2393896ed2d25fb92b502f2a6722bc4",
    "mpart01": "92147c8e24997bac59629e1b163767697d0d6d499af87f89e325d69968bec3ba",
    "multi01": "d156ab12105b4bfd8a6498de6f7195087058162b8cda1606169855b722411791",
    "ncl": "7ea6538edc1f054fdb6cd1c821040460cffca3cb682fa2e8e2a502d92170b4c2",
    "noreason": "07e11e470a69fffa3674de805e5165d1351a9439a91045ee70c9570ea24ab4fe",
    "novelsc": "9a50a7343fcf685e77c4d0f477138a28f32a41c75aa566d200f3df210b01e648",
    "quotbal": "e61978a2ea359fc666f0336fe4dbc623447532280e3273ea98119b3d3f788c84",
    "regaut01": "885ba0488872cfc04a3c7622854b8381955a5ee890745d6010834e3731a73faa",
    "regbadct": "575d27530275814c1c98be164808fac89a0e2b4fc899dadcd97e6ba499437bda",
    "regescrt": "dab4087c133348b06fd7b3c4c7ef15094f8754e265e4e8c2137bb3ecda2ef477",
    "scalar02": "53158177326568e9964bce5dcfac27a2bf8a90953bbc03f6c5e2775864a97e4b",
    "scalarlg": "0957eca31737e3592eb1418bb41e9f5219278a78ff420111620d7fb60175b551",
    "sdp01": "497c5f1ced6c7b579b48075e2dca919ce9b819a735964128a6e744a3a0b9e57f",
    "semiuri": "87bbaed6b4b354dbd3c5c7a20e66686303c63e43a0aa19b89de1ac75231611a2",
    "transports": "33b4553a3b9418121b099ff07882535151edd6a1e81898c63a916aad2cbf90bc",
    "trws": "64ae20694026e28c10746b57386b7fd1276de02b6f8d42d418070e87d6f4499f",
    "unkscm": "81be1a6a566c7ab52fe1c58c4a75440dfd697ad04c5e09fa71340de7da7b8bbb",
    "unksm2": "f6914409ced613ef5eb56e264d2f096dac26ab9e397d6a638934d2027f1f6acb",
    "unreason": "4f939d6ebf4817eea70f011d3209e83732872ffc20ffd304b244084dc392f4d7",
    "wsinv": "d6f6cdee99cd0a1f8e3d9a0fdd67c877700e19ab86d8186dada06f61260e3e61",
    "zeromf": "50954ef47acca4f9f5263ded06246d06dee4e2ee508a8d284191795d7fddf365",
}


@pytest.mark.parametrize(
    ("name", "bindings"),
    [
        # §3.1.1.4: escaped nulls stay escaped, two Contacts, two bindings.
        (
            "escnull",
            [
                ("sip:null-%00-null@example.com", "<sip:%00@host5.example.com>"),
                ("sip:null-%00-null@example.com", "<sip:%00%00@host5.example.com>"),
            ],
        ),
        # §3.3.12: in an addr-spec, ;unknownparam is a header parameter (kept outside <>).
        (
            "cparam01",
            [("sip:watson@example.com", "<sip:+19725552222@gw1.example.net>;unknownparam")],
        ),
        # §3.3.13: inside <>, it is a URI parameter.
        (
            "cparam02",
            [("sip:watson@example.com", "<sip:+19725552222@gw1.example.net;unknownparam>")],
        ),
        # §3.3.14: the Contact URI's escaped headers are kept as sent.
        (
            "regescrt",
            [("sip:user@example.com", "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")],
        ),
        ("regaut01", []),  # §3.3.7: a query; the unknown Authorization scheme is ignored
    ],
)
def test_valid_registers_make_the_bindings_the_rfc_describes(
    name: str, bindings: list[tuple[str, str]]
) -> None:
    pool = make_pool()
    pool.receive((VECTORS / f"{name}.dat").read_bytes(), CLIENT_FLOW, 1.0)
    assert [(b.aor, b.contact) for b in pool.bindings()] == bindings
