"""Jump conditions (``Limit/Other/Cnd1..CndN``) of BTS step files, read the way the simulated BTS executes them.

Reference neware-bts-api.md section 3.6 ("Conditions / jumps") and section 9: a condition ends its step and jumps
when it holds, so it is control flow, and a reader that skipped it would run another program. The attribute
meanings the reference gives, and therefore the only ones executed here:

* ``type``: 1 = voltage, 2 = current, 3 = step time (neware-utils). bmgen's 22 (expression test) and 23 (set a user
  variable), and 10 (seen on a Control step, meaning unknown) are not executed: their expressions and variables
  (``User1``, ``LS_StepTime``, ...) have no documented semantics;
* ``CmpType``: 3 = ">", 5 = "<" (bmgen). 4 = "none" compares nothing, so it cannot end a step: refused. On
  continuous signals ">" and ">=" end a step at the same instant, so the simulator uses the model's >= and <=;
* ``Value``: scaled like the step's own limits (section 3.4): 0.1 mV, mA, ms. A current condition compares the
  magnitude of the current, as the step's ``Stop_Curr`` does (a negative Value has no documented meaning);
* ``Jump_Line``: 65526 = the next line, 65533 = stop the test, 65534 = protect (alarm), any other number = the
  Step_ID to go to; 0 = "none", which the reference gives only for variable-setting conditions: what a
  voltage, current or time condition without a jump does is not documented, so it is refused.

Attributes outside that (``Function``, ``TimeGoto``, ``Aux``, ``ThrowParam`` other than 0, a global or user
variable other than "none" = 2147483647, an ``Expression``) change what is compared or what happens, in ways the
reference does not describe: a condition using them is refused at ``start``. Parsing (:func:`parse_conditions`)
checks only the structure (targets name a step, numbers are finite) so that tools can read any well-formed file;
:func:`refusal` says why the simulator will not run a condition, and ``stepfile.check_plan`` applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from protocols.program import Comparison, Quantity, Termination

#: Jump_Line values that name no step (reference 3.6: bmgen and neware-utils)
JUMP_NONE, JUMP_NEXT, JUMP_STOP, JUMP_PROTECT = 0, 65526, 65533, 65534
SPECIAL_JUMPS = {JUMP_NONE, JUMP_NEXT, JUMP_STOP, JUMP_PROTECT}

#: condition type -> (quantity, file units per SI unit)
EXECUTABLE_TYPES: dict[int, tuple[Quantity, float]] = {
    1: (Quantity.VOLTAGE, 10_000.0),  # 0.1 mV
    2: (Quantity.CURRENT, 1000.0),  # mA
    3: (Quantity.TIME, 1000.0),  # ms
}
TYPE_NAMES = {1: "voltage", 2: "current", 3: "time", 10: "type 10", 22: "expression test", 23: "set user variable"}
#: CmpType -> comparison (">" and "<"; 4 is "none")
COMPARISONS = {3: Comparison.GE, 5: Comparison.LE}
#: "no variable" in GlobleUserID / GlobalVar (bmgen)
NO_VARIABLE = 2_147_483_647


class ConditionError(ValueError):
    """A condition whose structure is broken (a target naming no step, a number that is not one)."""


@dataclass(frozen=True, slots=True)
class NativeCondition:
    """One ``CndN`` element: what it compares, against what, and where it jumps."""

    tag: str
    kind: int
    compare: int | None
    value: float | None  # in file units
    jump: int
    extras: tuple[tuple[str, str], ...] = ()  # attributes that change the meaning, when set to anything but "none"

    @property
    def action(self) -> str:
        """``next``, ``stop``, ``protect``, ``none`` or ``jump`` (to :attr:`jump`)."""
        return {JUMP_NEXT: "next", JUMP_STOP: "stop", JUMP_PROTECT: "protect", JUMP_NONE: "none"}.get(self.jump, "jump")

    def termination(self) -> Termination:
        """The condition as a cell-model termination (SI units); only for conditions :func:`refusal` accepts."""
        quantity, per_si = EXECUTABLE_TYPES[self.kind]
        assert self.value is not None and self.compare in COMPARISONS
        return Termination(quantity=quantity, op=COMPARISONS[self.compare], value=self.value / per_si)

    def describe(self) -> str:
        op = {3: ">", 5: "<"}.get(self.compare or 0, f"CmpType {self.compare}")
        target = {"next": "the next step", "stop": "stop", "protect": "protect", "none": "nowhere"}.get(
            self.action, f"Step{self.jump}"
        )
        return f"{self.tag}: {TYPE_NAMES.get(self.kind, f'type {self.kind}')} {op} {self.value:g} -> {target}"


def _integer(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > 12 or not text.lstrip("-").isdigit():
        return None
    return int(text)


def _meaningful_extras(cnd: Element) -> tuple[tuple[str, str], ...]:
    """Attributes set to something other than their "nothing" value (0, empty, 2147483647)."""
    extras: list[tuple[str, str]] = []
    for name in ("Function", "TimeGoto", "Aux", "ThrowParam"):
        text = (cnd.get(name) or "0").strip()
        if text not in ("0", ""):
            extras.append((name, text))
    for name in ("GlobleUserID", "GlobalVar"):
        text = (cnd.get(name) or str(NO_VARIABLE)).strip()
        if text != str(NO_VARIABLE):
            extras.append((name, text))
    for name in ("Expression", "ExpressionName"):
        text = (cnd.get(name) or "").strip()
        if text:
            extras.append((name, text))
    return tuple(extras)


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_conditions(other: Element | None, where: str, steps: int) -> tuple[NativeCondition, ...]:
    """The ``Cnd*`` children of a step's ``Limit/Other``, in file order; :class:`ConditionError` for a broken one.

    ``CndCount`` (when given) must match the number of conditions: a file that says 2 and holds 1 was cut or edited
    by hand, and running the one that is left would be running another program.
    """
    if other is None:
        return ()
    found: list[NativeCondition] = []
    for cnd in other:
        if not cnd.tag.startswith("Cnd"):
            continue
        text = (cnd.get("Jump_Line") or "").strip()
        target = _integer(text)
        if target is None or (target not in SPECIAL_JUMPS and not 1 <= target <= steps):
            raise ConditionError(f"{where}/{cnd.tag}: Jump_Line={_show(text)} names no step (the file has {steps})")
        kind = _integer(cnd.get("type"))
        if kind is None:
            raise ConditionError(f"{where}/{cnd.tag}: type={_show(cnd.get('type') or '')} is not an integer")
        raw = cnd.get("Value")
        value = None
        if raw is not None:
            try:
                value = float(raw)
            except ValueError:
                raise ConditionError(f"{where}/{cnd.tag}: Value={_show(raw)} is not a number") from None
            if not math.isfinite(value):
                raise ConditionError(f"{where}/{cnd.tag}: Value={_show(raw)} is not a finite number")
        found.append(
            NativeCondition(
                tag=cnd.tag,
                kind=kind,
                compare=_integer(cnd.get("CmpType")),
                value=value,
                jump=target,
                extras=_meaningful_extras(cnd),
            )
        )
    declared = other.get("CndCount")
    if declared is not None and _integer(declared) != len(found):
        raise ConditionError(f"{where}: CndCount={_show(declared)} but the step holds {len(found)} Cnd conditions")
    return tuple(found)


def refusal(condition: NativeCondition) -> str | None:
    """Why the simulated BTS cannot execute ``condition`` as the BTS would, or None when it can."""
    name = TYPE_NAMES.get(condition.kind, f"type {condition.kind}")
    if condition.kind not in EXECUTABLE_TYPES:
        return (
            f"{condition.tag}: a {name} condition (type {condition.kind}) is not simulated; the reference documents "
            "only voltage (1), current (2) and time (3) conditions"
        )
    if condition.extras:
        shown = ", ".join(f"{k}={_show(v, 30)}" for k, v in condition.extras)
        return f"{condition.tag}: {shown} changes what the condition does in a way the reference does not document"
    if condition.compare not in COMPARISONS:
        return f"{condition.tag}: CmpType {condition.compare} is not a comparison the simulator knows (3 '>', 5 '<')"
    if condition.value is None:
        return f"{condition.tag}: the {name} condition has no Value"
    if condition.kind == 2 and condition.value < 0:
        return f"{condition.tag}: a negative current condition ({condition.value:g} mA) has no documented meaning"
    if condition.jump == JUMP_NONE:
        return (
            f"{condition.tag}: Jump_Line 0 (no jump) on a {name} condition: what the BTS does when it holds is not "
            "documented"
        )
    return None
