"""The agent's side of the Docker Engine API: calls that keep the event loop free, the
shared client, and the handle on one task's container.

The docker SDK blocks: every call runs in a thread of its own (:func:`blocking`), so the
event loop never waits on the engine and long calls (``wait``, following logs) never
starve the default executor.  :class:`DockerContainer` is what a DOCKER task's runner
(:mod:`paddock.agent.docker_containerizer`) and, after an agent crash,
:mod:`paddock.agent.docker_recovery` hold: kill, wait (across an engine restart), copy
the logs, remove.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from paddock.agent.docker_oom import OomWatch

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

__all__ = [
    "API_TIMEOUT",
    "DockerContainer",
    "DockerUnavailable",
    "blocking",
    "docker_client",
    "error_text",
    "forget_client",
]

T = TypeVar("T")

#: Engine API calls other than the long ones (wait, logs) give up after this long.
API_TIMEOUT = 120.0


class DockerUnavailable(RuntimeError):
    """The Docker Engine API cannot be reached (or the docker package is missing)."""


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking call in a thread of its own and await its result.

    A fresh daemon thread per call (not the loop's default executor): ``wait`` and log
    following block for a container's whole life, and a few dozen of them would
    otherwise starve every ``asyncio.to_thread`` in the agent."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def run() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting coroutine
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, False, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, True, result)

    threading.Thread(
        target=run, name=f"docker-{getattr(fn, '__name__', 'call')}", daemon=True
    ).start()
    return await fut


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def docker_client(base_url: str) -> docker.APIClient:
    """The (shared, thread-safe) low-level client for ``base_url``; pings it when new."""
    with _clients_lock:
        client = _clients.get(base_url)
        if client is not None:
            return client
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a dependency of paddock
        raise DockerUnavailable(f"the docker package is not installed: {exc}") from None
    try:
        client = docker.APIClient(
            base_url=base_url, version="1.41", timeout=int(API_TIMEOUT), max_pool_size=64
        )
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker Engine API at {base_url}: {exc}"
        ) from None
    with _clients_lock:
        return _clients.setdefault(base_url, client)


def forget_client(base_url: str) -> None:
    """Drop a cached client (its engine went away); the next call connects anew."""
    with _clients_lock:
        client = _clients.pop(base_url, None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


def error_text(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation).strip()
    return str(exc).strip() or type(exc).__name__


@dataclasses.dataclass
class DockerContainer:
    """A task's container: kill it, wait for it, copy its logs, remove it.

    Stands in ``task.process`` (``process`` is truthy, ``kill(grace)`` is a coroutine),
    so the agent's kill path works unchanged."""

    client: Any
    container_id: str
    name: str
    sandbox: Path
    kill_requested: bool = False
    oom_killed: bool = False
    returncode: int | None = None
    oom_watch: OomWatch | None = None
    #: The container was removed by someone else while it ran.
    vanished: bool = False
    _exited: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    _log_threads: list[threading.Thread] = dataclasses.field(default_factory=list)

    @property
    def process(self) -> str:
        return self.container_id  # "there is something to kill" for Agent.kill_task

    async def start(self) -> None:
        await blocking(self.client.start, self.container_id)
        await self.watch_oom()

    async def watch_oom(self) -> None:
        """Listen for OOM on the container's memory cgroup (see :mod:`docker_oom`)."""

        def watch() -> OomWatch | None:
            pid = self.client.inspect_container(self.container_id)["State"].get("Pid")
            return OomWatch.start_for(int(pid or 0))

        try:
            self.oom_watch = await blocking(watch)
        except Exception as exc:
            log.debug("container %s: no OOM watch: %s", self.name, exc)

    async def describe(self, host_ip: str) -> dict[str, Any] | None:
        """A v1 ContainerStatus (container id, its address, its pid) for TASK_RUNNING;
        None when the engine cannot say."""
        try:
            info = await blocking(self.client.inspect_container, self.container_id)
        except Exception as exc:
            log.debug("container %s: no status: %s", self.name, exc)
            return None
        settings = info.get("NetworkSettings") or {}
        mode = (info.get("HostConfig") or {}).get("NetworkMode")
        ip = host_ip if mode == "host" else settings.get("IPAddress")
        if not ip:
            for net in (settings.get("Networks") or {}).values():
                if isinstance(net, dict) and net.get("IPAddress"):
                    ip = net["IPAddress"]
                    break
        out: dict[str, Any] = {"container_id": {"value": self.container_id}}
        if ip:
            out["network_infos"] = [{"ip_addresses": [{"protocol": "IPv4", "ip_address": ip}]}]
        pid = (info.get("State") or {}).get("Pid")
        if isinstance(pid, int) and pid > 0:
            out["executor_pid"] = pid
        return out

    def follow_logs(self, since: float | None = None) -> None:
        """Copy stdout and stderr into the sandbox's files until the container ends."""
        for stream in ("stdout", "stderr"):
            t = threading.Thread(
                target=self._copy_log,
                args=(stream, since),
                name=f"docker-logs-{self.name}-{stream}",
                daemon=True,
            )
            t.start()
            self._log_threads.append(t)

    def _copy_log(self, stream: str, since: float | None) -> None:
        try:
            kwargs: dict[str, Any] = {
                "stdout": stream == "stdout",
                "stderr": stream == "stderr",
                "stream": True,
                "follow": True,
            }
            if since is not None:
                kwargs["since"] = since
            chunks = self.client.logs(self.container_id, **kwargs)
            with open(self.sandbox / stream, "ab", buffering=0) as out:
                for chunk in chunks:
                    out.write(chunk)
        except Exception as exc:  # the container went away mid-copy: nothing more to copy
            log.debug("container %s: %s copy ended: %s", self.name, stream, exc)

    async def logs_done(self, timeout: float = 5.0) -> None:
        """Give the log copies a moment to drain after the container ended."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for t in self._log_threads:
            left = deadline - loop.time()
            if left > 0:
                await blocking(t.join, left)

    async def wait(self) -> int:
        """The container's exit status (and whether the engine saw it OOM-killed).

        When the engine goes away meanwhile (a restarted podman service), the container
        goes on running: keep asking, backing off to 10 s, and copy the logs on once the
        engine answers again.  A container removed behind the agent's back ends the wait
        with :attr:`vanished` set."""
        delay = 0.5
        while True:
            try:
                result = await blocking(self.client.wait, self.container_id, timeout=None)
                code = int(result.get("StatusCode", -1))
                break
            except Exception as exc:
                if getattr(exc, "status_code", None) == 404:
                    self.vanished = True
                    code = -1
                    break
                log.warning(
                    "container %s: waiting failed (%s); asking again in %.1f s",
                    self.name,
                    error_text(exc),
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            if self.kill_requested:  # a stop sent while the engine was away was lost
                with contextlib.suppress(Exception):
                    await blocking(self.client.kill, self.container_id)
            if not any(t.is_alive() for t in self._log_threads):
                stdout = self.sandbox / "stdout"
                self._log_threads.clear()
                self.follow_logs(since=stdout.stat().st_mtime if stdout.exists() else None)
        try:
            state = (await blocking(self.client.inspect_container, self.container_id))["State"]
            self.oom_killed = bool(state.get("OOMKilled"))
            if code == -1 and isinstance(state.get("ExitCode"), int):
                code = state["ExitCode"]
        except Exception as exc:
            log.warning("container %s: inspect after exit failed: %s", self.name, exc)
        if self.oom_watch is not None and self.oom_watch.oom and code == 137:
            self.oom_killed = not self.kill_requested
        self.returncode = code
        self._exited.set()
        return code

    async def kill(self, grace: float) -> None:
        """Stop: SIGTERM, ``grace`` seconds (rounded up; the API takes whole seconds),
        then SIGKILL."""
        self.kill_requested = True
        if self._exited.is_set():
            return
        try:
            await blocking(self.client.stop, self.container_id, timeout=math.ceil(max(grace, 0)))
        except Exception as exc:
            log.warning("container %s: stop failed: %s; killing it", self.name, exc)
            with contextlib.suppress(Exception):
                await blocking(self.client.kill, self.container_id)

    async def remove(self) -> None:
        try:
            await blocking(self.client.remove_container, self.container_id, v=True, force=True)
        except Exception as exc:
            log.warning("container %s: remove failed: %s", self.name, exc)
