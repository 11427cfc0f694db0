"""An app with a scheduled task, served by ``redisjobs worker tests.schedule_app:app`` in the
CLI's tests (its queue from ``$SCHEDULE_APP_QUEUE``, so that each test has its own)."""

from __future__ import annotations

import os

from redisjobs import App

app = App(queue=os.environ.get("SCHEDULE_APP_QUEUE", "schedule-app"))


@app.task(every=0.2)
def beat() -> str:
    return "beat"
