"""One Neware channel behind the station's ChannelDriver contract.

The BTS runs the step file on its own; this class checks and compiles the program, writes the step file where the
BTS Client can read it, starts it, and then only watches: ``inquire`` for status, ``download`` pages (by seqid,
so a retried or re-attached read never loses or repeats a record) for data.

Mapping back to the program:

* ``stepid`` -> program step index through the compile map, which is also stored in the TestHandle so that a
  later process can ``attach`` without the program;
* the cycle is the program's (:data:`protocols.program.CYCLE_RULE`): each executed step instance is followed
  through the program (:class:`protocols.program.Execution`: its next step, loop jumps, and the jumps of its
  conditions, since a step file's conditions are real control flow on the BTS), so the program numbers cycles the
  same whichever branch the cell took; the BTS's own ``cycleid`` (a loop counter) is used only for tests started
  by other tools (no program in the handle), shifted by ``cycle_offset`` (set it to 1 if a unit numbers
  ``download`` cycles from 0, which the reference marks as disputed);
* ``download`` gives only the time since the *step* started, so the test time is rebuilt. The real BTS records at
  whole multiples of the record interval from each step's start, its first record of a step at step time 0.0 s
  and its last at the step's end, so a step's first record repeats the test time of the previous step's last
  (reference section 9): within a contiguous read a new step (another ``stepid``, or the step clock starting over)
  starts where the previous record left off; a read that does not continue the previous one (attach, re-read)
  seeds the step's start time from ``downloadStepLayer`` (the durations of the steps before it) and the path
  through the program from the step ids it lists;
* capacity and energy come unsigned; they are signed by the step type (negative for discharge types).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from drivers.base import (
    Capabilities,
    ChannelDriver,
    ChannelRanges,
    ChannelState,
    ChannelStatus,
    DriverError,
    Record,
    Refused,
    TestGone,
    TestHandle,
)
from drivers.neware.address import ChannelAddress
from drivers.neware.client import MAX_DOWNLOAD_COUNT, BackupSettings, BtsClient, StartItem
from drivers.neware.codec import REPLY_FRAMING
from drivers.neware.errors import CommandRefused
from drivers.neware.replies import DataRecord, DownloadPage, InquireDf, InquireReply
from drivers.neware.stepfile import CompileOptions, capabilities, check_program, compile_program, parse_step_map
from drivers.transport import Backoff, SocketTransport
from protocols.clock import Clock
from protocols.program import Execution, StepProgram, nominal_end

log = logging.getLogger(__name__)

STATES = {
    "working": ChannelState.RUNNING,
    "pause": ChannelState.PAUSED,
    "stop": ChannelState.STOPPED,
    "finish": ChannelState.FINISHED,
    "protect": ChannelState.PROTECTED,
}
STARTABLE = ("finish", "stop", "protect")
#: steps looked ahead along the nominal path to place a live status the reader has not caught up with
LIVE_HORIZON = 1000
DISCHARGE_TYPES = {"dc", "dv", "cccd", "dp", "dr"}
CHARGE_TYPES = {"cc", "cv", "cccv", "pcccv", "cp", "cr"}


def open_client(
    host: str, port: int = 502, *, clock: Clock | None = None, timeout_s: float = 30.0, backoff: Backoff | None = None
) -> BtsClient:
    """A BTS client over one TCP connection; share it between the channels of one BTS Client."""
    transport = SocketTransport(
        host, port, REPLY_FRAMING, timeout_s=timeout_s, backoff=backoff or Backoff(), clock=clock,
        connect_hint="check that the BTS Client runs in API mode and listens on that port",
    )
    return BtsClient(transport)


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where the last converted record left off: enough to continue the next page without asking the BTS."""

    seq: int
    stepid: int
    step_time: float
    test_time: float
    instance: int  # 1-based count of step instances executed so far (the BTS's global stepindex)
    step_base: float  # test time at which the current step instance started


#: what :meth:`NewareChannel.read_block` returns: ``Record``'s fields in its order, packed little-endian (SI
#: units, signed capacity and energy; NaN impedance and CV cycle 0, which no Neware record has), then a NaN
#: temperature (a channel reads none; the station stamps the climate chamber's) and the channel's auxiliary
#: thermocouple in degC (the rows' ``T1``, NaN for a channel without one): the layout the station's store keeps,
#: so that a page is stored as it comes (a page of another layout is copied field by field, ~0.2 ms)
BLOCK_DTYPE = np.dtype([("seq", "<i8"), ("test_time", "<f8"), ("step_time", "<f8"), ("step_index", "<i8"),
                        ("cycle", "<i8"), ("voltage", "<f8"), ("current", "<f8"), ("capacity", "<f8"),
                        ("energy", "<f8"), ("frequency", "<f8"), ("z_real", "<f8"), ("z_imag", "<f8"),
                        ("cv_cycle", "<i8"), ("temperature", "<f8"), ("aux_temperature", "<f8")])
#: the fields a Neware record fills (the rest keep Record's defaults)
_MEASURED = BLOCK_DTYPE.names[:9]

_SIGNS = {**dict.fromkeys(DISCHARGE_TYPES, -1.0), **dict.fromkeys(CHARGE_TYPES, 1.0)}


def _signs(steptypes: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Each record's sign for capacity and energy: the step type's, else the current's (as :func:`_sign`).
    A page holds a few runs of one step type: each run is looked up once (a sort of every record's type, as
    ``numpy.unique`` does, cost 30 us a page); a page of many short runs is looked up by kind. The runs are found
    on the types' bytes as integers where their width allows (``S4``: ``uint32``), ~5 times faster than numpy's
    string comparison, with the same answer (two fixed-width texts are equal exactly when their bytes are)."""
    n = len(steptypes)
    if not n:
        return np.empty(0)
    codes = _as_integers(steptypes)
    changes = np.flatnonzero(codes[1:] != codes[:-1]).tolist()
    if len(changes) < _RUNS_LOOKED_UP:
        starts = [0, *(i + 1 for i in changes)]
        by_run = [_kind_sign(k) for k in steptypes[starts].tolist()]
        if len(by_run) == 1 and by_run[0] != 0.0:
            return np.full(n, by_run[0])
        sign = np.repeat(by_run, [b - a for a, b in zip(starts, [*starts[1:], n], strict=True)])
        unsigned = 0.0 in by_run
    else:
        kinds, which = np.unique(steptypes, return_inverse=True)
        by_kind = np.array([_kind_sign(k) for k in kinds.tolist()])
        sign = by_kind[which.ravel()]
        unsigned = bool(np.any(by_kind == 0.0))
    return np.where(sign == 0.0, np.where(current < 0, -1.0, 1.0), sign) if unsigned else sign


_WORDS = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}


def _as_integers(texts: np.ndarray) -> np.ndarray:
    """A contiguous column of fixed-width texts as one unsigned integer each, when their width is 1, 2, 4 or 8
    bytes; else the texts themselves (compared by numpy, slower but the same)."""
    word = _WORDS.get(texts.dtype.itemsize)
    if word is None or texts.dtype.kind not in "SU" or not texts.flags.c_contiguous:
        return texts
    return texts.view(word)


#: above this many runs of one step type in a page, signs are looked up by kind instead
_RUNS_LOOKED_UP = 64


def _kind_sign(kind: bytes | str) -> float:
    """A step type's sign (0 when it has none: the current's then)."""
    return _SIGNS.get(kind.decode("ascii") if isinstance(kind, bytes) else str(kind), 0.0)


def _sign(steptype: str, current: float) -> float:
    if steptype in DISCHARGE_TYPES:
        return -1.0
    if steptype in CHARGE_TYPES:
        return 1.0
    return -1.0 if current < 0 else 1.0


class NewareChannel(ChannelDriver):
    #: channels of different BTS Clients (``batch_key``: one client, one TCP connection each) may be observed at
    #: the same time from different threads: a client is only ever used by one of them (station.runs.poll_round)
    independent_links: ClassVar[bool] = True

    def __init__(
        self,
        client: BtsClient,
        address: ChannelAddress,
        ranges: ChannelRanges,
        *,
        step_dir: Path,
        remote_step_dir: str | None = None,
        options: CompileOptions | None = None,
        backup: BackupSettings | None = None,
        cycle_offset: int = 0,
    ):
        self.client = client
        self.address = address
        self.channel = address.channel_id
        self.ranges = ranges
        self.step_dir = Path(step_dir)
        self.remote_step_dir = remote_step_dir
        self.options = options or CompileOptions()
        self.backup = backup
        self.cycle_offset = cycle_offset
        self.handle: TestHandle | None = None
        self._testid = 0
        self._step_map: dict[int, int] = {}
        self._cursor: _Cursor | None = None
        self._program: StepProgram | None = None
        self._execution: Execution | None = None  # where the program is after the last converted step instance
        self._live_memo: tuple[tuple[object, ...], int] | None = None  # _live_cycle's last walk: (state, cycle)
        self._path_warned = False

    def __repr__(self) -> str:
        return f"NewareChannel({self.channel} on {self.client.transport.address})"

    # -- program --------------------------------------------------------------------------------------------

    @classmethod
    def declared_capabilities(cls, ranges: ChannelRanges | None = None) -> Capabilities:
        return capabilities(ranges)

    def capabilities(self) -> Capabilities:
        return capabilities(self.ranges, self.options)

    def check(self, program: StepProgram) -> None:
        """The step-file compiler's check against this channel's ranges (the tables of :mod:`.stepfile` that
        :meth:`capabilities` declares); nothing is sent."""
        check_program(program, self.ranges, self.options)

    def _step_file_name(self, xml: bytes, barcode: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", barcode)[:60] or "run"
        return f"{self.channel}_{safe}_{hashlib.sha1(xml).hexdigest()[:10]}.xml"

    def _step_file_path(self, name: str) -> str:
        """Where the BTS Client reads the step file from (its own path when it runs on another PC)."""
        if self.remote_step_dir is None:
            return str((self.step_dir / name).resolve())
        return remote_path(self.remote_step_dir, name)

    def _write_step_file(self, xml: bytes, barcode: str) -> str:
        name = self._step_file_name(xml, barcode)
        try:
            self.step_dir.mkdir(parents=True, exist_ok=True)
            (self.step_dir / name).write_bytes(xml)
        except OSError as exc:
            raise Refused(f"cannot write the step file for channel {self.channel} into {self.step_dir}: "
                          f"{exc.strerror}; free space or fix the data directory's permissions") from None
        return self._step_file_path(name)

    def _handle(self, program: StepProgram, step_map_text: str, path: str, barcode: str, testid: int) -> TestHandle:
        return TestHandle(
            channel=self.channel,
            test_id=str(testid),
            barcode=barcode,
            extra={
                "step_map": step_map_text,
                "step_file": path,
                "cycle_offset": str(self.cycle_offset),
                "program": program.model_dump_json(),
            },
        )

    def start(self, program: StepProgram, barcode: str) -> TestHandle:
        compiled = compile_program(program, self.ranges, self.options)  # refuses before anything is sent
        try:
            (live,) = self.client.inquire([self.address])
        except DriverError as exc:
            raise Refused(f"channel {self.channel}: the BTS did not answer before start, so nothing was sent "
                          f"({exc})", unreachable=True) from exc
        if live.workstatus not in STARTABLE:
            raise Refused(
                f"channel {self.channel} is '{live.workstatus}'; a test starts only on a finished, stopped or "
                "protected channel: stop the running test first"
            )
        path = self._write_step_file(compiled.xml, barcode)
        try:
            (ack,) = self.client.start([StartItem(self.address, path, barcode)], self.backup)
        except DriverError:
            # the start may have reached the BTS although its reply did not reach us: a channel now running our
            # barcode is adopted (so it is watched), anything else is reported
            (after,) = self.client.inquire([self.address])
            if after.workstatus != "working" or after.barcode != barcode:
                raise
            log.warning("start reply for %s was lost but the channel runs %r: adopting it", self.channel, barcode)
            ack = None
        if ack is not None and not ack.ok:
            raise Refused(
                f"the BTS refused to start channel {self.channel} with {path}; check that the BTS Client can read "
                "that file and the channel is free (see the BTS Client's log)"
            )
        try:
            testid = self.client.testid(self.address)
        except Exception:
            self._emergency_stop()
            raise
        self.handle = self._handle(program, compiled.step_map_text(), path, barcode, testid)
        self._adopt(self.handle)
        return self.handle

    def start_marker(self) -> dict[str, str]:
        """The channel's latest test id: ``testid`` grows with every start (reference 2.7), so a test carrying the
        sample's barcode with a larger id is the one this start began, not an earlier run of the same sample."""
        return {"test_before": str(self.client.testid(self.address))}

    def find_test(self, program: StepProgram, barcode: str,
                  marker: Mapping[str, str] | None = None) -> TestHandle | None:
        """The BTS keeps the barcode of the channel's current or latest test: ours, or not started by us. The
        barcode is the sample's, on each of its runs, so the test must also be newer than the marker's."""
        (live,) = self.client.inquire([self.address])
        if live.barcode != barcode:
            return None
        testid = self.client.testid(self.address)
        if testid <= 0:
            return None
        if marker and "test_before" in marker and testid <= int(marker["test_before"]):
            return None  # an earlier test of the same sample: this start never reached the BTS
        compiled = compile_program(program, self.ranges, self.options)
        path = self._step_file_path(self._step_file_name(compiled.xml, barcode))
        return self._handle(program, compiled.step_map_text(), path, barcode, testid)

    def _emergency_stop(self) -> None:
        """Never leave a started channel running because our own bookkeeping failed."""
        try:
            self.client.stop([self.address])
        except Exception as exc:  # the original error matters more; this one is logged
            log.error("could not stop channel %s after a failed start: %s", self.channel, exc)

    def _adopt(self, handle: TestHandle) -> None:
        self.handle = handle
        self._testid = int(handle.test_id)
        self._step_map = parse_step_map(handle.extra.get("step_map", ""))
        self.cycle_offset = int(handle.extra.get("cycle_offset", self.cycle_offset))
        program = handle.extra.get("program")
        self._program = StepProgram.from_json(program) if program else None
        self._execution = None
        self._live_memo = None
        self._path_warned = False
        self._cursor = None

    def attach(self, handle: TestHandle) -> None:
        """Re-attach by test id, or by barcode alone (``test_id`` empty or "0": the channel's current test).

        Nothing is sent that could disturb the channel: only ``inquire`` and a zero-length ``download``.
        """
        if handle.channel != self.channel:
            raise DriverError(f"the handle is for channel {handle.channel}, not {self.channel}")
        (live,) = self.client.inquire([self.address])
        current = self.client.testid(self.address)
        if handle.test_id in ("", "0"):
            if live.barcode != handle.barcode:
                raise TestGone(
                    f"channel {self.channel} reports barcode {live.barcode!r}, not {handle.barcode!r}; "
                    "give the test id to attach to an older test"
                )
            handle = TestHandle(handle.channel, str(current), handle.barcode, dict(handle.extra))
        elif str(current) != handle.test_id:
            now = "no test" if current <= 0 else f"test {current}"
            raise TestGone(
                f"the instrument no longer holds test {handle.test_id}: channel {self.channel} now holds {now}"
            )
        elif live.barcode is not None and live.barcode != handle.barcode:
            raise TestGone(
                f"channel {self.channel} reports barcode {live.barcode!r}, not {handle.barcode!r}; refusing to attach"
            )
        self._adopt(handle)

    # -- watching -------------------------------------------------------------------------------------------

    def status(self) -> ChannelStatus:
        return poll_statuses([self])[0]

    def batch_key(self) -> object:
        return self.client

    @classmethod
    def statuses(cls, drivers: Sequence[ChannelDriver]) -> list[ChannelStatus]:
        return poll_statuses(drivers)  # type: ignore[arg-type]  # callers group by type and batch_key

    def _status_from(self, live: InquireReply, current: InquireDf | None) -> ChannelStatus:
        state = STATES.get(live.workstatus, ChannelState.ERROR)
        if state is ChannelState.FINISHED and self.handle is None:
            state = ChannelState.IDLE
        step_index = None if live.step_id is None else self._step_map.get(live.step_id, live.step_id)
        if state is ChannelState.PROTECTED:
            message = "the BTS tripped a protection limit; clear it with clearflag before a new start"
        elif state is ChannelState.ERROR:
            message = f"unknown workstatus {live.workstatus!r}"
        else:
            message = ""
        running = state in (ChannelState.RUNNING, ChannelState.PAUSED, ChannelState.STOPPED, ChannelState.PROTECTED)
        return ChannelStatus(
            state=state,
            step_index=step_index if running else None,
            cycle=self._live_cycle(step_index, live.cycle_id) if running else None,
            voltage=live.voltage,
            current=live.current,
            step_capacity=live.capacity * _sign(live.step_type or "", live.current),
            test_time=live.total_time if running else None,
            # the instrument's record count is ours only while the channel still holds our test
            last_seq=current.count if current is not None and current.testid == self._testid else None,
            message=message,
            test_id=str(current.testid) if current is not None else None,
        )

    def read_records(self, after_seq: int, limit: int = 1000) -> list[Record]:
        block = self.read_block(after_seq, limit)
        return [Record(*row) for row in zip(*(block[name].tolist() for name in _MEASURED), strict=True)]

    def read_block(self, after_seq: int, limit: int = 1000) -> np.ndarray:
        """:meth:`read_records` as one array of :data:`BLOCK_DTYPE` (the fields of ``Record`` but the impedance
        ones), with no Python object per record: the station stores it as it is (a dry run reads ~700 pages)."""
        if not self._testid:
            raise DriverError(f"channel {self.channel} has no started or attached test to read")
        count = max(0, min(limit, MAX_DOWNLOAD_COUNT))
        if count == 0:
            return np.empty(0, dtype=BLOCK_DTYPE)
        page = self.client.download(self.address, testid=self._testid, startpos=after_seq + 1, count=count)
        skip = int(np.searchsorted(page.seqid, after_seq, side="right"))  # seqids run on by one (pages.py)
        if skip == len(page):
            return np.empty(0, dtype=BLOCK_DTYPE)
        first = DataRecord(int(page.seqid[skip]), int(page.stepid[skip]), int(page.cycleid[skip]), "",
                           float(page.testtime_ms[skip]), "", 0.0, 0.0, 0.0, 0.0)
        if first.seqid == 1:  # the test's first record: nothing came before it
            self._cursor = _Cursor(0, first.stepid, first.testtime_ms / 1000, 0.0, 1, 0.0)
            self._follow_from([], first)
        elif self._cursor is None or self._cursor.seq != first.seqid - 1:
            self._seed(first)
        return self._convert(page, skip)

    def _seed(self, first: DataRecord) -> None:
        """Recover where ``first``'s step sits in the test (start time, instance number, path through the program)
        from the step layer."""
        layer = self.client.download_step_layer(self.address, testid=self._testid)
        # every record belongs to exactly one step instance; the instances that ended before it place it
        done = [row for row in layer.rows if row.endseqid < first.seqid]
        base = sum(row.steptime_ms for row in done) / 1000
        step_time = first.testtime_ms / 1000
        # a cursor that ends exactly at this step's start, so that _convert sees "the same step instance"
        self._cursor = _Cursor(first.seqid - 1, first.stepid, step_time, base + step_time, len(done) + 1, base)
        self._follow_from([row.stepid for row in done], first)

    def _follow_from(self, before: list[int], first: DataRecord) -> None:
        """Follow the program through the step ids executed before ``first`` and into ``first``'s step."""
        if self._program is None:
            self._execution = None
            return
        self._execution = Execution(self._program)
        mapping = self._step_map
        for stepid in before:
            self._observe(mapping.get(stepid, stepid), None)
        self._observe(mapping.get(first.stepid, first.stepid), None)

    def _observe(self, step_index: int, instance: int | None) -> None:
        execution = self._execution
        assert execution is not None
        if not execution.observe(step_index) and not self._path_warned:
            log.warning(
                "channel %s ran step %d%s, which no way through the program leads to; its cycles are counted "
                "as if the program had jumped there",
                self.channel,
                step_index,
                f" as step instance {instance}" if instance is not None else "",
            )
            self._path_warned = True

    def _live_cycle(self, step_index: int | None, native: int | None) -> int | None:
        """The program cycle of the step running now: the last read instance's, or the one the program reaches
        that step in next (one way on, its branches included, then further along the nominal path)."""
        if step_index is None or native is None:
            return None
        if self._program is None:
            return native + self.cycle_offset
        execution = self._execution or Execution(self._program)
        if execution.position == step_index:
            return execution.cycle
        # the BTS's live values lag its records by seconds, so for a while after every step change the live step
        # is one the records have left behind, and the walk below runs its whole horizon: once per state is enough
        key = (step_index, execution.position, execution.cycle, execution.ran_since_increment, execution.ended,
               tuple(execution.passes.items()))
        if self._live_memo is not None and self._live_memo[0] == key:
            return self._live_memo[1]
        cycle = self._walk_to(execution, step_index)
        self._live_memo = (key, cycle)
        return cycle

    def _walk_to(self, execution: Execution, step_index: int) -> int:
        """The cycle the program runs ``step_index`` in next from ``execution`` (see :meth:`_live_cycle`)."""
        assert self._program is not None
        trial = execution.copy()
        if trial.observe(step_index):
            return trial.cycle
        ahead = execution.copy()
        index = ahead.position
        for _ in range(LIVE_HORIZON):
            index = ahead.follow(nominal_end(self._program.step(index))) if index else ahead.start()
            if index is None:
                break
            if index == step_index:
                return ahead.cycle
        return trial.cycle

    def _cycle(self, instance: int, step_index: int, native: int) -> int:
        """The program cycle of a new step instance (``native``: the BTS's own, for tests without a program)."""
        if self._execution is None:
            return native + self.cycle_offset
        self._observe(step_index, instance)
        return self._execution.cycle

    def _current_cycle(self, native: int) -> int:
        return self._execution.cycle if self._execution is not None else native + self.cycle_offset

    def _convert(self, page: DownloadPage, skip: int) -> np.ndarray:
        """The page's records from ``skip`` on in the station's convention, column by column; only the records
        that start a step instance (a new ``stepid``, or the step clock starting over) are looked at one by one,
        to follow the program. Each value is computed exactly as a loop over the records would (a new step starts
        at the test time of the record before it; capacity and energy signed by the step type)."""
        cursor = self._cursor
        assert cursor is not None
        stepid, cycleid = page.stepid[skip:], page.cycleid[skip:]
        step_time = page.testtime_ms[skip:] / 1000
        n = len(stepid)
        new = np.empty(n, dtype=bool)
        new[0] = stepid[0] != cursor.stepid or step_time[0] < cursor.step_time
        np.logical_or(stepid[1:] != stepid[:-1], step_time[1:] < step_time[:-1], out=new[1:])
        starts = np.flatnonzero(new).tolist()
        mapping = self._step_map
        instance, base = cursor.instance, cursor.step_base
        step_index = mapping.get(cursor.stepid, cursor.stepid)
        cycle = self._current_cycle(int(cycleid[0]))
        bounds, bases, indices, cycles = [0], [base], [step_index], [cycle]
        stepids, natives = stepid[starts].tolist(), cycleid[starts].tolist()
        before = step_time[[i - 1 if i else 0 for i in starts]].tolist()
        for i, sid, native, previous in zip(starts, stepids, natives, before, strict=True):
            base = cursor.test_time if i == 0 else base + previous  # the previous record's test time
            instance += 1
            step_index = mapping.get(sid, sid)
            cycle = self._cycle(instance, step_index, native)
            bounds.append(i)
            bases.append(base)
            indices.append(step_index)
            cycles.append(cycle)
        lengths = [b - a for a, b in zip(bounds, [*bounds[1:], n], strict=True)]
        block = np.empty(n, dtype=BLOCK_DTYPE)
        block["seq"] = page.seqid[skip:]
        test_time = block["test_time"]
        np.add(np.repeat(bases, lengths), step_time, out=test_time)
        block["step_time"] = step_time
        block["step_index"] = np.repeat(indices, lengths)
        block["cycle"] = np.repeat(cycles, lengths)
        current = page.curr[skip:]
        block["voltage"] = page.volt[skip:]
        block["current"] = current
        sign = _signs(page.steptype[skip:], current)
        np.multiply(sign, page.cap[skip:], out=block["capacity"])
        np.multiply(sign, page.eng[skip:], out=block["energy"])
        block["frequency"] = block["z_real"] = block["z_imag"] = block["temperature"] = np.nan
        block["cv_cycle"] = 0
        block["aux_temperature"] = page.aux_temperature[skip:]
        self._cursor = _Cursor(int(page.seqid[-1]), int(stepid[-1]), float(step_time[-1]), float(test_time[-1]),
                               instance, base)
        return block

    # -- control --------------------------------------------------------------------------------------------

    def pause(self) -> None:
        if not self.client.setpause(self.address).ok:
            raise CommandRefused(f"the BTS refused to pause channel {self.channel}; is it running?")

    def resume(self) -> None:
        (ack,) = self.client.continue_([self.address])
        if not ack.ok:
            raise CommandRefused(f"the BTS refused to continue channel {self.channel}; is it paused?")

    def stop(self) -> None:
        (ack,) = self.client.stop([self.address])
        if ack.ok:
            return
        (live,) = self.client.inquire([self.address], barcode=False)
        if live.workstatus in ("stop", "finish", "protect"):
            return  # already carrying no current: stop is idempotent
        raise CommandRefused(f"the BTS refused to stop channel {self.channel} (workstatus {live.workstatus!r})")

    def clear_protection(self) -> None:
        """Acknowledge a protection trip (``clearflag``) so that the channel can be started again."""
        (ack,) = self.client.clearflag([self.address])
        if not ack.ok:
            raise CommandRefused(f"the BTS refused clearflag on channel {self.channel}; is it in 'protect'?")


def remote_path(directory: str, name: str) -> str:
    """``name`` inside ``directory`` as the BTS Client's PC spells paths: ``D:\\bts-steps`` and
    ``\\\\labserver\\bts-steps`` take backslashes, ``/srv/bts-steps`` and ``D:/bts-steps`` slashes."""
    if "\\" in directory:
        separator = "\\"
    elif "/" in directory:
        separator = "/"
    else:
        separator = "\\" if directory.endswith(":") else "/"  # a bare drive ("D:") is Windows
    return directory.rstrip("\\/") + separator + name


def poll_statuses(channels: Sequence[NewareChannel]) -> list[ChannelStatus]:
    """Status of many channels of one BTS Client in two requests (one inquire, one inquiredf), not 2 x N.

    This is the supervision path for large stations: 512 channels cost two round trips per poll.
    """
    if not channels:
        return []
    client = channels[0].client
    if any(c.client is not client for c in channels):
        raise ValueError("poll_statuses needs channels that share one BTS client; group them by client first")
    lives = client.inquire([c.address for c in channels], barcode=False)
    started = [c for c in channels if c._testid]
    current: dict[int, InquireDf] = {}
    if started:
        # testid 0 asks for the channel's current test: its id tells whether the channel still holds ours (a BTS
        # that was reset, or a test started from the BTS Client, shows up here) and its count is the newest record
        rows = client.inquiredf_tests([(c.address, 0) for c in started])
        current = {id(c): row for c, row in zip(started, rows, strict=True)}
    return [c._status_from(live, current.get(id(c))) for c, live in zip(channels, lives, strict=True)]
