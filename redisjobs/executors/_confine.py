"""What a subprocess payload may choose about its process: environment variables and directory.

A payload names a command's ``env`` and ``cwd``. Some variables change what a program loads or
runs before it even starts (``LD_PRELOAD``, ``PYTHONSTARTUP``, ``BASH_ENV``, ``PATH``, …), and a
directory may hold files a program trusts (``.git/config``, ``pyproject.toml``, …): by default a
payload may set no such variable and no directory at all; the worker opens either up by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from ..errors import PayloadError

DENIED_PREFIXES = (
    "LD_",  # the dynamic linker: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, …
    "DYLD_",  # the same on macOS
    "PYTHON",  # PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, PYTHONINSPECT, …
    "PERL",  # PERL5LIB, PERL5OPT, PERLLIB, PERL5DB
    "RUBY",  # RUBYOPT, RUBYLIB
    "NODE_",  # NODE_OPTIONS (--require), NODE_PATH
    "GIT_",  # GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_CONFIG_*: commands git runs
    "LUA_",  # LUA_INIT runs code
    "BASH_FUNC_",  # exported shell functions
    "MALLOC_",  # allocator tunables
)
DENIED_NAMES = frozenset(
    {
        "PATH",  # which program an argv names
        "IFS",
        "ENV",  # sh and bash read and run the file it names
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "CDPATH",
        "GLOBIGNORE",
        "GCONV_PATH",  # glibc loads modules from it
        "GLIBC_TUNABLES",
        "NLSPATH",
        "LOCPATH",
        "HOSTALIASES",
        "RES_OPTIONS",
        "LOCALDOMAIN",
        "OPENSSL_CONF",  # can load engines
        "OPENSSL_ENGINES",
        "JAVA_TOOL_OPTIONS",  # -javaagent
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "TCLLIBPATH",
        "PHPRC",
        "PHP_INI_SCAN_DIR",
        "GEM_PATH",
        "GEM_HOME",
    }
)


class EnvPolicy:
    """Names of environment variables a payload may set.

    Args:
        allow: the names payloads may set (``APP_*`` for a prefix); they may include names
            of the deny-list, since the worker chose them. None: any name but the deny-list's.
    """

    def __init__(self, allow: Iterable[str] | None) -> None:
        self._allow = None if allow is None else frozenset(allow)

    def _allows(self, name: str) -> bool:
        if self._allow is None:
            upper = name.upper()  # Windows ignores case; elsewhere it costs nothing
            return upper not in DENIED_NAMES and not upper.startswith(DENIED_PREFIXES)
        return name in self._allow or any(
            a.endswith("*") and name.startswith(a[:-1]) for a in self._allow
        )

    def check(self, env: Mapping[str, str]) -> None:
        """PayloadError naming the first variable the payload may not set."""
        for name in env:
            if self._allows(name):
                continue
            if self._allow is None:
                why = "it changes what programs load or run"
                how = "allow_env=[...] or --allow-env NAME to allow it"
            else:
                why = "it is not among this worker's allowed names"
                how = "allow_env / --allow-env"
            raise PayloadError(f"refused: payload env sets {name!r}: {why} ({how})")


class CwdPolicy:
    """Directories a payload's ``cwd`` may be: one of `roots` or a directory below one.

    The payload's path is resolved first (symlinks, ``..``), and the resolved path is the one
    the command runs in, so what was checked is what is used.
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        self._roots = tuple(os.path.realpath(r) for r in roots)

    def resolve(self, cwd: str | None) -> str | None:
        """The directory to run in, or PayloadError."""
        if cwd is None:
            return None
        if not self._roots:
            raise PayloadError(
                'refused: payload field "cwd" needs a worker that allows directories '
                "(allow_cwd=[...] or --allow-cwd DIR)"
            )
        try:
            real = os.path.realpath(cwd)
        except ValueError as exc:  # a NUL in the path
            raise PayloadError(f"bad cwd {cwd!r}: {exc}") from None
        if not any(
            real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self._roots
        ):
            raise PayloadError(
                f"refused: cwd {cwd!r} (resolved {real!r}) is outside the directories this "
                "worker allows (allow_cwd / --allow-cwd)"
            )
        return real
