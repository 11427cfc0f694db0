FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY redisjobs ./redisjobs
RUN pip install --no-cache-dir '.[uvloop]'
# give workers grace + 5 s before SIGKILL (docker-compose stop_grace_period)
STOPSIGNAL SIGTERM
ENTRYPOINT ["redisjobs"]
CMD ["worker"]
