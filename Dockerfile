# The fleet image: redisjobs and the fleet example (docker-compose.yml runs it as worker,
# dashboard, producer and subscriber).
FROM python:3.11-slim

# Build and install the package from /src, so the code that runs is the installed copy.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY redisjobs ./redisjobs
RUN pip install --no-cache-dir '.[worker,dashboard]'

# Job functions must be importable by the worker: the examples live in /app, on the path.
WORKDIR /app
COPY examples ./examples
ENV PYTHONPATH=/app \
    PYTHONUNBUFFERED=1

RUN useradd --system --uid 10001 --no-create-home redisjobs
USER redisjobs

# SIGTERM makes a worker stop fetching and finish its jobs within --grace: give it grace + 5 s
# before SIGKILL (stop_grace_period in docker-compose.yml).
STOPSIGNAL SIGTERM
CMD ["redisjobs", "worker"]
