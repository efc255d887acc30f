"""Program cycle numbers for the steps a Neware channel executes.

The BTS numbers cycles with its own loop counter, which need not match the step program's cycle rule (a rest or
a first lithiation before a loop is a cycle of its own in the program; lab users report Neware's numbering
differing from their tools'). Because the compiler accepts only ``next`` actions, the channel executes the
program's nominal path (:func:`protocols.program.walk`), or a prefix of it when it stops early. So the k-th
executed step instance (the BTS's global ``stepindex``) has the program cycle of the k-th step of the walk.
The path is expanded lazily and kept as two int arrays, so long runs cost a few bytes per executed step.
"""

from __future__ import annotations

from array import array

from protocols.program import StepProgram, walk


class NominalPath:
    def __init__(self, program: StepProgram):
        self._walk = walk(program)
        self._steps = array("i")
        self._cycles = array("i")
        self._exhausted = False

    def _extend_to(self, k: int) -> None:
        while len(self._steps) < k and not self._exhausted:
            executed = next(self._walk, None)
            if executed is None:
                self._exhausted = True
                return
            self._steps.append(executed.step.index)
            self._cycles.append(executed.cycle)

    def at(self, k: int) -> tuple[int, int] | None:
        """(step index, program cycle) of the k-th executed step (1-based), or None past the end."""
        self._extend_to(k)
        if 1 <= k <= len(self._steps):
            return self._steps[k - 1], self._cycles[k - 1]
        return None

    def find(self, after_k: int, step_index: int, horizon: int = 100_000) -> int | None:
        """The first instance after ``after_k`` that runs ``step_index`` (to place a live status)."""
        for k in range(after_k + 1, after_k + 1 + horizon):
            found = self.at(k)
            if found is None:
                return None
            if found[0] == step_index:
                return k
        return None
