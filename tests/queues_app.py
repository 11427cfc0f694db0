"""An App whose tasks use two queues (``tests.queues_app:app``), for worker processes.

The queues are set per test: ``QUEUES_APP_FIRST`` and ``QUEUES_APP_SECOND`` in the worker's
environment. Both tasks write their runs into the ledger of :func:`tests.jobs.ledger`.
"""

from __future__ import annotations

import os

from redisjobs import App
from tests import jobs

app = App(queue=os.environ.get("QUEUES_APP_FIRST", "first"))
app.task(name="first")(jobs.ledger)
app.task(name="second", queue=os.environ.get("QUEUES_APP_SECOND", "second"))(jobs.ledger)
