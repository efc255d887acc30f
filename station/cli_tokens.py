"""`station token`: tokens for the service's API, one per person, so their actions carry their names.

The token is printed once, for its user; station.yaml gets only its SHA-256 (``api: users:``), so a config that is
shared, backed up or committed holds nothing anyone could use.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated

import typer

from station.api.tokens import new_token, token_hash
from station.cli_common import EXIT_USAGE, JsonOpt, app, err, fail, json_mode, out

token_app = typer.Typer(help="Tokens for the station service's API.", no_args_is_help=True, add_completion=False)
app.add_typer(token_app, name="token")


@token_app.command("new")
def token_new(name: Annotated[str, typer.Argument(help="whose token: their actions are recorded under this name")],
              json_: JsonOpt = False) -> None:
    """Make a token for NAME: give them the token; put the printed users: line into station.yaml's api: section
    and restart the service."""
    json_mode(json_)
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
        raise fail(EXIT_USAGE, f"error: name '{name}' must be 1-64 letters, digits or _.@-")
    token = new_token()
    digest = token_hash(token)
    if json_:
        sys.stdout.write(json.dumps({"name": name, "token": token, "sha256": digest}) + "\n")
        return
    out.print(token, markup=False)
    err.print(f"the token above is for {name} only (they set STATION_TOKEN to it, or send it as 'Authorization: "
              f"Bearer TOKEN'). Add to station.yaml and restart `station serve`:\n"
              f"api:\n  users:\n    {name}: {digest}", markup=False)
