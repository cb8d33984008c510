"""Calculations the tests add to the demo set."""

from __future__ import annotations

from backroom.calcengine.models import Calculation


def broken_script(calc_id: int, name: str, expression: str = "sum / count") -> Calculation:
    """A script calculation over the demo's sales that fails when it runs (count is 0 without sales)."""
    return Calculation(
        id=calc_id,
        name=name,
        type="script",
        source="sales",
        measure="amount",
        expression=expression,
        output="bonus_results",
        result_field="bonus",
    )
