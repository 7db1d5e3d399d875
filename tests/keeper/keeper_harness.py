"""Run keeper servers inside the test process, each on its own thread and event loop.

kazoo is a blocking, threaded client, so the servers cannot share the test's
event loop; a thread per server keeps start-up fast (no interpreter start) while
still using real sockets, real fsync and the real consensus transport.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

from paddock.keeper.config import ALL_4LW, KeeperConfig, ServerSpec
from paddock.keeper.server import KeeperServer
from paddock.testing.ports import free_ports

HOST = "127.0.0.1"


def four_letter(port: int, word: str, timeout: float = 5.0) -> str:
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out.decode()
            out += d


def wait_until(cond, timeout: float = 10.0, interval: float = 0.01, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


class ThreadedKeeper:
    """One keeper server on a private event loop in a daemon thread."""

    def __init__(self, cfg: KeeperConfig) -> None:
        self.cfg = cfg
        self.server: KeeperServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.cfg.client_port

    @property
    def address(self) -> str:
        return f"{HOST}:{self.cfg.client_port}"

    def start(self) -> ThreadedKeeper:
        self._started.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(20):
            raise TimeoutError("keeper did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        import uvloop

        try:
            uvloop.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = KeeperServer(self.cfg)
        await self.server.start()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def serving(self) -> bool:
        return self.running and self.server is not None and self.server.serving

    @property
    def is_leader(self) -> bool:
        return self.serving and self.server is not None and self.server.mode == "leader"


def make_config(
    server_id: int,
    client_port: int,
    data_dir: Path,
    servers: dict[int, ServerSpec] | None = None,
    tick_ms: int = 200,
    **extra: object,
) -> KeeperConfig:
    cfg = KeeperConfig(
        my_id=server_id,
        tick_ms=tick_ms,
        data_dir=data_dir,
        client_port=client_port,
        client_host=HOST,
        servers=dict(servers or {}),
        four_letter_words=ALL_4LW,
        raft_tick_s=0.02,
    )
    for k, v in extra.items():
        setattr(cfg, k, v)
    return cfg


class Cluster:
    """N in-process keeper servers (N=1: standalone)."""

    def __init__(self, base: Path, size: int = 1, tick_ms: int = 200, **extra: object) -> None:
        ports = free_ports(2 * size)
        self.servers: dict[int, ServerSpec] = {}
        if size > 1:
            for i in range(size):
                sid = i + 1
                self.servers[sid] = ServerSpec(sid, HOST, ports[2 * i + 1])
        self.members = [
            ThreadedKeeper(
                make_config(i + 1, ports[2 * i], base / f"s{i + 1}", self.servers, tick_ms, **extra)
            )
            for i in range(size)
        ]

    @property
    def hosts(self) -> str:
        return ",".join(m.address for m in self.members)

    def start(self) -> Cluster:
        for m in self.members:
            m.start()
        self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 15.0) -> None:
        wait_until(
            lambda: (
                all(m.serving for m in self.members if m.running)
                and any(
                    m.server is not None and m.server.role.name == "LEADER"
                    for m in self.members
                    if m.running
                )
            ),
            timeout,
            what="every running server serving",
        )

    def leader(self) -> ThreadedKeeper:
        return wait_until(
            lambda: next(
                (m for m in self.members if m.is_leader or (m.serving and len(self.members) == 1)),
                None,
            ),
            15.0,
            what="a leader",
        )

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
