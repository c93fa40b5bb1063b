from __future__ import annotations

import logging
import textwrap

import pytest

from monitor.config import ConfigError, UseCase, load_config
from monitor.store import SQLiteStore
from tests.factories import fake_secret, full_event

GOOD = """
store_path = "kw.db"
[[accounts]]
name = "main"
monitor_key = "monitor"
  [[accounts.keys]]
  label = "monitor"
  use_case = "monitoring"
  api_key_env = "KW_TEST_KEY"
  api_secret_env = "KW_TEST_SECRET"
  ip_whitelist = ["203.0.113.10", "198.51.100.0/24"]
[[alerts.channels]]
name = "hook"
url = "json://127.0.0.1:9999/"
tags = ["critical"]
"""


@pytest.fixture()
def env():
    return {"KW_TEST_KEY": fake_secret("key"), "KW_TEST_SECRET": fake_secret("secret")}


def write(tmp_path, text):
    p = tmp_path / "keywatch.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_config_resolves_secrets_from_env(tmp_path, env):
    cfg = load_config(write(tmp_path, GOOD), env=env)
    key = cfg.account("main").key("monitor")
    assert key.use_case is UseCase.MONITORING
    assert key.api_secret is not None and key.api_secret.get_secret_value() == env["KW_TEST_SECRET"]
    assert key.ip_whitelist == ["203.0.113.10/32", "198.51.100.0/24"]
    assert key.fingerprint() and env["KW_TEST_KEY"] not in key.fingerprint()


def test_dotenv_next_to_the_config_is_read(tmp_path, env):
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    cfg = load_config(write(tmp_path, GOOD), env={})
    assert cfg.accounts[0].keys[0].api_key is not None


def test_example_config_is_valid(env):
    full = {**env, "KEYWATCH_MAIN_MONITOR_API_KEY": "x", "KEYWATCH_MAIN_MONITOR_API_SECRET": "y",
            "KEYWATCH_MAIN_GRID_API_KEY": "z", "KEYWATCH_TELEGRAM_URL": "tgram://1/2",
            "KEYWATCH_EMAIL_URL": "mailto://a@b"}
    cfg = load_config("keywatch.example.toml", env=full)
    assert [k.label for k in cfg.accounts[0].keys] == ["monitor", "grid-bot"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda t: t.replace('api_secret_env = "KW_TEST_SECRET"', 'api_secret = "abc"'),
         "accounts[0].keys[0].api_secret: a secret is written in the file; put it in the "
         "environment or .env"),
        (lambda t: t.replace('"monitoring"', '"moon-bot"'),
         "accounts[0].keys[0].use_case: Input should be"),
        (lambda t: t.replace('"203.0.113.10", ', '"203.0.113.999", '),
         "accounts[0].keys[0].ip_whitelist: Value error, '203.0.113.999' is not an IP"),
        (lambda t: t.replace('monitor_key = "monitor"', 'monitor_key = "ghost"'),
         "accounts[0].monitor_key: 'ghost' is not one of this account's key labels"),
        (lambda t: t.replace('"KW_TEST_SECRET"', '"KW_MISSING"'),
         "accounts[0].keys[0].api_secret_env: environment variable KW_MISSING is not set"),
        (lambda t: t.replace('url = "json://127.0.0.1:9999/"', 'url = "tgram://123:abc/456"'),
         "alerts.channels[0].url: Value error, a tgram:// URL carries its service's token"),
        (lambda t: t + "\nsurprise = 1\n", "surprise: Extra inputs are not permitted"),
        (lambda t: t.replace('[[accounts]]', '[[accounts]\n'), "not valid TOML"),
        (lambda t: t.replace('name = "main"\n', ''), "accounts[0].name: Field required"),
        (lambda t: t.replace('store_path = "kw.db"',
                             'store_path = "kw.db"\n[binance]\nrest_url = "http://api.binance.com"'),
         "binance.rest_url: Value error, use https://"),
    ],
)
def test_each_bad_config_names_file_path_and_fix(tmp_path, env, mutate, expected):
    path = write(tmp_path, mutate(GOOD))
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    text = str(err.value)
    assert str(path) in text
    assert expected in text, text


def test_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="keywatch init"):
        load_config(tmp_path / "nope.toml", env={})


def test_all_problems_are_reported_at_once(tmp_path, env):
    text = GOOD.replace('"KW_TEST_SECRET"', '"KW_A"').replace('"KW_TEST_KEY"', '"KW_B"')
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env=env)
    assert len(err.value.problems) == 2


def test_secrets_never_leak_into_repr_logs_or_store(tmp_path, env, caplog):
    cfg = load_config(write(tmp_path, GOOD), env=env)
    secret, key = env["KW_TEST_SECRET"], env["KW_TEST_KEY"]
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), repr(cfg.accounts[0].keys[0])):
        assert secret not in text and key not in text
    log = logging.getLogger("keywatch.test")
    with caplog.at_level(logging.DEBUG):
        try:
            raise RuntimeError(f"poll failed for {cfg.accounts[0].keys[0]!r}")
        except RuntimeError:
            log.exception("collector error with %s", cfg.accounts[0].keys[0].api_secret)
    assert secret not in caplog.text and "**********" in caplog.text
    store = SQLiteStore(tmp_path / "kw.db")
    store.insert_events([full_event(1)])
    store.set_cursor("k", repr(cfg))
    store.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("kw.db*"))
    assert secret.encode() not in blob and key.encode() not in blob
