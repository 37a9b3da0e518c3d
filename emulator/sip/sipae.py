"""MS-SIPAE values shared by the pools (emulator/registrar/auth.py) and the client agents
(clients/credentials.py), sans-IO: the NTLM realm and version, the signed buffer of a message,
the MS-NLMP signature of one side of a security association, and an NTLM initiator whose
every random value comes from the caller's generator.

NTLM itself (NTOWFv1/v2, the NTLMv2 response, key exchange, signing and sealing keys, the
MS-NLMP signature, the message codecs) is pyspnego's (``spnego._ntlm_raw``); this module only
puts its pieces together the way MS-SIPAE uses them (connectionless NTLM: no
NEGOTIATE_MESSAGE, the RC4 handle set up anew for each message, sequence number 0).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from spnego._ntlm_raw.crypto import (
    compute_response_v2,
    ntowfv1,
    ntowfv2,
    rc4init,
    rc4k,
    sealkey,
    signkey,
)
from spnego._ntlm_raw.messages import (
    Authenticate,
    AvId,
    Challenge,
    FileTime,
    NegotiateFlags,
    TargetInfo,
)
from spnego._ntlm_raw.security import sign as ntlm_mac

from emulator.sip.errors import SipError
from emulator.sip.headers import NameAddr
from emulator.sip.message import Request, Response

__all__ = [
    "MSSIPAE_VERSION",
    "NTLM_REALM",
    "SIGNATURE_SEQNUM",
    "NtlmKeys",
    "ntlm_authenticate",
    "signature_buffer",
]

NTLM_REALM = "SIP Communications Service"
"""MS-SIPAE §4.1: the realm of a Lync/OCS server's NTLM and Kerberos challenges."""

MSSIPAE_VERSION = 3
"""MS-SIPAE §3.3.5.1: ``version`` 3 (or 4 with TLS-DSK); 3 is what §4.1 shows."""

SIGNATURE_SEQNUM = 100
"""The NTLM sequence number of every MS-SIPAE signature, both directions.  MS-NLMP §3.4.4
leaves it to the application in connectionless mode; MS-SIPAE's signatures carry 100 (the
signature's last four bytes, ``64000000``, as in §4.1's ``rspauth``), and pidgin-sipe 1.25
signs and verifies with 100 (3P: with 0, it rejects every signed answer as invalid)."""


# -- signatures (MS-SIPAE §3.2.5.2) ------------------------------------------------------


def _uri_and_tag(value: str | None) -> tuple[str, str]:
    if not value:
        return "", ""
    try:
        addr = NameAddr.parse(value)
    except SipError:
        return "", ""
    return addr.uri, addr.param("tag") or ""


def signature_buffer(
    protocol: str,
    rand: str,
    num: str,
    realm: str,
    targetname: str,
    message: Request | Response,
    version: int = MSSIPAE_VERSION,
) -> bytes:
    """The signed buffer of a message (MS-SIPAE §3.2.5.2 for the server's, §3.3.5.x for the
    client's; MS-SIP §3.1.4.2 for version 2): each value between angle brackets, as it appears
    in the message.  Version 3: protocol, rand, num, realm, targetname, Call-ID, CSeq number,
    CSeq method, From URI, From tag, To URI, To tag, P-Asserted-Identity SIP URI and tel URI,
    Expires, and for a response its status code."""
    headers = message.headers
    cseq = (headers.get("cseq") or "").split()
    number, method = (cseq[0], cseq[1]) if len(cseq) == 2 else ("", "")
    from_uri, from_tag = _uri_and_tag(headers.get("from"))
    to_uri, to_tag = _uri_and_tag(headers.get("to"))
    fields = [
        protocol,
        rand,
        num,
        realm,
        targetname,
        headers.get("call-id") or "",
        number,
        method,
        from_uri,
        from_tag,
    ]
    if version >= 3:
        sip_id = tel_id = ""
        asserted = headers.get("p-asserted-identity") or headers.get("p-preferred-identity")
        for part in (asserted or "").split(","):
            uri, _ = _uri_and_tag(part.strip())
            if uri.startswith("tel:"):
                tel_id = uri
            elif uri:
                sip_id = uri
        fields += [to_uri, to_tag, sip_id, tel_id]
    else:
        fields.append(to_tag)
    fields.append(headers.get("expires") or "")
    text = "".join(f"<{f}>" for f in fields)
    if isinstance(message, Response):
        text += f"<{message.status}>"
    return text.encode("utf-8")


@dataclass(slots=True)
class NtlmKeys:
    """The signing state of one side of an NTLM SA (MS-NLMP §3.4.4, connectionless: the RC4
    handle is set up anew for each message and the sequence number is the application's)."""

    flags: int
    session_key: bytes

    def mac(self, usage: str, data: bytes, seq: int = SIGNATURE_SEQNUM) -> bytes:
        """The 16-byte NTLMSSP_MESSAGE_SIGNATURE of ``data`` by side ``usage`` (``initiate``:
        the client, ``accept``: the server)."""
        key = sealkey(self.flags, self.session_key, usage)
        if self.flags & NegotiateFlags.datagram:
            # MS-NLMP §3.4.3: connectionless, the RC4 key of each message is
            # SealingKey' = MD5(SealingKey || SeqNum), the sequence number little-endian.
            key = hashlib.md5(key + seq.to_bytes(4, "little")).digest()
        handle = rc4init(key)
        return ntlm_mac(self.flags, handle, signkey(self.flags, self.session_key, usage), seq, data)


def ntlm_authenticate(
    challenge: bytes, user: str, password: str, rng: random.Random, domain: str = ""
) -> tuple[bytes, NtlmKeys]:
    """The AUTHENTICATE_MESSAGE answering a CHALLENGE_MESSAGE (MS-NLMP, NTLMv2: §3.3.2) and
    the client's signing state.  The client challenge and the session key come
    from ``rng``; the timestamp is the challenge's (MS-NLMP: the client uses the server's
    MsvAvTimestamp when there is one), so a seed reproduces the message."""
    parsed = Challenge.unpack(challenge)
    info = parsed.target_info.copy() if parsed.target_info else TargetInfo()
    stamp = info.get(AvId.timestamp)
    if not isinstance(stamp, FileTime):
        raise SipError("NTLM challenge without a timestamp", 400)
    client_challenge = rng.getrandbits(64).to_bytes(8, "big")
    nt_hash = ntowfv2(user, ntowfv1(password), domain)
    nt_response, lm_response, key_exchange_key = compute_response_v2(
        nt_hash, parsed.server_challenge, client_challenge, stamp, info
    )
    session_key = rng.getrandbits(128).to_bytes(16, "big")
    flags = int(parsed.flags)
    message = Authenticate(
        flags,
        lm_response,
        nt_response,
        domain,
        user,
        None,
        rc4k(key_exchange_key, session_key),
    )
    return message.pack(), NtlmKeys(flags, session_key)
