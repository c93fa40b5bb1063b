"""Ed25519 and RSA keys in the config (issue 18): a key declares its type; the private key is a
PEM file whose path (and passphrase) environment variables name, never the TOML; every problem
is one line saying what is wrong; a PEM others can read is warned about; nothing of the key is
printed back."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import ConfigError, key_file_warnings, load_config
from monitor.core.keys import KeyType
from tests.factories import fake_secret

ED = ed25519.Ed25519PrivateKey.generate()


def toml(kind: str = "ed25519", *, extra: str = "", pem_var: str = "KW_PEM") -> str:
    return textwrap.dedent(f"""
    store_path = "kw.db"
    [[accounts]]
    name = "main"
    monitor_key = "monitor"
      [[accounts.keys]]
      label = "monitor"
      use_case = "monitoring"
      type = "{kind}"
      api_key_env = "KW_KEY"
      private_key_env = "{pem_var}"
      {extra}
    [[alerts.channels]]
    name = "hook"
    url = "json://127.0.0.1:9999/"
    """)


def pem_of(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey, password: bytes | None = None
           ) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def setup(tmp_path: Path, text: str, pem: bytes | None, mode: int = 0o600) -> tuple[Path, dict]:
    cfg = tmp_path / "keywatch.toml"
    cfg.write_text(text)
    env = {"KW_KEY": fake_secret("key")}
    if pem is not None:
        f = tmp_path / "monitor.pem"
        f.write_bytes(pem)
        f.chmod(mode)
        env["KW_PEM"] = "monitor.pem"  # relative: next to the config
    return cfg, env


def problems(cfg: Path, env: dict) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env=env, env_file=cfg.parent / "none.env")
    return str(err.value)


def test_an_ed25519_monitor_key_loads_and_signs(tmp_path: Path) -> None:
    cfg, env = setup(tmp_path, toml(), pem_of(ED))
    key = load_config(cfg, env=env, env_file=tmp_path / "none.env").account("main").key("monitor")
    assert key.type is KeyType.ED25519 and key.can_sign
    signer = key.signer()
    assert signer is not None and signer.key_type is KeyType.ED25519
    assert key.private_key_path == str(tmp_path / "monitor.pem")
    dumped = key.model_dump_json()
    assert "PRIVATE" not in dumped and "private_key_pem" not in dumped


def test_an_encrypted_rsa_key_with_its_passphrase(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    cfg, env = setup(tmp_path, toml("rsa", extra='private_key_passphrase_env = "KW_PASS"'),
                     pem_of(key, b"kw-test-passphrase"))
    env["KW_PASS"] = "kw-test-passphrase"
    k = load_config(cfg, env=env, env_file=tmp_path / "none.env").account("main").key("monitor")
    assert k.signer() is not None and k.signer().key_type is KeyType.RSA  # type: ignore[union-attr]


@pytest.mark.parametrize(("case", "says"), [
    ("unset", "environment variable KW_PEM is not set"),
    ("missing", "is not a file"),
    ("public", "is a public key; give the private key"),
    ("no_passphrase", "is encrypted: name its passphrase"),
    ("wrong_type", "is an ed25519 key but the key is declared rsa"),
    ("hmac_with_pem", "private_key_env is for type"),
    ("ed_with_secret", "has no secret"),
    ("not_pem", "not a PEM private key"),
])
def test_each_problem_is_one_line(tmp_path: Path, case: str, says: str) -> None:
    text, pem = toml(), pem_of(ED)
    if case == "public":
        pem = ED.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    elif case == "no_passphrase":
        pem = pem_of(ED, b"kw-test-passphrase")
    elif case == "wrong_type":
        text = toml("rsa")
    elif case == "hmac_with_pem":
        text = toml("hmac", extra='api_secret_env = "KW_SECRET"')
    elif case == "ed_with_secret":
        text = toml(extra='api_secret_env = "KW_SECRET"')
    elif case == "not_pem":
        pem = b"just some text\n"
    cfg, env = setup(tmp_path, text, pem)
    if case == "unset":
        del env["KW_PEM"]
    if case == "missing":
        env["KW_PEM"] = str(tmp_path / "nowhere.pem")
    env["KW_SECRET"] = fake_secret("secret")
    out = problems(cfg, env)
    assert says in out, out
    assert pem_of(ED).splitlines()[1].decode() not in out  # no key material echoed


def test_a_pem_others_can_read_is_warned_about(tmp_path: Path) -> None:
    cfg, env = setup(tmp_path, toml(), pem_of(ED), mode=0o644)
    loaded = load_config(cfg, env=env, env_file=tmp_path / "none.env")
    (warning,) = key_file_warnings(loaded)
    assert "0644" in warning and "chmod 600" in warning
    (tmp_path / "monitor.pem").chmod(0o600)
    assert key_file_warnings(loaded) == []


def test_check_config_warns_and_prints_no_key_material(tmp_path: Path, monkeypatch) -> None:
    cfg, env = setup(tmp_path, toml(), pem_of(ED), mode=0o640)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    os.chmod(tmp_path / ".env", 0o600)
    (tmp_path / "rules").mkdir()
    result = CliRunner().invoke(app, ["check-config", "-c", str(cfg)])
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "others can read it" in out, out
    assert pem_of(ED).splitlines()[1].decode() not in out


def test_alerts_redact_the_private_key_and_its_passphrase(tmp_path: Path) -> None:
    from monitor.alert.redact import Redactor, config_secrets

    cfg, env = setup(tmp_path, toml(extra='private_key_passphrase_env = "KW_PASS"'),
                     pem_of(ED, b"kw-test-passphrase-1"))
    env["KW_PASS"] = "kw-test-passphrase-1"
    loaded = load_config(cfg, env=env, env_file=tmp_path / "none.env")
    line = (tmp_path / "monitor.pem").read_text().splitlines()[1]
    red = Redactor(config_secrets(loaded))
    out = red.text(f"pasted by mistake: {line} and kw-test-passphrase-1")
    assert line not in out and "kw-test-passphrase-1" not in out
