"""easy-biologic 0.4.0's ``ec_lib`` and data parser, unchanged, against ``load_library()``.

An independent client written for the vendor DLL: it binds the exports without argtypes, passes ctypes objects
by reference, loads firmware with a selection mask, and decodes every data word through ``BL_ConvertNumericIntoSingle``
(the TI reading). Its decoded values must equal the simulated cell's. Where easy-biologic itself is wrong (reference
sections 2.4 and 4), the test says so and leaves the simulator as the instrument is.
"""

from __future__ import annotations

import ctypes
import math

import easybiologic_shim
import numpy as np
import pytest

from protocols.cells import load_cell
from protocols.clock import VirtualClock
from simulators.biologic import load_library
from simulators.cells import build_model
from simulators.cells.dummy import DummyCell, DummyCellParams


def rc_cell() -> DummyCell:
    """Rs + R || C: 50 ohm, 1 kohm, 10 uF (tau = 0.476 ms), resting at 0 V."""
    return DummyCell(DummyCellParams(e0=0.0, r0=50.0, r1=1000.0, r2=0.0, c2=1e-5))


def setup(board: str, cell, channels: int = 1):
    clock = VirtualClock()
    lib = load_library(board, channels, cell, clock)
    eb = easybiologic_shim.load(lib)
    return clock, lib, eb


def fields(eb, board: str):
    return eb.data_parser.SP300_Fields if board == "sp300" else eb.data_parser.VMP3_Fields


def harvest(eb, idn: int, ch: int, clock: VirtualClock, step: float) -> list[tuple[object, object, list]]:
    """easy-biologic's own loop: get_data until the channel reads STOP with nothing left (after it ran)."""
    chunks, started = [], False
    for _ in range(100_000):
        data, info, values = eb.ec_lib.get_data(idn, ch)
        started = started or values.State == eb.ec_lib.ChannelState.RUN.value or info.NbRows > 0
        if info.NbRows:
            chunks.append((info, values, data))
        elif started and values.State == eb.ec_lib.ChannelState.STOP.value:
            return chunks
        else:
            clock.advance(step)
    raise AssertionError("the channel never finished")


def connect_and_init(eb, ch: int = 0):
    ecl = eb.ec_lib
    idn, info = ecl.connect("192.168.0.2")
    plugged = ecl.get_channels(idn)
    assert plugged[ch] and ecl.is_connected(idn) and ecl.is_channel_connected(idn, ch)
    with pytest.raises(Exception, match=r"-308|FIRMWARE"):
        ecl.channel_info(idn, ch)  # no kernel after power-on
    results = ecl.init_channels(idn, [ch])  # BL_LoadFirmware with a selection mask of max(chs) + 1 entries
    assert list(results) == [0] * (ch + 1)
    channel = ecl.channel_info(idn, ch)
    assert (channel.FirmwareCode, channel.NbOfTechniques, channel.State) == (5, 0, 0)
    return idn, ecl.DeviceCodes(info.DeviceCode)


@pytest.mark.parametrize("board", ["vmp3", "sp300"])
def test_easy_biologic_runs_a_ca_and_reads_the_cells_current(board):
    clock, lib, eb = setup(board, rc_cell())
    ecl, dp = eb.ec_lib, eb.data_parser
    assert eb.dll_paths[0].endswith("EClib64.dll") or eb.dll_paths[0].endswith("EClib.dll")
    idn, device = connect_and_init(eb)
    params = ecl.create_parameters({
        "Voltage_step": [0.1], "vs_initial": [False], "Duration_step": [1.0], "Step_number": 0,
        "Record_every_dT": 0.01, "Record_every_dI": 1.0, "N_Cycles": 0,
    }, 0, eb.technique_fields.CA)  # fmt: skip
    ecl.load_technique(idn, 0, "ca", params, device=device)  # ca.ecc, or ca4.ecc on the SP-300 family
    assert ecl.channel_info(idn, 0).NbOfTechniques == 1
    ecl.start_channel(idn, 0)
    chunks = harvest(eb, idn, 0, clock, step=0.25)
    assert lib.faults == []

    rows = [(dp.calculate_time(d.t_high, d.t_low, info, values), d) for info, values, data in chunks
            for d in dp.parse(data, info, fields=fields(eb, board).CA)]  # fmt: skip
    t = np.array([t for t, _ in rows])
    current = np.array([d.current for _, d in rows])
    tau = 1e-5 * 50.0 * 1000.0 / 1050.0
    expected = 0.1 / 1050.0 + 0.1 * (1 / 50.0 - 1 / 1050.0) * np.exp(-t / tau)
    slope = np.abs(0.1 * (1 / 50.0 - 1 / 1050.0) * np.exp(-t / tau) / tau)
    assert len(rows) >= 100 and t[-1] == pytest.approx(1.0, abs=1e-3)
    assert all(d.voltage == pytest.approx(0.1, abs=1e-7) and d.cycle == 0 for _, d in rows)
    # a row's time is whole 24 us ticks counted down from the sample's instant
    assert np.all(np.abs(current - expected) <= 1e-5 * np.abs(expected) + slope * 24e-6)
    ecl.stop_channel(idn, 0)
    ecl.disconnect(idn)


def blocking_cell():
    """The library cell P7 uses, built the way the station builds a placed cell (its ``model:`` and geometry)."""
    cell = load_cell("host-blocking")
    return build_model(cell.model_type, dict(cell.model_params), area=cell.area, capacity=cell.capacity,
                       thickness=cell.thickness, seed=0)  # fmt: skip


@pytest.mark.parametrize("board", ["vmp3", "sp300"])
def test_easy_biologic_runs_a_peis_and_reads_the_cells_impedance(board):
    clock, lib, eb = setup(board, "host-blocking")
    ecl, dp = eb.ec_lib, eb.data_parser
    idn, device = connect_and_init(eb)
    params = ecl.create_parameters({
        "vs_initial": True, "vs_final": True, "Initial_Voltage_step": 0.0, "Final_Voltage_step": 0.0,
        "Duration_step": 5.0, "Step_number": 0, "Record_every_dT": 1.0, "Record_every_dI": 1.0,
        "Final_frequency": 0.1, "Initial_frequency": 1e5, "sweep": False, "Amplitude_Voltage": 0.05,
        "Frequency_number": 21, "Average_N_times": 1, "Correction": False, "Wait_for_steady": 0.0,
    }, 0, eb.technique_fields.PEIS)  # fmt: skip
    ecl.load_technique(idn, 0, "peis", params, device=device)
    ecl.start_channel(idn, 0)
    values = ecl.get_values(idn, 0)  # the first poll after a start may still read STOP
    clock.advance(2.0)
    values = ecl.get_values(idn, 0)
    assert values.State == 1 and values.Ewe == pytest.approx(0.0, abs=1e-9)
    chunks = harvest(eb, idn, 0, clock, step=10.0)
    assert lib.faults == []

    dc = [(info, values, d) for info, values, data in chunks if info.ProcessIndex == 0
          for d in dp.parse(data, info, fields=fields(eb, board).PEIS)]  # fmt: skip
    t = [dp.calculate_time(d.t_high, d.t_low, info, values) for info, values, d in dc]
    assert len(dc) == 6 and t[-1] == pytest.approx(5.0, abs=1e-3)  # the 5 s DC hold at OCV, every 1 s
    assert all(d.voltage == 0.0 and abs(d.current) < 1e-9 for _, _, d in dc)

    eis = [d for info, _, data in chunks if info.ProcessIndex == 1
           for d in dp.parse(data, info, fields=fields(eb, board).PEIS)]  # fmt: skip
    freq = np.array([d.frequency for d in eis])
    z = np.array([d.abs_voltage / d.abs_current * np.exp(1j * d.impedance_phase) for d in eis])
    expected = blocking_cell().impedance(freq)
    assert freq == pytest.approx(np.geomspace(1e5, 0.1, 21), rel=1e-6)
    assert z == pytest.approx(expected, rel=1e-5)
    assert all(d.abs_voltage == pytest.approx(0.05) for d in eis)
    assert np.all(np.diff([d.time for d in eis]) > 0)
    ecl.stop_channel(idn, 0)
    ecl.disconnect(idn)


def test_easy_biologic_multi_channel_start_stop_update_and_hardware_configuration():
    clock, lib, eb = setup("sp300", lambda k: DummyCell(DummyCellParams(e0=0.0, r0=100.0, r1=1e-9, r2=0.0,
                                                                          c2=1e-9)), channels=3)  # fmt: skip
    ecl, dp = eb.ec_lib, eb.data_parser
    idn, info = ecl.connect("USB0")
    assert list(ecl.init_channels(idn, [0, 2])) == [0, 0, 0]
    assert [lib.channel(k).firmware for k in range(3)] == [5, 0, 5]
    device = ecl.DeviceCodes(info.DeviceCode)
    ecl.set_hardware_configuration(idn, 0, ecl.ChannelMode.FLOATING, ecl.ElectrodeConnection.GROUNDED)
    conf = ecl.get_hardware_configuration(idn, 0)
    assert (conf.Conn, conf.Ground) == (1, 1)
    ca = {"Voltage_step": [0.1, 0.2], "vs_initial": [False, False], "Duration_step": [10.0, 10.0], "Step_number": 1,
          "Record_every_dT": 5.0, "Record_every_dI": 1.0, "N_Cycles": 0}  # fmt: skip
    for ch in (0, 2):
        ecl.load_technique(idn, ch, "ca", ecl.create_parameters(ca, 0, eb.technique_fields.CA), device=device)
    ecl.start_channels(idn, [0, 2])
    [ecl.get_values(idn, ch) for ch in (0, 2)]  # the first poll after a start may still read STOP
    clock.advance(5.0)
    assert [ecl.get_values(idn, ch).State for ch in (0, 2)] == [1, 1]
    # BL_UpdateParameters with TEccParams by value: only step 1's potential changes, on channel 2 only
    update = ecl.create_parameters({"Voltage_step": 0.3}, 1, eb.technique_fields.CA)
    ecl.update_parameters(idn, 2, "ca", update, 0, device=device)
    clock.advance(30.0)
    currents = {}
    for ch in (0, 2):
        rows = [d for info, values, data in harvest(eb, idn, ch, clock, 5.0)
                for d in dp.parse(data, info, fields=dp.SP300_Fields.CA)]  # fmt: skip
        currents[ch] = rows[-1].current
    assert currents[0] == pytest.approx(2e-3) and currents[2] == pytest.approx(3e-3)  # V / 100 ohm
    ecl.stop_channels(idn, [0, 2])
    ecl.disconnect(idn)


def test_easy_biologic_reads_start_time_from_the_wrong_offset():
    """easy-biologic's ``DataInfo`` lacks ``_pack_ = 4`` (reference 2.4): it reads ``StartTime`` at offset 32
    instead of 28, so a second technique's start comes out as a denormal near 0 and its rows' times restart at 0.
    The simulator writes the header's layout, as the DLL does; easy-biologic is the one that is wrong."""
    clock, _, eb = setup("vmp3", rc_cell())
    ecl, dp = eb.ec_lib, eb.data_parser
    idn, device = connect_and_init(eb)
    ocv = ecl.create_parameters({"Rest_time_T": 10.0, "Record_every_dE": 1.0, "Record_every_dT": 5.0}, 0,
                                eb.technique_fields.OCV)  # fmt: skip
    ca = ecl.create_parameters({"Voltage_step": [0.1], "vs_initial": [False], "Duration_step": [10.0],
                                "Step_number": 0, "Record_every_dT": 5.0, "Record_every_dI": 1.0, "N_Cycles": 0},
                               0, eb.technique_fields.CA)  # fmt: skip
    ecl.load_technique(idn, 0, "ocv", ocv, first=True, last=False, device=device)
    ecl.load_technique(idn, 0, "ca", ca, first=False, last=True, device=device)
    ecl.start_channel(idn, 0)
    chunks = harvest(eb, idn, 0, clock, step=5.0)
    second = next(info for info, _, _ in chunks if info.TechniqueIndex == 1)
    assert ctypes.sizeof(type(second)) == 48 and type(second).StartTime.offset == 32  # easy-biologic's layout
    true_start = ctypes.c_double.from_buffer_copy(bytes(second), 28).value  # the header's offset
    assert true_start == pytest.approx(10.0, abs=1e-3)
    assert 0 <= second.StartTime < 1e-300  # what easy-biologic reads
    last = dp.parse(chunks[-1][2], chunks[-1][0], fields=dp.VMP3_Fields.CA)[-1]
    assert dp.calculate_time(last.t_high, last.t_low, chunks[-1][0], chunks[-1][1]) == pytest.approx(10.0, abs=1e-3)


def test_easy_biologic_misreads_digicore_words():
    """On a DIGICORE board the words are IEEE singles and the time words come low word first (reference 4); easy-
    biologic predates those boards: it converts with the TI-only ``BL_ConvertNumericIntoSingle`` and reads the time
    high word first, so its numbers are wrong there. The 6.x converters read the same words correctly."""
    clock, lib, eb = setup("digicore", DummyCell(DummyCellParams(e0=0.0, r0=100.0, r1=1e-9, r2=0.0, c2=1e-9)))
    ecl, dp = eb.ec_lib, eb.data_parser
    idn, _ = connect_and_init(eb)
    params = ecl.create_parameters({"Voltage_step": [0.1], "vs_initial": [False], "Duration_step": [10.0],
                                    "Step_number": 0, "Record_every_dT": 5.0, "Record_every_dI": 1.0,
                                    "N_Cycles": 0}, 0, eb.technique_fields.CA)  # fmt: skip
    ecl.load_technique(idn, 0, "ca5", params)  # easy-biologic knows no DIGICORE suffix: name the file
    ecl.start_channel(idn, 0)
    info, values, data = harvest(eb, idn, 0, clock, step=5.0)[0]
    last = dp.parse(data, info, fields=dp.SP300_Fields.CA)[-1]
    assert not math.isclose(last.current, 1e-3, rel_tol=1e-3)  # easy-biologic's reading
    assert dp.calculate_time(last.t_high, last.t_low, info, values) != pytest.approx(10.0, abs=1)
    word = data[(info.NbRows - 1) * info.NbCols + 3]
    single = ctypes.c_float()
    assert lib.BL_ConvertChannelNumericIntoSingle(word, ctypes.byref(single), 3) == 0
    assert single.value == pytest.approx(1e-3)  # the board-aware converter
