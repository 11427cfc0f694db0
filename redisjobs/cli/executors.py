"""The executors a worker runs besides ``call``, from its command-line options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .. import executors as kinds
from ..errors import MissingExtra
from ..executors import Executor
from .common import UsageError, import_ref

ExecutorFactory = Callable[[], Executor]

BUILT_IN = ("http", "subprocess", "ssh")


def comma_list(text: str) -> list[str]:
    """``a,b, c`` -> ``["a", "b", "c"]`` (an argparse type)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def add_options(parser: argparse.ArgumentParser) -> None:
    """The worker's executor options."""
    x = parser.add_argument_group("executors (call is always on; the others only when asked for)")
    refs = "http, subprocess, ssh, or your own executor (a class, a factory or an instance "
    x.add_argument(
        "--executors",
        dest="executor",
        action="extend",
        type=comma_list,
        default=[],
        metavar="REF[,REF]",
        help=f"also run these kinds: {refs}named module:attr)",
    )
    x.add_argument(
        "--executor",
        "-x",
        dest="executor",
        action="append",
        default=[],
        metavar="REF",
        help="one of --executors (repeatable)",
    )
    _subprocess_options(x)
    _http_options(x)
    _ssh_options(x)


def _subprocess_options(x: argparse._ArgumentGroup) -> None:
    x.add_argument("--allow-shell", action="store_true", help="subprocess: run cmd strings")
    x.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="subprocess: pass this variable on",
    )
    x.add_argument(
        "--allow-env",
        action="append",
        metavar="NAME",
        help="subprocess: a variable payloads may set (NAME_* for a prefix; default: any but "
        "LD_*, PYTHON*, PATH and others that change what programs load)",
    )
    x.add_argument(
        "--allow-cwd",
        action="append",
        default=[],
        metavar="DIR",
        help="subprocess: payloads may run in DIR or below (default: no payload cwd)",
    )


def _http_options(x: argparse._ArgumentGroup) -> None:
    x.add_argument("--http-allow-host", action="append", metavar="HOST", help="http allow-list")
    x.add_argument(
        "--http-allow-private",
        action="store_true",
        help="http: reach loopback, private and link-local addresses (refused by default)",
    )
    x.add_argument(
        "--http-allow-private-host",
        action="append",
        default=[],
        metavar="HOST|NET",
        help="http: this host name or IP network may be at such an address",
    )
    x.add_argument("--http-timeout", type=float, default=30.0)
    x.add_argument("--http-header", action="append", default=[], metavar="'Name: value'")
    x.add_argument("--http-follow-redirects", action="store_true")


def _ssh_options(x: argparse._ArgumentGroup) -> None:
    x.add_argument("--ssh-known-hosts", metavar="PATH", help="default ~/.ssh/known_hosts")
    x.add_argument("--ssh-user", help="default remote user")
    x.add_argument("--ssh-key", action="append", metavar="PATH", help="client key file")
    x.add_argument("--ssh-key-dir", metavar="DIR", help="where a payload's key_path may point")
    x.add_argument("--ssh-allow-host", action="append", metavar="HOST", help="ssh allow-list")
    x.add_argument(
        "--ssh-insecure-skip-host-key-check",
        action="store_true",
        help="accept any host key (never on a network you do not control)",
    )


def factories(args: argparse.Namespace) -> list[ExecutorFactory]:
    """One factory per executor the options ask for.

    Everything is checked and imported now; each call of a factory makes a fresh executor,
    so that no two workers made from them close each other's.

    Raises:
        UsageError: an unknown kind, an import that fails, a malformed header.
    """
    wanted = list(args.executor)
    if args.allow_shell or args.pass_env or args.allow_env or args.allow_cwd:
        wanted.append("subprocess")
    return [_factory(ref, args) for ref in dict.fromkeys(wanted)]


def _factory(ref: str, args: argparse.Namespace) -> ExecutorFactory:
    if ref == "subprocess":
        return lambda: kinds.SubprocessExecutor(
            allow_shell=args.allow_shell,
            pass_env=args.pass_env,
            allow_env=args.allow_env,
            allow_cwd=args.allow_cwd,
        )
    if ref == "http":
        headers = dict(_header(h) for h in args.http_header)
        http = _built_in("HTTPExecutor")
        return lambda: http(
            allow_hosts=args.http_allow_host,
            allow_private=args.http_allow_private or args.http_allow_private_host,
            timeout=args.http_timeout,
            headers=headers,
            follow_redirects=args.http_follow_redirects,
        )
    if ref == "ssh":
        ssh = _built_in("SSHExecutor")
        return lambda: ssh(
            known_hosts=args.ssh_known_hosts,
            insecure_skip_host_key_check=args.ssh_insecure_skip_host_key_check,
            username=args.ssh_user,
            client_keys=args.ssh_key,
            key_dir=args.ssh_key_dir,
            allow_hosts=args.ssh_allow_host,
        )
    if ":" not in ref:
        raise UsageError(f"unknown executor {ref!r}: use {', '.join(BUILT_IN)} or module:attr")
    obj: Any = import_ref(ref)
    if isinstance(obj, type) or not hasattr(obj, "run"):  # a class or a factory
        return obj  # type: ignore[no-any-return]
    return lambda: obj  # an instance: every worker shares it


def _built_in(name: str) -> Any:
    """A built-in executor class, imported now: an install without its extra fails here."""
    try:
        return getattr(kinds, name)
    except MissingExtra as exc:
        raise UsageError(str(exc)) from None


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise UsageError(f"--http-header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()
