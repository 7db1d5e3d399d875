"""COMMAND health checks of DOCKER tasks, run inside the task's container.

Mesos's docker executor runs a command check in the container's namespaces, so a
Marathon app can check with ``curl localhost:8080`` or a program that only its image
has.  Here the check is a Docker Engine API exec in the running container (the
container's user, environment and root file system; the working directory is the
sandbox mount ``/mnt/mesos/sandbox``, where process tasks' checks run too; the check
command's own ``environment`` is set on top of the container's), with the
same rules as a check on the host: exit status 0 is healthy, anything else (a missing
program is 126/127) unhealthy, and ``timeout_seconds`` bounds it.  A check that runs
too long is killed: the exec's process (a host pid the engine reports) and what it
started are SIGKILLed from the host, as the host runner kills its process group.

A check the engine could not run (it is unreachable, answers 5xx or does not answer in
time) raises :class:`~paddock.agent.healthcheck.CheckNotRun`: neither healthy nor
unhealthy, so an engine restart does not get healthy tasks killed.  An answer about the
container (404: it is gone) is a failed check.

HTTP and TCP checks stay on the host (:mod:`paddock.agent.healthcheck`): they target
the task's host port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from typing import Any

from paddock.agent.docker_spec import CONTAINER_SANDBOX
from paddock.agent.healthcheck import CheckNotRun, HealthCheck

log = logging.getLogger(__name__)

__all__ = ["ContainerCommandCheck", "engine_unreachable"]

#: How much of a failed check's output its health detail quotes.
OUTPUT_TAIL = 200
#: How much of a check's output is kept while it runs.
OUTPUT_KEEP = 4096
#: The share of a check's ``timeout_seconds`` the engine has to create the exec (and,
#: after the command, of what is left to report its exit status); an engine slower
#: than that has not run the check (:class:`~paddock.agent.healthcheck.CheckNotRun`),
#: while the command itself keeps the whole timeout.
ENGINE_SHARE = 0.5


def _descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren... from ``/proc`` (best effort)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants (children first found, then all killed)."""
    if pid <= 0:
        return
    for p in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)


class ContainerCommandCheck:
    """Runs a COMMAND check in one container (a ``run_command`` for
    :class:`~paddock.agent.healthcheck.HealthChecker`)."""

    def __init__(self, client: Any, container_id: str) -> None:
        self.client = client
        self.container_id = container_id

    async def __call__(self, hc: HealthCheck) -> tuple[bool, str]:
        from paddock.agent.docker_containerizer import blocking

        loop = asyncio.get_running_loop()
        deadline = loop.time() + hc.timeout
        try:
            async with asyncio.timeout(hc.timeout * ENGINE_SHARE):
                created = await blocking(
                    self.client.exec_create,
                    self.container_id,
                    list(hc.command),
                    stdout=True,
                    stderr=True,
                    workdir=CONTAINER_SANDBOX,
                    environment=[f"{name}={value}" for name, value in hc.environment] or None,
                )
        except TimeoutError:
            raise CheckNotRun(_no_answer("create the check", hc.timeout * ENGINE_SHARE)) from None
        except Exception as exc:
            _raise_if_unreachable(exc, "create the check")
            return False, f"health check could not run in the container: {_text(exc)}"
        exec_id = str(created["Id"])
        try:
            output = await blocking(self._start, exec_id)
        except asyncio.CancelledError:  # the timeout (or the task ended): kill the check
            threading.Thread(
                target=self._kill, args=(exec_id,), name="docker-check-kill", daemon=True
            ).start()
            raise
        except Exception as exc:
            _raise_if_unreachable(exc, "run the check")
            return False, f"health check could not run in the container: {_text(exc)}"
        # What is left of the check's time, but not all of it: an engine that does not
        # answer here must not look like the check timing out.
        inspect_within = max(0.0, deadline - loop.time()) * ENGINE_SHARE
        try:
            async with asyncio.timeout(inspect_within):
                info = await blocking(self.client.exec_inspect, exec_id)
        except TimeoutError:
            raise CheckNotRun(_no_answer("read the check's exit status", inspect_within)) from None
        except Exception as exc:
            _raise_if_unreachable(exc, "read the check's exit status")
            return False, f"health check status unknown: {_text(exc)}"
        code = info.get("ExitCode")
        if not isinstance(code, int):
            return False, "health check status unknown: the engine reported no exit code"
        detail = f"command exited with status {code} in the container"
        if code != 0:
            text = output.decode(errors="replace").strip()
            if text:
                detail += f": {text[-OUTPUT_TAIL:]}"
        return code == 0, detail

    def _start(self, exec_id: str) -> bytes:
        """Run the exec to its end; only the tail of its output is kept (a check that
        prints without end must not fill the agent's memory)."""
        tail = b""
        for chunk in self.client.exec_start(exec_id, stream=True):
            if isinstance(chunk, bytes):
                tail = (tail + chunk)[-OUTPUT_KEEP:]
        return tail

    def _kill(self, exec_id: str) -> None:
        try:
            info = self.client.exec_inspect(exec_id)
        except Exception as exc:
            log.debug("container %s: cannot find the timed-out check: %s", self.container_id, exc)
            return
        pid = info.get("Pid")
        if info.get("Running") and isinstance(pid, int):
            kill_tree(pid)


def engine_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (from a docker SDK call) means the engine could not be talked to
    (no socket, connection refused or broken, a timeout, a 5xx server error), as
    opposed to an answer about the container (404: no such container, 409: not
    running, an OCI runtime error: the command cannot be run there)."""
    import requests
    from docker.errors import APIError

    if isinstance(exc, APIError):
        status = exc.status_code
        if status is not None and "OCI runtime" in str(exc.explanation or ""):
            return False  # the engine answered: the runtime cannot run it in the container
        return status is None or status >= 500
    # requests' ConnectionError/Timeout/ChunkedEncodingError, the socket's own OSErrors
    return isinstance(exc, requests.RequestException | OSError)


def _raise_if_unreachable(exc: Exception, doing: str) -> None:
    if engine_unreachable(exc):
        raise CheckNotRun(f"the container engine is unreachable (could not {doing}): {_text(exc)}")


def _no_answer(doing: str, seconds: float) -> str:
    return f"the container engine did not answer within {seconds:g} s (could not {doing})"


def _text(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip() or type(exc).__name__
