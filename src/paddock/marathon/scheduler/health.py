"""Health checks Marathon runs itself (HTTP, HTTPS, TCP) and readiness checks.

:class:`HealthState` is Marathon's per-instance, per-check bookkeeping, pure: a failure
inside ``gracePeriodSeconds`` of the task's start (before its first success) is ignored;
``maxConsecutiveFailures`` consecutive failures after that ask for a kill (0: never).
:class:`HealthChecker` runs probes on the event loop: one asyncio task per (instance,
check), first probe right after the task runs, then every ``intervalSeconds``, each
bounded by ``timeoutSeconds``. HTTP/HTTPS pass on a status 200-399 (HTTPS is not
verified, as in Marathon); TCP passes when a connection opens. The scheduler decides
what to do with a kill request (it never health-kills an unreachable instance). COMMAND
and MESOS_* checks run on the agent; their results come in status updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from paddock.marathon.models import HealthCheck, HealthCheckResult, ReadinessCheck

log = logging.getLogger(__name__)


@dataclass
class HealthState:
    check: HealthCheck
    instance_id: str
    started: float  # monotonic time the task started running
    alive: bool | None = None  # None: not checked yet
    consecutive_failures: int = 0
    first_success: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_failure_cause: str | None = None

    def record(self, ok: bool, cause: str, now_iso: str, now: float) -> tuple[bool, bool]:
        """Account one probe; returns (health changed, kill requested)."""
        before = self.alive
        if ok:
            self.alive = True
            self.consecutive_failures = 0
            self.last_success = now_iso
            if self.first_success is None:
                self.first_success = now_iso
            return before is not True, False
        grace = self.check.grace_period_seconds
        in_grace = self.first_success is None and now - self.started < grace
        if in_grace:
            # Ignored: not counted, and health stays unknown (Marathon shows no result).
            return False, False
        self.consecutive_failures += 1
        self.last_failure = now_iso
        self.last_failure_cause = cause
        self.alive = False
        limit = self.check.max_consecutive_failures
        kill = limit > 0 and self.consecutive_failures >= limit
        return before is not False, kill

    def result(self) -> HealthCheckResult | None:
        if self.alive is None:
            return None
        return HealthCheckResult(
            alive=self.alive,
            consecutive_failures=self.consecutive_failures,
            first_success=self.first_success,
            last_failure=self.last_failure,
            last_success=self.last_success,
            last_failure_cause=self.last_failure_cause,
            instance_id=self.instance_id,
        )


_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


async def probe_http(
    host: str, port: int, path: str, timeout: float, *, https: bool = False
) -> tuple[int, str]:
    """GET ``path``; returns (status code, "" or failure cause). Raw asyncio: no client
    library state to share between hundreds of concurrent probes."""

    async def go() -> tuple[int, str]:
        reader, writer = await asyncio.open_connection(host, port, ssl=_INSECURE if https else None)
        try:
            request = (
                f"GET {path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "User-Agent: paddock-marathon\r\nConnection: close\r\n\r\n"
            )
            writer.write(request.encode())
            await writer.drain()
            line = await reader.readline()
            parts = line.decode("latin-1").split()
            if len(parts) < 2 or not parts[1].isdigit():
                return 0, f"malformed HTTP status line {line[:80]!r}"
            return int(parts[1]), ""
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    try:
        return await asyncio.wait_for(go(), timeout)
    except TimeoutError:
        return 0, f"timed out after {timeout:g}s"
    except OSError as exc:
        return 0, f"{type(exc).__name__}: {exc}"


async def probe_tcp(host: str, port: int, timeout: float) -> str:
    """ "" when a TCP connection opens within ``timeout``, else the cause."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return f"timed out after {timeout:g}s"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return ""


async def probe(check: HealthCheck, host: str, port: int) -> tuple[bool, str]:
    timeout = float(check.timeout_seconds)
    if check.protocol == "TCP":
        cause = await probe_tcp(host, port, timeout)
        return not cause, cause
    status, cause = await probe_http(
        host, port, check.path or "/", timeout, https=check.protocol == "HTTPS"
    )
    if cause:
        return False, cause
    if 200 <= status < 400 or (check.ignore_http1xx and 100 <= status < 200):
        return True, ""
    return False, f"HTTP status {status}"


def check_port(check: HealthCheck, ports: list[int]) -> int | None:
    if check.port:
        return check.port
    index = check.port_index or 0
    return ports[index] if index < len(ports) else None


Listener = Callable[[str, int, HealthState, bool, bool], None]
"""(instance id, check index, state, health changed, kill requested)."""


class HealthChecker:
    """Runs Marathon-side checks for instances on the running event loop."""

    def __init__(
        self,
        listener: Listener,
        now_iso: Callable[[], str],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.listener = listener
        self.now_iso = now_iso
        self.monotonic = monotonic
        self.states: dict[str, list[HealthState]] = {}
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}

    def watch(
        self,
        instance_id: str,
        host: str,
        ports: list[int],
        checks: list[HealthCheck],
        started: float,
    ) -> None:
        """Start checking an instance (no-op if already watched)."""
        if instance_id in self._tasks:
            return
        marathon_checks = [c for c in checks if c.run_by_marathon]
        states = [HealthState(c, instance_id, started) for c in marathon_checks]
        self.states[instance_id] = states
        self._tasks[instance_id] = [
            asyncio.get_running_loop().create_task(self._loop(instance_id, i, host, ports, st))
            for i, st in enumerate(states)
        ]

    def forget(self, instance_id: str) -> None:
        for task in self._tasks.pop(instance_id, []):
            task.cancel()
        self.states.pop(instance_id, None)

    def stop(self) -> None:
        for instance_id in list(self._tasks):
            self.forget(instance_id)

    def results(self, instance_id: str) -> list[HealthCheckResult]:
        out = []
        for st in self.states.get(instance_id, []):
            r = st.result()
            if r is not None:
                out.append(r)
        return out

    def healthy(self, instance_id: str) -> bool | None:
        """True when every check passes, False when one fails, None when not known yet."""
        states = self.states.get(instance_id)
        if not states:
            return None
        values = [s.alive for s in states]
        if any(v is False for v in values):
            return False
        if any(v is None for v in values):
            return None
        return True

    async def _loop(
        self, instance_id: str, index: int, host: str, ports: list[int], st: HealthState
    ) -> None:
        port = check_port(st.check, ports)
        while True:
            if port is None:
                ok, cause = False, "no port for this health check"
            else:
                ok, cause = await probe(st.check, host, port)
            changed, kill = st.record(ok, cause, self.now_iso(), self.monotonic())
            try:
                self.listener(instance_id, index, st, changed, kill)
            except Exception:  # a listener bug must not stop checking
                log.exception("health listener failed")
            await asyncio.sleep(max(0.05, float(st.check.interval_seconds)))


class ReadinessChecker:
    """Readiness checks (HTTP/HTTPS on a named port) until an instance is ready once."""

    def __init__(self, on_ready: Callable[[str], None]) -> None:
        self.on_ready = on_ready
        self.ready: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def watch(self, instance_id: str, host: str, port: int | None, check: ReadinessCheck) -> None:
        if instance_id in self._tasks or instance_id in self.ready:
            return
        self._tasks[instance_id] = asyncio.get_running_loop().create_task(
            self._loop(instance_id, host, port, check)
        )

    def forget(self, instance_id: str) -> None:
        task = self._tasks.pop(instance_id, None)
        if task is not None:
            task.cancel()
        self.ready.discard(instance_id)

    def stop(self) -> None:
        for instance_id in list(self._tasks):
            self.forget(instance_id)

    async def _loop(
        self, instance_id: str, host: str, port: int | None, check: ReadinessCheck
    ) -> None:
        while port is not None:
            status, _cause = await probe_http(
                host, port, check.path, float(check.timeout_seconds),
                https=check.protocol == "HTTPS",
            )  # fmt: skip
            if status in check.http_status_codes_for_ready:
                self.ready.add(instance_id)
                self._tasks.pop(instance_id, None)
                self.on_ready(instance_id)
                return
            await asyncio.sleep(max(0.05, float(check.interval_seconds)))
