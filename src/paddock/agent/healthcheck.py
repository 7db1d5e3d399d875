"""Task health checks run by the agent (Mesos's ``TaskInfo.health_check``,
``docs/health-checks.md``): ``COMMAND``, ``HTTP`` and ``TCP``.

After ``delay_seconds`` (15) a check runs every ``interval_seconds`` (10) with a
``timeout_seconds`` (20) limit.  The first result and every change of health are reported
as ``TASK_RUNNING`` updates with ``healthy`` and ``REASON_TASK_HEALTH_CHECK_STATUS_UPDATED``.
Failures during ``grace_period_seconds`` (10, counted from the launch) do not count
until a first success; after ``consecutive_failures`` (3) counted failures the task is
killed.  HTTP checks GET ``scheme://127.0.0.1:port/path`` and accept 2xx/3xx; TCP checks
connect; COMMAND checks run ``/bin/sh -c`` (or argv) in the sandbox with the task's
environment plus the check command's own ``environment`` and accept exit status 0; a
``run_command`` given to :class:`HealthChecker` runs COMMAND checks elsewhere instead
(DOCKER tasks: inside the container, :mod:`paddock.agent.docker_checks`).  A check that
could not be performed at all (:class:`CheckNotRun`: the container engine unreachable)
is neither healthy nor unhealthy: it is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

#: While checks cannot be run, at most one WARNING about it this often (seconds).
NOT_RUN_LOG_INTERVAL = 60.0

__all__ = [
    "CheckNotRun",
    "CommandRunner",
    "HealthCheck",
    "HealthChecker",
    "parse_health_check",
    "run_host_command",
]


@dataclass(frozen=True)
class HealthCheck:
    kind: str  # COMMAND, HTTP, TCP
    delay: float = 15.0
    interval: float = 10.0
    timeout: float = 20.0
    consecutive_failures: int = 3
    grace: float = 10.0
    command: tuple[str, ...] = ()
    port: int = 0
    path: str = "/"
    scheme: str = "http"
    #: A COMMAND check's own ``command.environment`` variables, set on top of the
    #: task's environment (host) or the container's (in a DOCKER task's container).
    environment: tuple[tuple[str, str], ...] = ()


def _num(obj: dict[str, Any], key: str, default: float) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"health_check.{key} must be a non-negative number")
    return float(value)


def _check_environment(obj: Any) -> tuple[tuple[str, str], ...]:
    """A COMMAND check's ``command.environment`` (Mesos ``Environment``): its VALUE
    variables as (name, value) pairs, in order (a later one of a name wins)."""
    if obj is None:
        return ()
    where = "health_check.command.environment"
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be an object")
    variables = obj.get("variables") or []
    if not isinstance(variables, list):
        raise ValueError(f"{where}.variables must be a list")
    out: list[tuple[str, str]] = []
    for i, var in enumerate(variables):
        name = var.get("name") if isinstance(var, dict) else None
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise ValueError(f"{where}.variables[{i}] needs a name (no '=')")
        if var.get("type", "VALUE") != "VALUE":
            raise ValueError(f"{where}.variables[{i}]: only VALUE variables are supported")
        value = var.get("value")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"{where}.variables[{i}] ({name}) needs a string value")
        out.append((name, value))
    return tuple(out)


def parse_health_check(obj: Any) -> HealthCheck | None:
    """The task's health check, None without one; ValueError names what is wrong."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ValueError("health_check must be an object")
    kind = obj.get("type") or ("COMMAND" if "command" in obj else "HTTP" if "http" in obj else None)
    common = {
        "delay": _num(obj, "delay_seconds", 15.0),
        "interval": max(0.01, _num(obj, "interval_seconds", 10.0)),
        "timeout": max(0.01, _num(obj, "timeout_seconds", 20.0)),
        "consecutive_failures": max(1, int(_num(obj, "consecutive_failures", 3))),
        "grace": _num(obj, "grace_period_seconds", 10.0),
    }
    if kind == "COMMAND":
        cmd = obj.get("command")
        if not isinstance(cmd, dict) or not isinstance(cmd.get("value"), str):
            raise ValueError("a COMMAND health check needs command.value")
        if cmd.get("shell", True):
            argv: tuple[str, ...] = ("/bin/sh", "-c", cmd["value"])
        else:
            args = cmd.get("arguments") or [cmd["value"]]
            if not all(isinstance(a, str) for a in args):
                raise ValueError("health_check.command.arguments must be strings")
            argv = (cmd["value"], *args[1:])
        return HealthCheck(
            "COMMAND",
            command=argv,
            environment=_check_environment(cmd.get("environment")),
            **common,  # type: ignore[arg-type]
        )
    if kind in ("HTTP", "TCP"):
        spec = obj.get(kind.lower())
        if not isinstance(spec, dict):
            raise ValueError(f"a {kind} health check needs '{kind.lower()}'")
        port = spec.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"health_check.{kind.lower()}.port must be a TCP port")
        path = spec.get("path", "/") if kind == "HTTP" else "/"
        scheme = str(spec.get("scheme", "http")).lower() if kind == "HTTP" else "http"
        if not isinstance(path, str) or scheme not in ("http", "https"):
            raise ValueError("health_check.http: bad path or scheme")
        return HealthCheck(
            kind,
            port=port,
            path=path if path.startswith("/") else "/" + path,
            scheme=scheme,
            **common,  # type: ignore[arg-type]
        )
    raise ValueError(f"unsupported health check type {kind!r} (COMMAND, HTTP or TCP)")


class CheckNotRun(Exception):
    """The check could not be performed at all (the container engine that would run it
    is unreachable, answers with a server error or does not answer): that says nothing
    about the task, so it is neither a success nor a failure.  Mesos's health checker
    does the same: it logs the error and tries again at the next interval; a task must
    not be killed because the agent lost its engine for a while."""


#: Runs a COMMAND check somewhere other than the host: (healthy, what happened); it
#: must stop the command when cancelled (the timeout), and raises :class:`CheckNotRun`
#: when it could not run the command at all.
CommandRunner = Callable[[HealthCheck], Awaitable[tuple[bool, str]]]


async def check_once(
    hc: HealthCheck, env: dict[str, str], cwd: Path, run_command: CommandRunner | None = None
) -> tuple[bool, str]:
    """Run the check once: (healthy, what happened); :class:`CheckNotRun` (from
    ``run_command``) when it could not be performed."""
    try:
        async with asyncio.timeout(hc.timeout):
            if hc.kind == "HTTP":
                url = f"{hc.scheme}://127.0.0.1:{hc.port}{hc.path}"
                async with httpx.AsyncClient(verify=False) as client:
                    resp = await client.get(url)
                return 200 <= resp.status_code < 400, f"GET {url}: {resp.status_code}"
            if hc.kind == "TCP":
                _, writer = await asyncio.open_connection("127.0.0.1", hc.port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return True, f"connected to port {hc.port}"
            if run_command is not None:
                return await run_command(hc)
            return await run_host_command(hc, env, cwd)
    except TimeoutError:
        return False, f"health check timed out after {hc.timeout:g} s"
    except (OSError, httpx.HTTPError) as exc:
        return False, f"health check failed: {exc}"


async def run_host_command(
    hc: HealthCheck, env: dict[str, str], cwd: Path, **spawn: Any
) -> tuple[bool, str]:
    """A COMMAND check on the host in its own process group, with ``env`` (the task's)
    plus the check's own environment; ``spawn`` adds
    ``create_subprocess_exec`` arguments (``user``/``group``/``extra_groups``: the
    task's user, :mod:`paddock.agent.task_user`)."""
    proc = await asyncio.create_subprocess_exec(
        *hc.command,
        cwd=str(cwd),
        env={**env, **dict(hc.environment)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **spawn,
    )
    try:
        rc = await proc.wait()
    except asyncio.CancelledError:  # the timeout: the check and its children go
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    return rc == 0, f"command exited with status {rc}"


class HealthChecker:
    """Runs one task's checks until cancelled.

    ``on_change(healthy, detail)`` is called for the first result and each change;
    ``on_unhealthy(detail)`` once when the task must be killed.  A check that could not
    be performed (:class:`CheckNotRun`) changes nothing: not the health, not the count
    of consecutive failures, not the grace period; it is logged (a WARNING at most every
    :data:`NOT_RUN_LOG_INTERVAL` seconds, naming ``name``) and the next one runs after
    the interval as usual."""

    def __init__(
        self,
        hc: HealthCheck,
        env: dict[str, str],
        cwd: Path,
        on_change: Callable[[bool, str], None],
        on_unhealthy: Callable[[str], Awaitable[None] | None],
        run_command: CommandRunner | None = None,
        *,
        name: str = "task",
    ) -> None:
        self.hc = hc
        self.name = name
        self.env = env
        self.cwd = cwd
        self.on_change = on_change
        self.on_unhealthy = on_unhealthy
        self.run_command = run_command
        self.healthy: bool | None = None
        self.failures = 0
        #: Checks not performed since the last one that was (or since the start).
        self.not_run = 0
        self._not_run_logged: float | None = None  # when the last WARNING about it was
        self._warned = False  # ... and whether it was about the current run of them

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        in_grace = True
        await asyncio.sleep(self.hc.delay)
        while True:
            try:
                ok, detail = await check_once(self.hc, self.env, self.cwd, self.run_command)
            except CheckNotRun as exc:
                self._could_not_run(loop.time(), exc)
                await asyncio.sleep(self.hc.interval)
                continue
            if self.not_run:
                log.log(
                    logging.INFO if self._warned else logging.DEBUG,
                    "%s: health checks run again (%d could not be run)",
                    self.name,
                    self.not_run,
                )
                self.not_run, self._warned = 0, False
            if ok:
                in_grace = False  # the grace period ends with the first success
                self.failures = 0
            elif in_grace and loop.time() - started < self.hc.grace:
                await asyncio.sleep(self.hc.interval)
                continue
            else:
                self.failures += 1
            if ok != self.healthy:
                self.healthy = ok
                self.on_change(ok, detail)
            if not ok and self.failures >= self.hc.consecutive_failures:
                result = self.on_unhealthy(
                    f"{self.failures} consecutive failed health checks ({detail})"
                )
                if result is not None:
                    await result
                return
            await asyncio.sleep(self.hc.interval)

    def _could_not_run(self, now: float, exc: CheckNotRun) -> None:
        self.not_run += 1
        last = self._not_run_logged
        if last is None or now - last >= NOT_RUN_LOG_INTERVAL:
            self._not_run_logged, self._warned = now, True
            log.warning(
                "%s: health check could not be run (%d in a row; not counted as a failure): %s",
                self.name,
                self.not_run,
                exc,
            )
        else:
            log.debug("%s: health check could not be run: %s", self.name, exc)
