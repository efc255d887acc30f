"""``python -m station`` is the same as the ``station`` command."""

from station.cli import app

app(prog_name="station")
