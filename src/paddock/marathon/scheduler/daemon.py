"""``paddock marathon``: the API, the leader latch and the scheduler in one process.

Every marathon serves the v2 API; only the leader acts. A standby proxies API calls to
the leader (``api.create_api``'s leader hook, streaming, SSE included) using the address
the latch reads from the coordination service. On election the new leader loads all
state from the store (apps, deployments, instances, framework id), resumes stored
deployments, subscribes to the leading Mesos master with the stored framework id
(checkpoint, a week's failover timeout, partition-aware), reconciles, and acts.

Losing the coordination session makes the process exit (code 3) without doing anything
more; SUSPENDED only pauses acting. ``DELETE /v2/leader`` leaves the election and exits
(code 0), as Marathon does: a supervisor restarts it as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import datetime as dt
import logging
import os
import random
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from kazoo.client import KazooClient

from paddock.marathon.api import ApiSettings, create_api
from paddock.marathon.scheduler.core import SchedulerCore
from paddock.marathon.scheduler.leader import LeaderLatch
from paddock.marathon.scheduler.mesos_client import MesosSchedulerClient
from paddock.marathon.scheduler.reconciler import Reconciler
from paddock.marathon.service import MarathonService, iso_ms
from paddock.marathon.store import MarathonStore

log = logging.getLogger(__name__)

EXIT_SESSION_LOST = 3


@dataclass
class MarathonConfig:
    master: str
    zk: str
    port: int = 8080
    hostname: str = "127.0.0.1"
    bind: str = "0.0.0.0"
    framework_name: str = "marathon"
    failover_timeout: float = 604800.0
    role: str = "*"
    user: str = "root"
    zk_session_timeout: float = 10.0
    reconciliation_initial_delay: float = 15.0
    reconciliation_interval: float = 600.0
    task_launch_timeout: float = 300.0
    kill_retry_timeout: float = 10.0  # resend a KILL not confirmed within this long
    max_running_deployments: int = 100

    @property
    def advertised(self) -> str:
        return f"{self.hostname}:{self.port}"

    def zk_parts(self) -> tuple[str, str]:
        if not self.zk.startswith("zk://"):
            raise ValueError(
                f"--zk must look like zk://host:port[,host:port]/path, got {self.zk!r}"
            )
        hosts, _, path = self.zk[len("zk://") :].partition("/")
        if not hosts:
            raise ValueError("--zk names no hosts")
        return hosts, "/" + (path.rstrip("/") or "marathon")


class MarathonDaemon:
    def __init__(self, cfg: MarathonConfig) -> None:
        self.cfg = cfg
        hosts, self.base = cfg.zk_parts()
        self.zk = KazooClient(hosts=hosts, timeout=cfg.zk_session_timeout)
        self.store = MarathonStore(self.zk, self.base)
        self.core = SchedulerCore(
            self.store,
            advertised=cfg.advertised,
            clock=lambda: iso_ms(dt.datetime.now(dt.UTC)),
            rng=random.Random(),
            role=cfg.role,
            task_launch_timeout=cfg.task_launch_timeout,
            kill_retry_timeout=cfg.kill_retry_timeout,
        )
        self.service = MarathonService(
            self.store, self.core, max_running_deployments=cfg.max_running_deployments
        )
        self.settings = ApiSettings(
            hostname=cfg.hostname,
            http_port=cfg.port,
            master=cfg.master,
            zk=cfg.zk,
            framework_name=cfg.framework_name,
            failover_timeout=int(cfg.failover_timeout),
            zk_session_timeout_ms=int(cfg.zk_session_timeout * 1000),
            mesos_role=cfg.role,
        )
        self.api = create_api(self.service, self.settings)
        self.server: uvicorn.Server | None = None
        self.latch: LeaderLatch | None = None
        self.mesos: MesosSchedulerClient | None = None
        self.reconciler: Reconciler | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._leading_started = False
        self._subscribed = False
        self.exit_code = 0

    # ------------------------------------------------------------------ life cycle

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        # Benchmarks profile the loop thread (where the scheduler works) with cProfile;
        # the stats are rewritten every few seconds (a SIGTERM ends the process as soon
        # as uvicorn has stopped serving, with no later hook to write them in).
        profile_path = os.environ.get("PADDOCK_MARATHON_PROFILE")
        profiler = None
        if profile_path:
            profiler = asyncio.create_task(_profile_loop(profile_path))
        await asyncio.to_thread(self._connect_zk)
        await asyncio.to_thread(self.store.ensure_layout)
        self.core.start()
        self.core.abdicate_fn = self._abdicate
        self.latch = LeaderLatch(
            self.zk, f"{self.base}/leader", self.cfg.advertised, self._latch_changed
        )
        await asyncio.to_thread(self.latch.start)
        config = uvicorn.Config(
            self.api,
            host=self.cfg.bind,
            port=self.cfg.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = _HttpServer(config)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._request_exit)
        watcher = asyncio.create_task(self._watch_leadership())
        log.info("marathon %s serving on port %d", self.cfg.advertised, self.cfg.port)
        try:
            await self.server.serve()
        finally:
            if profiler is not None:
                profiler.cancel()
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
            await self._shutdown()
        return self.exit_code

    def _request_exit(self) -> None:
        """SIGTERM/SIGINT: stop serving, then shut down in order (leave the master,
        close the ZooKeeper session so a standby leads at once instead of after the
        session timeout)."""
        log.info("marathon %s stopping (signal)", self.cfg.advertised)
        if self.server is not None:
            self.server.should_exit = True

    def _connect_zk(self) -> None:
        while True:
            try:
                self.zk.start(timeout=self.cfg.zk_session_timeout)
                return
            except Exception as exc:  # not reachable yet: keep trying, as the master does
                log.warning("coordination service not reachable (%s); retrying", exc)

    async def _shutdown(self) -> None:
        self._set_acting(False, "shutting down")
        self.core.elected = False
        if self.reconciler is not None:
            self.reconciler.stop()
        if self.mesos is not None:
            await self.mesos.stop()
        await self.core.stop()
        await asyncio.to_thread(self._close_zk)

    def _close_zk(self) -> None:
        with contextlib.suppress(Exception):
            self.zk.stop()
            self.zk.close()

    # ------------------------------------------------------------------ leadership

    def _latch_changed(self) -> None:
        """From kazoo's threads: stop acting at once if we must, then wake the watcher."""
        latch = self.latch
        if latch is not None and not latch.leading:
            self._set_acting(False, "the leader latch was lost")  # before anything else
        if latch is not None:
            self.core.leader_address = latch.leader_address
        loop = self.loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._changed.set)

    async def _watch_leadership(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            latch = self.latch
            if latch is None:
                continue
            if latch.lost:
                log.error("coordination session lost: exiting (a supervisor restarts marathon)")
                self._set_acting(False, "coordination session lost")
                os._exit(EXIT_SESSION_LOST)  # nothing more may leave this process
            if latch.leading and not self._leading_started:
                self._leading_started = True
                try:
                    await self._become_leader()
                except Exception:
                    log.exception("taking over as leader failed: exiting")
                    os._exit(EXIT_SESSION_LOST)
            self._update_acting()

    def _set_acting(self, acting: bool, why: str) -> None:
        """The one place acting changes, logged on every edge: the chaos lab reads
        these lines to check that no two marathons ever acted as leader at once."""
        was = self.core.acting
        self.core.acting = acting
        if was != acting:
            log.info("%s acting as leader (%s)", "started" if acting else "stopped", why)

    def _update_acting(self) -> None:
        latch = self.latch
        leading = bool(latch is not None and latch.leading)
        self._set_acting(
            leading and self._subscribed and self._leading_started,
            f"leading={leading} subscribed={self._subscribed}",
        )
        self.core.poke()

    async def _become_leader(self) -> None:
        log.info("elected leader: loading state")
        await asyncio.to_thread(self.core.load_instances)
        await asyncio.to_thread(self.service.start)  # loads apps; resumes deployments
        self.core.elected = True
        self.core.start_known_checks()  # health of running tasks, before any update
        framework_id = await asyncio.to_thread(self.store.framework_id)
        info: dict[str, Any] = {
            "user": self.cfg.user,
            "name": self.cfg.framework_name,
            "failover_timeout": self.cfg.failover_timeout,
            "checkpoint": True,
            "hostname": self.cfg.hostname,
            "webui_url": f"http://{self.cfg.advertised}",
            "roles": [self.cfg.role],
            "capabilities": [{"type": "PARTITION_AWARE"}, {"type": "MULTI_ROLE"}],
        }
        if framework_id:
            info["id"] = {"value": framework_id}
        log.info("subscribing to %s as framework %s", self.cfg.master, framework_id or "(new)")
        self.mesos = MesosSchedulerClient(
            self.cfg.master,
            info,
            self._on_event,
            on_disconnect=self._on_disconnect,
            on_removed=self._on_framework_removed,
        )
        self.core.call = self.mesos.call
        self.reconciler = Reconciler(
            self.mesos.call,
            self.core.known_tasks,
            initial_delay=self.cfg.reconciliation_initial_delay,
            interval=self.cfg.reconciliation_interval,
        )
        self.mesos.start()

    def _abdicate(self) -> bool:
        """DELETE /v2/leader (from an API thread): stop acting, leave, exit soon."""
        self._set_acting(False, "abdicating")
        self.core.elected = False
        loop = self.loop
        if loop is None or self.latch is None:
            return False
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._abdicate_async()))
        return True

    async def _abdicate_async(self) -> None:
        assert self.latch is not None
        log.info("abdicating")
        await asyncio.to_thread(self.latch.abdicate)
        await asyncio.sleep(0.3)  # let the API answer
        if self.server is not None:
            self.server.should_exit = True

    # ------------------------------------------------------------------ mesos events

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            fid = event["subscribed"]["framework_id"]["value"]
            log.info("subscribed as framework %s", fid)
            await asyncio.to_thread(self.store.set_framework_id, fid)
            self._subscribed = True
            self.core._suppressed = False
            self._update_acting()
            if self.reconciler is not None:
                self.reconciler.restart()
        elif kind == "OFFERS":
            await self.core.on_offers((event.get("offers") or {}).get("offers") or [])
        elif kind == "UPDATE":
            status = (event.get("update") or {}).get("status") or {}
            await self.core.on_update(status)
        elif kind == "FAILURE":
            log.info("failure: %s", event.get("failure"))
        elif kind == "ERROR":
            log.error("master error: %s", (event.get("error") or {}).get("message"))

    async def _on_framework_removed(self) -> None:
        await asyncio.to_thread(self.store.set_framework_id, "")

    async def _on_disconnect(self) -> None:
        if self._subscribed:
            log.warning("lost the master's event stream; subscribing again")
        self._subscribed = False
        if self.reconciler is not None:
            self.reconciler.stop()
        self._update_acting()


async def _profile_loop(path: str, every: float = 5.0) -> None:
    """Profile this thread (the event loop's) and write the stats to ``path`` every few
    seconds (``PADDOCK_MARATHON_PROFILE``; for benchmarks)."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        while True:
            await asyncio.sleep(every)
            profile.dump_stats(path)  # stops the profiler
            profile.enable()
    finally:
        profile.disable()


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises a captured SIGTERM once it
    stops serving, which ended the process before the daemon's orderly shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def default_hostname() -> str:
    return socket.gethostname()
