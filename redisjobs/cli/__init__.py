"""The ``redisjobs`` command: run workers, enqueue, inspect and follow jobs, run the demo.

Exit status: 0 done, 1 failed (a job that failed, an unknown job, an unreachable Redis),
2 a bad argument, 130 interrupted. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from redis.exceptions import RedisError

from ..errors import RedisJobsError
from . import logformat, parser
from .common import UsageError
from .parser import PYJOBKIT
from .serve import loop_factory

__all__ = ["main"]


def _fail(message: object, status: int) -> int:
    print(f"redisjobs: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``redisjobs`` command line `argv` (default: ``sys.argv[1:]``); its exit status."""
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == [PYJOBKIT]:  # a command line of its own (its flags are not ours)
        from ..pyjobkit.cli import run

        return run(given[1:])
    args = parser.build().parse_args(argv)
    # What `worker --processes N` hands on to its children.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    level = args.log_level or ("INFO" if args.command == "worker" else "WARNING")
    logformat.configure(level, args.log_format)
    try:
        with asyncio.Runner(loop_factory=loop_factory(args)) as runner:
            return int(runner.run(args.run(args)))
    except UsageError as exc:
        return _fail(exc, 2)
    except RedisJobsError as exc:
        return _fail(exc, 1)
    except RedisError as exc:
        return _fail(f"Redis error: {exc}", 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): point stdout at /dev/null so that the
        # interpreter's final flush does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        logging.shutdown()
