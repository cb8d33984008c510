"""`apply(core, config, *, allow_destructive) -> Applied`: make the stack what the directory says.

Apply plans first, refuses the whole plan (writing nothing) when a change is destructive and not allowed,
then runs each step that has something to do, in the plan's order. A step with nothing to do writes
nothing: applying the same directory twice writes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from backroom.wiring import Core

from infra.tenant.changes import Change, Plan
from infra.tenant.config import TenantConfig
from infra.tenant.plan import plan


class Refused(Exception):
    """The plan has destructive changes and `allow_destructive` was not given: nothing was written."""

    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes
        listed = "; ".join(f"{c.resource}: {c.destructive}" for c in changes)
        super().__init__(f"{len(changes)} destructive changes, refused without --allow-destructive: {listed}")


@dataclass
class Applied:
    plan: Plan
    notes: list[str] = field(default_factory=list)  # what to show once: new users' one-time passwords


def apply(
    core: Core, config: TenantConfig, *, allow_destructive: bool = False, today: dt.date | None = None
) -> Applied:
    planned = plan(core, config, today=today)
    if planned.destructive and not allow_destructive:
        raise Refused(planned.destructive)
    applied = Applied(planned)
    for step in planned.steps:
        if step.pending and step.run is not None:
            note = step.run()
            if note:
                applied.notes.append(note)
    return applied
