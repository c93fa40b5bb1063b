"""A secret written where the config wants none is refused, and never printed back: a key
pasted into an `*_env` field, a token or password inside an Apprise URL in the TOML."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import ConfigError, load_config, load_tap_settings
from tests.config.configkit import ENV, check_config, toml_str, write_config

# obviously fake, but shaped like Binance's keys (64 mixed-case letters and digits) and hex
FAKE_KEY = "Fake0Key" * 8
FAKE_HEX = "0123456789abcdef" * 4


def with_env_field(tmp_path: Path, value: str, field: str = "api_secret_env") -> Path:
    path = write_config(tmp_path)
    text = path.read_text().replace(f'{field} = "KW_TEST_SECRET"' if "secret" in field
                                    else f'{field} = "KW_TEST_KEY"', f"{field} = {toml_str(value)}")
    path.write_text(text)
    return path


@pytest.mark.parametrize("value", [FAKE_KEY, FAKE_HEX, "Fake0Key-Fake1Key+Fake2Key/abc=",
                                   "my secret value 123", "1ABC"])
@pytest.mark.parametrize("field", ["api_key_env", "api_secret_env"])
def test_a_value_in_an_env_field_is_refused_without_echoing_it(tmp_path: Path, value: str,
                                                              field: str) -> None:
    path = with_env_field(tmp_path, value, field)
    with pytest.raises(ConfigError) as err:
        load_config(path, env=ENV)
    text = str(err.value)
    assert f"accounts[0].keys[0].{field}: " in text and f"{len(value)}-character" in text
    assert value not in text and value[:8] not in text
    result = check_config(path)
    assert result.exit_code == 1 and value not in result.output and value[:8] not in result.output


def test_the_standalone_tap_warns_without_echoing_a_pasted_key(tmp_path: Path) -> None:
    settings_ = load_tap_settings(with_env_field(tmp_path, FAKE_KEY, "api_key_env"), env={})
    text = "\n".join(settings_.warnings)
    assert "api_key_env" in text and FAKE_KEY not in text and FAKE_KEY[:8] not in text


@pytest.mark.parametrize("url, secret", [
    ("jsons://hooks.example.com/path?+Authorization=Bearer%20xyzSECRET", "xyzSECRET"),
    ("json://hooks.example.com/?+X-Api-Key=abcSECRET", "abcSECRET"),
    ("json://hooks.example.com/?-token=abcSECRET", "abcSECRET"),
    ("json://hooks.example.com/hook/Fake0Key1Fake0Key2Fake", "Fake0Key1Fake0Key2Fake"),
    ("tgram://123456:AAFakeFakeFakeFake/4242", "AAFakeFakeFakeFake"),
    ("mailto://user:hunterSECRET@example.com", "hunterSECRET"),
    ("mailtos://user@example.com?pass=hunterSECRET", "hunterSECRET"),
    ("forms://example.com/?:session=abcSECRET", "abcSECRET"),
])
def test_a_channel_url_with_a_credential_is_refused_and_says_how_to_move_it(
        tmp_path: Path, url: str, secret: str) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('"json://127.0.0.1:9999/"', toml_str(url)))
    with pytest.raises(ConfigError) as err:
        load_config(path, env=ENV)
    (problem,) = err.value.problems
    assert problem.startswith("alerts.channels[0].url: ")
    assert "KEYWATCH_PAGER_URL=..." in problem and 'url_env = "KEYWATCH_PAGER_URL"' in problem
    assert secret not in problem


@pytest.mark.parametrize("url", ["json://127.0.0.1:9999/", "mailto://alerts@example.com",
                                 "jsons://hooks.example.com/keywatch?+X-Source=keywatch",
                                 "json://127.0.0.1:9999/?format=markdown"])
def test_urls_without_a_credential_stay_in_the_toml(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('"json://127.0.0.1:9999/"', toml_str(url)))
    assert load_config(path, env=ENV).alerts.channels[0].url == url


def test_the_supported_way_url_env_still_carries_a_token(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('url = "json://127.0.0.1:9999/"',
                                             'url_env = "KEYWATCH_PAGER_URL"'))
    secret_url = "jsons://hooks.example.com/path?+Authorization=Bearer%20xyzSECRET"
    cfg = load_config(path, env={**ENV, "KEYWATCH_PAGER_URL": secret_url})
    resolved = cfg.alerts.channels[0].resolved_url
    assert resolved is not None and resolved.get_secret_value() == secret_url


KEYLIKE = st.text(st.sampled_from("ABCDEFGHJKabcdefghjk0123456789"), min_size=24, max_size=64
                  ).filter(lambda s: any(c.isdigit() for c in s) and any(c.islower() for c in s)
                           and any(c.isupper() for c in s))
NAMES = st.from_regex(r"[A-Z_][A-Z0-9_]{0,40}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(KEYLIKE)
def test_any_key_shaped_value_is_refused_and_never_shown(value: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = with_env_field(Path(tmp), value)
        with pytest.raises(ConfigError) as err:
            load_config(path, env=ENV)
    assert value not in str(err.value) and value[:8] not in str(err.value)


@settings(max_examples=40, deadline=None)
@given(NAMES)
def test_any_variable_name_is_accepted(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(with_env_field(Path(tmp), name), env={**ENV, name: "x"})
    assert cfg.accounts[0].keys[0].api_secret_env == name
