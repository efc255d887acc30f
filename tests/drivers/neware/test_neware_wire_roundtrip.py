"""The driver's requests and the simulator's replies agree on every value, however odd (escaping both ways)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import ChannelRanges
from drivers.neware.address import ChannelAddress
from drivers.neware.client import BtsClient, StartItem
from drivers.neware.stepfile import compile_program
from drivers.transport import Transport
from protocols.clock import VirtualClock
from protocols.program import Comparison, Quantity, RestStep, StepProgram, Termination
from simulators.neware.api import BtsApi
from tests.fakes.standin_cell import LinearCell


class InProcess(Transport):
    """Hands requests straight to the simulator's I/O-free API (no socket, no server: the codecs alone meet)."""

    def __init__(self, api: BtsApi):
        self.api = api
        self.address = "in-process"

    def exchange(self, request: bytes, *, idempotent: bool = True) -> bytes:
        return self.api.handle(request)[1]


XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from("\t\n<>&\"'"),
    min_size=1,
    max_size=40,
)

PROGRAM = StepProgram(
    protocol="p",
    cell="c",
    steps=(RestStep(index=1, until=(Termination(quantity=Quantity.TIME, op=Comparison.GE, value=1e6),)),),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(barcode=XML_TEXT)
def test_any_barcode_goes_out_and_comes_back_unchanged(tmp_path: Path, barcode: str) -> None:
    api = BtsApi(devices=1, channels=1, clock=VirtualClock(), model_factory=lambda key: LinearCell())
    client = BtsClient(InProcess(api))
    address = ChannelAddress(21, 1, 1)
    path = tmp_path / "odd & <named> 'file'.xml"
    path.write_bytes(compile_program(PROGRAM, ChannelRanges(0, 5, 0.01)).xml)
    (ack,) = client.start([StartItem(address, str(path), barcode)])
    assert ack.ok, api.last_start_errors
    (live,) = client.inquire([address])
    assert live.barcode == barcode
    assert live.workstatus == "working"
    assert client.testid(address) == 1
