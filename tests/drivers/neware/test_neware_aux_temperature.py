"""``T1``, a channel's auxiliary thermocouple in degC (neware-bts-api.md 2.7, "aux attributes"), read from ``download``
rows into ``DownloadPage.aux_temperature`` and ``read_block``'s ``aux_temperature`` field: the column reader and expat
row by row give the same columns whether every row, some rows or no row carries it, and refuse a malformed one in the
same words; end to end, a simulated channel with a thermocouple reports its cell model's temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from neware_harness import Harness

from drivers.neware import page_scan
from drivers.neware.channel import BLOCK_DTYPE
from drivers.neware.errors import NewareProtocolError
from drivers.neware.page_scan import scan_rows
from drivers.neware.pages import PageRequest, _parsed_page, parse_download_frame
from drivers.neware.replies import DownloadPage
from protocols.clock import VirtualClock
from protocols.program import Comparison, Quantity, RecordRule, RestStep, SafetyLimits, StepProgram, Termination
from simulators.neware import BtsSimulator

ROW = ('<data seqid="%d" stepid="1" cycleid="0" steptype="rest" testtime="%d" atime="2025-12-28 22:29:05" '
       'volt="3.6780698299408" curr="0" cap="0" eng="0"%s />')
HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\r\n<bts version="1.0">\r\n  <cmd>donwload_resp</cmd>\r\n'
        '  <download devtype="27" devid="21" subdevid="1" chlid="2" testid="143" startpos="%d" count="%d" '
        'auxid="0" />\r\n  <list count="%d">\r\n    ')
TAIL = "\r\n  </list>\r\n</bts>"
N = 60  # above page_scan.MIN_ROWS: a page the column reader answers for when its rows are of one shape


def page(t1: list[str | None], startpos: int = 101) -> bytes:
    rows = [ROW % (startpos + i, 60_000 * i, "" if text is None else f' T1="{text}"') for i, text in enumerate(t1)]
    return (HEAD % (startpos, len(rows), len(rows)) + "\r\n    ".join(rows) + TAIL).encode()


def columns(got: DownloadPage) -> dict[str, list]:
    """Every column of a page as plain values (texts decoded, NaN as its text, so that == compares them)."""
    out = {}
    for name in DownloadPage.__slots__:
        value = getattr(got, name)
        if isinstance(value, np.ndarray):
            value = value.astype(str).tolist() if value.dtype.kind in "SU" else value.tolist()
            value = ["nan" if isinstance(v, float) and v != v else v for v in value]
        out[name] = value
    return out


def both(frame: bytes) -> tuple[object, object]:
    """What the reader makes of a frame and what expat row by row makes of it: columns, or the error's words."""
    request = PageRequest("21-1-2", 101, N)
    outcomes = []
    for read in (parse_download_frame, _parsed_page):
        try:
            outcomes.append(columns(read(frame, "download", request)))
        except NewareProtocolError as exc:
            outcomes.append(str(exc))
    return outcomes[0], outcomes[1]


def test_block_dtype_ends_with_the_aux_temperature_after_the_chamber_temperature() -> None:
    assert BLOCK_DTYPE.names[-2:] == ("temperature", "aux_temperature")
    assert BLOCK_DTYPE["aux_temperature"] == np.dtype("<f8")


def test_a_page_whose_rows_all_carry_T1_is_read_by_columns_with_expats_values() -> None:
    texts = ["27.0", "45.0", "-10.25", "1E-05", "26.999999999999977", "+3", ".5", "45"] * (N // 8) + ["27.0"] * (N % 8)
    frame = page(texts)
    scanned = scan_rows(frame)
    assert scanned is not None  # the column reader answers for it, T1 as a number
    assert scanned.floats["T1"].tolist() == [float(text) for text in texts]
    fast, slow = both(frame)
    assert fast == slow
    assert isinstance(fast, dict)
    assert fast["aux_temperature"] == [float(text) for text in texts]
    assert fast["aux_temperature"][:4] == [27.0, 45.0, -10.25, 1e-05]


def test_a_page_without_T1_has_a_nan_column() -> None:
    frame = page([None] * N)
    assert scan_rows(frame) is not None
    fast, slow = both(frame)
    assert fast == slow
    assert isinstance(fast, dict) and fast["aux_temperature"] == ["nan"] * N


@pytest.mark.parametrize("where", [0, 1, N - 1])
def test_a_page_with_T1_on_some_rows_only_is_read_by_expat_with_nan_where_it_is_missing(where: int) -> None:
    texts: list[str | None] = ["31.5"] * N
    texts[where] = None
    frame = page(texts)
    assert scan_rows(frame) is None  # another shape: expat reads it
    fast, slow = both(frame)
    assert fast == slow
    assert isinstance(fast, dict)
    assert fast["aux_temperature"] == [31.5] * where + ["nan"] + [31.5] * (N - where - 1)
    # only one row carries it
    fast, slow = both(page([None] * where + ["-2.5"] + [None] * (N - where - 1)))
    assert fast == slow
    assert isinstance(fast, dict) and fast["aux_temperature"] == ["nan"] * where + [-2.5] + ["nan"] * (N - where - 1)


def test_T1_follows_the_number_rules_of_volt_nan_and_infinity_included() -> None:
    texts = ["27.0"] * N
    texts[5], texts[9] = "NaN", "-inf"
    frame = page(texts)
    assert scan_rows(frame) is None  # not digits: expat reads it, as it reads a NaN voltage
    fast, slow = both(frame)
    assert fast == slow
    assert isinstance(fast, dict)
    assert fast["aux_temperature"][4:10] == [27.0, "nan", 27.0, 27.0, 27.0, float("-inf")]


@pytest.mark.parametrize("bad", ["", "2x.5", "1e", "--", "27,5"])
def test_a_malformed_T1_is_refused_naming_the_record_by_both_readers(bad: str) -> None:
    texts = ["27.0"] * N
    texts[6] = bad
    fast, slow = both(page(texts))
    assert fast == slow == (
        f"download of channel 21-1-2 from startpos 101: record 7 (seqid 107) has T1={bad!r}, not a number (the "
        "auxiliary temperature in degC); check the thermocouple mapped to the channel")


def test_small_pages_read_by_expat_only_carry_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_scan, "MIN_ROWS", 48)
    frame = (HEAD % (101, 2, 2) + ROW % (101, 0, ' T1="27.0"') + "\r\n    " + ROW % (102, 60_000, ' T1="45.0"')
             + TAIL).encode()
    got = parse_download_frame(frame, "download", PageRequest("21-1-2", 101, 2))
    assert got.aux_temperature.tolist() == [27.0, 45.0]
    assert DownloadPage.empty(1, 0).aux_temperature.dtype == np.float64


# -- end to end: the driver against the simulated BTS on loopback --------------------------------------------------


def _rests() -> StepProgram:
    def ten_minutes() -> tuple[Termination, ...]:
        return (Termination(quantity=Quantity.TIME, op=Comparison.GE, value=600.0),)

    return StepProgram(protocol="two-rests", cell="ncm622-li",
                       safety=SafetyLimits(voltage_min=2.5, voltage_max=4.5, current_max=0.01),
                       record=RecordRule(every_s=60.0),
                       steps=(RestStep(index=1, until=ten_minutes()), RestStep(index=2, until=ten_minutes())))


def test_a_channel_with_a_thermocouple_reports_its_cells_temperature_through_the_driver(tmp_path: Path) -> None:
    clock = VirtualClock()
    with BtsSimulator(devices=1, channels=2, clock=clock, aux_temperature=[(21, 1, 1)]) as sim:
        harness = Harness(clock=clock, port=sim.port, step_dir=tmp_path)
        with_aux, without = harness.channel("21-1-1"), harness.channel("21-1-2")
        with_aux.start(_rests(), "cell-aux")
        without.start(_rests(), "cell-plain")
        clock.advance(300.0)
        first = with_aux.read_block(0)
        assert first["seq"].tolist() == [1, 2, 3, 4, 5, 6]  # 0, 60, ..., 300 s
        assert first["aux_temperature"].tolist() == [27.0] * 6  # the model's default 300.15 K, to 0.1 degC
        assert np.isnan(first["temperature"]).all()  # the chamber's is the station's to stamp
        plain = without.read_block(0)
        assert len(plain) == 6 and np.isnan(plain["aux_temperature"]).all()
        # a climate chamber at 45 degC: the step in progress was computed at 27 degC, the next one at 45 degC
        sim.channel("21-1-1").model.set_temperature(318.15)  # type: ignore[union-attr]
        clock.advance(1200.0)
        rest = with_aux.read_block(6)
        assert rest["seq"].tolist() == list(range(7, 23))
        assert rest["step_index"].tolist() == [1] * 5 + [2] * 11
        assert rest["aux_temperature"].tolist() == [27.0] * 5 + [45.0] * 11
        assert np.isnan(without.read_block(6)["aux_temperature"]).all()
