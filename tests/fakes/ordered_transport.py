"""An ordered fake transport (PyMeasure's expected_protocol idea) for the BTS client.

Each pair is (request body, reply body) without the envelope; the fake checks that the request carries the
exact envelope and terminator and that bodies arrive in the listed order. Used as a context manager, it checks
when the block ends (without an exception) that every pair was consumed::

    with OrderedTransport([(request, reply), ...]) as transport:
        BtsClient(transport).getdevinfo()
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.transport import Transport

HEAD = b'<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
TAIL = b"</bts>\n\n#\r\n"


def real_reply(body: str) -> bytes:
    """A reply framed like a real BTS 8.0 capture: CRLF prolog, two-space indent, trailer."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<bts version="1.0">', *("  " + b for b in body.split("\n"))]
    return ("\r\n".join([*lines, "</bts>"]) + "\n\n#\r\n").encode("utf-8")


class OrderedTransport(Transport):
    def __init__(self, pairs: Sequence[tuple[str | None, str | bytes]]):
        self.address = "fake:502"
        self.pairs = list(pairs)
        self.position = 0
        self.resyncs = 0
        self.idempotent_flags: list[bool] = []

    def exchange(self, request: bytes, *, idempotent: bool = True) -> bytes:
        assert request.startswith(HEAD), request[:80]
        assert request.endswith(TAIL), request[-20:]
        body = request[len(HEAD) : -len(TAIL)].decode("utf-8")
        assert self.position < len(self.pairs), f"unexpected extra request: {body}"
        expected, reply = self.pairs[self.position]
        if expected is not None:  # None: any request (when its exact bytes are not the point of the test)
            assert body == expected, f"request {self.position + 1} differs:\n sent     {body}\n expected {expected}"
        self.position += 1
        self.idempotent_flags.append(idempotent)
        if isinstance(reply, bytes):
            return reply
        return real_reply(reply)

    def resync(self) -> None:
        self.resyncs += 1

    def __enter__(self) -> OrderedTransport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:  # a failure inside the block is the one to report
            assert self.position == len(self.pairs), (
                f"{len(self.pairs) - self.position} expected requests never came: "
                f"{[body for body, _ in self.pairs[self.position :]]}"
            )
