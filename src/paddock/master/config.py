"""Master settings (the ``paddock master`` flags) and their parsing helpers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from paddock.master.election import ZkUrl

MESOS_VERSION = "1.11.0"

_DURATION_RE = re.compile(
    r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*"
    r"(ns|us|ms|secs|sec|s|mins|min|m|hrs|hr|h|days|d|weeks|w)?\s*$"
)
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "d": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "weeks": 604800.0,
}


def parse_duration(text: str) -> float:
    """Mesos/stout durations (``15secs``, ``15s``, ``500ms``, ``2mins``); bare numbers: seconds."""
    m = _DURATION_RE.match(text)
    if m is None:
        raise ValueError(f"bad duration {text!r} (want e.g. 15s, 500ms, 2mins)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def load_credentials(path: Path) -> dict[str, str]:
    """Mesos ``--credentials`` JSON: ``{"credentials": [{"principal", "secret"}]}``
    (the older text form ``principal secret`` per line is accepted too)."""
    text = path.read_text()
    creds: dict[str, str] = {}
    try:
        obj = json.loads(text)
    except ValueError:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{path}:{n}: want 'principal secret'") from None
            creds[parts[0]] = parts[1]
        return creds
    items = obj.get("credentials") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        raise ValueError(f'{path}: want {{"credentials": [{{"principal", "secret"}}]}}')
    for i, c in enumerate(items):
        if not isinstance(c, dict) or not isinstance(c.get("principal"), str):
            raise ValueError(f"{path}: credential #{i} needs a string 'principal'")
        creds[c["principal"]] = str(c.get("secret", ""))
    return creds


@dataclass
class MasterConfig:
    zk: ZkUrl
    quorum: int
    work_dir: Path
    port: int = 5050
    ip: str = "127.0.0.1"
    hostname: str = "localhost"
    registry_port: int = 0  # 0: port + 10000
    credentials: dict[str, str] | None = None
    agent_ping_timeout: float = 15.0
    max_agent_ping_timeouts: int = 5
    agent_reregister_timeout: float = 600.0
    zk_session_timeout: float = 10.0
    allocation_interval: float = 1.0
    offer_timeout: float | None = None
    heartbeat_interval: float = 15.0
    registry_timeout: float = 5.0
    seed: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def replicas_wanted(self) -> int:
        """Registry replicas to wait for on first start: a quorum of ``quorum`` means
        ``2 * quorum - 1`` masters (Mesos's ``--quorum`` > masters / 2)."""
        return 2 * self.quorum - 1

    @property
    def consensus_port(self) -> int:
        return self.registry_port or self.port + 10000
