"""Hostile config files and paths give one line naming the file and the fix: no traceback, no
hang (a FIFO or a device as the config, binary or 100,000-deep TOML, a non-UTF-8 .env, a store
that cannot be written, a model card that is not JSON)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import ConfigError, load_config
from monitor.core import resources
from monitor.detect.forest import ForestModel, ModelMismatch, card_path
from tests.config.configkit import ENV, check_config, write_config


def load_within(path: Path, seconds: float = 5.0, **kw: object) -> BaseException | None:
    """load_config in a thread: what it raised (None: it loaded); fails if it blocks."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            load_config(path, env=ENV, **kw)  # type: ignore[arg-type]
            out.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"load_config({path}) blocked for {seconds} s"
    return out[0]


def one_problem(exc: BaseException | None) -> str:
    assert isinstance(exc, ConfigError), repr(exc)
    (problem,) = exc.problems
    return problem


def test_a_fifo_as_the_config_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "keywatch.toml"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in one_problem(load_within(fifo))


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a device"), ("/tmp", "a folder")])
def test_a_device_or_folder_as_the_config_is_refused(path: str, kind: str) -> None:
    assert f"is {kind}" in one_problem(load_within(Path(path)))


def test_binary_toml_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "keywatch.toml"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe" * 20)
    problem = one_problem(load_within(p))
    assert problem.startswith("the config is a binary file (line 1, byte")


def test_deeply_nested_toml_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "keywatch.toml"
    p.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "nested thousands of levels deep" in one_problem(load_within(p))


def test_a_non_utf8_env_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    (tmp_path / ".env").write_bytes(b"KW_TEST_KEY=caf\xe9\n")
    exc = load_within(path)
    assert "not UTF-8 text (line 1" in one_problem(exc) and str(tmp_path / ".env") in str(exc)
    result = check_config(path)
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_check_config_refuses_a_store_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('store_path = "kw.db"',
                                             f'store_path = "{tmp_path}/afile/kw.db"'))
    result = check_config(path)
    assert result.exit_code == 1 and "store_path: " in result.output
    assert "does not exist (or is not a folder)" in result.output
    path.write_text(path.read_text().replace(f"{tmp_path}/afile/kw.db", str(tmp_path)))
    result = check_config(path)
    assert result.exit_code == 1 and "is not a regular file" in result.output


@pytest.fixture()
def broken_model(tmp_path: Path) -> Path:
    model = tmp_path / "m.skops"
    shutil.copy(resources.default_model(), model)
    card_path(model).write_text("{not json")
    return model


def test_a_model_card_that_is_not_json_is_one_line(broken_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelMismatch, match=r"m\.card\.json: the model card is not JSON"):
        ForestModel.load(broken_model)
    path = write_config(tmp_path, top=f'model_path = "{broken_model}"')
    result = check_config(path)
    assert result.exit_code == 1 and "the model card is not JSON (line 1)" in result.output


def test_run_with_a_missing_rules_folder_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, top=f'rules_dir = "{tmp_path}/nope"')
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--skip-checks", "-c",
                           str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV}, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "nope: not a directory" in proc.stderr


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.sampled_from(["[", "]", "{", "}", "a", " = ", "\n", '"', "[[x]]",
                                           "1", ".", "accounts", "\x00", "\xff"]),
                          max_size=60).map("".join)))
def test_any_bytes_as_the_config_load_or_give_config_errors(body: bytes | str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "keywatch.toml"
        p.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass"))
        exc = load_within(p)
    assert exc is None or isinstance(exc, ConfigError), repr(exc)
