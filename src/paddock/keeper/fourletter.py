"""Four-letter words: ZooKeeper's plain-text admin commands (``ruok``, ``srvr``, ...).

Pure formatting: the server fills a :class:`ServerReport` and this module
turns it into ZooKeeper's text, line for line where tools parse it (``srvr``
``Mode:``, ``mntr`` tab-separated ``zk_*`` keys, ``envi``
``zookeeper.version=``). Words not in the whitelist get ZooKeeper's refusal.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
from dataclasses import dataclass, field

#: What we claim to be to tools that parse the version (kazoo reads ``envi``).
ZK_VERSION = "3.8.4-paddock"
VERSION_LINE = f"{ZK_VERSION}, built on 01/01/2026 00:00 GMT"


@dataclass
class ConnectionReport:
    address: str
    port: int
    session_id: int
    timeout_ms: int
    received: int
    sent: int
    queued: int
    last_zxid: int


@dataclass
class ServerReport:
    server_id: int
    mode: str  # leader | follower | standalone | candidate
    serving: bool
    zxid: int
    node_count: int
    ephemeral_count: int
    watch_count: int
    watched_paths: int
    watching_sessions: int
    approximate_data_size: int
    received: int
    sent: int
    outstanding: int
    latency_min_ms: float
    latency_avg_ms: float
    latency_max_ms: float
    connections: list[ConnectionReport] = field(default_factory=list)
    session_count: int = 0
    ephemerals: dict[int, list[str]] = field(default_factory=dict)
    config_lines: list[str] = field(default_factory=list)
    followers: int = 0
    synced_followers: int = 0
    data_dir: str = ""
    #: Extra ``mntr`` lines (consensus figures: fsyncs, batch sizes, ...).
    extra: dict[str, object] = field(default_factory=dict)


def refusal(word: str) -> str:
    return f"{word} is not executed because it is not in the whitelist.\n"


def _connection_lines(report: ServerReport) -> list[str]:
    lines = []
    for c in report.connections:
        lines.append(
            f" /{c.address}:{c.port}[1](queued={c.queued},recved={c.received},sent={c.sent},"
            f"sid=0x{c.session_id & 0xFFFFFFFFFFFFFFFF:x},lop=NA,est=0,to={c.timeout_ms},"
            f"lzxid=0x{c.last_zxid & 0xFFFFFFFFFFFFFFFF:x})"
        )
    return lines


def _srvr(report: ServerReport, with_clients: bool) -> str:
    lines = [f"Zookeeper version: {VERSION_LINE}"]
    if with_clients:
        lines.append("Clients:")
        lines.extend(_connection_lines(report))
        lines.append("")
    lines += [
        f"Latency min/avg/max: {report.latency_min_ms:.0f}/{report.latency_avg_ms:.4f}/"
        f"{report.latency_max_ms:.0f}",
        f"Received: {report.received}",
        f"Sent: {report.sent}",
        f"Connections: {len(report.connections)}",
        f"Outstanding: {report.outstanding}",
        f"Zxid: 0x{report.zxid & 0xFFFFFFFFFFFFFFFF:x}",
        f"Mode: {report.mode}",
        f"Node count: {report.node_count}",
    ]
    return "\n".join(lines) + "\n"


def _mntr(report: ServerReport) -> str:
    pairs: list[tuple[str, object]] = [
        ("zk_version", VERSION_LINE),
        ("zk_server_id", report.server_id),
        ("zk_avg_latency", f"{report.latency_avg_ms:.4f}"),
        ("zk_max_latency", int(report.latency_max_ms)),
        ("zk_min_latency", int(report.latency_min_ms)),
        ("zk_packets_received", report.received),
        ("zk_packets_sent", report.sent),
        ("zk_num_alive_connections", len(report.connections)),
        ("zk_outstanding_requests", report.outstanding),
        ("zk_server_state", report.mode),
        ("zk_znode_count", report.node_count),
        ("zk_watch_count", report.watch_count),
        ("zk_ephemerals_count", report.ephemeral_count),
        ("zk_approximate_data_size", report.approximate_data_size),
        ("zk_global_sessions", report.session_count),
        ("zk_last_zxid", report.zxid),
    ]
    with contextlib.suppress(OSError):
        pairs.append(("zk_open_file_descriptor_count", len(os.listdir("/proc/self/fd"))))
    if report.mode == "leader":
        pairs += [
            ("zk_followers", report.followers),
            ("zk_synced_followers", report.synced_followers),
            ("zk_pending_syncs", 0),
        ]
    pairs += sorted(report.extra.items())
    return "".join(f"{k}\t{v}\n" for k, v in pairs)


def _envi() -> str:
    lines = [
        "Environment:",
        f"zookeeper.version={VERSION_LINE}",
        f"host.name={socket.gethostname()}",
        f"python.version={platform.python_version()}",
        f"os.name={platform.system()}",
        f"os.arch={platform.machine()}",
        f"os.version={platform.release()}",
        f"user.dir={os.getcwd()}",
    ]
    return "\n".join(lines) + "\n"


def _wchs(report: ServerReport) -> str:
    return (
        f"{report.watching_sessions} connections watching {report.watched_paths} paths\n"
        f"Total watches:{report.watch_count}\n"
    )


def _dump(report: ServerReport) -> str:
    lines = ["SessionTracker dump:", f"Global Sessions({report.session_count}):"]
    lines.append("ephemeral nodes dump:")
    lines.append(f"Sessions with Ephemerals ({len(report.ephemerals)}):")
    for sid in sorted(report.ephemerals):
        lines.append(f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}:")
        lines.extend(f"\t{p}" for p in report.ephemerals[sid])
    return "\n".join(lines) + "\n"


def answer(word: str, report: ServerReport, whitelist: frozenset[str]) -> str:
    """The text reply to ``word`` (the connection is closed after it)."""
    if word not in whitelist:
        return refusal(word)
    if word == "ruok":
        return "imok"
    if word in ("srvr", "stat"):
        if not report.serving and report.mode != "read-only":
            return "This ZooKeeper instance is not currently serving requests\n"
        return _srvr(report, word == "stat")
    if word == "mntr":
        return _mntr(report)
    if word == "conf":
        return "\n".join(report.config_lines) + "\n"
    if word == "cons":
        return "\n".join(_connection_lines(report)) + "\n\n"
    if word == "envi":
        return _envi()
    if word == "isro":
        if report.mode == "read-only":
            return "ro"
        return "rw" if report.serving else "null"
    if word == "wchs":
        return _wchs(report)
    if word == "dump":
        return _dump(report)
    if word == "dirs":
        return f"datadir_size: 0\nlogdir_size: 0\n"  # noqa: F541
    if word in ("crst", "srst"):
        return "Connection stats reset.\n" if word == "crst" else "Server stats reset.\n"
    if word == "hash":
        return f"Zxid: 0x{report.zxid & 0xFFFFFFFFFFFFFFFF:x}\n"
    if word in ("wchc", "wchp", "gtmk", "stmk"):
        return f"{word} is not supported by this server.\n"
    return refusal(word)
