"""SIP URIs (RFC 3261 §19.1): just enough structure for routing and addresses-of-record."""

from __future__ import annotations

from dataclasses import field

from emulator.sip.errors import SipSyntaxError
from emulator.values import static_frozen

__all__ = ["SipUri", "normalize_aor"]


@static_frozen
class SipUri:
    """``scheme:user@host:port;params`` (headers after ``?`` are kept verbatim in ``headers``)."""

    scheme: str
    host: str
    user: str | None = None
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = field(default=())
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1].strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in ("sip", "sips", "tel"):
            raise SipSyntaxError(f"not a SIP URI: {text!r}")
        rest, _, headers = rest.partition("?")
        hostpart, *raw_params = rest.split(";")
        user: str | None = None
        if "@" in hostpart:
            user, _, hostpart = hostpart.rpartition("@")
        port: int | None = None
        if hostpart.startswith("["):  # IPv6 reference, RFC 3261 §25.1
            end = hostpart.find("]")
            if end < 0:
                raise SipSyntaxError(f"unterminated IPv6 reference in {text!r}")
            host, portpart = hostpart[: end + 1], hostpart[end + 1 :]
            if portpart.startswith(":"):
                port = _port(portpart[1:], text)
        else:
            host, colon, portpart = hostpart.partition(":")
            if colon:
                port = _port(portpart, text)
        if not host:
            raise SipSyntaxError(f"SIP URI without a host: {text!r}")
        params: list[tuple[str, str | None]] = []
        for raw in raw_params:
            if not raw:
                continue
            name, eq, value = raw.partition("=")
            params.append((name.strip().lower(), value.strip() if eq else None))
        return cls(scheme, host.lower(), user, port, tuple(params), headers)

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def has_param(self, name: str) -> bool:
        return any(key == name for key, _ in self.params)

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out += [self.user, "@"]
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for name, value in self.params:
            out += [";", name] if value is None else [";", name, "=", value]
        if self.headers:
            out += ["?", self.headers]
        return "".join(out)


def _port(text: str, uri: str) -> int:
    # ASCII digits only ("²".isdigit() is true), and short enough for int() (4300 digits max).
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 0 < int(text) < 65536:
        raise SipSyntaxError(f"bad port in SIP URI {uri!r}")
    return int(text)


def normalize_aor(uri: str) -> str:
    """The address-of-record key of a URI: ``sip:user@host``, lower-case, no port or params.

    RFC 3261 §10.3 step 5: the registrar canonicalises the To URI.  User parts are compared
    case-insensitively here (an emulator choice: Lync SIP URIs are e-mail-like and case-blind).
    """
    parsed = SipUri.parse(uri)
    scheme = "sip" if parsed.scheme == "sips" else parsed.scheme
    user = f"{parsed.user.lower()}@" if parsed.user else ""
    return f"{scheme}:{user}{parsed.host}"
