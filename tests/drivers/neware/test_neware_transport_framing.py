"""The transport's framing (drivers/transport.py FrameBuffer) finds a reply's end marker by its anchor byte first
(memchr), the marker checked there: whatever the stream and however it arrives, the frames are the ones a plain
search for the first marker gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.neware.codec import REPLY_FRAMING
from drivers.transport import _ANCHOR_TRIES, FrameBuffer, _anchor


def plain_frames(stream: bytes, end: bytes = REPLY_FRAMING.end, skip: bytes = REPLY_FRAMING.skip) -> list[bytes]:
    """The complete frames of ``stream``: leading skip bytes and blanks dropped, then up to the first marker."""
    frames, rest = [], stream
    while True:
        rest = rest.lstrip(skip + b" \t")
        at = rest.find(end)
        if at < 0:
            return frames
        frames.append(rest[:at + len(end)])
        rest = rest[at + len(end):]


def framed(stream: bytes, cuts: list[int]) -> list[bytes]:
    """The frames a FrameBuffer cuts out of ``stream`` fed in pieces at ``cuts``."""
    buffer, frames, at = FrameBuffer(REPLY_FRAMING), [], 0
    for cut in [*sorted(cuts), len(stream)]:
        buffer.feed(memoryview(stream)[at:cut])
        at = cut
        while (frame := buffer.next_frame()) is not None:
            frames.append(frame)
    return frames


def test_the_anchor_of_the_bts_marker_is_its_b() -> None:
    assert _anchor(b"</bts>") == (b"b", 2)
    assert _anchor(b"\n\n#\r\n") == (b"#", 2)
    assert _anchor(b"<<>>") == (b">", 3)  # nothing but markup: its last byte


def test_a_page_of_rows_is_one_frame() -> None:
    page = b'<bts version="1.0">' + b'<data a="b" b="bb" />\r\n' * 500 + b"</bts>"
    assert framed(page + b"\r\n#" + page, [7, 1000, 11000, len(page) + 1]) == [page, page]


def test_more_anchors_than_are_tried_before_the_marker() -> None:
    """Past the tries a plain find takes over, from where the anchor search stopped."""
    stream = b"<bts>" + b"b</b" * (3 * _ANCHOR_TRIES) + b"</bts>" + b"bbbb</bts>"
    assert framed(stream, []) == plain_frames(stream) == [stream[:-10], b"bbbb</bts>"]


@given(st.lists(st.sampled_from([b"</bts>", b"</bts", b"b", b"</b", b"<", b"/", b"ts>", b"x", b"\r\n#", b" "]),
                max_size=60),
       st.lists(st.integers(0, 400), max_size=8))
@settings(max_examples=400, deadline=None)
def test_frames_are_those_of_a_plain_search_however_the_bytes_arrive(tokens: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(tokens)
    assert framed(stream, [c for c in cuts if c <= len(stream)]) == plain_frames(stream)
