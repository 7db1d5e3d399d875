"""DOCKER tasks: run a TaskInfo's container through the Docker Engine API.

``--containerizers docker,mesos`` turns it on; ``--docker-socket`` names the engine
(Docker, or podman's Docker-compatible ``podman system service``).  A task's life:
``TASK_STARTING`` -> image pulled (when missing, or always with ``force_pull_image``)
-> container created (named ``paddock-<agent id>-<task id>``, labelled with the agent,
framework, task and run, see :mod:`paddock.agent.docker_spec`) and its id checkpointed
-> started -> ``TASK_RUNNING`` -> its stdout/stderr copied into the sandbox while it
runs -> exit -> ``TASK_FINISHED`` (status 0) / ``TASK_FAILED`` (other status;
``REASON_CONTAINER_LIMITATION_MEMORY`` when the engine says it was OOM-killed) /
``TASK_KILLED`` -> container removed.  A kill stops the container with the task's grace
period (SIGTERM, then SIGKILL).  Every failure ends the task with a terminal update
naming why; the runner never raises.

The engine's client, calls off the event loop and the container handle
(:class:`~paddock.agent.docker_engine.DockerContainer`) are
:mod:`paddock.agent.docker_engine`'s.  After an agent crash,
:mod:`paddock.agent.docker_recovery` reattaches the containers (or removes them) with
the same handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from paddock.agent.docker_auth import (
    DockerConfigError,
    merge_auths,
    pull_arguments,
    sandbox_docker_auths,
    split_image,
)
from paddock.agent.docker_checks import ContainerCommandCheck
from paddock.agent.docker_engine import (
    DockerContainer,
    DockerUnavailable,
    blocking,
    docker_client,
    error_text,
)
from paddock.agent.docker_spec import (
    LABEL_PREFIX,
    ContainerSpec,
    SpecError,
    container_spec,
)
from paddock.agent.fetcher import FetchError, fetch_uris
from paddock.agent.healthcheck import HealthCheck, parse_health_check
from paddock.agent.task_outcome import container_end, health_kill_end
from paddock.agent.task_runners import agent_task_environment, end_on_error, watch_health
from paddock.agent.task_user import TaskUserError, chown_sandbox, resolve_task_user

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent, Task

log = logging.getLogger(__name__)

__all__ = [
    "DockerContainer",
    "DockerUnavailable",
    "blocking",
    "container_of",
    "docker_client",
    "follow_container",
    "guard_runner",
    "health_check_for",
    "run_docker_task",
]

LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"
WORK_DIR_LABEL = LABEL_PREFIX + "work_dir"
RUN_ID_LABEL = LABEL_PREFIX + "run_id"


def container_of(task: Task) -> DockerContainer | None:
    """The task's container handle, if it runs (or ran) as a container."""
    handle: object = task.process
    return handle if isinstance(handle, DockerContainer) else None


def docker_task_environment(agent: Agent, task: Task) -> dict[str, str]:
    """The environment a DOCKER task gets: the same as a process task's."""
    return agent_task_environment(agent, task, base={})


def task_container(agent: Agent, task: Task, env: dict[str, str]) -> tuple[Any, Any]:
    """The container spec for ``task`` and its health check; raises SpecError or
    ValueError for a TaskInfo that cannot run."""
    spec = container_spec(
        info=task.info,
        agent_id=agent.agent_id or "",
        framework_id=task.framework_id,
        run_id=task.run_id,
        sandbox=task.sandbox,
        work_dir=agent.config.work_dir,
        environment=env,
    )
    return spec, health_check_for(task, spec)


async def run_docker_task(agent: Agent, task: Task) -> None:
    """The task's whole life on this agent; never raises (a bug ends the task FAILED)."""
    await guard_runner(agent, task, _run(agent, task))


async def guard_runner(agent: Agent, task: Task, body: Coroutine[Any, Any, None]) -> None:
    """Run ``body``; an unexpected error ends the task FAILED; the ended task's container
    is removed."""
    try:
        await end_on_error(
            agent,
            task,
            body,
            doing="running the container",
            failed="docker runner",
            logger=log,
        )
    finally:
        handle = container_of(task)
        if handle is not None and task.terminal:
            await handle.remove()


def _fail(agent: Agent, task: Task, message: str, reason: str = LAUNCH_FAILED) -> None:
    agent.report_status(task, "TASK_FAILED", source="SOURCE_AGENT", reason=reason, message=message)


async def _ensure_image(
    client: Any, image: str, force: bool, auths: dict[str, dict[str, str]] | None = None
) -> None:
    """Pull ``image`` unless the engine has it (always with ``force``), with the
    credentials ``auths`` has for its registry; raises RuntimeError naming the image
    and the engine's error."""
    if not force:
        try:
            await blocking(client.inspect_image, image)
            return
        except Exception as exc:
            if getattr(exc, "status_code", None) != 404 and "No such image" not in str(exc):
                raise RuntimeError(f"cannot inspect image {image}: {error_text(exc)}") from None
    repo, pull_kwargs = pull_arguments(image, auths)

    def pull() -> None:
        for event in client.pull(repo, **pull_kwargs):
            if isinstance(event, dict) and event.get("error"):
                raise RuntimeError(str(event["error"]).strip())

    try:
        await blocking(pull)
    except Exception as exc:
        raise RuntimeError(f"Failed to pull image {image}: {error_text(exc)}") from None


_split_image = split_image  # (tests import it from here)


async def _create(client: Any, spec: ContainerSpec) -> str:
    """Create the container.  A container of the same name that this agent (its work
    dir) left behind is removed first; one of another agent (same agent id and task id
    on the same engine, as test masters hand out) is left alone and this container
    gets the run id in its name."""

    def create() -> str:
        host_config = client.create_host_config(**spec.host_config_kwargs())
        result = client.create_container(host_config=host_config, **spec.create_kwargs())
        return str(result["Id"])

    try:
        return await blocking(create)
    except Exception as exc:  # Docker says 409; podman 4.3 says 500 "already in use"
        if getattr(exc, "status_code", None) != 409 and "already in use" not in str(exc):
            raise
    existing = await blocking(client.inspect_container, spec.name)
    labels = (existing.get("Config") or {}).get("Labels") or {}
    if labels.get(WORK_DIR_LABEL) == spec.labels[WORK_DIR_LABEL]:
        log.warning("removing a leftover container named %s", spec.name)
        await blocking(client.remove_container, spec.name, v=True, force=True)
    else:
        spec.name = f"{spec.name}-{spec.labels[RUN_ID_LABEL][:8]}"
        log.warning("container name taken by another agent's; using %s", spec.name)
    return await blocking(create)


def health_check_for(task: Task, spec: ContainerSpec | None) -> HealthCheck | None:
    """The task's health check; an HTTP/TCP port that is a bridged container port is
    checked through its host port (the agent checks from the host)."""
    health = parse_health_check(task.info.get("health_check"))
    if (
        health is not None
        and spec is not None
        and health.port in spec.host_port_for
        and health.port not in spec.port_bindings.values()
    ):
        health = dataclasses.replace(health, port=spec.host_port_for[health.port])
    return health


async def _fetch(agent: Agent, task: Task) -> bool:
    """Fetch ``command.uris`` into the sandbox (as Mesos does for DOCKER tasks: files
    at ``/mnt/mesos/sandbox``, a ``.docker/config.json`` for the pull); False when the
    task ended (fetch failed, or it was killed meanwhile)."""
    command = task.info.get("command")
    if not isinstance(command, dict) or not command.get("uris"):
        return True
    try:
        await fetch_uris(command["uris"], task.sandbox)
    except FetchError as exc:
        _fail(agent, task, f"Failed to fetch URIs: {exc}")
        return False
    if task.kill_requested:
        agent.report_status(task, "TASK_KILLED", message="Killed while fetching")
        return False
    return True


async def _give_sandbox(agent: Agent, task: Task) -> None:
    """A container with ``command.user`` gets a sandbox it can write: owned by the
    agent host's user of that name (as Mesos chowns a task's sandbox to its user), when
    the agent may switch users; otherwise the sandbox stays the agent's."""
    try:
        user = resolve_task_user(task.info, switch_user=agent.config.switch_user)
        if user is not None:
            await asyncio.to_thread(chown_sandbox, task.sandbox, user)
    except (TaskUserError, OSError) as exc:  # the image may know users the host does not
        log.debug("task %s: sandbox left to the agent's user: %s", task.task_id, exc)


async def _run(agent: Agent, task: Task) -> None:
    if task.kill_requested:
        agent.report_status(task, "TASK_KILLED", message="Killed before it was launched")
        return
    if "docker" not in agent.config.containerizers:
        _fail(
            agent,
            task,
            "This agent does not run Docker containers (--containerizers="
            + ",".join(agent.config.containerizers)
            + "); start it with --containerizers=docker,mesos",
        )
        return
    agent.report_status(task, "TASK_STARTING")
    env = docker_task_environment(agent, task)
    try:
        spec, health = task_container(agent, task, env)
    except (SpecError, ValueError) as exc:
        agent.report_status(
            task,
            "TASK_ERROR",
            source="SOURCE_AGENT",
            reason="REASON_TASK_INVALID",
            message=str(exc),
        )
        return
    task.sandbox.mkdir(parents=True, exist_ok=True)
    for name in ("stdout", "stderr"):
        (task.sandbox / name).touch()
    if not await _fetch(agent, task):
        return
    await _give_sandbox(agent, task)
    try:  # the agent's --docker-config, and what the task fetched (it wins)
        auths = merge_auths(agent.config.docker_auths, sandbox_docker_auths(task.sandbox))
    except DockerConfigError as exc:
        _fail(agent, task, f"Failed to read the Docker credentials: {exc}")
        return
    try:
        client = await blocking(docker_client, agent.config.docker_socket)
    except DockerUnavailable as exc:
        _fail(agent, task, str(exc))
        return
    try:
        await _ensure_image(client, spec.image, spec.force_pull, auths)
    except RuntimeError as exc:
        _fail(agent, task, str(exc))
        return
    if task.kill_requested:
        agent.report_status(task, "TASK_KILLED", message="Killed while pulling the image")
        return
    try:
        container_id = await _create(client, spec)
    except Exception as exc:
        _fail(agent, task, f"Failed to create container for image {spec.image}: {error_text(exc)}")
        return
    handle = DockerContainer(client, container_id, spec.name, task.sandbox)
    task.process = handle  # type: ignore[assignment]  # duck-typed: process + kill(grace)
    agent.checkpoint_task(task, container_id=container_id, container_name=spec.name)
    if task.kill_requested:
        agent.report_status(task, "TASK_KILLED", message="Killed before the container started")
        return
    try:
        await handle.start()
    except Exception as exc:
        _fail(agent, task, f"Failed to start container {spec.name}: {error_text(exc)}")
        return
    handle.follow_logs()
    await follow_container(agent, task, handle, health, env, report_running=True)


async def follow_container(
    agent: Agent,
    task: Task,
    handle: DockerContainer,
    health: HealthCheck | None,
    env: dict[str, str],
    *,
    report_running: bool,
    running_message: str | None = None,
) -> None:
    """From a started container to its terminal update (also used after reattaching)."""
    checker: asyncio.Task[None] | None = None
    unhealthy: list[str] = []
    if task.kill_requested:
        agent.background(handle.kill(task.kill_grace or 0))
    else:
        if report_running:
            agent.report_status(
                task,
                "TASK_RUNNING",
                message=running_message,
                container_status=await handle.describe(agent.config.ip),
            )
        if health is not None:
            check_env = {**env, **_host_env()}
            # COMMAND checks run inside the container, as Mesos's docker executor runs them.
            in_container = None
            if health.kind == "COMMAND":
                in_container = ContainerCommandCheck(handle.client, handle.container_id)
            checker = asyncio.create_task(
                watch_health(agent, task, health, check_env, unhealthy, in_container)
            )
    try:
        code = await handle.wait()
    finally:
        if checker is not None:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
    await handle.logs_done()
    if unhealthy:
        health_kill_end(unhealthy[0]).report(agent, task)
    else:
        container_end(
            code,
            name=handle.name,
            killed=handle.kill_requested,
            oom=handle.oom_killed,
            vanished=handle.vanished,
        ).report(agent, task)


def _host_env() -> dict[str, str]:
    """PATH and friends for checks run on the host (COMMAND checks run in the container)."""
    import os

    return {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "TMPDIR")}
