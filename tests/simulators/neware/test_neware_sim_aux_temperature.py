"""A simulated channel with an auxiliary thermocouple (``BtsSimulator(aux_temperature=...)``) sends ``T1``, the cell
model's temperature in degC, as the last attribute of its ``download`` rows and of its ``inquire`` element; every other
channel's replies stay byte for byte as they were (neware-bts-api.md 2.4 and 2.7: a BTS sends aux attributes only for
a channel with an aux channel mapped to it)."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from protocols.clock import VirtualClock
from simulators.neware import pagetext, wire
from simulators.neware.api import BtsApi, aux_channel_keys, default_model_factory
from simulators.neware.stepfile import API_STEP_NAMES, parse_step_file

#: rest 600 s, rest 600 s, end; a record every 60 s
STEP_FILE = (
    '<?xml version="1.0" encoding="UTF-8"?><root><config type="Step File"><Head_Info><Start_Step Value="1" />'
    '</Head_Info><Whole_Prt><Record><Main><Time Value="60000" /></Main></Record></Whole_Prt><Step_Info Num="3">'
    '<Step1 Step_ID="1" Step_Type="4"><Limit><Main><Time Value="600000" /></Main></Limit></Step1>'
    '<Step2 Step_ID="2" Step_Type="4"><Limit><Main><Time Value="600000" /></Main></Limit></Step2>'
    '<Step3 Step_ID="3" Step_Type="6" /></Step_Info></config></root>'
)
HEAD = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
KEYS = [(21, 1, 1), (21, 1, 2), (21, 1, 3)]


def _api(clock: VirtualClock, aux: object) -> BtsApi:
    return BtsApi(devices=1, channels=3, clock=clock, model_factory=default_model_factory("ncm622-li", {}),
                  read_step_file=lambda path: parse_step_file(STEP_FILE), aux_temperature=aux)  # type: ignore[arg-type]


def _address(chlid: int) -> str:
    return f'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="{chlid}"'


def _start(api: BtsApi, *chlids: int) -> None:
    items = "".join(f'<start {_address(c)} barcode="b{c}">X:\\p.xml</start>' for c in chlids)
    _, reply = api.handle(f'{HEAD}<cmd>start</cmd><list count="{len(chlids)}">{items}</list></bts>'.encode())
    assert reply.count(b">ok</start>") == len(chlids)


def _download(api: BtsApi, chlid: int, startpos: int = 1) -> bytes:
    request = (f'{HEAD}<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="{chlid}" '
               f'auxid="0" testid="0" startpos="{startpos}" count="1000" /></bts>')
    return api.handle(request.encode())[1]


def _t1(reply: bytes) -> list[str]:
    return re.findall(rb'<data [^>]*?eng="[^"]*" T1="([^"]*)" />', reply)


def test_channels_with_aux_are_named_by_key_by_id_or_by_a_predicate_and_an_unknown_one_is_refused() -> None:
    assert aux_channel_keys(None, KEYS) == frozenset()
    assert aux_channel_keys([(21, 1, 2), "21-1-3"], KEYS) == {(21, 1, 2), (21, 1, 3)}
    assert aux_channel_keys("21-1-1", KEYS) == {(21, 1, 1)}
    assert aux_channel_keys((21, 1, 3), KEYS) == {(21, 1, 3)}
    assert aux_channel_keys(lambda key: key[2] % 2 == 1, KEYS) == {(21, 1, 1), (21, 1, 3)}
    with pytest.raises(ValueError, match=r"names channel '21-1-9', which this simulated BTS does not have \(its "
                                         r"channels are 21-1-1 \.\. 21-1-3\)"):
        aux_channel_keys(["21-1-9"], KEYS)


def test_temperatures_are_written_to_one_decimal_as_percent_1f() -> None:
    celsius = np.array([27.0, 45.0, 300.15 - 273.15, 318.15 - 273.15, -10.25, 25.05, 0.25, 27.0, -40.0, 126.96])
    block = pagetext.temperature_block(celsius)
    assert [bytes(row).replace(b"\0", b"").decode() for row in block] == [
        "27.0", "45.0", "27.0", "45.0", "-10.2", "25.1", "0.2", "27.0", "-40.0", "127.0"]  # ties of exact binaries
    # go to even (-10.25, 0.25); 25.05 is 25.05000000000000071 as a double


def test_a_page_with_aux_is_the_page_without_it_with_T1_before_the_end_of_each_row() -> None:
    n = 500
    rng = np.random.default_rng(19)
    columns = {
        "seqid": np.arange(7, 7 + n), "stepid": np.repeat([1, 2], n // 2), "cycleid": np.zeros(n, dtype=np.int64),
        "steptype": np.repeat([1, 2], n // 2), "testtime": np.round(rng.random(n) * 1e6, 1),
        "volt": 3 + rng.random(n), "curr": rng.random(n) - 0.5, "cap": rng.random(n), "eng": rng.random(n),
    }
    celsius = np.repeat([27.0, 45.0, -5.0, 60.5], n // 4)
    atimes = wire.atimes(dt.datetime(2026, 11, 30), np.arange(n, dtype=float))
    plain = pagetext.page_bytes(columns, API_STEP_NAMES, atimes).decode("ascii")
    with_aux = pagetext.page_bytes(columns, API_STEP_NAMES, atimes, celsius).decode("ascii")
    rows, aux_rows = plain.split("\r\n"), with_aux.split("\r\n")
    assert len(rows) == len(aux_rows) == n
    texts = ["27.0"] * 125 + ["45.0"] * 125 + ["-5.0"] * 125 + ["60.5"] * 125
    assert aux_rows == [row[: -len(" />")] + f' T1="{text}" />' for row, text in zip(rows, texts, strict=True)]


def test_an_aux_channel_reports_the_models_temperature_and_a_channel_without_aux_is_byte_for_byte_unchanged() -> None:
    clock = VirtualClock()
    api = _api(clock, [(21, 1, 1)])
    twin = _api(VirtualClock(), None)  # the same channels, none with a thermocouple: the replies as before
    for bts in (api, twin):
        _start(bts, 1, 2)
    clock.advance(300.0)
    twin.clock.advance(300.0)  # type: ignore[attr-defined]
    first = _download(api, 1)
    assert _t1(first) == [b"27.0"] * 6  # records at 0, 60, ..., 300 s at the model's default 300.15 K
    assert _download(api, 2) == _download(twin, 2)
    assert b"T1=" not in _download(api, 2)
    assert re.sub(rb' T1="27\.0" />', b" />", first) == _download(twin, 1)  # the same rows, T1 aside
    # the chamber takes the cell to 45 degC; the step in progress was computed at 27 degC, the next one is not
    api.channels[(21, 1, 1)].model.set_temperature(318.15)  # type: ignore[union-attr]
    clock.advance(1200.0)
    rest = _download(api, 1, startpos=7)
    assert _t1(rest) == [b"27.0"] * 5 + [b"45.0"] * 11  # 360 .. 600 s of step 1, then step 2's 0 .. 600 s
    live = api.handle(f'{HEAD}<cmd>inquire</cmd><list count="2"><inquire {_address(1)} aux="0" barcode="0">true'
                      f'</inquire><inquire {_address(2)} aux="0" barcode="0">true</inquire></list></bts>'.encode())[1]
    lines = [line for line in live.split(b"\r\n") if b"<inquire " in line]
    assert lines[0].endswith(b' log_code="0" T1="45.0" />') and b"T1=" not in lines[1]


def test_a_stop_that_reruns_the_step_keeps_the_temperature_the_chamber_set_since() -> None:
    """A cut re-runs the step from the state saved at its start, which holds the old temperature: the model must
    come out of it at the new one (the station sets a model's temperature only when it changes)."""
    clock = VirtualClock()
    api = _api(clock, [(21, 1, 1)])
    _start(api, 1)
    clock.advance(120.0)
    assert _t1(_download(api, 1)) == [b"27.0"] * 3
    engine = api.channels[(21, 1, 1)]
    engine.model.set_temperature(318.15)  # type: ignore[union-attr]
    clock.advance(60.0)
    _, reply = api.handle(f'{HEAD}<cmd>stop</cmd><list count="1"><stop {_address(1)}>true</stop></list></bts>'.encode())
    assert b">ok</stop>" in reply
    assert engine.model.p.temperature == 318.15  # type: ignore[union-attr]
    assert engine.temperature_c() == pytest.approx(45.0, abs=1e-12)
    assert _t1(_download(api, 1)) == [b"27.0"] * 4  # 0 .. 180 s: the stopped step was computed at 27 degC
