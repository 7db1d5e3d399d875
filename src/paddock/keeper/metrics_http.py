"""Keeper's Prometheus endpoint: ``GET /metrics`` on its own HTTP port.

Why a port of its own: that is how ZooKeeper (3.6+) exports Prometheus metrics
(``metricsProvider.className=...PrometheusMetricsProvider`` with
``metricsProvider.httpPort``, default 7000, path ``/metrics``), so a ZooKeeper user's
scrape configuration and dashboards carry over. The figures are ``mntr``'s, named as
ZooKeeper's Prometheus provider names them (``zk_znode_count`` -> ``znode_count``);
keeper's own consensus figures keep their ``paddock_`` names.

The server is a few lines of HTTP/1.0 on asyncio: one request per connection, no
keep-alive; it serves a scrape every few seconds, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

from paddock.keeper import fourletter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NOT_A_NAME = re.compile(r"[^a-zA-Z0-9_:]")


def render(report: fourletter.ServerReport) -> str:
    """The Prometheus text exposition of ``report``'s numeric ``mntr`` figures."""
    text = fourletter.answer("mntr", report, frozenset({"mntr"}))
    lines = []
    for line in text.splitlines():
        key, _, value = line.partition("\t")
        try:
            number = float(value)
        except ValueError:
            continue  # zk_version, zk_server_state: not numbers
        name = _NOT_A_NAME.sub("_", key.removeprefix("zk_"))
        lines += [f"# TYPE {name} gauge", f"{name} {number:g}"]
    lines += [
        "# HELP paddock_keeper_leader 1 on the leader, else 0.",
        "# TYPE paddock_keeper_leader gauge",
        f"paddock_keeper_leader {1 if report.mode == 'leader' else 0}",
        "# HELP paddock_keeper_serving 1 while this server serves clients, else 0.",
        "# TYPE paddock_keeper_serving gauge",
        f"paddock_keeper_serving {1 if report.serving else 0}",
    ]
    return "\n".join(lines) + "\n"


async def start_metrics_server(
    host: str, port: int, report: Callable[[], fourletter.ServerReport]
) -> asyncio.Server:
    """Listen on ``host:port``; ``GET /metrics`` answers ``render(report())``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, _, rest = request.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.partition(" ")[0]
            if method not in ("GET", "HEAD"):
                status, body = "405 Method Not Allowed", "only GET\n"
            elif path.split("?", 1)[0] == "/metrics":
                status, body = "200 OK", render(report())
            else:
                status, body = "404 Not Found", "metrics are at /metrics\n"
            data = body.encode()
            head = (
                f"HTTP/1.0 {status}\r\nContent-Type: {CONTENT_TYPE}\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else data))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, reuse_address=True)
