"""``from pyjobkit.executors.docker import DockerExecutor``: each job runs in a one-shot
container, over the Docker Engine API (:mod:`aiodocker`, the ``docker`` extra).

Payload::

    {"image": "alpine:3.20",          # required (or the executor's default_image)
     "command": ["echo", "hello"],    # optional: a list, or a string passed as one argument
     "env": {"KEY": "value"},         # optional
     "timeout_s": 600,                # optional: the executor's default_timeout_s
     "pull": True}                    # optional: pull the image first (the default)

The container runs to its end; its output goes to the job's log line by line, with its stream,
and the result is ``{"exit_code": 0, "stdout", "stderr", "container_id"}`` (the last
`output_limit` characters of each). A non-zero exit raises :class:`DockerExecutionError`
(``exit_code``, ``stdout``, ``stderr``), so the job's retry policy applies; a run past its
``timeout_s`` raises :class:`~redisjobs.errors.JobTimeout`. However the run ends (timeout and
cancel included) the container is removed, killed first if it still runs. Each container is
labelled ``redisjobs.job=<job id>``, so one left by a worker that died can be found.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass
from typing import Any

from ...errors import JobTimeout, MissingExtra, PayloadError
from ...executors._common import env_map, fields, opt_seconds

__all__ = ["DockerDependencyMissing", "DockerExecutionError", "DockerExecutor"]

log = logging.getLogger("pyjobkit.executors.docker")

JOB_LABEL = "redisjobs.job"
"""The label each container carries, its value the job's id."""

_EXAMPLE = '{"image": "alpine:3.20", "command": ["echo", "hi"]}'
_EXCERPT = 300


class DockerDependencyMissing(MissingExtra, RuntimeError):
    """:mod:`aiodocker` (the ``docker`` extra) is not installed."""


class DockerExecutionError(RuntimeError):
    """The container exited with a non-zero status. A plain error, as in Pyjobkit, so the
    worker's ``retry_policy`` decides when the job runs again.

    Args:
        exit_code: the container's exit status.
        stdout: what it wrote to stdout (the tail kept).
        stderr: what it wrote to stderr (the tail kept).
    """

    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        said = (stderr or stdout).strip()[-_EXCERPT:]
        super().__init__(f"container exited with status {exit_code}: {said or '(no output)'}")
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr


def _aiodocker() -> Any:
    try:
        return importlib.import_module("aiodocker")
    except ImportError as exc:
        raise DockerDependencyMissing("the docker executor", "docker", exc) from None


@dataclass(frozen=True, slots=True)
class _Spec:
    image: str
    config: dict[str, Any]
    timeout: float
    pull: bool


def _tagged(image: str) -> str:
    """`image` with ``:latest`` when it names no tag or digest: the Engine API pulls every
    tag of an untagged name (the ``docker`` command line adds ``latest`` itself)."""
    name = image.rsplit("/", 1)[-1]  # a registry's host:port is not a tag
    return image if ":" in name or "@" in image else f"{image}:latest"


def _command(value: Any) -> list[str]:
    argv = value if isinstance(value, list | tuple) else [value]
    if not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise PayloadError('"command" must be a string or a non-empty list of strings')
    return list(argv)


class DockerExecutor:
    """Runs each job in a one-shot container.

    Args:
        default_timeout_s: seconds a container may run when its payload sets no ``timeout_s``.
        default_image: the image of payloads that name none.
        output_limit: characters of each of stdout and stderr kept in the result.
    """

    kind = "docker"

    def __init__(
        self,
        *,
        default_timeout_s: float = 600,
        default_image: str | None = None,
        output_limit: int = 64 * 1024,
    ) -> None:
        self.default_timeout_s = default_timeout_s
        self.default_image = default_image
        self.output_limit = output_limit

    def _spec(self, job_id: Any, payload: Any) -> _Spec:
        p = fields(payload, self.kind, _EXAMPLE)
        image = p.get("image") or self.default_image
        if not isinstance(image, str) or not image.strip():
            raise PayloadError(f"a docker payload needs an 'image', such as {_EXAMPLE}")
        config: dict[str, Any] = {
            "Image": image,
            "Env": [f"{k}={v}" for k, v in env_map(p).items()],
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,  # a TTY would merge stderr into stdout
            "Labels": {JOB_LABEL: str(job_id)},
        }
        if p.get("command") is not None:
            config["Cmd"] = _command(p["command"])
        timeout = opt_seconds(p, "timeout_s", self.default_timeout_s)
        assert timeout is not None
        pull = p.get("pull", True)
        if not isinstance(pull, bool):
            raise PayloadError('"pull" must be true or false')
        return _Spec(image, config, timeout, pull)

    async def run(self, *, job_id: Any, payload: Any, ctx: Any) -> dict[str, Any]:
        """Run the payload's container to its end; its exit code and output tails.

        Raises:
            PayloadError: a payload without an image, or with an ill-typed field.
            DockerDependencyMissing: aiodocker is not installed.
            DockerExecutionError: the container exited with a non-zero status.
            JobTimeout: the container ran past its ``timeout_s``.
        """
        spec = self._spec(job_id, payload)  # a bad payload fails before anything loads
        docker = _aiodocker().Docker()
        try:
            if spec.pull:
                await ctx.log(f"pulling image {spec.image}")
                await docker.images.pull(_tagged(spec.image))
            container = await _start(docker, spec.config)
            try:
                return await self._finish(container, spec, ctx)
            finally:
                await _remove(container)
        finally:
            await docker.close()

    async def _finish(self, container: Any, spec: _Spec, ctx: Any) -> dict[str, Any]:
        await ctx.log(f"started container {container.id[:12]}")
        try:
            async with asyncio.timeout(spec.timeout):
                await container.wait()
        except TimeoutError:
            await ctx.log(f"container timed out after {spec.timeout:g} s", stream="stderr")
            raise JobTimeout(f"container timed out after {spec.timeout:g} s") from None
        stdout = await self._output(container, ctx, "stdout")
        stderr = await self._output(container, ctx, "stderr")
        state = await container.show()
        exit_code = int(state.get("State", {}).get("ExitCode", -1))
        if exit_code != 0:
            raise DockerExecutionError(exit_code, stdout, stderr)
        return {
            "exit_code": exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "container_id": container.id,
        }

    async def _output(self, container: Any, ctx: Any, stream: str) -> str:
        lines = await container.log(stdout=stream == "stdout", stderr=stream == "stderr")
        for line in lines:
            await ctx.log(line.rstrip("\n"), stream=stream)
        return "".join(lines)[-self.output_limit :]


async def _start(docker: Any, config: dict[str, Any]) -> Any:
    """Create and start the container. When that fails or is cancelled midway, a container it
    did create is found by its label and removed."""
    try:
        return await docker.containers.run(config=config)
    except BaseException:
        await asyncio.shield(_sweep(docker, config["Labels"][JOB_LABEL]))
        raise


async def _sweep(docker: Any, job: str) -> None:
    try:
        found = await docker.containers.list(all=True, filters={"label": [f"{JOB_LABEL}={job}"]})
    except Exception as exc:
        log.warning("could not list the containers of job %s: %s", job, exc)
        return
    for container in found:
        await _remove(container)


async def _remove(container: Any) -> None:
    """Remove the container, killing it if it still runs. Shielded: a cancel of the job must
    not leave it running."""
    try:
        await asyncio.shield(container.delete(force=True))
    except Exception as exc:  # the job's own outcome matters more than the clean-up's
        log.warning("could not remove container %s: %s", container.id[:12], exc)
