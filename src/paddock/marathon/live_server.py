"""Run an ASGI app (the Marathon API) on a real loopback port in a background thread.

For tests and tools that need a real HTTP server — marathon-python speaks
``requests`` over sockets — without a subprocess: ``with ServerThread(app) as srv:``
serves on ``srv.url`` and stops (graceful, then forced after ``grace`` seconds) on exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn

from paddock.testing.ports import free_port


class ServerThread:
    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int | None = None,
        grace: int = 1,
        before_stop: Callable[[], None] | None = None,
    ):
        """``before_stop`` runs first on stop, e.g. to end open event streams at once."""
        self.before_stop = before_stop
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=grace,
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, name=f"uvicorn:{self.port}", daemon=True
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 15.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server on {self.address} exited during start-up")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server on {self.address} did not start in {timeout}s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.before_stop is not None and self._thread.is_alive():
            self.before_stop()
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
