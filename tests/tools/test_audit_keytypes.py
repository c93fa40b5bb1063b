"""`keywatch audit` reports each key's type and recommends Ed25519 for an HMAC key, at its next
rotation in the seed's terms, without changing the key's status (issue 18)."""

from __future__ import annotations

from monitor.cli.commands.audit import COLUMNS, table_rows
from monitor.config import AccountConfig, Config, KeyConfig, UseCase
from monitor.core.keys import KeyType
from monitor.tools.audit import audit_key


def config(kind: KeyType) -> Config:
    key = KeyConfig(label="grid", use_case=UseCase.SPOT_BOT, type=kind,
                    ip_whitelist=["203.0.113.10"])
    mon = KeyConfig(label="mon", use_case=UseCase.MONITORING, ip_whitelist=["203.0.113.10"])
    return Config(accounts=[AccountConfig(name="main", monitor_key="mon", keys=[key, mon])])


def test_an_hmac_key_is_advised_to_move_to_ed25519_at_its_next_rotation() -> None:
    cfg = config(KeyType.HMAC)
    r = audit_key(cfg, "main", cfg.account("main").key("grid"), None, [], 1_790_000_000_000)
    assert r.key_type == "hmac" and r.to_dict()["key_type"] == "hmac"
    assert "Ed25519" in r.advice and "next rotation" in r.advice and "days" in r.advice
    assert r.status == "not checked"  # advice is not a finding
    rows = table_rows([r])
    assert [row[COLUMNS.index("status")] for row in rows] == ["not checked", "advice"]
    assert all(row[COLUMNS.index("type")] == "hmac" for row in rows)


def test_an_ed25519_key_gets_no_advice() -> None:
    cfg = config(KeyType.ED25519)
    r = audit_key(cfg, "main", cfg.account("main").key("grid"), None, [], 1_790_000_000_000)
    assert r.key_type == "ed25519" and r.advice == ""
