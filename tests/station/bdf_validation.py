"""The official ``batterydf`` validator, run the way a BDF user runs it against the release the exports are pinned
to: in a fresh interpreter with ``BDF_ONTOLOGY_PATH`` set to the vendored 1.2.0 ontology, so that batterydf extends
its canonical columns from that file when it is imported (its ``REQUIRED``/``OPTIONAL`` label lists are computed
at import). ``HOME`` points into the test's temporary directory: batterydf caches the ontology's aliases under
``~/.bdf``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import station.exports
from station.exports import vocabulary

ONTOLOGY = Path(station.exports.__file__).parent / "ontology" / vocabulary.ONTOLOGY_FILE

_SCRIPT = """
import json, sys, warnings
import pandas as pd
import bdf
keep = ("ok", "missing", "extras", "legacy_labels", "time_stats", "required", "optional")
out = []
for path in sys.argv[1:]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
        report = bdf.validate(raw, raise_on_error=False)
        try:
            read = [str(c) for c in bdf.read(path).columns]
        except Exception as exc:  # bdf.read refuses a table without the required columns (a cycle summary)
            read = str(exc).splitlines()[0][:200]
    out.append({**{k: report[k] for k in keep}, "rows": len(raw), "read_columns": read})
print(json.dumps(out, default=float))
"""


def validate(home: Path, *paths: Path) -> list[dict]:
    """batterydf's report on each file's table as written (every header), its row count, and the columns
    ``bdf.read`` keeps when it reads the file (it drops headers it does not know from a CSV), or the first line
    of its refusal."""
    env = {**os.environ, "BDF_ONTOLOGY_PATH": str(ONTOLOGY), "HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, *map(str, paths)], env=env, capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
