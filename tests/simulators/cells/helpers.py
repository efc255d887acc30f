"""Step builders for the cell-model tests: SI units, signed currents, 1-based indices."""

from __future__ import annotations

from protocols.program import CurrentStep, RecordRule, RestStep, Termination

AREA = 1.131e-4  # m^2, a 12 mm disk
MA_PER_CM2 = 10.0 * AREA  # A for 1 mA/cm^2 on that disk
MAH_PER_CM2 = 1e-3 * AREA / 1e-4  # Ah for 1 mAh/cm^2 on that disk


def until(quantity: str, op: str, value: float) -> Termination:
    return Termination(quantity=quantity, op=op, value=value)


def charge(current: float, *terms: Termination, every: float | None = 30.0, **rule: float) -> CurrentStep:
    return CurrentStep(index=1, kind="charge", current=current, until=terms, record=RecordRule(every_s=every, **rule))


def discharge(current: float, *terms: Termination, every: float | None = 30.0, **rule: float) -> CurrentStep:
    return CurrentStep(
        index=1, kind="discharge", current=-current, until=terms, record=RecordRule(every_s=every, **rule)
    )


def rest(*terms: Termination, every: float | None = 30.0, **rule: float) -> RestStep:
    return RestStep(index=1, until=terms, record=RecordRule(every_s=every, **rule))
