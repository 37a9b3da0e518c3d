"""Authentication at the pool (emulator/registrar/auth.py): Digest and MS-SIPAE NTLM.

Vectors: RFC 2617 §3.5 (MD5, qop=auth) and RFC 7616 §3.9.1 (MD5 and SHA-256, the algorithms
of RFC 8760).  NTLM is exercised against pyspnego's own initiator standing in for a client.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from spnego._ntlm_raw.messages import Challenge, NegotiateFlags

from emulator.registrar.auth import NTLM_REALM
from emulator.registrar.events import AuthRefused, BindingAdded
from emulator.sip.digest import digest_response, format_params, parse_challenge
from emulator.sip.message import Request, Response
from emulator.topology import TopologyError, parse_topology

from .harness import R1, World, make_world, register
from .ntlm_client import NtlmClient

FE1 = "fe1.contoso.test"
FE2 = "fe2.contoso.test"


def world(auth: str, users: str = "") -> World:
    text = R1.replace("{registrar}", "") + users + "\n[auth]\n" + auth
    return make_world(topology_text=text)


def one(messages: list[Response | Request]) -> Response:
    assert len(messages) == 1, messages
    answer = messages[0]
    assert isinstance(answer, Response)
    return answer


def refusals(w: World) -> list[str]:
    return [e.reason for e in w.kinds(AuthRefused)]  # type: ignore[attr-defined]


# -- Digest vectors ---------------------------------------------------------------------------


def test_rfc2617_section_3_5_md5_vector() -> None:
    assert (
        digest_response(
            "MD5",
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            nc="00000001",
            cnonce="0a4f113b",
            qop="auth",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_vectors(algorithm: str, expected: str) -> None:
    assert (
        digest_response(
            algorithm,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            qop="auth",
        )
        == expected
    )


def test_challenge_parameters_round_trip() -> None:
    text = format_params("Digest", [("realm", "a, b"), ("nonce", "n"), ("algorithm", "MD5")])
    assert text == 'Digest realm="a, b", nonce="n", algorithm=MD5'
    assert parse_challenge(text) == ("Digest", {"realm": "a, b", "nonce": "n", "algorithm": "MD5"})


# -- Digest at the pool -----------------------------------------------------------------------


def digest_register(
    challenge: Response,
    *,
    user: str = "clientuser1",
    password: str = "Pa$$w0rd",
    nc: int = 1,
    cseq: int = 2,
    algorithm: str = "SHA-256",
) -> bytes:
    chosen = next(
        params
        for value in challenge.headers.get_all("www-authenticate")
        for scheme, params in [parse_challenge(value)]
        if scheme == "Digest" and params.get("algorithm") == algorithm
    )
    nc_text = f"{nc:08x}"
    uri = "sip:contoso.test"
    response = digest_response(
        algorithm,
        user,
        chosen["realm"],
        password,
        "REGISTER",
        uri,
        chosen["nonce"],
        nc=nc_text,
        cnonce="c0ffee",
        qop="auth",
    )
    header = format_params(
        "Digest",
        [
            ("username", user),
            ("realm", chosen["realm"]),
            ("nonce", chosen["nonce"]),
            ("uri", uri),
            ("response", response),
            ("algorithm", algorithm),
            ("qop", "auth"),
            ("nc", nc_text),
            ("cnonce", "c0ffee"),
        ],
    )
    return register(user, cseq=cseq, extra=f"Authorization: {header}")


def test_digest_challenge_offers_sha256_then_md5_with_qop_auth() -> None:
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    assert challenge.status == 401
    offered = [parse_challenge(v) for v in challenge.headers.get_all("www-authenticate")]
    assert [p["algorithm"] for _, p in offered] == ["SHA-256", "MD5"]
    assert all(s == "Digest" and p["qop"] == "auth" for s, p in offered)
    assert offered[0][1]["realm"] == "contoso.test"
    assert offered[0][1]["nonce"] == offered[1][1]["nonce"]
    assert refusals(w) == ["no credentials"]
    assert not w.kinds(BindingAdded)


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_digest_right_password_registers(algorithm: str) -> None:
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    ok = one(w.send(FE1, digest_register(challenge, algorithm=algorithm)))
    assert ok.status == 200
    assert len(w.kinds(BindingAdded)) == 1


def test_digest_wrong_password_is_challenged_again_and_logged() -> None:
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    again = one(w.send(FE1, digest_register(challenge, password="nope")))
    assert again.status == 401
    assert "stale" not in (again.headers.get("www-authenticate") or "")
    assert refusals(w)[-1] == "wrong password for 'clientuser1'"
    assert not w.kinds(BindingAdded)


def test_user_password_from_the_topology() -> None:
    users = (
        '\n[[user]]\nuri = "sip:pat@contoso.test"\npool = "fe1.contoso.test"\npassword = "s3cret"\n'
    )
    w = world('scheme = "digest"', users)
    challenge = one(w.send(FE1, register("pat")))
    assert one(w.send(FE1, digest_register(challenge, user="pat"))).status == 401
    challenge = one(w.send(FE1, register("pat", cseq=3)))
    ok = one(w.send(FE1, digest_register(challenge, user="pat", password="s3cret", cseq=4)))
    assert ok.status == 200


def test_digest_replayed_nonce_count_is_forbidden() -> None:
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    assert one(w.send(FE1, digest_register(challenge, nc=1, cseq=2))).status == 200
    replay = one(w.send(FE1, digest_register(challenge, nc=1, cseq=3)))
    assert replay.status == 403
    assert refusals(w)[-1] == "replayed nonce count 00000001 (last 1)"
    assert one(w.send(FE1, digest_register(challenge, nc=2, cseq=4))).status == 200


def test_digest_expired_nonce_gets_stale_true() -> None:
    w = world('scheme = "digest"\nnonce_timeout = 60')
    challenge = one(w.send(FE1, register("clientuser1")))
    w.now = 61.0
    stale = one(w.send(FE1, digest_register(challenge)))
    assert stale.status == 401
    assert all("stale=true" in v for v in stale.headers.get_all("www-authenticate"))
    assert refusals(w)[-1] == "nonce expired (stale=true)"
    assert one(w.send(FE1, digest_register(stale, cseq=3))).status == 200


def test_a_backup_registrar_reauthenticates_with_stale_true() -> None:
    """A nonce from fe1 shown to fe2 (the backup): the digest is right, the nonce not fe2's."""
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    stale = one(w.send(FE2, digest_register(challenge)))
    assert stale.status == 401
    assert "stale=true" in (stale.headers.get("www-authenticate") or "")
    assert refusals(w)[-1] == "nonce not issued here (stale=true)"


def test_credentials_for_another_user_are_forbidden() -> None:
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    forged = digest_register(challenge, user="clientuser2").replace(
        b"From: <sip:clientuser2@", b"From: <sip:clientuser1@"
    )
    assert one(w.send(FE1, forged)).status == 403
    assert refusals(w)[-1] == "'clientuser2' may not act for sip:clientuser1@contoso.test"


def test_options_heartbeats_are_not_challenged() -> None:
    w = world('scheme = "ntlm+digest"')
    w.run_until(30.0)
    assert not [e for e in w.kinds(AuthRefused)]


def test_auth_off_by_default_changes_nothing() -> None:
    w = make_world()
    assert one(w.send(FE1, register("clientuser1"))).status == 200
    assert w.topology.auth.scheme == "none"


# -- NTLM (MS-SIPAE) ----------------------------------------------------------------------------


def ntlm_sign_in(w: World, client: NtlmClient) -> Response:
    first = one(w.send(FE1, register("clientuser1", cseq=1)))
    assert first.status == 401
    assert first.headers.get("www-authenticate") == (
        f'NTLM realm="{NTLM_REALM}", targetname="{FE1}", version=3'
    )
    start = client.authorization(', gssapi-data=""')
    challenge = one(w.send(FE1, register("clientuser1", cseq=2, extra=f"Authorization: {start}")))
    assert challenge.status == 401
    auth = client.answer(challenge)
    return one(w.send(FE1, register("clientuser1", cseq=3, extra=f"Authorization: {auth}")))


def test_ntlm_exchange_in_the_shape_of_ms_sipae_4_1_builds_an_sa_and_signs_the_200() -> None:
    """MS-SIPAE §4.1's exchange: the first 401 names realm, targetname and version (as the
    example's ``NTLM realm=\"SIP Communications Service\", targetname=..., version=3``), the
    second carries the CHALLENGE_MESSAGE and opaque, the 200 Authentication-Info."""
    w = world('scheme = "ntlm"')
    client = NtlmClient()
    ok = ntlm_sign_in(w, client)
    assert ok.status == 200
    info = parse_challenge(ok.headers.get("authentication-info") or "")[1]
    assert info["opaque"] == client.opaque and info["qop"] == "auth" and info["snum"] == "1"
    assert client.verify(ok)
    # Later requests carry the client's signature; each answer is signed again.
    refresh = one(w.send(FE1, client.signed(register("clientuser1", cseq=4))))
    assert refresh.status == 200
    assert client.verify(refresh)
    assert parse_challenge(refresh.headers.get("authentication-info") or "")[1]["snum"] == "2"


def test_ntlm_challenge_and_signature_in_the_form_pidgin_sipe_accepts() -> None:
    """The CHALLENGE_MESSAGE says NTLMSSP_NEGOTIATE_IDENTIFY (SIPE refuses a connectionless
    challenge without it), ``snum`` is quoted as in MS-SIPAE §4.1 (SIPE finds it only so) and
    the signature carries SeqNum 100 (MS-SIPAE §4.1's rspauth ends in 64000000)."""
    w = world('scheme = "ntlm"')
    client = NtlmClient()
    start = client.authorization(', gssapi-data=""')
    w.send(FE1, register("clientuser1", cseq=1))
    challenge = one(w.send(FE1, register("clientuser1", cseq=2, extra=f"Authorization: {start}")))
    data = parse_challenge(challenge.headers.get("www-authenticate") or "")[1]["gssapi-data"]
    flags = Challenge.unpack(base64.b64decode(data)).flags
    assert flags & NegotiateFlags.identity and flags & NegotiateFlags.datagram
    auth = client.answer(challenge)
    ok = one(w.send(FE1, register("clientuser1", cseq=3, extra=f"Authorization: {auth}")))
    raw = ok.headers.get("authentication-info") or ""
    assert 'snum="1"' in raw and 'srand="' in raw
    rspauth = parse_challenge(raw)[1]["rspauth"]
    assert rspauth.lower().endswith("64000000")


def test_ntlm_wrong_password_is_challenged_again() -> None:
    w = world('scheme = "ntlm"')
    assert ntlm_sign_in(w, NtlmClient(password="wrong")).status == 401
    assert refusals(w)[-1] == "wrong password for 'clientuser1'"
    assert not w.kinds(BindingAdded)


def test_ntlm_missing_and_invalid_signatures_are_challenged() -> None:
    w = world('scheme = "ntlm"')
    client = NtlmClient()
    assert ntlm_sign_in(w, client).status == 200
    unsigned = client.authorization(f', opaque="{client.opaque}"')
    bare = register("clientuser1", cseq=4, extra=f"Authorization: {unsigned}")
    assert one(w.send(FE1, bare)).status == 401
    assert refusals(w)[-1] == "missing signature"
    tampered = client.signed(register("clientuser1", cseq=5)).replace(
        b"Expires: 3600", b"Expires: 60"
    )
    assert one(w.send(FE1, tampered)).status == 401
    assert refusals(w)[-1] == "invalid signature"


def test_ntlm_replayed_cnum_is_forbidden() -> None:
    w = world('scheme = "ntlm"')
    client = NtlmClient()
    assert ntlm_sign_in(w, client).status == 200
    assert one(w.send(FE1, client.signed(register("clientuser1", cseq=4), cnum=7))).status == 200
    again = one(w.send(FE1, client.signed(register("clientuser1", cseq=5), cnum=7)))
    assert again.status == 403
    assert refusals(w)[-1] == "replayed cnum 7"


def test_ntlm_expired_sa_is_challenged_for_reauthentication() -> None:
    w = world('scheme = "ntlm"\nsa_timeout = 600')
    client = NtlmClient()
    assert ntlm_sign_in(w, client).status == 200
    w.now = 601.0
    expired = one(w.send(FE1, client.signed(register("clientuser1", cseq=4))))
    assert expired.status == 401
    assert refusals(w)[-1] == "security association expired"
    assert "NTLM" in (expired.headers.get("www-authenticate") or "")


def test_ntlm_and_digest_offered_together() -> None:
    w = world('scheme = "ntlm+digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    schemes = [parse_challenge(v)[0] for v in challenge.headers.get_all("www-authenticate")]
    assert schemes == ["NTLM", "Digest", "Digest"]


# -- topology ---------------------------------------------------------------------------------


def test_unknown_scheme_is_a_sentence_with_a_suggestion() -> None:
    text = R1.replace("{registrar}", "") + '\n[auth]\nscheme = "ntml"\n'
    with pytest.raises(TopologyError) as caught:
        parse_topology(text, "t.toml")
    message = str(caught.value)
    assert message.startswith("t.toml:")
    assert "auth.scheme: did you mean 'ntlm'? expected one of 'none'" in message


def test_bad_digest_algorithms_are_refused() -> None:
    text = R1.replace("{registrar}", "") + '\n[auth]\ndigest_algorithms = ["SHA-512"]\n'
    with pytest.raises(TopologyError, match=r"auth\.digest_algorithms: expected a list"):
        parse_topology(text, "t.toml")


def test_ntlm_sa_signs_the_pools_own_notify_on_that_flow() -> None:
    """MS-SIPAE §3.2.5.2: a client checks the signature of every message from the server; a
    deregistering NOTIFY (here: the user moved) carries one from the flow's SA."""
    w = world('scheme = "ntlm"')
    client = NtlmClient()
    assert ntlm_sign_in(w, client).status == 200
    before = len(w.to_clients)
    w.pools[FE1].users_moved(["sip:clientuser1@contoso.test"], w.now)
    w.flush()
    notifies = [m for _, m in w.to_clients[before:] if isinstance(m, Request)]
    assert [n.method for n in notifies] == ["NOTIFY"]
    assert client.verify(notifies[0])
    info = parse_challenge(notifies[0].headers.get("authentication-info") or "")[1]
    assert info["snum"] == "2"  # after the 200's 1


def test_digest_pool_sends_unsigned_notifies() -> None:
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    assert one(w.send(FE1, digest_register(challenge))).status == 200
    before = len(w.to_clients)
    w.pools[FE1].users_moved(["sip:clientuser1@contoso.test"], w.now)
    w.flush()
    notifies = [m for _, m in w.to_clients[before:] if isinstance(m, Request)]
    assert len(notifies) == 1 and notifies[0].headers.get("authentication-info") is None


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[auth]\ndefault_password = ""', "auth.default_password: expected a password"),
        ("[auth]\nnonce_timeout = 0", "auth.nonce_timeout: expected"),
        ("[auth]\nrealm = 3", "auth.realm: expected a string"),
        ('[auth]\ncolour = "red"', "auth.colour: unknown key"),
    ],
)
def test_auth_settings_errors_are_sentences(toml: str, expected: str) -> None:
    with pytest.raises(TopologyError) as caught:
        parse_topology(R1.replace("{registrar}", "") + "\n" + toml + "\n", "t.toml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("t.toml:")


def test_a_user_password_must_be_a_string() -> None:
    users = '\n[[user]]\nuri = "sip:pat@contoso.test"\npool = "fe1.contoso.test"\npassword = 42\n'
    with pytest.raises(TopologyError, match=r"user\[3\]\.password: expected a password"):
        parse_topology(R1.replace("{registrar}", "") + users, "t.toml")


def test_quoted_pairs_in_parameters_are_unescaped() -> None:
    assert parse_challenge(r'Digest realm="a\"b\\c", nonce=n') == (
        "Digest",
        {"realm": 'a"b\\c', "nonce": "n"},
    )


def test_digest_uri_other_than_the_request_uri_is_a_bad_request() -> None:
    w = world('scheme = "digest"')
    challenge = one(w.send(FE1, register("clientuser1")))
    moved = digest_register(challenge).replace(
        b"REGISTER sip:contoso.test SIP/2.0", b"REGISTER sip:fe1.contoso.test SIP/2.0"
    )
    assert one(w.send(FE1, moved)).status == 400
    assert refusals(w)[-1] == "digest uri 'sip:contoso.test' is not the Request-URI"


def test_topology_show_names_the_scheme_when_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emulator.cli import main

    path = tmp_path / "t.toml"
    path.write_text(R1.replace("{registrar}", "") + '\n[auth]\nscheme = "ntlm+digest"\n')
    assert main(["topology", "show", str(path)]) == 0
    assert "authentication: ntlm+digest\n" in capsys.readouterr().out
    assert main(["topology", "show"]) == 0  # the default: off, no line
    assert "authentication" not in capsys.readouterr().out
