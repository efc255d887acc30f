"""read_block (the station's hot path: a page as one array) gives exactly the records read_records gives, as the
module docstring of drivers/neware/channel.py specifies them: test time rebuilt from step times (a new step, by
stepid or by its clock starting over, starts at the previous record's test time), capacity and energy signed by the
step type (by the current for a type the BTS does not name), whatever the page boundaries."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import ChannelRanges
from drivers.neware.address import ChannelAddress
from drivers.neware.channel import BLOCK_DTYPE, NewareChannel
from drivers.neware.pages import PageRequest, parse_download_frame
from drivers.neware.replies import DownloadPage

ROW = ('<data seqid="%d" stepid="%d" cycleid="%d" steptype="%s" testtime="%r" atime="2025-01-01 00:00:00" '
       'volt="%r" curr="%r" cap="%r" eng="%r" />')


class PagedBts:
    """A BTS client that only downloads, from a fixed list of rows, through the real page parser."""

    def __init__(self, rows: list[tuple]):
        self.rows = rows

    def download(self, address: ChannelAddress, *, testid: int, startpos: int, count: int) -> DownloadPage:
        chosen = self.rows[startpos - 1:startpos - 1 + count]
        body = "\n".join(ROW % r for r in chosen)
        frame = (f'<?xml version="1.0"?><bts version="1.0"><cmd>download_resp</cmd><download testid="{testid}" '
                 f'startpos="{startpos}" /><list count="{len(chosen)}">{body}</list></bts>').encode()
        return parse_download_frame(frame, "download", PageRequest(address.channel_id, startpos, count))


def channel_on(rows: list[tuple], tmp_path: Path) -> NewareChannel:
    channel = NewareChannel(PagedBts(rows), ChannelAddress.parse("21-1-2"),  # type: ignore[arg-type]
                            ChannelRanges(0.0, 5.0, 0.01), step_dir=tmp_path, cycle_offset=1)
    channel._testid = 9  # a test started by another tool: no program, so cycles are the BTS's own plus the offset
    return channel


def expected(rows: list[tuple]) -> list[tuple]:
    """The records, one at a time, from the rules alone."""
    out, base, previous, cycle = [], 0.0, None, rows[0][2] + 1
    for seqid, stepid, cycleid, steptype, testtime_ms, volt, curr, cap, eng in rows:
        step_time = testtime_ms / 1000
        if previous is not None and (stepid != previous[0] or step_time < previous[1]):
            base = previous[2]
            cycle = cycleid + 1  # a step instance keeps the cycle it started in
        test_time = base + step_time
        sign = -1.0 if steptype in ("dc", "dv", "cccd", "dp", "dr") else 1.0 if steptype in (
            "cc", "cv", "cccv", "pcccv", "cp", "cr") else (-1.0 if curr < 0 else 1.0)
        out.append((seqid, test_time, step_time, stepid, cycle, volt, curr, sign * cap, sign * eng))
        previous = (stepid, step_time, test_time)
    return out


steps = st.tuples(st.integers(1, 4), st.integers(0, 3), st.sampled_from(["cc", "dc", "cccv", "rest", "xx"]),
                  st.integers(1, 6), st.integers(0, 2))


@given(plan=st.lists(steps, min_size=1, max_size=12), page=st.integers(1, 9), data=st.data())
@settings(max_examples=120, deadline=None)
def test_blocks_hold_the_records_the_rules_give_across_any_page_boundaries(tmp_path_factory, plan, page: int,
                                                                          data) -> None:
    rows: list[tuple] = []
    for stepid, cycleid, steptype, n, restart in plan:
        if rows and stepid == rows[-1][1]:
            stepid = stepid % 4 + 1  # each entry its own step instance; the BTS's cycle id is constant within one
        for k in range(n):
            step_ms = 30000.0 * (k % (n - restart) if restart and n > restart else k) + 0.1 * (k == n - 1)
            curr = data.draw(st.sampled_from([-1e-3, 0.0, 2.5e-4, -0.0]))
            rows.append((len(rows) + 1, stepid, cycleid, steptype, step_ms, 3.0 + 0.01 * k, curr, 1e-4 * k, 4e-4 * k))
    tmp = tmp_path_factory.mktemp("steps")
    by_block, by_record = channel_on(rows, tmp), channel_on(rows, tmp)
    blocks, records, after = [], [], 0
    while after < len(rows):
        block = by_block.read_block(after, page)
        records += by_record.read_records(after, page)
        assert block.dtype == BLOCK_DTYPE and len(block) == min(page, len(rows) - after)
        blocks.append(block)
        after = int(block["seq"][-1])
    got = np.concatenate(blocks)
    want = expected(rows)
    assert [tuple(r) for r in got[list(BLOCK_DTYPE.names[:9])].tolist()] == want
    assert [(r.seq, r.test_time, r.step_time, r.step_index, r.cycle, r.voltage, r.current, r.capacity, r.energy)
            for r in records] == want
    assert all(r.frequency is None and r.z_real is None and r.cv_cycle == 0 for r in records)
    assert np.all(np.isnan(got["frequency"])) and np.all(got["cv_cycle"] == 0)
    assert math.isclose(got["test_time"][-1], want[-1][1], rel_tol=0, abs_tol=0)


def test_a_page_read_again_from_the_middle_skips_what_was_read(tmp_path: Path) -> None:
    rows = [(i + 1, 1 + i // 5, 0, "cc", 30000.0 * (i % 5), 3.5, 1e-3, 1e-5 * (i % 5), 4e-5 * (i % 5))
            for i in range(20)]
    channel = channel_on(rows, tmp_path)
    first = channel.read_block(0, 8)
    second = channel.read_block(8, 100)
    assert first["seq"].tolist() == list(range(1, 9)) and second["seq"].tolist() == list(range(9, 21))
    assert second["test_time"].tolist() == [row[1] for row in expected(rows)[8:]]
    assert channel.read_block(20, 100).shape == (0,)
