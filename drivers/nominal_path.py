"""Program cycle numbers for the step runs a Biologic channel executes, from the program's nominal path.

A Biologic technique list can only go on, stop or loop (a conditional jump compiles to "next technique" or "stop"
at most), so the k-th step run the instrument executes is the k-th step of the walk
(:func:`protocols.program.walk`), or the instrument stopped early, and its program cycle is read from there (EClib
has no cycle counter). The Neware driver does not use this: a BTS step file may branch on conditions, so it
follows the steps the BTS really ran (:class:`protocols.program.Execution`). The path is expanded lazily into int
arrays, a few bytes per executed step.
"""

from __future__ import annotations

from array import array

from protocols.program import StepProgram, walk


class NominalPath:
    def __init__(self, program: StepProgram):
        self._walk = walk(program)
        self._steps = array("i")
        self._cycles = array("i")
        self._jumps = array("i")  # loop jumps taken up to and including the jump into each step run
        self._exhausted = False
        self.cursor = 0
        """The step run :meth:`next_occurrence` last reached (0: none yet)."""

    def _extend_to(self, k: int) -> None:
        while len(self._steps) < k and not self._exhausted:
            executed = next(self._walk, None)
            if executed is None:
                self._exhausted = True
                return
            index = executed.step.index
            jumped = bool(self._steps) and index <= self._steps[-1]
            self._jumps.append((self._jumps[-1] if self._jumps else 0) + jumped)
            self._steps.append(index)
            self._cycles.append(executed.cycle)

    def at(self, k: int) -> tuple[int, int] | None:
        """(step index, program cycle) of the k-th executed step run (1-based), or None past the end."""
        self._extend_to(k)
        if 1 <= k <= len(self._steps):
            return self._steps[k - 1], self._cycles[k - 1]
        return None

    def find(self, after_k: int, step_index: int, jumps: int | None = None, horizon: int | None = None) -> int | None:
        """The first run after ``after_k`` of ``step_index`` (with exactly ``jumps`` loop jumps before it, to place
        a re-attached instrument), looking at most ``horizon`` runs ahead."""
        k = after_k
        while horizon is None or k < after_k + horizon:
            k += 1
            found = self.at(k)
            if found is None:
                return None
            if found[0] == step_index and (jumps is None or self._jumps[k - 1] == jumps):
                return k
        return None

    def next_occurrence(self, step_index: int, jumps: int | None = None) -> int:
        """Advance the cursor to the next run of ``step_index``; returns its program cycle (the current one if the
        path has no such run)."""
        k = self.find(self.cursor, step_index, jumps)
        if k is not None:
            self.cursor = k
        here = self.at(self.cursor)
        return here[1] if here is not None else 1
