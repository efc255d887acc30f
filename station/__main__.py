"""``python -m station`` is the same as the ``station`` command."""

from station.entry import main

main()
