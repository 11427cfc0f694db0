"""redisjobs for sync code: :class:`Client`, the producer calls of :class:`redisjobs.Client`
(enqueue, get, wait, cancel, list, stats) for Flask, Django, threads and scripts.

It runs on redis-py's sync client, with no event loop, and is safe to share between threads.
"""

from .client import Client

__all__ = ["Client"]
