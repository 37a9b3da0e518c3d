"""Strict numbers of SIP header fields (RFC 3261 §25.1: DIGIT is ``%x30-39``, nothing else).

``str.isdigit()`` is true for ``"²"`` (which ``int()`` then refuses) and for ``"٣"`` (which
``int()`` reads as 3); ``int()`` refuses strings of more than 4,300 digits.  Every number the
SIP layer reads from the network goes through :func:`parse_number`, which accepts ASCII digits
only (leading zeros allowed, RFC 4475 §3.1.1.1), with an upper bound, and raises only
:class:`~emulator.sip.errors.SipSyntaxError`, answered ``400 Bad <field>``.
"""

from __future__ import annotations

from emulator.sip.errors import SipSyntaxError

__all__ = ["MAX_DELTA_SECONDS", "MAX_UINT32", "is_digits", "parse_number"]

MAX_UINT32 = 2**32 - 1
"""The largest CSeq sequence number (RFC 3261 §8.1.1.5: a 32-bit unsigned integer)."""

MAX_DELTA_SECONDS = 2**32 - 1
"""The largest Expires / Min-Expires / Retry-After value (RFC 3261 §20.19: 0 to 2**32-1)."""


def is_digits(text: str) -> bool:
    """``text`` is one or more ASCII digits (``str.isdigit`` alone also takes ``"²"``, ``"٣"``)."""
    return text.isascii() and text.isdigit()


def parse_number(text: str, field: str, maximum: int) -> int:
    """The value of ``1*DIGIT`` in ``text`` (SP/HTAB around it ignored), at most ``maximum``.

    Raises SipSyntaxError naming ``field`` for anything else: no digits, a non-ASCII digit,
    a sign, or a value over ``maximum`` (checked on the digits' length first, so a 5,000-digit
    value costs no big-integer conversion).
    """
    digits = text.strip(" \t")
    if digits.isdigit() and digits.isascii():
        if len(digits) <= 9:  # the usual case: int() is safe and cheap (speed)
            value = int(digits)
            if value <= maximum:
                return value
        else:
            significant = digits.lstrip("0")
            if len(significant) <= len(str(maximum)) and int(significant or "0") <= maximum:
                return int(significant or "0")
        raise SipSyntaxError(f"{field} {digits[:20]!r} exceeds {maximum}", 400, f"Bad {field}")
    raise SipSyntaxError(f"bad {field} {digits[:20]!r}: digits 0-9 expected", 400, f"Bad {field}")
