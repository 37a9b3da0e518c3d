"""Stream framing (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626 §3.5.1)."""

from __future__ import annotations

import pytest

from emulator.sip.errors import SipError
from emulator.sip.framing import PING, PONG, KeepAlivePing, KeepAlivePong, StreamFramer

Item = bytes | KeepAlivePing | KeepAlivePong


def message(body: bytes = b"", *, length: str | None = None, name: str = "Content-Length") -> bytes:
    length = str(len(body)) if length is None else length
    return (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-1\r\n"
        b"Call-ID: c1\r\n" + f"{name}: {length}\r\n".encode() + b"\r\n" + body
    )


def feed_all(framer: StreamFramer, *chunks: bytes) -> list[Item]:
    out: list[Item] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def test_keep_alive_constants() -> None:
    assert (PING, PONG) == (b"\r\n\r\n", b"\r\n")


def test_one_message_in_one_chunk() -> None:
    data = message(b"hello")
    framer = StreamFramer()
    assert framer.feed(data) == [data]
    assert framer.buffered == 0


def test_two_messages_and_a_ping_in_one_chunk() -> None:
    first, second = message(b"one"), message(b"two\r\n\r\nthree")  # body holds a CRLFCRLF
    assert StreamFramer().feed(first + PING + second) == [first, KeepAlivePing(), second]


def test_every_split_point_of_a_message_gives_it_back_once() -> None:
    data = message(b"body\r\n\r\nwith a blank line")
    for cut in range(len(data) + 1):
        framer = StreamFramer()
        assert feed_all(framer, data[:cut], data[cut:]) == [data], cut
        assert framer.buffered == 0


def test_a_message_fed_byte_by_byte() -> None:
    data = message(b"xyz")
    framer = StreamFramer()
    out = feed_all(framer, *(data[i : i + 1] for i in range(len(data))))
    assert out == [data]


def test_compact_content_length() -> None:
    data = message(b"abc", name="l")
    assert StreamFramer().feed(data + data) == [data, data]


def test_content_length_is_read_case_blind_with_whitespace() -> None:
    data = message(b"abc", name="content-LENGTH ")
    assert StreamFramer().feed(data) == [data]


def test_crlfcrlf_is_a_ping_and_a_lone_crlf_before_a_message_a_pong() -> None:
    data = message()
    assert StreamFramer().feed(PING) == [KeepAlivePing()]
    assert StreamFramer().feed(PONG + data) == [KeepAlivePong(), data]
    assert StreamFramer().feed(PING + PING + PONG + data) == [
        KeepAlivePing(), KeepAlivePing(), KeepAlivePong(), data,
    ]  # fmt: skip


def test_a_ping_split_between_its_two_crlfs_is_still_one_ping() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []  # could be half a ping: held
    assert framer.buffered == 2
    assert framer.feed(b"\r\n") == [KeepAlivePing()]
    assert framer.feed(b"\r\n\r") == []
    assert framer.feed(b"\n") == [KeepAlivePing()]
    assert framer.buffered == 0


def test_a_held_crlf_followed_by_a_message_is_a_pong() -> None:
    data = message()
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(data) == [KeepAlivePong(), data]


def test_a_pinging_side_sees_a_lone_crlf_as_a_pong_at_once() -> None:
    framer = StreamFramer(expect_pongs=True)
    assert framer.feed(PONG) == [KeepAlivePong()]
    assert framer.buffered == 0


def test_crlf_cr_then_not_lf_does_not_stall_the_stream() -> None:
    data = message()
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r") == []
    out = framer.feed(data)
    assert out == [KeepAlivePong(), b"\r" + data]
    assert framer.buffered == 0


def test_message_without_content_length_on_a_stream_is_an_error() -> None:
    data = (
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK-1\r\n"
        b"X-Content-Length: 5\r\n\r\n"
    )
    with pytest.raises(SipError) as info:
        StreamFramer().feed(data)
    assert info.value.status == 400


def test_message_larger_than_the_limit_is_413() -> None:
    data = message(b"x" * 100)
    assert StreamFramer(max_size=len(data)).feed(data) == [data]
    with pytest.raises(SipError) as info:
        head = data[: data.index(b"\r\n\r\n") + 4]
        StreamFramer(max_size=len(data) - 1).feed(head)  # known from the head alone
    assert (info.value.status, info.value.reason) == (413, "Request Entity Too Large")


def test_endless_head_is_413() -> None:
    framer = StreamFramer(max_size=100)
    framer.feed(b"REGISTER sip:example.com SIP/2.0\r\n")
    with pytest.raises(SipError) as info:
        framer.feed(b"X-Filler: " + b"y" * 100)
    assert info.value.status == 413


@pytest.mark.parametrize("length", ["9" * 11, "9" * 5000])
def test_absurd_content_length_is_413_not_a_crash(length: str) -> None:
    with pytest.raises(SipError) as info:
        StreamFramer().feed(message(b"abc", length=length))
    assert info.value.status == 413


def test_content_length_with_thousands_of_leading_zeros() -> None:
    data = message(b"abc", length="0" * 5000 + "3")
    assert StreamFramer().feed(data) == [data]


def test_after_a_framing_error_the_unframed_bytes_are_what_the_core_answers_from() -> None:
    good = message()
    bad = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK-2\r\n\r\n"
    framer = StreamFramer()
    assert framer.feed(good[:10]) == []
    assert framer.unframed() == good[:10]
    assert framer.buffered == 10
    # The good message completed before the bad one was met: it is returned, not lost.
    assert framer.feed(good[10:] + bad) == [good]
    assert framer.error is not None and framer.error.status == 400
    assert framer.unframed() == bad
    assert framer.buffered == len(bad)
    with pytest.raises(SipError):  # out of sync for good
        framer.feed(message())


def test_messages_before_garbage_in_one_read_are_all_returned() -> None:
    """RFC 4475's dblreq, over a stream: two requests in one write, then bytes with no framing."""
    first, second = message(b"one"), message(b"two")
    garbage = b"\x00\xffnot sip at all\r\n\r\n"
    framer = StreamFramer()
    assert framer.feed(first + PING + second + garbage) == [first, KeepAlivePing(), second]
    assert framer.error is not None and framer.error.status == 400
    assert framer.unframed() == garbage


def test_a_message_before_an_oversized_one_is_returned_and_the_error_is_413() -> None:
    small = message(b"ok")
    huge = message(b"x" * 200)
    framer = StreamFramer(max_size=len(small) + 10)
    assert framer.feed(small + huge) == [small]
    assert framer.error is not None and framer.error.status == 413
    assert framer.unframed() == huge


def test_an_error_with_nothing_framed_before_it_is_raised_at_once() -> None:
    framer = StreamFramer()
    with pytest.raises(SipError) as info:
        framer.feed(b"junk\r\n\r\n")
    assert framer.error is info.value
