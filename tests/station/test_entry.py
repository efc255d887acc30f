"""The ``station`` program's quick exit (station/entry.py): exit codes and output are those of a normal exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from station.cli_common import EXIT_USAGE

ROOT = Path(__file__).resolve().parents[2]


def _station(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "station", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_long_answer_through_a_pipe_arrives_whole() -> None:
    done = _station("schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)  # every byte flushed before the process ended
    assert {"protocol", "cell"} <= set(schema)


def test_a_refused_command_keeps_its_exit_code_and_message() -> None:
    done = _station("validate", "no-such-protocol-anywhere")
    assert done.returncode == EXIT_USAGE
    assert "no-such-protocol-anywhere" in done.stderr
    assert "not found" in done.stderr


def test_an_exit_message_is_printed_and_is_status_1() -> None:
    code = "from station.entry import _leave; print('written'); _leave('the reason')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout, done.stderr) == (1, "written\n", "the reason\n")


def test_a_worker_thread_still_running_is_let_finish() -> None:
    code = ("import threading, time, sys\n"
            "from station import entry\n"
            "def work():\n"  # ends after the main thread has: only an exit that joins it lets it print
            "    while threading.main_thread().is_alive():\n"
            "        time.sleep(0.01)\n"
            "    print('worker done', flush=True)\n"
            "threading.Thread(target=work).start()\n"
            "sys.argv = ['station', '--help']\n"
            "entry.main()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("worker done")
