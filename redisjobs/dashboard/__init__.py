"""A live dashboard and a JSON API for redisjobs (the ``dashboard`` extra).

``redisjobs dashboard`` serves both; :func:`create_app` gives the same app to mount in your own
ASGI server, and :func:`create_api` the API alone::

    from redisjobs import Client
    from redisjobs.dashboard import create_app

    app = create_app(Client("redis://localhost:6379/0"), read_only=True)
"""

from __future__ import annotations

from .api import create_api
from .app import create_app

__all__ = ["create_api", "create_app"]
