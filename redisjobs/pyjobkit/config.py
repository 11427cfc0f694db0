"""Pyjobkit's configuration: a ``.pyjobkit.toml`` file, ``PYJOBKIT_*`` environment variables
and explicit overrides (the CLI's flags), merged in that order of precedence (overrides win,
then the environment, then the file, then the defaults).

The backend is a URL: ``dsn`` (aliases ``db_url``, ``database_url``, ``url``) is a
``redis://``, ``rediss://``, ``unix://`` or ``memory://`` URL; the CLI refuses a SQL URL with a
message saying what to use instead. ``disable_skip_locked`` is accepted and means nothing (it
tuned Pyjobkit's SQL claims).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .ratelimit import parse_rate_limits
from .retry import parse_policy

__all__ = [
    "DEFAULT_CONFIG_FILENAME",
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "find_config_file",
    "load_config",
]

DEFAULT_CONFIG_FILENAME = ".pyjobkit.toml"
ENV_PREFIX = "PYJOBKIT_"
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_FORMATS = ("text", "json")
_ALIASES = {"db_url": "dsn", "database_url": "dsn", "url": "dsn"}


class ConfigError(ValueError):
    """A configuration value is invalid, or the file cannot be read."""


@dataclass
class Config:
    """The resolved configuration (Pyjobkit's fields and defaults)."""

    dsn: str | None = None
    poll_interval: float = 0.5
    max_attempts: int = 3
    default_executor: str | None = None
    concurrency: int = 8
    batch: int = 1
    lease_ttl: int = 30
    log_level: str = "INFO"
    log_format: str = "text"
    retry_policy: str = "exponential:1:2"
    watchdog_interval_s: float | None = None
    disable_skip_locked: bool = False
    enable_plugins: bool = False
    rate_limits: dict[str, dict[str, float]] = field(default_factory=dict)
    extra_executors: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return asdict(self)


def _number(kind: Callable[[Any], Any], noun: str) -> Callable[[str, Any], Any]:
    def coerce(key: str, value: Any) -> Any:
        try:
            number = kind(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key!r} must be {noun} (got {value!r})") from exc
        if not number > 0:
            raise ConfigError(f"{key!r} must be > 0 (got {number})")
        return number

    return coerce


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key!r} must be a boolean (got {value!r})")


def _choice(options: tuple[str, ...], case: Callable[[str], str]) -> Callable[[str, Any], str]:
    def coerce(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{key!r} must be a string (got {value!r})")
        if case(value.strip()) not in options:
            raise ConfigError(f"{key!r} must be one of {options} (got {value!r})")
        return case(value.strip())

    return coerce


def _text(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{key!r} must be a string (got {value!r})")


def _watchdog(key: str, value: Any) -> float | None:
    return None if value is None or value == "" else _number(float, "a number")(key, value)


def _policy(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key!r} must be a non-empty string (got {value!r})")
    try:
        parse_policy(value.strip())
    except ValueError as exc:
        raise ConfigError(f"{key!r}: {exc}") from exc
    return value.strip()


def _rate_limits(key: str, value: Any) -> dict[str, dict[str, float]]:
    if not isinstance(value, str | Mapping):
        raise ConfigError(f"{key!r} must be a mapping or 'kind:rate[:burst],...' (got {value!r})")
    try:
        limits = parse_rate_limits(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key!r}: {exc}") from exc
    return {
        kind: {"max_per_second": rate, "burst": burst} for kind, (rate, burst) in limits.items()
    }


def _executors(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{key!r} must be a string or a list (got {value!r})")
    return tuple(item for item in (str(v).strip() for v in value) if item)


_COERCE: dict[str, Callable[[str, Any], Any]] = {
    "dsn": _text,
    "poll_interval": _number(float, "a number"),
    "max_attempts": _number(int, "an integer"),
    "default_executor": _text,
    "concurrency": _number(int, "an integer"),
    "batch": _number(int, "an integer"),
    "lease_ttl": _number(int, "an integer"),
    "log_level": _choice(LOG_LEVELS, str.upper),
    "log_format": _choice(LOG_FORMATS, str.lower),
    "retry_policy": _policy,
    "watchdog_interval_s": _watchdog,
    "disable_skip_locked": _boolean,
    "enable_plugins": _boolean,
    "rate_limits": _rate_limits,
    "extra_executors": _executors,
}


def _layer(source: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The known keys of `source`, checked (unknown ones are ignored, as newer keys may be)."""
    layer: dict[str, Any] = {}
    for raw, value in source.items():
        key = _ALIASES.get(raw, raw)
        if key in _COERCE:
            try:
                layer[key] = _COERCE[key](key, value)
            except ConfigError as exc:
                raise ConfigError(f"{label}: {exc}") from exc
    return layer


def _read_toml(path: Path) -> Mapping[str, Any]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Invalid TOML in {path}: {exc}") from exc
    section = data.get("pyjobkit", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: '[pyjobkit]' section must be a table")
    return section


def find_config_file(start: Path | None = None) -> Path | None:
    """``.pyjobkit.toml`` in `start` (default: the working directory), if there is one."""
    candidate = (start or Path.cwd()) / DEFAULT_CONFIG_FILENAME
    return candidate if candidate.is_file() else None


def load_config(
    *,
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    search_cwd: bool = True,
) -> Config:
    """The configuration from the file, the environment and `overrides`.

    Args:
        config_path: the TOML file (its ``[pyjobkit]`` table, else its top level); default
            ``.pyjobkit.toml`` in the working directory when `search_cwd`.
        env: the environment to read ``PYJOBKIT_*`` from (default ``os.environ``).
        overrides: values that win over both (the CLI's flags).
        search_cwd: look for ``.pyjobkit.toml`` when no `config_path` is given.

    Raises:
        ConfigError: a missing or unreadable file, or a bad value (named with its source).
    """
    path = None if config_path is None else Path(config_path)
    if path is not None and not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    if path is None and search_cwd:
        path = find_config_file()
    merged: dict[str, Any] = {}
    if path is not None:
        merged.update(_layer(_read_toml(path), str(path)))
    environ = os.environ if env is None else env
    named = {
        k[len(ENV_PREFIX) :].lower(): v for k, v in environ.items() if k.startswith(ENV_PREFIX)
    }
    merged.update(_layer(named, "environment"))
    merged.update(_layer(overrides or {}, "overrides"))
    return Config(**merged)
