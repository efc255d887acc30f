"""`station serve`: one always-on process per data directory that watches every active run, whether or not
anyone has a terminal open (DESIGN section 7).

On start it takes the data directory's service lock (a second service is refused by name), settles what no
process looked after (unconfirmed starts and stops), and adopts every active run no other process supervises:
re-attaches, catches up its records and checks them. Then it supervises them all in rounds on one beat (one
status exchange per instrument link, downloads only where there is new data), and looks again for runs to adopt
every ``rescan_s`` (a run whose `station run` terminal detached or died; an instrument that was unreachable). On
SIGTERM, SIGINT or Ctrl-C it stops supervising and leaves every program running on its instrument.

``service.json`` in the data directory says which process serves it and where its HTTP API listens (station.api),
so the CLI can find it. API requests reach the runs only through :class:`~station.command_queue.CommandQueue`,
carried out on this loop's thread between rounds; what the loop sees is published on a
:class:`~station.board.Board` for the API's readers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from drivers.base import DriverError
from protocols.clock import RealClock
from station.api.client import SERVICE_FILE, SERVICE_LEASE
from station.board import Board
from station.campaigns import CampaignEngine
from station.chambers import ChamberUnit
from station.command_queue import CommandQueue
from station.documents import iso_utc
from station.instruments import InstrumentError
from station.leases import Lease
from station.runs import Progress, RunEnded, RunError
from station.session import Station
from station.store import StoreError
from station.version import software_version

#: how often a stop request (a signal) is looked at while waiting for the next round, s of wall time
_WAKE_S = 0.2

log = logging.getLogger(__name__)


class ServiceRunning(Exception):
    """Another station service already serves this data directory."""


class StationService:
    def __init__(self, station: Station, *, rescan_s: float = 10.0, say: Callable[[str], None] = lambda _: None):
        self.station = station
        self.rescan_s = rescan_s
        self.say = say
        self.campaigns = CampaignEngine(station)
        self._lock = Lease(station.store.data_dir, SERVICE_LEASE)
        self._waiting: dict[str, str] = {}
        """Runs that could not be adopted yet (their instrument did not answer), with why: retried every rescan."""
        self.board = Board()
        self.commands = CommandQueue()
        self.address: tuple[str, int] | None = None
        """Where the API listens, once it does (written to service.json for the CLI)."""
        self._states: dict[str, str] = {}
        self._chambers_told: list[dict] = []
        self._last_event = 0
        self._channels: dict[str, str] = {}
        self._lab_problem = ""
        self._buffering_told: float | None = None
        """Since when the station said it buffers (None: it has not, or said the lab's database is back)."""

    @property
    def info_path(self) -> Path:
        return Path(self.station.store.data_dir) / SERVICE_FILE

    def claim(self) -> None:
        """Become the data directory's one service, or refuse with who holds it."""
        if not self._lock.acquire():
            holder = self._lock.holder()
            raise ServiceRunning(f"a station service{f' (pid {holder})' if holder else ''} already serves "
                                 f"{self.station.store.data_dir}; stop it first, or give another --data-dir")
        self._last_event = self.station.store.last_event_id()
        if not self.station.dry_run:  # simulated instruments claim no real channel
            channels, now, lab = self.station.config.channel_ids(), self.station.clock.unix(), self.station.lab
            owned = lab.claim_all(channels, now) if lab else self.station.store.claim_channels(channels, now)
            for channel, owner in owned.items():
                self.say(f"channel {channel} belongs to station {owner}: runs on it start there, not here (free it "
                         f"with `station db release-channel {channel}` once {owner} no longer has it)")
        self.write_info()

    def write_info(self) -> None:
        """service.json: who serves this data directory and where its API is; replaced whole, never half-written."""
        doc = {"pid": os.getpid(), "data_dir": str(self.station.store.data_dir),
               "started_at": self.station.clock.unix()}
        url = None
        if self.address is not None:
            doc |= {"host": self.address[0], "port": self.address[1]}
            # bound to every address: other PCs reach it by this PC's name
            host = socket.gethostname() if self.address[0] in ("0.0.0.0", "::", "") else self.address[0]
            url = f"http://{f'[{host}]' if ':' in host else host}:{self.address[1]}"
        service = {"started_at": doc["started_at"], "api_url": url, "pid": doc["pid"], "version": software_version()}
        self.station.store.station_seen(doc["started_at"], **service)
        if self.station.lab is not None:
            self.station.lab.seen(doc["started_at"], **service)
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.info_path)

    def adopt(self) -> list[str]:
        """Settle and attach every active run nobody supervises; one note per run touched."""
        store, manager = self.station.store, self.station.manager
        store.station_seen(self.station.clock.unix())
        if self.station.lab is not None:
            self.station.lab.seen(self.station.clock.unix())
        mine = store.station  # another station's runs are its own service's to watch

        def unwatched() -> list:
            watched = {run_id for run_id, run in manager.active.items() if not run.done}
            if watched.issuperset(store.active_run_ids(mine)):  # the usual rescan: no row needs reading
                return []
            return [r for r in store.runs(active_only=True, light=True, station=mine) if r.id not in watched]

        notes = self.station.settle([store.run(r.id) for r in unwatched()
                                     if r.dry_run or r.unconfirmed or r.stop_requested])
        for row in unwatched():
            if row.dry_run:
                continue
            if not manager.lease_free(row.id):
                continue  # a `station run` or `attach` terminal supervises it
            try:
                self.station.attach(row.id)
            except RunEnded as exc:
                notes.append(str(exc))
                self._waiting.pop(row.id, None)
                continue
            except (DriverError, InstrumentError, RunError) as exc:
                if self._waiting.get(row.id) != str(exc):
                    notes.append(f"run {row.id}: cannot attach yet ({exc}); retrying every {self.rescan_s:g} s")
                self._waiting[row.id] = str(exc)
                continue
            self._waiting.pop(row.id, None)
            notes.append(f"run {row.id}: watched (channel {row.channel}, from record {row.last_seq + 1})")
        return notes

    def watched(self) -> list[str]:
        return [run_id for run_id, run in self.station.manager.active.items() if not run.done]

    def serve(self, should_stop: Callable[[], bool]) -> None:
        """Rounds on one beat until ``should_stop``; adopts new runs every ``rescan_s``; carries out API requests
        between rounds as soon as they arrive."""
        clock = self.station.clock  # nothing here reads the wall clock but through it
        poll = self.station.config.poll_seconds
        next_scan = clock.now()
        try:
            while not should_stop():
                started = clock.now()
                try:
                    if started >= next_scan:
                        next_scan = started + self.rescan_s
                        for note in self.adopt():
                            self.say(note)
                    self.round()
                except StoreError as exc:  # the channels whose data could not be stored were paused; go on
                    self.say(f"storage error: {exc}; supervision goes on and the paused runs are taken up again "
                             f"every {self.rescan_s:g} s")
                except Exception as exc:  # a defect of ours must not leave every other cell unwatched
                    self.say(f"error in a supervision round ({type(exc).__name__}: {exc}); supervision goes on")
                    log.exception("supervision round failed")
                while not should_stop() and clock.now() - started < poll:
                    wait = min(_WAKE_S, max(0.0, poll - (clock.now() - started)))
                    if self.carry_out():
                        continue
                    if isinstance(clock, RealClock):
                        self.commands.wait(wait)
                    else:
                        clock.sleep(wait)
        finally:
            self.commands.cancel_all("the station service is stopping; ask again once it runs")

    def round(self) -> None:
        """One round: the requests that arrived, one status exchange per link and the downloads it announces, the
        campaigns' decisions, and what the readers are told."""
        self.carry_out()
        runs = self.watched()
        progress = self.station.manager.poll_round(runs) if runs else []
        for p in progress:
            if self.station.manager.active[p.run_id].done:
                self.say(f"run {p.run_id}: {p.state}")
        for note in self.campaigns.tick():
            self.say(note)
        self.publish(progress)
        self.publish_chambers()
        self.forward()

    def publish_chambers(self) -> None:
        """Tell the readers each chamber's latest reading when it changed: the grid shows it on every channel in
        the chamber, with a run or without. Never waits for a chamber (each is read on a thread of its own)."""
        chambers = self.station.chambers
        if chambers is None:
            return
        docs = [chamber_doc(unit) for unit in chambers.units.values() if unit.config is not None]
        if docs and docs != self._chambers_told:
            self._chambers_told = docs
            self.board.publish("chambers", docs)

    def forward(self) -> None:
        """Forward this round's records and changes to the lab's database (a long backlog a slice per round);
        say when the station starts buffering and when the lab's database has everything again."""
        lab = self.station.lab
        if lab is None:
            return
        try:
            lab.forward()
        except StoreError as exc:  # not an outage (those are buffered): a conflict or damage, told once
            if str(exc) != self._lab_problem:
                self.say(f"lab database: {exc}; this station's own store keeps everything meanwhile")
            self._lab_problem = str(exc)
            return
        self._lab_problem = ""
        # told from what was last said, not from this call: the outage may have been found by another call to the
        # lab's database (the rescan's "still here"), and its end by this one
        if lab.buffering_since is not None and self._buffering_told is None:
            self._buffering_told = lab.buffering_since
            self.say(f"lab database {lab.where} unreachable ({lab.why}); buffering in {self.station.store.where} "
                     f"and forwarding when it is back")
        elif lab.buffering_since is None and self._buffering_told is not None:
            self.say(f"lab database {lab.where} back; everything buffered since {iso_utc(self._buffering_told)} is "
                     f"forwarded")
            self._buffering_told = None

    def carry_out(self) -> int:
        """Carry out the operator's requests that arrived, and tell the readers at once what they changed.

        At 2048 channels a round takes about as long as the poll, so a request often arrives during one and is
        carried out at the start of the next; publishing only at that round's end would show the change a whole
        round (a second or more) after the instrument confirmed it. What is published is the runs' state as the
        run manager holds it after the action, which moves only on the instrument's word (a stop not confirmed
        leaves the run running with its stop pending), and a run that left supervision is told from the store.
        Cheap: no instrument is asked, the live documents are built from what the last round saw (~10 ms)."""
        done = self.commands.drain()
        if done:
            self.publish(self._progress_of(self.watched()))
        return done

    def _progress_of(self, run_ids: list[str]) -> list[Progress]:
        return [self.station.manager.progress(run_id) for run_id in run_ids]

    def _channel_of(self, run_id: str) -> str:
        """The run's channel as station.yaml names it (``bts/21-1-1``), read once per run."""
        if run_id not in self._channels:
            try:
                self._channels[run_id] = self.station.store.run(run_id).channel
            except StoreError:
                return ""
        return self._channels[run_id]

    def publish(self, progress: list[Progress]) -> None:
        """Tell the API's readers what this round saw: live documents, state changes, new events."""
        manager = self.station.manager
        docs = {}
        for p in progress:
            channel = self._channel_of(p.run_id)
            docs[p.run_id] = live_doc(p, channel)
            if self._states.get(p.run_id) != str(p.state):
                self._states[p.run_id] = str(p.state)
                self.board.publish("run", {"run_id": p.run_id, "state": str(p.state), "channel": channel})
        gone = [run_id for run_id in self.board.live() if run_id not in docs and (
            run_id not in manager.active or manager.active[run_id].done)]
        self.board.update_live(docs, gone=gone)
        for run_id in gone:
            told, channel = self._states.pop(run_id, None), self._channels.pop(run_id, None)
            self._tell_last_state(run_id, told, channel)
        try:
            events = self.station.store.events_after(self._last_event)
        except StoreError:  # a store that cannot be read now is told by supervision; readers wait
            return
        for e in events:
            self.board.publish("event", {"id": e.id, "run_id": e.run_id, "at": e.at, "kind": e.kind,
                                         "message": e.message})
            self._last_event = e.id

    def _tell_last_state(self, run_id: str, told: str | None, channel: str | None) -> None:
        """A run no longer supervised (an operator stopped it, or it ended between rounds) may have reached its last
        state without a round seeing it: readers learn that state from the store, so a grid never shows a stopped
        channel as running."""
        try:
            row = self.station.store.run(run_id)
        except StoreError:
            return  # a store that cannot be read now is told by supervision
        if str(row.state) != told:
            self.board.publish("run", {"run_id": run_id, "state": str(row.state), "channel": channel or row.channel})

    def close(self) -> None:
        """Leave every program running on its instrument; give back the runs' leases and the service lock."""
        with contextlib.suppress(OSError):
            self.info_path.unlink()
        self.station.close()
        self._lock.release()


def chamber_doc(unit: ChamberUnit) -> dict:
    """A chamber as the API and the dashboard show it: its latest reading (``None`` while there is none) and why
    there is none."""
    reading = unit.read()
    return {"name": unit.name, "channels": list(unit.channels),
            "temperature_c": reading.temperature_c if reading is not None else None,
            "set_point_c": reading.set_point_c if reading is not None else None,
            "mode": str(reading.mode) if reading is not None else None,
            "alarms": list(reading.alarms) if reading is not None else [],
            "error": unit.error}


def live_doc(p: Progress, channel: str) -> dict:
    """One watched run as the API and the dashboard show it live: SI units, None where the instrument said nothing
    (or where its last word is stale because contact is lost)."""
    s = p.status if p.contact_lost_s is None else None
    return {
        "run_id": p.run_id, "channel": channel, "state": str(p.state), "records": p.records, "tag": p.tag,
        "step": s.step_index if s else None, "cycle": s.cycle if s else None,
        "voltage_v": s.voltage if s else None, "current_a": s.current if s else None,
        "step_capacity_ah": s.step_capacity if s else None, "test_time_s": s.test_time if s else None,
        "eta_s": p.eta_s, "contact_lost_s": p.contact_lost_s, "stop_requested": p.stop_requested,
        "chamber_c": p.chamber_c, "chamber_set_c": p.chamber_set_c, "waiting": p.waiting,
    }
