"""What a dashboard or API app is allowed to do and who may use it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .hosts import AllowedHosts

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""Request bodies over this are refused with 413 (a batch of jobs fits; a runaway upload not)."""


def parse_basic_auth(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or ``(user, password)`` -> ``(user, password)`` (None stays None).

    Raises:
        ValueError: not ``user:password`` with a non-empty user and password.
    """
    if value is None:
        return None
    if isinstance(value, str):
        user, sep, password = value.partition(":")
        if not sep:
            raise ValueError("basic auth must be given as user:password")
        value = (user, password)
    if not value[0] or not value[1]:
        raise ValueError("basic auth needs a non-empty user and password")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """The options of :func:`redisjobs.dashboard.create_app`, checked once.

    Args:
        read_only: refuse every request that changes something (405), hide the buttons.
        basic_auth: ``(user, password)`` that the pages (and the API, unless it has a token)
            ask for.
        api_token: the bearer token the API asks for. When no `basic_auth` is set, the pages
            take it too, as the password of HTTP basic auth (any user name), so one secret
            guards everything.
        max_body_bytes: the largest request body accepted.
        allowed_hosts: the Host names answered to besides this server's own addresses and
            ``localhost`` (see :mod:`.hosts`); any other Host is refused with 400.
    """

    read_only: bool = False
    basic_auth: tuple[str, str] | None = None
    api_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_hosts: AllowedHosts = field(default_factory=AllowedHosts)

    def __post_init__(self) -> None:
        if self.api_token is not None and len(self.api_token) < 8:
            raise ValueError("an API token must be at least 8 characters")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")

    @classmethod
    def of(
        cls,
        read_only: bool,
        basic_auth: str | tuple[str, str] | None,
        api_token: str | None,
        max_body_bytes: int,
        allowed_hosts: Iterable[str],
    ) -> Settings:
        """Settings from the options as :func:`redisjobs.dashboard.create_app` takes them.

        Raises:
            ValueError: an option that is not valid, named.
        """
        hosts = AllowedHosts.parse(allowed_hosts)
        return cls(read_only, parse_basic_auth(basic_auth), api_token, max_body_bytes, hosts)

    @property
    def guarded(self) -> bool:
        """True when every request must carry credentials."""
        return self.basic_auth is not None or self.api_token is not None
