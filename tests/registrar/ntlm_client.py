"""A Lync-like client's side of MS-SIPAE NTLM for tests, over pyspnego's NTLM initiator
(its randomness, the client challenge and session key, is pyspnego's: tests only)."""

from __future__ import annotations

import base64

import spnego
from spnego._ntlm_raw.messages import Authenticate

from emulator.registrar.auth import NTLM_REALM, NtlmKeys, signature_buffer
from emulator.sip.digest import parse_challenge
from emulator.sip.message import Request, Response, parse_message

__all__ = ["NtlmClient"]


class NtlmClient:
    """A Lync-like client's side of MS-SIPAE over pyspnego's NTLM initiator."""

    def __init__(
        self,
        user: str = "clientuser1",
        password: str = "Pa$$w0rd",
        targetname: str = "fe1.contoso.test",
    ) -> None:
        self.targetname = targetname
        self.ctx = spnego.client(user, password, protocol="ntlm")
        self.ctx.step()  # the NEGOTIATE_MESSAGE: connectionless NTLM does not send it
        self.keys: NtlmKeys | None = None
        self.opaque = ""
        self.cnum = 0

    def authorization(self, extra: str) -> str:
        return (
            f'NTLM qop="auth", realm="{NTLM_REALM}", targetname="{self.targetname}", version=3'
            + extra
        )

    def answer(self, challenge: Response) -> str:
        value = challenge.headers.get("www-authenticate") or ""
        _, params = parse_challenge(value)
        self.opaque = params["opaque"]
        token = self.ctx.step(base64.b64decode(params["gssapi-data"]))
        assert token is not None
        flags = Authenticate.unpack(token).flags
        self.keys = NtlmKeys(int(flags), self.ctx.session_key)
        data = base64.b64encode(token).decode()
        return self.authorization(f', opaque="{self.opaque}", gssapi-data="{data}"')

    def signed(self, request: bytes, *, cnum: int | None = None) -> bytes:
        assert self.keys is not None
        self.cnum = self.cnum + 1 if cnum is None else cnum
        parsed = parse_message(request)
        assert isinstance(parsed, Request)
        crand = "1234abcd"
        buffer = signature_buffer(
            "NTLM", crand, str(self.cnum), NTLM_REALM, self.targetname, parsed
        )
        mac = self.keys.mac("initiate", buffer).hex()
        header = self.authorization(
            f', opaque="{self.opaque}", crand="{crand}", cnum="{self.cnum}", response="{mac}"'
        )
        return request.replace(
            b"Content-Length", f"Authorization: {header}\r\nContent-Length".encode()
        )

    def verify(self, response: Request | Response) -> bool:
        assert self.keys is not None
        _, params = parse_challenge(response.headers.get("authentication-info") or "")
        buffer = signature_buffer(
            "NTLM", params["srand"], params["snum"], NTLM_REALM, self.targetname, response
        )
        return self.keys.mac("accept", buffer).hex() == params["rspauth"]
