"""Running the agent: recovery, HTTP server, leader detection, master link, shutdown.

``serve(config, stop)`` runs until ``stop`` is set.  At shutdown the agent kills its
tasks (a graceful stop means "stop this agent's work"; only after a crash does a
restart reattach to running tasks, see ``recovery``), lets their final status updates go
out, and exits keeping its id, so a restart with the same work dir registers as the same
agent and re-sends what is unacknowledged.
With ``unregister`` (SIGUSR1, as Mesos) it also sends ``UNREGISTER`` and forgets its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from paddock.agent.config import AgentConfig
from paddock.agent.daemon import Agent
from paddock.agent.http_api import make_app
from paddock.agent.leader import LeaderDetector, StaticLeader, ZkLeaderDetector
from paddock.agent.master_link import MasterLink

log = logging.getLogger(__name__)

__all__ = ["AgentServer", "serve"]

#: Seconds an idle HTTP keep-alive connection stays open (uvicorn's default is 5).
IDLE_KEEP_ALIVE = 24 * 3600


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers (the agent owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AgentServer:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.agent = Agent(config)
        self.detector: LeaderDetector
        if config.master.is_zk:
            assert config.master.zk_hosts and config.master.zk_path
            self.detector = ZkLeaderDetector(
                config.master.zk_hosts,
                config.master.zk_path,
                session_timeout=config.zk_session_timeout,
            )
        else:
            assert config.master.host and config.master.port
            self.detector = StaticLeader(config.master.host, config.master.port)
        self.link = MasterLink(self.agent, self.detector)
        self._http: _QuietServer | None = None
        self._http_task: asyncio.Task[Any] | None = None
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        """Bind, recover, begin serving and connecting. Raises OSError if the port is taken."""
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
        # the listening socket says so (proto 0 means a 40 ms delayed-ACK stall per response).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.ip, self.config.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.config.port = sock.getsockname()[1]
        await self.agent.recover()
        uv_config = uvicorn.Config(
            make_app(self.agent),
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Executors (pymesos's driver) keep one connection for their calls and do
            # not retry when it was closed while idle; libprocess never closes it.
            timeout_keep_alive=IDLE_KEEP_ALIVE,
        )
        self._http = _QuietServer(uv_config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]), name="agent-http")
        await self.detector.start()
        await self.link.start()
        log.info(
            "agent listening on %s:%d, master %s, resources %s",
            self.config.ip,
            self.config.port,
            self.config.master,
            self.config.resources,
        )

    async def stop(self, unregister: bool = False) -> None:
        await self.agent.kill_all(timeout=self.config.default_kill_grace + 5.0)
        from paddock.agent.launcher import close_zygote

        close_zygote(self.agent)  # the task zygote (supervisors are gone with their tasks)
        await self.agent.store.deferred.sync()  # the final updates are durable, sent or not
        # Give the final updates a moment to reach the master (they stay checkpointed).
        await self.link.flush_calls(timeout=1.0)
        await self.link.stop(unregister=unregister)
        if unregister:
            self.agent.forget_identity()
        await self.detector.stop()
        self.agent.gc.stop()
        if self._http is not None:
            self._http.should_exit = True
        if self._http_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._http_task, 5.0)
        if self._sock is not None:
            self._sock.close()


async def serve(
    config: AgentConfig, stop: asyncio.Event, unregister: asyncio.Event | None = None
) -> None:
    server = AgentServer(config)
    await server.start()
    waiters = [asyncio.ensure_future(stop.wait())]
    if unregister is not None:
        waiters.append(asyncio.ensure_future(unregister.wait()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    await server.stop(unregister=unregister is not None and unregister.is_set())
