"""The ``TestN_Config`` bit-field of the limit techniques (CALIMIT, CPLIMIT, VSCANLIMIT).

Bit 0 active, bit 1 logic (0 OR, 1 AND with the tests before it), bits 2-4 comparison (0 "<", 1 ">"), bits 5 and
up the variable (0 Ewe, 1 AUX1, 2 AUX2, 3 I). Written LSB-first: easy-biologic wrote multi-bit fields MSB-first
and so encoded AUX2 as AUX1 (reference section 3.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class LimitVariable(IntEnum):
    EWE = 0
    AUX1 = 1
    AUX2 = 2
    I = 3  # noqa: E741 - the vendor's name for the current


class LimitComparison(IntEnum):
    LT = 0
    GT = 1


@dataclass(frozen=True, slots=True)
class LimitTest:
    variable: LimitVariable
    comparison: LimitComparison
    value: float
    and_previous: bool = False

    def config(self) -> int:
        return 1 | (int(self.and_previous) << 1) | (int(self.comparison) << 2) | (int(self.variable) << 5)

    @classmethod
    def from_config(cls, config: int, value: float) -> LimitTest | None:
        """Decode a config word; ``None`` for an inactive test."""
        if not config & 1:
            return None
        return cls(
            LimitVariable((config >> 5) & 0x7FFFFFF),
            LimitComparison((config >> 2) & 0b111),
            value,
            bool(config & 0b10),
        )
