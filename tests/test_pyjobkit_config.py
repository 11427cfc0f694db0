"""The Pyjobkit face's configuration: file, environment and overrides, in that precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from redisjobs.pyjobkit.config import (
    Config,
    ConfigError,
    find_config_file,
    load_config,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}) == Config()
    assert Config().as_dict()["retry_policy"] == "exponential:1:2"
    assert find_config_file() is None


def test_overrides_beat_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path / ".pyjobkit.toml",
        '[pyjobkit]\ndb_url = "redis://file:6379/0"\nconcurrency = 4\nbatch = 2\n'
        'log_level = "debug"\nrate_limits = { http = { max_per_second = 5, burst = 10 } }\n'
        "future_key = 1\n",
    )
    monkeypatch.chdir(tmp_path)
    assert find_config_file() == tmp_path / ".pyjobkit.toml"
    env = {"PYJOBKIT_CONCURRENCY": "6", "PYJOBKIT_ENABLE_PLUGINS": "yes", "OTHER": "x"}
    config = load_config(env=env, overrides={"batch": 3, "rate_limits": "sms:2"})
    assert config.dsn == "redis://file:6379/0"
    assert (config.concurrency, config.batch, config.log_level) == (6, 3, "DEBUG")
    assert config.enable_plugins is True
    assert config.rate_limits == {"sms": {"max_per_second": 2.0, "burst": 2.0}}
    assert load_config(env={}, search_cwd=False) == Config()


def test_a_file_without_a_section_and_an_explicit_path(tmp_path: Path) -> None:
    path = _write(tmp_path / "jobs.toml", 'dsn = "memory://x"\nextra_executors = "a:b, c:d,"\n')
    config = load_config(config_path=path, env={"PYJOBKIT_WATCHDOG_INTERVAL_S": ""})
    assert config.dsn == "memory://x" and config.extra_executors == ("a:b", "c:d")
    assert config.watchdog_interval_s is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PYJOBKIT_CONCURRENCY": "0"}, "'concurrency' must be > 0"),
        ({"PYJOBKIT_BATCH": "many"}, "'batch' must be an integer"),
        ({"PYJOBKIT_ENABLE_PLUGINS": "maybe"}, "must be a boolean"),
        ({"PYJOBKIT_LOG_FORMAT": "xml"}, "'log_format' must be one of"),
        ({"PYJOBKIT_RETRY_POLICY": "bogus:1"}, "unknown retry policy"),
        ({"PYJOBKIT_RATE_LIMITS": "http:fast"}, "'rate_limits'"),
        ({"PYJOBKIT_POLL_INTERVAL": "-1"}, "'poll_interval' must be > 0"),
    ],
)
def test_bad_values_name_their_source(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(env=env, search_cwd=False)
    assert str(raised.value).startswith("environment: ")


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(config_path=tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="Invalid TOML"):
        load_config(config_path=_write(tmp_path / "bad.toml", "dsn = "), env={})
    with pytest.raises(ConfigError, match="must be a table"):
        load_config(config_path=_write(tmp_path / "odd.toml", "pyjobkit = 3"), env={})
