"""The inhibit stage: today it inhibits nothing, on purpose.

Prometheus' inhibition mutes a lesser alert while a graver one about the same thing fires.
Keywatch gets the natural case without a rule: warning and info findings never page (`Page`
keeps them for the daily digest), so a critical page about a key is never drowned by its
warnings. Muting a high finding under a critical one of the same key in the same group would
change what reaches a person, which issue 16 does not do. This stage is where such a rule
goes; until then it passes every finding through and says so in its name and its test.
"""

from __future__ import annotations

from monitor.core.findings import Finding


class Inhibit:
    def run(self, findings: list[Finding], now: int) -> list[Finding]:
        return list(findings)
