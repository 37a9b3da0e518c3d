"""MS-SIPAE signatures (emulator/sip/sipae.py): the NTLM MAC a Lync front end and its
clients put in ``rspauth`` / ``response``, checked against MS-NLMP's definition computed here
step by step (hashlib and hmac, not the module's path through pyspnego)."""

from __future__ import annotations

import hashlib
import hmac

from spnego._ntlm_raw.crypto import rc4k
from spnego._ntlm_raw.messages import NegotiateFlags

from emulator.sip.message import Response, parse_message
from emulator.sip.sipae import SIGNATURE_SEQNUM, NtlmKeys, signature_buffer

_FLAGS = int(
    NegotiateFlags.unicode
    | NegotiateFlags.identity
    | NegotiateFlags.sign
    | NegotiateFlags.datagram
    | NegotiateFlags.ntlm
    | NegotiateFlags.always_sign
    | NegotiateFlags.extended_session_security
    | NegotiateFlags.target_info
    | NegotiateFlags.key_128
    | NegotiateFlags.key_exch
)
_SESSION_KEY = bytes(range(16))


def _expected(data: bytes, usage: str, seq: int) -> bytes:
    """MS-NLMP §3.4.4.2 (extended session security, key exchange) with §3.4.3's per-message
    key of connectionless NTLM, from the spec's own definitions (SIGNKEY, SEALKEY §3.4.5.2-3)."""
    side = "client-to-server" if usage == "initiate" else "server-to-client"
    sign_key = hashlib.md5(
        _SESSION_KEY + f"session key to {side} signing key magic constant\0".encode()
    ).digest()
    seal_key = hashlib.md5(
        _SESSION_KEY + f"session key to {side} sealing key magic constant\0".encode()
    ).digest()
    number = seq.to_bytes(4, "little")
    per_message = hashlib.md5(seal_key + number).digest()
    checksum = hmac.new(sign_key, number + data, "md5").digest()[:8]
    return b"\x01\x00\x00\x00" + rc4k(per_message, checksum) + number


def test_the_signature_is_ms_nlmp_connectionless_mac_with_sequence_number_100() -> None:
    keys = NtlmKeys(_FLAGS, _SESSION_KEY)
    data = b"<NTLM><3A0EB0A1><1><SIP Communications Service><fe1.contoso.test><c><1><REGISTER>"
    for usage in ("initiate", "accept"):
        mac = keys.mac(usage, data)
        assert mac == _expected(data, usage, SIGNATURE_SEQNUM)
        assert mac.endswith(b"\x64\x00\x00\x00")  # SeqNum 100, as MS-SIPAE §4.1's rspauth
    # The per-message key depends on the sequence number (connectionless, MS-NLMP §3.4.3).
    assert keys.mac("accept", data, 0) == _expected(data, "accept", 0)
    assert keys.mac("accept", data, 0)[4:12] != keys.mac("accept", data)[4:12]


def test_a_responses_signed_buffer_names_every_field_in_order() -> None:
    response = parse_message(
        b"SIP/2.0 301 Moved Permanently\r\n"
        b"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1\r\n"
        b"From: <sip:clientuser2@contoso.test>;tag=5867334463;epid=1\r\n"
        b"To: <sip:clientuser2@contoso.test>;tag=a3dfcd1eca38\r\n"
        b"Call-ID: abc\r\nCSeq: 3 REGISTER\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(response, Response)
    buffer = signature_buffer(
        "NTLM", "04B0F347", "1", "SIP Communications Service", "fe1.contoso.test", response
    )
    # The buffer pidgin-sipe 1.25 builds for the same 301 (its debug log, 2026-12-03).
    assert buffer == (
        b"<NTLM><04B0F347><1><SIP Communications Service><fe1.contoso.test><abc><3><REGISTER>"
        b"<sip:clientuser2@contoso.test><5867334463><sip:clientuser2@contoso.test>"
        b"<a3dfcd1eca38><><><><301>"
    )
