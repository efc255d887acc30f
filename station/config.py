"""``station.yaml``: which instruments this PC drives, their channels' ranges, where data goes, how often to poll.

Without a file the embedded default applies: simulated Neware and Biologic instruments served in-process, so a
fresh machine can dry-run every library protocol with no hardware and no setup.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocols.errors import ProtocolError
from protocols.fields import CurrentField, TimeField, VoltageField
from protocols.validation import pydantic_problems
from protocols.yamlsource import load_yaml, load_yaml_file

APP_NAME = "battery-test-station"
ScanRateUnit = Literal["V/s", "mV/s"]
"""The units a Biologic firmware may read ``Scan_Rate`` in (drivers.biologic.scan_rate.SCAN_RATE_UNITS)."""
_SCAN_RATE_HELP = ("Biologic: the unit the instrument's firmware reads the CV/LSV Scan_Rate in. The sources "
                   "disagree, so it is a setting: V/s by default; after one short CV on a dummy cell, set 'mV/s' if "
                   "the sweep took 1000 times longer than 'station plan' says")

CONFIG_ENV = "STATION_CONFIG"
DATA_DIR_ENV = "STATION_DATA"
#: the lab's database for every station command; wins over station.yaml's database: (station.store.DATABASE_ENV)
DATABASE_ENV = "STATION_DATABASE"


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="the instrument's channel id: Neware 'devid-subdevid-chlid' "
                    "as the BTS Client shows it (e.g. '21-1-1'), Biologic the channel number from 1")
    voltage: list[VoltageField] = Field(["-10 V", "10 V"], min_length=2, max_length=2, validate_default=True,
                                        description="[min, max]")
    current: CurrentField = Field("100 mA", validate_default=True, description="largest |I| the channel can drive")
    scan_rate_unit: ScanRateUnit | None = Field(None, description=_SCAN_RATE_HELP + " (overrides the instrument's)")
    aux_temperature: bool = Field(False, description="Neware: an auxiliary thermocouple on the cell is mapped to "
                                  "this channel in the BTS (its T1): every record then carries its reading. A "
                                  "simulated channel reports its cell's temperature")

    @field_validator("id", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class BackupConfig(BaseModel):
    """The ``<backup>`` element of a Neware ``start``: the BTS Client's own automatic export of each test's data
    file on its PC (reference neware-bts-api.md 2.5). Each key maps to one attribute, in the BTS's own values."""

    model_config = ConfigDict(extra="forbid")
    dir: str = Field(min_length=1, description="backupdir: the folder on the BTS Client's PC the data file is "
                     "exported to, e.g. 'D:\\Neware data'")
    remote_dir: str = Field("", description="remotedir (empty in every public sample)")
    file_name: Literal["channel", "barcode", "custom"] = Field(
        "channel", description="filenametype: 'channel' (0) names the file {devid}_{subdevid}_{chlid}_{testid}, "
        "'barcode' (1) by the barcode (the sample id, else the run id), 'custom' (2) by custom_name")
    custom_name: str = Field("", description="customfilename, with file_name: custom")
    add_time_when_repeat: bool = Field(False, description="addtimewhenrepeat")
    dir_by_date: bool = Field(False, description="createdirbydate: one folder per date")
    file_type: Literal["nda", "excel"] = Field("nda", description="filetype: 'nda' (0, NDA/NDAX) or 'excel' (1)")
    on_time: bool = Field(True, description="backupontime: export periodically while the test runs")
    on_time_interval: int = Field(720, ge=1, le=10**6, description="backupontimeinterval, as the BTS reads it "
                                  "(minutes by aurora-neware's 720, unverified)")
    free: bool = Field(True, description="backupfree")

    @model_validator(mode="after")
    def _custom_needs_a_name(self) -> BackupConfig:
        if self.file_name == "custom" and not self.custom_name:
            raise ValueError("file_name: custom needs custom_name")
        return self


class InstrumentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="short name used in channel ids: NAME/CHANNEL")
    kind: Literal["neware", "biologic"]
    address: str | None = Field(None, description="Neware: host:port of the BTS Client API (default "
                                "127.0.0.1:502) or a VISA TCPIP SOCKET resource; Biologic: the instrument's "
                                "address as EC-Lab shows it (e.g. '192.168.0.257' or 'USB0')")
    simulated: bool = Field(False, description="serve this instrument in-process from the simulators")
    dll: str | None = Field(None, description="Biologic: path to EClib64.dll")
    devtype: int = Field(27, description="Neware: model code (27 = BTS85)")
    cell_model: str | None = Field(None, description="simulated instruments: cell used when a run gives none")
    channels: list[ChannelConfig] = Field(min_length=1)
    timeout: TimeField = Field("30 s", validate_default=True)
    reconnect_attempts: int = Field(5, ge=1, le=20, description="connection attempts (with back-off) before a "
                                    "command counts as failed; 1 on a link that should never drop")
    scan_rate_unit: ScanRateUnit | None = Field(None, description=_SCAN_RATE_HELP)
    step_dir: str | None = Field(None, description="Neware: the folder the station writes step files into, which "
                                 "the BTS Client's PC must be able to read: a share ('//labserver/bts-steps') or a "
                                 "mounted folder; default: the data directory's stepfiles/ (BTS Client on this PC)")
    bts_step_dir: str | None = Field(None, description="Neware: step_dir as the BTS Client's PC sees it, e.g. "
                                     "'D:\\bts-steps' or '/srv/bts-steps'; start sends this path. Default: "
                                     "step_dir's own absolute path")
    backup: BackupConfig | None = Field(None, description="Neware: the BTS Client's automatic export of each "
                                        "test's data file (the <backup> element of start); none by default")

    @model_validator(mode="after")
    def _address_for_real_hardware(self) -> InstrumentConfig:
        if not self.simulated and self.kind == "biologic" and not self.address:
            raise ValueError("a real Biologic instrument needs an address (as EC-Lab shows it)")
        if self.kind == "neware" and self.address and not _NEWARE_ADDRESS.match(self.address):
            raise ValueError(f"Neware address '{self.address}' is not host:port or TCPIP::host::port::SOCKET")
        ids = [c.id for c in self.channels]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"channel ids repeat: {', '.join(dupes)}")
        if self.kind != "neware" and any(c.aux_temperature for c in self.channels):
            raise ValueError("aux_temperature is a Neware setting (a thermocouple mapped to the channel, its T1); a "
                             "Biologic channel has none here")
        if self.kind != "biologic" and (self.scan_rate_unit or any(c.scan_rate_unit for c in self.channels)):
            raise ValueError("scan_rate_unit is a Biologic setting; a Neware channel runs no CV or LSV")
        neware_only = [name for name in ("step_dir", "bts_step_dir", "backup") if getattr(self, name) is not None]
        if self.kind != "neware" and neware_only:
            raise ValueError(f"{', '.join(neware_only)}: Neware settings (where the BTS Client reads step files and "
                             "exports data); a Biologic instrument has none")
        if self.bts_step_dir is not None and self.step_dir is None:
            raise ValueError("bts_step_dir needs step_dir: the folder the station writes step files into, which the "
                             "BTS Client's PC sees as bts_step_dir")
        return self

    def scan_rate_setting(self, channel: ChannelConfig) -> tuple[ScanRateUnit, str]:
        """The ``Scan_Rate`` unit of one of this instrument's channels, and where it was set.

        The channel's own setting wins over the instrument's; with neither, the driver's default applies.
        """
        if channel.scan_rate_unit:
            return channel.scan_rate_unit, "the channel's scan_rate_unit in station.yaml"
        if self.scan_rate_unit:
            return self.scan_rate_unit, f"instrument {self.name}'s scan_rate_unit in station.yaml"
        from drivers.biologic.scan_rate import DEFAULT_SCAN_RATE_UNIT

        return DEFAULT_SCAN_RATE_UNIT, "the default setting (no scan_rate_unit in station.yaml)"


_NEWARE_ADDRESS = re.compile(r"^([\w.-]+:\d+|TCPIP\d*::[\w.-]+::\d+::SOCKET)$")


AlertOn = Literal["safety", "protection", "instrument", "finished", "campaign", "temperature"]
"""``campaign``: a campaign waits for an operator (to move its sample to another channel, or after a run of it
ended otherwise than planned) or has ended. ``temperature``: a climate chamber left its band while its runs cycle,
or a temperature step failed (not stable within its max_wait, or runs sharing a chamber disagreed)."""
_ALL_ALERTS: list[AlertOn] = ["safety", "protection", "instrument", "finished", "campaign", "temperature"]


class WebhookConfig(BaseModel):
    """A JSON POST (Slack-compatible: its ``text`` is the one-line alert) to ``url`` for each alert of ``on``."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://", description="http(s) URL the alert is POSTed to")
    on: list[AlertOn] = Field(default_factory=lambda: list(_ALL_ALERTS), description="which alerts it receives")


class EmailConfig(BaseModel):
    """An e-mail per alert of ``on``, over SMTP with STARTTLS and login when given."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the SMTP password (never "
                                     "the password itself in station.yaml)")
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    on: list[AlertOn] = Field(default_factory=lambda: list(_ALL_ALERTS))


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    email: EmailConfig | None = None


DEFAULT_API_PORT = 8760


class ApiConfig(BaseModel):
    """Where `station serve` listens, and the named users whose actions are recorded under their names."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", min_length=1, description="address the API binds: loopback unless a lab decides "
                      "otherwise (then put TLS in front, see docs/service.md)")
    port: int = Field(DEFAULT_API_PORT, ge=0, le=65535, description="TCP port of the API and dashboard (0: any "
                      "free port, written to service.json)")
    users: dict[str, str] = Field(default_factory=dict, description="NAME: SHA-256 of that user's token, as "
                                  "`station token new NAME` prints it; the token itself is never written here")

    @field_validator("users")
    @classmethod
    def _hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for name, digest in users.items():
            if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
                raise ValueError(f"user name '{name}' must be 1-64 letters, digits or _.@-")
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise ValueError(f"user '{name}': give the SHA-256 of the token (64 hex digits, from `station token "
                                 f"new {name}`), never the token itself")
        return users


_DIFFERENCE = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?:degC|°C|K)\s*$")


class ChamberConfig(BaseModel):
    """A climate chamber and the channels whose cells sit in it (one chamber per channel at most)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="short name, shown in the dashboard and events")
    vendor: Literal["espec"] = Field("espec", description="the chamber's command set (drivers/chamber)")
    resource: str | None = Field(None, description="pyvisa resource string: 'ASRL/dev/ttyUSB0::INSTR' (serial) or "
                                 "'TCPIP::10.0.0.5::10001::SOCKET' (a serial-to-Ethernet adapter)")
    address: int | None = Field(None, ge=1, le=16, description="ESPEC: the bus address set on the chamber's panel, "
                                "for chambers on one RS-485 line; leave it out on a point-to-point line")
    simulated: bool = Field(False, description="serve a simulated chamber on a pseudo-terminal instead")
    channels: list[str] = Field(min_length=1, description="the channels in it, as NAME/ID")
    timeout: TimeField = Field("2 s", validate_default=True, description="how long to wait for each reply")
    door_alarms: list[int] = Field(default_factory=list, description="the chamber's alarm codes that mean its door "
                                   "is open (ESPEC does not publish them: read them off the panel)")
    alarm_band: str = Field("2 degC", description="while its runs cycle, an alert when the chamber is further than "
                            "this from its set point, e.g. '2 degC'")

    @field_validator("alarm_band")
    @classmethod
    def _difference(cls, value: str) -> str:
        if not _DIFFERENCE.match(value):
            raise ValueError(f"'{value}' is not a temperature difference; write e.g. '2 degC' or '0.5 K'")
        return value

    @property
    def alarm_band_c(self) -> float:
        match = _DIFFERENCE.match(self.alarm_band)
        assert match is not None  # validated
        return float(match["num"])

    @model_validator(mode="after")
    def _resource_for_real_hardware(self) -> ChamberConfig:
        if not self.simulated and not self.resource:
            raise ValueError(f"chamber '{self.name}' needs a resource (e.g. 'ASRL/dev/ttyUSB0::INSTR'), or "
                             "simulated: true")
        return self


class StationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_dir: str = Field(default_factory=lambda: default_data_dir(), description="where the run database and "
                          "exports go (default: the per-user data folder, e.g. ~/.local/share/battery-test-station "
                          "or %LOCALAPPDATA%\\battery-test-station)")
    station: str = Field(default_factory=lambda: default_station_name(), pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                         description="this station's name in the lab (default: the PC's host name): the runs it "
                                     "creates and the channels it uses are its own")
    database: str | None = Field(None, description="the lab's central PostgreSQL database shared by its stations "
                                 "(postgresql://user@host/dbname); leave it out for the data directory's own SQLite. "
                                 "$STATION_DATABASE, when set, wins over it")
    poll_interval: TimeField = Field("10 s", validate_default=True,
                                     description="how often running channels are polled (real time)")
    instruments: list[InstrumentConfig] = Field(min_length=1)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="who hears of safety stops, protection "
                                 "trips, instrument failures and finished runs")
    api: ApiConfig = Field(default_factory=ApiConfig, description="the service's HTTP API and its users")
    chambers: list[ChamberConfig] = Field(default_factory=list, description="climate chambers and the channels in "
                                          "them: a protocol's temperature steps set them")

    @model_validator(mode="after")
    def _unique_names(self) -> StationConfig:
        names = [i.name for i in self.instruments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"instrument names repeat: {', '.join(dupes)}")
        names = [c.name for c in self.chambers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"chamber names repeat: {', '.join(dupes)}")
        placed: dict[str, str] = {}
        known = set(self.channel_ids())
        for chamber in self.chambers:
            for channel in chamber.channels:
                if channel not in known:
                    raise ValueError(f"chamber '{chamber.name}': channel '{channel}' is not configured; name a "
                                     f"channel as NAME/ID, one of {', '.join(sorted(known))}")
                if channel in placed:
                    raise ValueError(f"channel '{channel}' is in two chambers ('{placed[channel]}' and "
                                     f"'{chamber.name}'); a cell sits in one chamber")
                placed[channel] = chamber.name
        return self

    def chamber_of(self, channel: str) -> ChamberConfig | None:
        """The chamber a channel (NAME/ID) sits in, if any."""
        return next((c for c in self.chambers if channel in c.channels), None)

    @property
    def poll_seconds(self) -> float:
        return self.poll_interval.value

    def channel_ids(self) -> list[str]:
        return [f"{i.name}/{c.id}" for i in self.instruments for c in i.channels]

    def find(self, channel: str) -> tuple[InstrumentConfig, ChannelConfig]:
        """``NAME/ID`` (or a bare ``ID`` unique across instruments) -> its instrument and channel."""
        name, sep, cid = channel.partition("/")
        matches = [(i, c) for i in self.instruments for c in i.channels
                   if (sep and i.name == name and c.id == cid) or (not sep and c.id == channel)]
        if len(matches) != 1:
            known = ", ".join(self.channel_ids())
            reason = "is ambiguous" if matches else "is not configured"
            raise UnknownChannel(f"channel '{channel}' {reason}; configured channels: {known}")
        return matches[0]


def default_station_name() -> str:
    """The PC's host name, as a station name (its first label, letters, digits, _ . - only)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0]).strip("-_.")[:64]
    return name or "station"


def default_data_dir() -> str:
    """The per-user data folder (platformdirs): one place whatever the working directory, so that a command run
    from another folder finds the runs instead of silently starting an empty database there."""
    return str(platformdirs.user_data_path(APP_NAME, appauthor=False))


class ConfigError(Exception):
    """station.yaml is missing, unreadable or invalid; the message names the file, line and fix."""


DEFAULT_CONFIG = """
poll_interval: 10 s
instruments:
  - name: sim-neware
    kind: neware
    simulated: true
    channels:
      - {id: 21-1-1, voltage: [-1 V, 5 V], current: 10 mA}
      - {id: 21-1-2, voltage: [-1 V, 5 V], current: 10 mA}
      - {id: 21-1-3, voltage: [-1 V, 5 V], current: 10 mA}
      - {id: 21-1-4, voltage: [-1 V, 5 V], current: 10 mA}
  - name: sim-biologic
    kind: biologic
    simulated: true
    channels:
      - {id: "1", voltage: [-10 V, 10 V], current: 400 mA}
      - {id: "2", voltage: [-10 V, 10 V], current: 400 mA}
"""


def load_config(path: str | None = None) -> tuple[StationConfig, str]:
    """The config from ``path``, ``$STATION_CONFIG``, ``./station.yaml``, or the embedded default (in that order).

    Returns the config and where it came from. ``$STATION_DATA`` overrides the data directory.
    """
    candidate = path or os.environ.get(CONFIG_ENV)
    if candidate is None and Path("station.yaml").is_file():
        candidate = "station.yaml"
    try:
        if candidate is None:
            source = load_yaml(DEFAULT_CONFIG, "<embedded default>")
            origin = "embedded default (simulated instruments)"
        else:
            if not Path(candidate).is_file():
                raise ConfigError(f"station config '{candidate}' not found; give an existing file with --config or "
                                  f"remove it to use the simulated default")
            source = load_yaml_file(candidate)
            origin = candidate
        config = StationConfig.model_validate(source.data)
    except ProtocolError as exc:
        raise ConfigError(str(exc)) from None
    except ValidationError as exc:
        raise ConfigError("\n".join(str(p) for p in pydantic_problems(exc, source, StationConfig))) from None
    if os.environ.get(DATA_DIR_ENV):
        config = config.model_copy(update={"data_dir": os.environ[DATA_DIR_ENV]})
    if os.environ.get(DATABASE_ENV) is not None:  # set, even empty (the data directory's SQLite): it wins
        config = config.model_copy(update={"database": os.environ[DATABASE_ENV] or None})
    return config, origin


class UnknownChannel(ConfigError):
    """A channel named on the command line that station.yaml does not configure (or names twice): a usage error,
    not a broken config."""
