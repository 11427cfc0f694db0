"""Case 3: a custom executor for remote commands over SSH, as the seed writes it.

Differences: the target comes from the environment (``SSH_HOST``, ``SSH_PORT``, ``SSH_USER``,
``SSH_KEY``, ``SSH_KNOWN_HOSTS``) so the script runs against a real server, and the port and
known_hosts file are passed to asyncssh. redisjobs also ships ``SSHExecutor`` (kind ``ssh``),
which adds connection reuse, streaming output, cancellation and keeps key paths out of payloads.
"""

import asyncio
import os

from asyncssh import connect as ssh_connect

from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.backends.memory import MemoryBackend
from redisjobs.pyjobkit.contracts import ExecContext, Executor


class SSHExecutor(Executor):
    kind = "ssh"

    async def run(self, *, job_id, payload, ctx: ExecContext):  # type: ignore[no-untyped-def]
        host = payload["host"]
        cmd = payload["cmd"]
        username = payload.get("username", "user")
        key_path = payload.get("key_path")

        await ctx.log(f"Подключение к {host} для задачи {job_id}")
        async with ssh_connect(
            host,
            port=payload.get("port", 22),
            username=username,
            client_keys=[key_path],
            known_hosts=os.environ.get("SSH_KNOWN_HOSTS", ()),
        ) as conn:
            result = await conn.run(cmd)
            if result.exit_status != 0:
                raise RuntimeError("Ошибка SSH: " + str(result.stderr))
            return {"output": result.stdout}


async def main() -> None:
    engine = Engine(backend=MemoryBackend(), executors=[SSHExecutor()])
    job_id = await engine.enqueue(
        kind="ssh",
        payload={
            "host": os.environ.get("SSH_HOST", "example.com"),
            "port": int(os.environ.get("SSH_PORT", "22")),
            "cmd": "echo remote script ran on $(hostname)",
            "username": os.environ.get("SSH_USER", "deploy"),
            "key_path": os.environ.get("SSH_KEY", "/path/to/key"),
        },
    )
    await Worker(engine, max_concurrency=2).run(once=True)
    job = await engine.get(job_id)
    print("Статус:", job["status"], job["result"])
    await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
