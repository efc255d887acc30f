"""Fuzz campaign for protocols and cells (issue 9, item 6): a positioned error or a valid plan, within 10 s each.

Each case is a protocol and a cell text: a library file mutated (lines deleted, duplicated or swapped, numbers set
to 0, -1, 1e308, nan or huge integers, units swapped, aliases and alias bombs inserted, nesting deepened, files
made huge, repeat counts made enormous) or a document drawn from the protocol or cell grammar (the hypothesis
strategies of tests/protocols/fuzzing.py). Every case runs through the oracle the unit tests use (load, bind,
estimate, plan document, both compilers) in a worker process under a per-case watchdog (``signal.alarm``), and is
counted as an error (a positioned ``ProtocolError``), a plan, a traceback or a hang. Prints the counts, every
distinct traceback with the cases that raised it, the hangs and the slowest cases, and exits 1 if any case broke
the contract. Library cases are reproducible by seed (``--replay library:SEED``); failing grammar cases are
written to ``--save`` so they can be replayed from the files.

    python benchmarks/fuzz_protocols.py [--cases 10000] [--grammar 0.3] [--workers 2] [--timeout 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.protocols.fuzzing import (
    GOOD_CELLS,
    LIBRARY,
    as_yaml,
    cell_documents,
    check_case,
    library_case,
    protocol_documents,
)

Case = tuple[str, str, str]  # (id, protocol text, cell text)


class _Watchdog(BaseException):
    """Raised by SIGALRM in a worker; a BaseException so that no ``except Exception`` in the code under test eats it."""


def _alarm(signum: int, frame: object) -> None:
    raise _Watchdog


def run_case(case: Case, timeout: int) -> tuple[str, str, float, str]:
    """(id, outcome, seconds, detail) for one case; outcome is error, plan, traceback or hang."""
    case_id, protocol, cell = case
    signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    signal.alarm(timeout)
    try:
        outcome = check_case(protocol, cell)
        kind, detail = outcome.kind, outcome.detail
    except _Watchdog:
        kind, detail = "hang", f"no result after {timeout} s"
    except Exception as exc:  # the contract is broken: record where
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        kind = "traceback"
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''} " \
                 f"@ {Path(frame.filename).name}:{frame.lineno}"
    finally:
        signal.alarm(0)
    return case_id, kind, time.perf_counter() - start, detail


def _run(args: tuple[Case, int]) -> tuple[str, str, float, str]:
    return run_case(*args)


def library_cases(count: int, seed: int) -> list[Case]:
    cases = []
    for n in range(seed, seed + count):
        protocol, cell = library_case(random.Random(n))
        cases.append((f"library:{n}", protocol, cell))
    return cases


def grammar_cases(count: int, seed: int) -> list[Case]:
    """Documents drawn from the grammar strategies, collected through hypothesis with a fixed seed."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    protocols = [p.read_text(encoding="utf-8") for p in sorted(LIBRARY.glob("*.yaml"))]
    cases: list[Case] = []
    profile = settings(max_examples=max(count, 1), database=None, deadline=None, phases=[Phase.generate],
                       suppress_health_check=list(HealthCheck))

    @profile
    @hypothesis_seed(seed)
    @given(st.one_of(
        st.tuples(protocol_documents().map(as_yaml), st.sampled_from(GOOD_CELLS)),
        st.tuples(st.sampled_from(protocols), cell_documents().map(as_yaml)),
    ))
    def collect(pair: tuple[str, str]) -> None:
        if len(cases) < count:
            cases.append((f"grammar:{seed}:{len(cases)}", *pair))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collect()
    return cases


def _report(results: list[tuple[str, str, float, str]], cases: dict[str, Case], save: Path, wall: float) -> int:
    counts = collections.Counter(kind for _, kind, _, _ in results)
    print(f"cases: {len(results)} in {wall:.1f} s wall")
    for kind in ("error", "plan", "traceback", "hang"):
        print(f"  {kind + 's':11} {counts.get(kind, 0)}")
    times = sorted(seconds for _, _, seconds, _ in results)
    if times:
        print(f"per case: median {times[len(times) // 2] * 1000:.1f} ms, 99th percentile "
              f"{times[int(len(times) * 0.99)] * 1000:.0f} ms, slowest {times[-1]:.2f} s")
    print("slowest cases:")
    for case_id, kind, seconds, detail in sorted(results, key=lambda r: -r[2])[:5]:
        print(f"  {seconds:6.2f} s  {case_id:22} {kind:9} {detail[:90]}")
    broken = [r for r in results if r[1] in ("traceback", "hang")]
    if broken:
        save.mkdir(parents=True, exist_ok=True)
        by_detail: dict[str, list[str]] = collections.defaultdict(list)
        for case_id, _, _, detail in broken:
            by_detail[detail].append(case_id)
            _, protocol, cell = cases[case_id]
            stem = case_id.replace(":", "-")
            (save / f"{stem}.protocol.yaml").write_text(protocol, encoding="utf-8", errors="surrogatepass")
            (save / f"{stem}.cell.yaml").write_text(cell, encoding="utf-8", errors="surrogatepass")
        print(f"contract broken ({len(broken)} cases; texts saved in {save}):")
        for detail, ids in sorted(by_detail.items(), key=lambda item: -len(item[1])):
            print(f"  {len(ids):5}  {detail}   e.g. {', '.join(ids[:4])}")
    return 1 if broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--grammar", type=float, default=0.3, help="share of cases drawn from the grammar")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=10, help="seconds before a case counts as a hang")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=Path(tempfile.gettempdir()) / "fuzz-protocols-failures")
    parser.add_argument("--replay", help="run one case, e.g. library:1234, and print its outcome")
    args = parser.parse_args()
    if args.replay:
        kind, _, number = args.replay.partition(":")
        if kind != "library":
            parser.error("only library cases replay by seed; grammar cases replay from the files in --save")
        protocol, cell = library_case(random.Random(int(number)))
        print(run_case((args.replay, protocol, cell), args.timeout))
        return 0
    n_grammar = round(args.cases * args.grammar)
    started = time.perf_counter()
    cases = library_cases(args.cases - n_grammar, args.seed) + grammar_cases(n_grammar, args.seed)
    print(f"generated {len(cases)} cases in {time.perf_counter() - started:.1f} s; running on {args.workers} workers")
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.workers, maxtasksperchild=500) as pool:
        results = list(pool.imap_unordered(_run, [(case, args.timeout) for case in cases], chunksize=4))
    return _report(results, {case[0]: case for case in cases}, args.save, time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(main())
