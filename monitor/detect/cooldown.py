"""The one cooldown on findings: a rule does not report the same incident again within its
`cooldown_minutes`.

Owned by the engine, applied once, in time order, to every detector's candidates alike (the
alert stages decide how often a standing alert is re-sent; they never drop a finding). "The
same incident" is the rule, account, key, group and the evidence naming one thing that
happened (`findings.incident_id`): a new order or a new caller is never held back.
"""

from __future__ import annotations

from monitor.core.findings import incident_id
from monitor.detect.candidate import Candidate

Tag = tuple[str, str, str, str, str | None]


class Cooldown:
    def __init__(self) -> None:
        self.last_fire: dict[Tag, int] = {}

    def admit(self, c: Candidate) -> bool:
        """True when the candidate is reported; a firing one starts the rule's cooldown. A
        resolved notice always passes and never starts one."""
        if c.state != "firing":
            return True
        tag = (c.rule.id, c.account, c.key, repr(sorted(c.group.items())),
               incident_id(c.rule.signal, c.evidence))
        last = self.last_fire.get(tag)
        if last is not None and c.ts - last < c.rule.cooldown_ms:
            return False
        self.last_fire[tag] = c.ts
        return True

    def clear(self) -> None:
        self.last_fire.clear()
