"""Step files and requests written by hand for the simulated BTS's tests, as an independent client writes them.

The files follow the layout of the real files the reference quotes (neware-bts-api.md 3.1-3.6); the requests are
plain XML text (no driver code).
"""

from __future__ import annotations

from pathlib import Path

import defusedxml.ElementTree as SafeET

from simulators.neware import BtsSimulator

HEAD = '<?xml version="1.0" encoding="UTF-8" ?><bts version="1.0">'
CH = 'ip="127.0.0.1" devtype="27" devid="21" subdevid="1" chlid="{}"'

FILE = """<?xml version="1.0" encoding="UTF-8"?>
<root>
  <config type="Step File" version="17" client_version="BTS Client 8.0.0.478(2024.06.24)(R3)" date="20250416174111">
    <Head_Info>
      <Operate Value="66" />
      <Scale Value="1" />
      <Start_Step Value="1" Hide_Ctrl_Step="0" />
      <RateType Value="{rate_type}" />
      <MultCap Value="{mult_cap}" />
    </Head_Info>
    <Whole_Prt>
      <Protect><Main>{protect}</Main></Protect>
      <Record><Main>{record}</Main></Record>
    </Whole_Prt>
    <Step_Info Num="{num}">
{steps}
    </Step_Info>
    <SMBUS><SMBUS_Info Num="0" AdjacentInterval="0" /></SMBUS>
  </config>
</root>
"""


def step_file(
    steps: str,
    *,
    num: int | None = None,
    record: str = '<Time Value="10000" />',
    protect: str = "",
    rate_type: int = 103,
    mult_cap: str = "7200",
) -> str:
    """A whole file around ``steps`` (``Num`` counted unless given); 7200 mA*s = 2 mAh, the stand-in cell's size."""
    count = steps.count("Step_ID=") if num is None else num
    return FILE.format(steps=steps, num=count, record=record, protect=protect, rate_type=rate_type, mult_cap=mult_cap)


def step(step_id: int, step_type: int, main: str = "", other: str = "", extra: str = "") -> str:
    limit = ""
    if main or other:
        limit = "<Limit>" + (f"<Main>{main}</Main>" if main else "") + other + "</Limit>"
    return f'      <Step{step_id} Step_ID="{step_id}" Step_Type="{step_type}">{limit}{extra}</Step{step_id}>\n'


def end(step_id: int) -> str:
    return f'      <Step{step_id} Step_ID="{step_id}" Step_Type="6" />'


def values(**fields: float | str) -> str:
    """``Curr=1, Time=60000`` -> ``<Curr Value="1" /><Time Value="60000" />``."""
    return "".join(f'<{name} Value="{value}" />' for name, value in fields.items())


def cnd(index: int, kind: int, cmp: int, value: float | str, jump: int | str, **extra: str) -> str:
    """One jump condition, with the attributes real files carry (neware-utils' protocol_with_condition.xml)."""
    attrs = {
        "type": kind,
        "Function": "0",
        "CmpType": cmp,
        "Jump_Line": jump,
        "Value": value,
        "TimeGoto": "0",
        "GlobleUserID": "2147483647",
        "GLobleType": "1",
        "GlobalVar": "2147483647",
        "Aux": "0",
    }
    attrs.update(extra)
    text = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return f"<Cnd{index} {text} />"


def other(*conditions: str) -> str:
    return f'<Other CndCount="{len(conditions)}">{"".join(conditions)}</Other>'


def write(tmp_path: Path, text: str, name: str = "plan.xml") -> str:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return str(path)


def req(body: str) -> bytes:
    return (HEAD + body + "</bts>\n\n#\r\n").encode()


def ask(sim: BtsSimulator, body: str):
    reply = sim.handle(req(body))[1]
    assert reply.endswith(b"</bts>\n\n#\r\n")
    return SafeET.fromstring(reply[: -len("\n\n#\r\n")])


def start(sim: BtsSimulator, path: str, chlids: tuple[int, ...] = (1,), barcode: str = "cell") -> list[str]:
    items = "".join(f'<start {CH.format(c)} barcode="{barcode}">{path}</start>' for c in chlids)
    return [e.text for e in ask(sim, f'<cmd>start</cmd><list count="{len(chlids)}">{items}</list>').find("list")]


def ack(sim: BtsSimulator, command: str, chlid: int = 1, attrs: str = "") -> str:
    body = f'<cmd>{command}</cmd><list count="1"><{command} {CH.format(chlid)} {attrs}>true</{command}></list>'
    return ask(sim, body).find(f"list/{command}").text


def status(sim: BtsSimulator, chlid: int = 1) -> str:
    body = f'<cmd>getchlstatus</cmd><list count="1"><status {CH.format(chlid)}>true</status></list>'
    return ask(sim, body).find("list/status").text


def inquire(sim: BtsSimulator, chlid: int = 1) -> dict[str, str]:
    body = f'<cmd>inquire</cmd><list count="1"><inquire {CH.format(chlid)} aux="0" barcode="1">true</inquire></list>'
    return dict(ask(sim, body).find("list/inquire").attrib)


def download(sim: BtsSimulator, startpos: int, count: int = 1000, chlid: int = 1) -> list[dict[str, str]]:
    body = (
        f'<cmd>download</cmd><download devtype="27" devid="21" subdevid="1" chlid="{chlid}" auxid="0" testid="0" '
        f'startpos="{startpos}" count="{count}"/>'
    )
    return [dict(e.attrib) for e in ask(sim, body).findall("list/data")]


def downloadlog(sim: BtsSimulator, chlid: int = 1) -> list[tuple[int, int]]:
    body = f'<cmd>downloadlog</cmd><download devtype="27" devid="21" subdevid="1" chlid="{chlid}" testid="0"/>'
    return [(int(e.get("seqid")), int(e.get("log_code"))) for e in ask(sim, body).findall("list/data")]


def step_layer(sim: BtsSimulator, chlid: int = 1) -> list[dict[str, str]]:
    body = f'<cmd>downloadStepLayer</cmd><downloadStepLayer devtype="27" devid="21" subdevid="1" chlid="{chlid}" />'
    return [dict(e.attrib) for e in ask(sim, body).findall("list/data")]
