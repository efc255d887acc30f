"""The simulated BTS's command table: one handler per API command, each returning the reply's body lines.

Kept apart from the API's state and dispatch (``api.py``) and from the server's transport and lifecycle
(``server.py``), and written from the reference independently of the driver's table (``drivers/neware/commands.py``):
the two meet only at the wire. Every handler takes the request's clock time ``now`` and its
:class:`~simulators.neware.engine.Budget`: a channel named in the request is advanced within that budget under its
own lock, and answers with its state as far as it has been computed (the catch-up worker does the
rest). Replies follow the real captures (neware-bts-api.md sections 2 and 8); the choices the reference leaves open
are documented where they are made:

* ``download`` with ``startpos`` < 1 and ``count`` > 0 returns the last ``count`` records. aurora-neware asks for
  the last N points with ``startpos = total - N + 1``, which is negative when the test has fewer than N records;
  with N <= 1000 it makes one request and gets the whole test. (It pages on with ``startpos`` advanced by what it
  received, so with N > 1000 it asks again and gets the same records again: that is aurora-neware's own paging.)
* ``download`` numbers cycles from :attr:`download_cycle_base` (0 by default: the field capture of BTS Client
  2025.11.24, Vanguard-1, the only real data on the point; reference section 9, single source), while
  ``downloadStepLayer`` and ``inquire`` number them from 1 (real capture, aurora-neware's mock).
* ``goto`` jumps a working or paused channel to ``step``; ``setpause`` with ``cycleid``/``stepid`` -1/-1 pauses now
  and with others schedules a pause at the start of that step of that cycle (-1 = any); ``getpause`` reads the
  schedule back (``true`` with its cycle and step, ``false`` with -1/-1 when none); ``cancelpause`` drops it.
  ``reset`` (replace a running test's step plan) is answered ``false``, the BTS's refusal: what it does to the
  running step is not documented (reference 2.13), and the simulator does not run another program silently.
* A channel with an auxiliary thermocouple (:attr:`aux_channels`) adds ``T1`` to its ``download`` rows, after
  ``eng`` (the cell model's temperature when the record was computed, degC to 0.1 degC: ``pagetext``), and to its
  ``inquire`` element, after ``log_code`` (the temperature now); a real BTS sends aux attributes only for channels
  with an auxiliary channel mapped (reference 2.4, 2.7). Other channels' replies carry none.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from xml.etree.ElementTree import Element

import numpy as np

from simulators.neware import pagetext, wire
from simulators.neware.engine import Budget, ChannelEngine
from simulators.neware.faults import FaultPlan
from simulators.neware.stepfile import API_STEP_NAMES, DeviceRanges, NativePlan, StepFileError

#: the handlers log as the server they belong to: operators filter on one logger name for the simulated BTS
log = logging.getLogger("simulators.neware.server")

Key = tuple[int, int, int]
#: per path named by a start: the admitted plan, or why it was refused
Loads = dict[str, NativePlan | StepFileError]

T = TypeVar("T")

DEVTYPE = 27
#: a download page holds at most this many records (reference 2.7)
MAX_PAGE = 1000
#: downloadlog holds at most this many entries (reference 2.10)
MAX_LOG = 5000


def _int(element: Element, name: str, default: int) -> int:
    text = (element.get(name) or "").strip()
    return int(text) if text else default


class BtsCommands:
    """The handlers; :class:`~simulators.neware.api.BtsApi` supplies the state they work on."""

    channels: dict[Key, ChannelEngine]
    faults: FaultPlan
    ranges: DeviceRanges
    server_ip: str
    last_start_errors: dict[str, str]
    download_cycle_base: int
    #: the channels with an auxiliary thermocouple (module notes)
    aux_channels: frozenset[Key]
    _origin: float
    _atime: wire.AtimeFormatter
    _lock: threading.RLock
    _testid: int

    def _woken(self) -> None:
        """Tell the catch-up worker that channels changed course (the server overrides it)."""

    # -- helpers --------------------------------------------------------------------------------------------

    @staticmethod
    def _key(element: Element, channel_attr: str = "chlid") -> Key | None:
        try:
            return (int(element.get("devid", "")), int(element.get("subdevid", "")), int(element.get(channel_attr, "")))
        except ValueError:
            return None

    def _engine(self, element: Element) -> tuple[Key | None, ChannelEngine | None]:
        key = self._key(element)
        return key, (self.channels.get(key) if key is not None else None)

    @staticmethod
    def _list(root: Element, tag: str) -> list[Element]:
        container = root.find("list")
        items = [] if container is None else [e for e in container if e.tag == tag]
        return items or root.findall(tag)

    @staticmethod
    def _single(root: Element, tag: str) -> Element | None:
        element = root.find(tag)
        if element is None:
            container = root.find("list")
            element = container.find(tag) if container is not None else None
        return element

    def _address_attrs(self, element: Element, *, with_ip: bool = True) -> dict[str, object]:
        keys = ("ip", "devtype", "devid", "subdevid", "chlid") if with_ip else ("devtype", "devid", "subdevid", "chlid")
        out: dict[str, object] = {k: element.get(k, "") for k in keys}
        if with_ip and not out["ip"]:
            out["ip"] = self.server_ip
        if not out["devtype"]:
            out["devtype"] = DEVTYPE
        return out

    def _extra_line(self, tag: str, text: str) -> list[str]:
        if not self.faults.extra_channel:
            return []
        devid, sub, chl = max(self.channels)
        extra = {"ip": self.server_ip, "devtype": DEVTYPE, "devid": devid, "subdevid": sub, "chlid": chl}
        return [f"  <{tag}{wire.attrs(extra)}>{text}</{tag}>"]

    @staticmethod
    def _each(engines: Sequence[ChannelEngine | None], work: Callable[[int, ChannelEngine], T]) -> list[T | None]:
        """``work(index, engine)`` on each engine under its lock; results in order, the work never in lockstep with
        the catch-up worker.

        The catch-up worker walks the channels in the same order a request names them; a request that waited for
        each channel's lock in turn would follow it, one cell-model run per channel (2048 channels after a shared
        step change: seconds). So a channel whose lock is taken is done after the others, when the worker is
        elsewhere: a request waits for at most a few model runs.
        """
        results: list[T | None] = [None] * len(engines)
        busy: list[int] = []
        for index, engine in enumerate(engines):
            if engine is None:
                continue
            if engine.lock.acquire(blocking=False):
                try:
                    results[index] = work(index, engine)
                finally:
                    engine.lock.release()
            else:
                busy.append(index)
        for index in busy:
            engine = engines[index]
            assert engine is not None
            with engine.lock:
                results[index] = work(index, engine)
        return results

    def _test_of(self, engine: ChannelEngine | None, testid: int) -> bool:
        return engine is not None and engine.testid > 0 and testid in (0, engine.testid)

    # -- status ---------------------------------------------------------------------------------------------

    def _connect(self, root: Element, now: float, budget: Budget) -> list[str]:
        return ["<result>ok</result>"]

    def _getdevinfo(self, root: Element, now: float, budget: Budget) -> list[str]:
        lines = [f'<serverip count="1"><server ip="{self.server_ip}" port="3306" /></serverip>']
        lines.append(f'<middle count="{len(self.channels)}">')
        for devid, sub, chl in sorted(self.channels):
            a = {"ip": self.server_ip, "devtype": DEVTYPE, "devid": devid, "subdevid": sub, "Channelid": chl}
            lines.append(f"  <channel{wire.attrs(a)}>true</channel>")
        lines.append("</middle>")
        return lines

    def _getchlstatus(self, root: Element, now: float, budget: Budget) -> list[str]:
        items = self._list(root, "status")

        def look(index: int, engine: ChannelEngine) -> str:
            engine.advance(now, budget)
            return engine.status

        states = self._each([self._engine(e)[1] for e in items], look)
        lines = [f'<list count="{len(items)}">']
        for element, state in zip(items, states, strict=True):
            a = self._address_attrs(element)
            if self.faults.mislabel_subdevid:
                a["subdevid"] = 1
            a["reservepause"] = 1
            lines.append(f"  <status{wire.attrs(a)}>{state or 'false'}</status>")
        lines += self._extra_line("status", "finish")
        lines.append("</list>")
        return lines

    def _inquire(self, root: Element, now: float, budget: Budget) -> list[str]:
        items = self._list(root, "inquire")
        views = self._each([self._engine(e)[1] for e in items],
                           lambda i, e: (e.live(now, budget), e.barcode, e.temperature_c()))
        lines = [f'<list count="{len(items)}">']
        for element, view in zip(items, views, strict=True):
            parts = (element.get("devtype", str(DEVTYPE)), element.get("devid"), element.get("subdevid"))
            dev = "-".join(str(p) for p in (*parts, element.get("chlid"), 0))
            if view is None:
                lines.append(f'  <inquire dev="{wire.escape(dev)}" workstatus="false" />')
                continue
            live, barcode, celsius = view
            a: dict[str, object] = {"dev": dev, "cycle_id": live.cycle_id}
            if live.step_id is not None:
                a["step_id"] = live.step_id
            a.update(step_type=live.step_type, workstatus=live.workstatus)
            if element.get("barcode", "1") != "0" and barcode is not None:
                a["barcode"] = barcode
            a.update(
                current=wire.rounded(live.current),
                voltage=wire.rounded(live.voltage),
                capacity=wire.rounded(live.capacity),
                energy=wire.rounded(live.energy),
                totaltime=wire.rounded(live.total_time, 1),
                relativetime=wire.rounded(live.relative_time, 1),
                open_or_close=0,
                log_code=live.log_code,
            )
            if self._key(element) in self.aux_channels:
                a[pagetext.AUX_TEMPERATURE] = pagetext.AUX_TEMPERATURE_FORMAT % celsius
            lines.append(f"  <inquire{wire.attrs(a)} />")
        lines.append("</list>")
        return lines

    # -- start ----------------------------------------------------------------------------------------------

    def _start_items(self, root: Element) -> list[tuple[Element, str]]:
        return [(element, (element.text or "").strip()) for element in self._list(root, "start")]

    def load_all(self, paths: list[str]) -> Loads:
        """Load each distinct path once (blocking file I/O and parsing; the server runs it in its reader threads)."""
        raise NotImplementedError

    def _plan_for(self, key: Key | None, engine: ChannelEngine | None, path: str, loads: Loads) -> NativePlan | None:
        """The plan a start element may run, or None after logging why this channel refuses it."""
        shown = path if len(path) <= 300 else path[:300] + "..."  # a client's path may be megabytes long
        if engine is None:
            log.info("start refused on channel %s: no such channel (step file %r)", key, shown)
            return None
        if engine.status not in ("finish", "stop", "protect"):
            log.info("start refused on channel %s: the channel is %s (step file %r)", key, engine.status, shown)
            return None
        if path not in loads:  # handle() called synchronously: read here
            loads.update(self.load_all([path]))
        loaded = loads[path]
        if isinstance(loaded, StepFileError):
            with self._lock:
                self.last_start_errors[f"{key}"] = str(loaded)
            log.warning("start refused on channel %s: step file %r: %s", key, shown, loaded)
            return None
        return loaded

    def _start(self, root: Element, now: float, budget: Budget, loads: Loads | None = None) -> list[str]:
        loads = dict(loads or {})
        plans = []
        for element, path in self._start_items(root):
            key, engine = self._engine(element)
            plans.append((element, engine, path, self._plan_for(key, engine, path, loads)))
        with self._lock:
            if any(plan is not None for *_, plan in plans):
                self._testid += 1  # one testid per batch, shared by its channels
            testid = self._testid
        lines = [f'<list count="{len(plans)}">']
        started = []
        for element, engine, path, plan in plans:
            ok = False
            if engine is not None and plan is not None:
                with engine.lock:
                    ok = engine.start(plan, element.get("barcode", ""), testid, now, step_file=plan.source, path=path)
                if ok:
                    started.append(engine)
            lines.append(f"  <start{wire.attrs(self._address_attrs(element))}>{'ok' if ok else 'false'}</start>")
        lines.append("</list>")
        # the first steps, as far as the budget goes; the catch-up worker does the rest
        self._each(started, lambda i, e: e.advance(now, budget))
        self._woken()
        return lines

    # -- channel commands -----------------------------------------------------------------------------------

    def _acks(
        self, root: Element, tag: str, action: Callable[[ChannelEngine, Element, float, Budget], bool], now: float,
        budget: Budget,
    ) -> list[str]:  # fmt: skip
        items = self._list(root, tag)
        engines = [self._engine(element)[1] for element in items]
        results = self._each(engines, lambda i, engine: action(engine, items[i], now, budget))
        lines = [f'<list count="{len(items)}">']
        for element, ok in zip(items, results, strict=True):
            lines.append(f"  <{tag}{wire.attrs(self._address_attrs(element))}>{'ok' if ok else 'false'}</{tag}>")
        lines += self._extra_line(tag, "false")
        lines.append("</list>")
        self._woken()
        return lines

    def _stop(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._acks(root, "stop", lambda e, el, t, b: e.stop(t, b), now, budget)

    def _continue(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._acks(root, "continue", lambda e, el, t, b: e.resume(t), now, budget)

    def _clearflag(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._acks(root, "clearflag", lambda e, el, t, b: e.clearflag(t), now, budget)

    def _light(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._acks(root, "light", lambda e, el, t, b: True, now, budget)

    def _chl_ctrl(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._acks(root, "chl_ctrl", lambda e, el, t, b: True, now, budget)

    def _setpause(self, root: Element, now: float, budget: Budget) -> list[str]:
        def action(engine: ChannelEngine, element: Element, t: float, b: Budget) -> bool:
            return engine.schedule_pause(_int(element, "cycleid", -1), _int(element, "stepid", -1), t, b)

        return self._acks(root, "setpause", action, now, budget)

    def _cancelpause(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._acks(root, "cancelpause", lambda e, el, t, b: e.cancel_pause(), now, budget)

    def _goto(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._acks(root, "goto", lambda e, el, t, b: e.goto(_int(el, "step", 0), t), now, budget)

    def _reset(self, root: Element, now: float, budget: Budget) -> list[str]:
        def refuse(engine: ChannelEngine, element: Element, t: float, b: Budget) -> bool:
            log.info("reset refused: replacing a running test's step plan is not simulated (reference 2.13)")
            return False

        return self._acks(root, "reset", refuse, now, budget)

    def _getpause(self, root: Element, now: float, budget: Budget) -> list[str]:
        items = self._list(root, "getpause")
        lines = [f'<list count="{len(items)}">']
        for element in items:
            _, engine = self._engine(element)
            scheduled = None
            if engine is not None:
                with engine.lock:
                    scheduled = engine.pause_at
            cycle, step = scheduled or (-1, -1)
            a = {**self._address_attrs(element), "cycleid": cycle, "stepid": step}
            lines.append(f"  <getpause{wire.attrs(a)}>{'true' if scheduled else 'false'}</getpause>")
        lines.append("</list>")
        return lines

    def _device_acks(
        self, root: Element, tag: str, action: Callable[[ChannelEngine, float], bool], now: float
    ) -> list[str]:
        """Device-level commands (``<tag ip devtype devid>``): apply to every channel of the device."""
        items = self._list(root, tag)
        lines = [f'<list count="{len(items)}">']
        for element in items:
            devid = element.get("devid", "")
            engines = [e for (d, _, _), e in self.channels.items() if str(d) == devid]
            self._each(engines, lambda i, e: action(e, now))
            a = {"ip": element.get("ip", self.server_ip), "devtype": element.get("devtype", DEVTYPE), "devid": devid}
            lines.append(f"  <{tag}{wire.attrs(a)}>{'ok' if engines else 'false'}</{tag}>")
        lines.append("</list>")
        self._woken()
        return lines

    def _broadcaststop(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._device_acks(root, "stop", lambda e, t: e.stop(t, budget), now)

    def _resetalarm(self, root: Element, now: float, budget: Budget) -> list[str]:
        return self._device_acks(root, "resetalarm", lambda e, t: True, now)

    # -- data -----------------------------------------------------------------------------------------------

    def _download(self, root: Element, now: float, budget: Budget) -> list[str | bytes]:
        element = self._single(root, "download")
        if element is None:
            return ['<list count="0" />']
        key, engine = self._engine(element)
        testid = _int(element, "testid", 0)
        startpos = _int(element, "startpos", 1)
        count = min(MAX_PAGE, max(0, _int(element, "count", MAX_PAGE)))
        echo = self._address_attrs(element, with_ip=False)
        echo.update(testid=engine.testid if engine is not None and testid == 0 else testid, startpos=startpos)
        echo.update(count=count, auxid=element.get("auxid", "0"))
        lines: list[str | bytes] = [f"<download{wire.attrs(echo)} />"]
        if engine is None or not self._test_of(engine, testid) or count == 0:
            return [*lines, '<list count="0" />']
        with engine.lock:
            engine.advance(now, budget)
            first = startpos - 1 if startpos >= 1 else max(0, engine.records.count - count)
            rows = engine.records.slice(first, first + count)
            offset = engine.test_start - self._origin
        n = len(rows["stepid"])
        if n == 0:
            return [*lines, '<list count="0" />']
        lines.append(f'<list count="{n}">')
        lines += self._data_lines(offset, first + 1, rows, aux=key in self.aux_channels)
        lines.append("</list>")
        return lines

    def _data_lines(self, offset: float, startpos: int, rows: dict[str, Any], *, aux: bool = False) -> list[bytes]:
        """The page's records as one body line of ASCII bytes (the server's hot path: built column-wise, see
        pagetext); ``aux``: the channel has a thermocouple, whose ``T1`` each row carries."""
        n = len(rows["stepid"])
        columns = {
            "seqid": np.arange(startpos, startpos + n, dtype=np.int64),
            "stepid": rows["stepid"],
            "cycleid": rows["cycleid"].astype(np.int64) - 1 + self.download_cycle_base,
            "steptype": rows["steptype"],
            "testtime": (rows["step_time"] * 1000).round(1),  # np.round's own call, without its wrapper
            "volt": rows["volt"],
            "curr": rows["curr"],
            "cap": rows["cap"],
            "eng": rows["eng"],
        }
        atimes = wire.atimes(self._atime.epoch, offset + rows["test_time"])
        return [pagetext.page_bytes(columns, API_STEP_NAMES, atimes, rows["temperature_c"] if aux else None)]

    def _inquiredf(self, root: Element, now: float, budget: Budget) -> list[str]:
        items = self._list(root, "chl")

        def look(index: int, engine: ChannelEngine) -> tuple[bool, int, int]:
            engine.advance(now, budget)
            testid = _int(items[index], "testid", 0)
            ours = self._test_of(engine, testid)
            # complete: the test is over and every record is computed and released ("uploaded")
            complete = ours and engine.status in ("finish", "stop", "protect") and not engine.lagging(now)
            return complete, engine.last_seqid if ours else 0, engine.testid if testid == 0 else testid

        views = self._each([self._engine(e)[1] for e in items], look)
        lines = [f'<list count="{len(items)}">']
        for element, view in zip(items, views, strict=True):
            a = self._address_attrs(element, with_ip=False)
            if view is None:
                lines.append(f"  <chl{wire.attrs({**a, 'testid': _int(element, 'testid', 0), 'count': 0})}>false</chl>")
                continue
            complete, count, testid = view
            a.update(testid=testid, count=count)
            lines.append(f"  <chl{wire.attrs(a)}>{'true' if complete else 'false'}</chl>")
        lines.append("</list>")
        return lines

    def _step_layer(self, root: Element, now: float, budget: Budget) -> list[str]:
        element = self._single(root, "downloadStepLayer")
        if element is None:
            return ['<list count="0" />']
        _, engine = self._engine(element)
        testid = _int(element, "testid", 0)
        echo = self._address_attrs(element, with_ip=False)
        echo["testid"] = engine.testid if engine is not None and testid == 0 else testid
        lines = [f"<downloadStepLayer{wire.attrs(echo)} />"]
        if engine is None or not self._test_of(engine, testid):
            return [*lines, '<list count="0" />']
        with engine.lock:
            engine.advance(now, budget)
            rows = list(engine.step_rows)
            offset = engine.test_start - self._origin
        if not rows:
            return [*lines, '<list count="0" />']
        num = wire.dotnet
        lines.append(f'<list count="{len(rows)}">')
        for r in rows:
            lines.append(
                f'  <data startseqid="{r.startseqid}" endseqid="{r.endseqid}" stepindex="{r.stepindex}" '
                f'stepid="{r.stepid}" cycleid="{r.cycleid}" steptype="{r.steptype}" '
                f'steptime="{num(round(r.steptime * 1000, 1))}" endatime="{self._atime(offset + r.end_test_time)}" '
                f'startvolt="{num(r.startvolt)}" endvolt="{num(r.endvolt)}" startcurr="{num(r.startcurr)}" '
                f'endcurr="{num(r.endcurr)}" cap="{num(r.cap)}" eng="{num(r.eng)}" dcir="0" />'
            )
        lines.append("</list>")
        return lines

    def _downloadlog(self, root: Element, now: float, budget: Budget) -> list[str]:
        element = self._single(root, "download")
        if element is None:
            return ['<list count="0" />']
        _, engine = self._engine(element)
        testid = _int(element, "testid", 0)
        echo = self._address_attrs(element, with_ip=False)
        echo.update(testid=engine.testid if engine is not None and testid == 0 else testid, log_lever="0")
        lines = [f"<download{wire.attrs(echo)} />"]
        if engine is None or not self._test_of(engine, testid):
            return [*lines, '<list count="0" />']
        with engine.lock:
            engine.advance(now, budget)
            entries = engine.log[:MAX_LOG]
            offset = engine.test_start - self._origin
        if not entries:
            return [*lines, '<list count="0" />']
        lines.append(f'<list count="{len(entries)}">')
        for seqid, code, test_time in entries:
            lines.append(f'  <data seqid="{seqid}" log_code="{code}" atime="{self._atime(offset + test_time)}" />')
        lines.append("</list>")
        return lines

    def command_table(self) -> dict[str, Callable[..., list[str | bytes]]]:
        """Command name -> handler (case-sensitive, as the BTS: ``downloadStepLayer``, not ``downloadsteplayer``)."""
        return {
            "connect": self._connect,
            "getdevinfo": self._getdevinfo,
            "getchlstatus": self._getchlstatus,
            "inquire": self._inquire,
            "start": self._start,
            "stop": self._stop,
            "continue": self._continue,
            "clearflag": self._clearflag,
            "light": self._light,
            "setpause": self._setpause,
            "cancelpause": self._cancelpause,
            "getpause": self._getpause,
            "goto": self._goto,
            "reset": self._reset,
            "chl_ctrl": self._chl_ctrl,
            "broadcaststop": self._broadcaststop,
            "resetalarm": self._resetalarm,
            "download": self._download,
            "inquiredf": self._inquiredf,
            "downloadStepLayer": self._step_layer,
            "downloadlog": self._downloadlog,
        }
