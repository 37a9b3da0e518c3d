"""A client's Digest credentials (clients/credentials.py): which 401s it answers, and what it
writes (checked against the pool's own computation, emulator/sip/digest.py)."""

from __future__ import annotations

import random

from clients.credentials import Credentials
from emulator.sip.digest import digest_response, parse_challenge
from emulator.sip.message import Headers, Request, Response, parse_message
from tests.registrar.harness import R1, World, make_world, register


def challenge(*values: str) -> Response:
    headers = Headers()
    for value in values:
        headers.add("WWW-Authenticate", value)
    return Response(401, "Unauthorized", headers)


def bare_register(authorization: str | None = None) -> Request:
    headers = Headers([("From", "<sip:pat@contoso.test>;tag=1"), ("CSeq", "1 REGISTER")])
    if authorization:
        headers.add("Authorization", authorization)
    return Request("REGISTER", "sip:contoso.test", headers)


SHA = 'Digest realm="contoso.test", nonce="n1", algorithm=SHA-256, qop="auth"'
MD5 = 'Digest realm="contoso.test", nonce="n1", algorithm=MD5, qop="auth"'


def test_prefers_the_first_supported_algorithm_and_writes_right_credentials() -> None:
    creds = Credentials("pat", "pw", random.Random(1))
    assert creds.challenged(challenge(MD5, SHA), None)
    request = bare_register()
    creds.authorize(request)
    _, params = parse_challenge(request.headers.get("authorization") or "")
    assert params["algorithm"] == "SHA-256" and params["nc"] == "00000001"
    assert params["response"] == digest_response(
        "SHA-256", "pat", "contoso.test", "pw", "REGISTER", "sip:contoso.test", "n1",
        nc="00000001", cnonce=params["cnonce"], qop="auth",
    )  # fmt: skip
    again = bare_register()
    creds.authorize(again)
    assert parse_challenge(again.headers.get("authorization") or "")[1]["nc"] == "00000002"


def test_md5_only_client_answers_the_md5_challenge() -> None:
    creds = Credentials("pat", "pw", random.Random(1), ("MD5",))
    assert creds.challenged(challenge(SHA, MD5), None)
    request = bare_register()
    creds.authorize(request)
    assert "algorithm=MD5" in (request.headers.get("authorization") or "")


def test_refused_credentials_end_the_retries_unless_stale() -> None:
    creds = Credentials("pat", "pw", random.Random(1))
    tried = bare_register('Digest username="pat", nonce="n0"')
    assert not creds.challenged(challenge(SHA), tried)
    assert creds.challenged(challenge(SHA.replace('qop="auth"', 'qop="auth", stale=true')), tried)


def test_no_digest_challenge_no_answer_and_options_never_carry_credentials() -> None:
    creds = Credentials("pat", "pw", random.Random(1))
    ntlm = 'NTLM realm="SIP Communications Service", targetname="fe1", version=3'
    assert not creds.challenged(challenge(ntlm), None)
    assert creds.challenged(challenge(SHA), None)
    options = Request("OPTIONS", "sip:fe1.contoso.test", Headers())
    creds.authorize(options)
    assert options.headers.get("authorization") is None


# -- NTLM (MS-SIPAE) against a pool -----------------------------------------------------------


def ntlm_world() -> World:
    return make_world(topology_text=R1.replace("{registrar}", "") + '\n[auth]\nscheme = "ntlm"\n')


def send(w: World, creds: Credentials, cseq: int) -> tuple[Request, Response]:
    request = parse_message(register("clientuser1", cseq=cseq))
    assert isinstance(request, Request)
    creds.authorize(request)
    (answer,) = w.send("fe1.contoso.test", request.to_bytes())
    assert isinstance(answer, Response)
    return request, answer


def test_ntlm_exchange_then_signed_requests() -> None:
    w = ntlm_world()
    creds = Credentials("clientuser1", "Pa$$w0rd", random.Random(1), schemes=("ntlm", "digest"))
    sent, answer = send(w, creds, 1)
    assert answer.status == 401 and creds.challenged(answer, sent)
    sent, answer = send(w, creds, 2)
    assert 'gssapi-data=""' in (sent.headers.get("authorization") or "")
    assert answer.status == 401 and creds.challenged(answer, sent)
    sent, answer = send(w, creds, 3)
    assert answer.status == 200 and "rspauth=" in (answer.headers.get("authentication-info") or "")
    sent, answer = send(w, creds, 4)
    assert 'cnum="1"' in (sent.headers.get("authorization") or "")
    assert answer.status == 200


def test_ntlm_wrong_password_gives_up_after_the_authenticate() -> None:
    w = ntlm_world()
    creds = Credentials("clientuser1", "guess", random.Random(1), schemes=("ntlm",))
    for cseq in (1, 2):
        sent, answer = send(w, creds, cseq)
        assert creds.challenged(answer, sent)
    sent, answer = send(w, creds, 3)
    assert answer.status == 401
    assert not creds.challenged(answer, sent)


def test_ntlm_authenticate_is_reproducible_for_a_seed() -> None:
    headers = []
    for _ in range(2):
        w = ntlm_world()
        creds = Credentials("clientuser1", "Pa$$w0rd", random.Random(5), schemes=("ntlm",))
        for cseq in (1, 2):
            sent, answer = send(w, creds, cseq)
            creds.challenged(answer, sent)
        request, _ = send(w, creds, 3)
        headers.append(request.headers.get("authorization"))
    assert headers[0] == headers[1] and "gssapi-data=" in (headers[0] or "")
