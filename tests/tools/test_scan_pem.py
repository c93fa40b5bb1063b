"""`keywatch scan` finds PEM private keys (issue 18): Ed25519 and RSA, plain or encrypted, in
files and git history, and names the API key one probably belongs to when its file shows one.
Keys are generated at run time; no key block is committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from monitor.tools.scan import RULE_CREDENTIAL, scan_text
from monitor.tools.scan_patterns import RULE_PEM

from .test_scan import fake_key, git, make_repo, needs_git, run_scan


def pem(kind: str, password: bytes | None = None) -> str:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "Ed25519" else \
        rsa.generate_private_key(65537, 2048)
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             enc).decode()


@pytest.mark.parametrize(("kind", "password", "says"), [
    ("Ed25519", None, "Ed25519 private key"), ("RSA", None, "RSA private key"),
    ("Ed25519", b"kw-test-pass", "encrypted private key"),
])
def test_a_pem_is_found_with_its_type(kind: str, password: bytes | None, says: str) -> None:
    block = pem(kind, password)
    (leak,) = scan_text(f"# bot key\n{block}", "bot.pem")
    assert leak.rule == RULE_PEM and leak.line == 2 and says in leak.message()
    assert block.splitlines()[1] not in leak.message() and leak.masked == ""


@pytest.mark.parametrize("attempt", range(8))  # a fresh RSA body each: lines of 64 base64
def test_a_pem_body_is_not_also_reported_as_credentials(attempt: int) -> None:
    """A base64 line without `+` or `/` is 64 alphanumerics (13% of lines; an RSA key has 25):
    the block is one finding, its lines are not keys."""
    leaks = scan_text(f"BINANCE_SECRET_KEY:\n{pem('RSA')}", "k.txt")
    assert [x.rule for x in leaks] == [RULE_PEM]


def test_the_pem_names_the_api_key_beside_it() -> None:
    k = fake_key()
    text = f'BINANCE_API_KEY = "{k}"\nBINANCE_PRIVATE_KEY = """\n{pem("Ed25519")}"""\n'
    leaks = scan_text(text, "config.py")
    assert [x.rule for x in leaks] == [RULE_CREDENTIAL, RULE_PEM]
    assert leaks[1].pairs == k[:4] + "****"
    assert f"probably for API key {k[:4]}****" in leaks[1].message()
    below = scan_text(f'{pem("RSA")}\napi_key: {k}\n', "notes.txt")  # the key after the PEM
    assert [x.rule for x in below] == [RULE_PEM, RULE_CREDENTIAL] and below[0].pairs


@needs_git
def test_a_committed_then_deleted_pem_is_found_in_history(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    block = pem("RSA")
    (repo / "keys").mkdir()
    (repo / "keys" / "bot.pem").write_text(block)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "add key")
    (repo / "keys" / "bot.pem").unlink()
    git(repo, "commit", "-qam", "remove key")
    assert run_scan(str(repo), "--json")[0] == 0  # gone from the tree
    code, out = run_scan(str(repo), "--git-history", "--json")
    found = json.loads(out)["findings"]
    assert code == 1 and [(f["rule"], f["path"]) for f in found] == [(RULE_PEM, "keys/bot.pem")]
    assert "RSA private key" in found[0]["message"]
    assert block.splitlines()[1] not in out
