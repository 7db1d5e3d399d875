"""What the web UI's server side gathers about the cluster, best effort and bounded in time.

A browser cannot speak ZooKeeper's four-letter words, read the masters' election znodes
or reach an agent's sandbox across origins, so the UI's process does it:

* the coordination servers (ZooKeeper or keeper): ``srvr`` on each host of the configured
  ``zk://`` URL, parsed for ``Mode:`` (leader, follower, standalone), ``Zxid:`` and
  ``Connections:``; the quorum is a majority of the configured hosts;
* the masters: the ``json.info_*`` znodes under the masters' path (the lowest leads,
  as Mesos clients read it), each master's ``/metrics/snapshot`` (``master/elected``)
  and the leader's ``/master/state`` for agents and frameworks;
* a task's sandbox log: the leader's state names the task's agent, whose
  ``/files/read`` serves the tail of ``stdout``/``stderr``.

Every network step has a short timeout, and a failure becomes an ``error`` string in the
answer rather than an exception: a half-broken cluster is exactly when the overview
matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

SRVR_TIMEOUT = 1.5
ZK_TIMEOUT = 3.0
HTTP_TIMEOUT = 3.0
INFO_PREFIX = "json.info_"
LOG_FILES = ("stdout", "stderr")


@dataclass(frozen=True)
class ZkUrl:
    hosts: tuple[str, ...]
    path: str

    @property
    def connect_string(self) -> str:
        return ",".join(self.hosts)


def parse_zk_url(url: str) -> ZkUrl | None:
    """``zk://h1:p,h2:p/path`` -> hosts and path; None when ``url`` is not a zk URL."""
    if not url.startswith("zk://"):
        return None
    hosts, _, path = url[len("zk://") :].partition("/")
    names = tuple(h.strip() for h in hosts.split(",") if h.strip())
    if not names:
        return None
    return ZkUrl(names, "/" + path.strip("/"))


def split_host_port(address: str, default_port: int = 2181) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    try:
        return host, int(port)
    except ValueError:
        return host, default_port


def parse_srvr(text: str) -> dict[str, Any]:
    """The fields of a ``srvr`` answer the overview shows."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Mode":
            out["mode"] = value
        elif key == "Zxid":
            out["zxid"] = value
        elif key == "Connections":
            out["connections"] = int(value) if value.isdigit() else value
        elif key == "Node count":
            out["node_count"] = int(value) if value.isdigit() else value
        elif key == "Zookeeper version":
            out["version"] = value
    return out


async def four_letter(address: str, word: str = "srvr", timeout: float = SRVR_TIMEOUT) -> str:
    host, port = split_host_port(address)

    async def ask() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(word.encode())
            await writer.drain()
            data = await reader.read(64 * 1024)
            return data.decode("utf-8", errors="replace")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.wait_for(ask(), timeout)


async def coordination_status(zk: ZkUrl) -> dict[str, Any]:
    """Each configured server's ``srvr`` answer, and whether a quorum of them is serving."""

    async def one(address: str) -> dict[str, Any]:
        try:
            text = await four_letter(address)
        except (OSError, TimeoutError) as exc:
            return {"address": address, "up": False, "error": _describe(exc)}
        info = parse_srvr(text)
        if "mode" not in info:
            # It answers, but says nothing useful: "not currently serving requests" (no
            # quorum) or "srvr is not executed because it is not in the whitelist".
            first = text.strip().splitlines()[0] if text.strip() else "empty answer"
            mode = "not serving" if "not currently serving" in first else "unknown"
            return {"address": address, "up": True, "mode": mode, "error": f"srvr: {first}"}
        return {"address": address, "up": True, **info}

    servers = list(await asyncio.gather(*(one(a) for a in zk.hosts)))
    serving = [s for s in servers if s.get("mode") in ("leader", "follower", "standalone")]
    unknown = [s for s in servers if s.get("mode") == "unknown"]
    leaders = [s["address"] for s in servers if s.get("mode") in ("leader", "standalone")]
    needed = len(servers) // 2 + 1
    healthy: bool | None = len(serving) >= needed and len(leaders) == 1
    if not healthy and unknown and len(serving) + len(unknown) >= needed:
        healthy = None  # cannot tell: some servers refuse srvr
    return {
        "hosts": list(zk.hosts),
        "servers": servers,
        "quorum": {"size": len(servers), "needed": needed, "serving": len(serving)},
        "healthy": healthy,
        "leader": leaders[0] if len(leaders) == 1 else None,
    }


def _read_master_znodes(zk: ZkUrl) -> list[dict[str, Any]]:
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk.connect_string, timeout=ZK_TIMEOUT, read_only=True)
    try:
        client.start(timeout=ZK_TIMEOUT)
        names = sorted(
            (c for c in client.get_children(zk.path) if c.startswith(INFO_PREFIX)),
            key=lambda c: c[len(INFO_PREFIX) :],
        )
        out = []
        for name in names:
            try:
                data, _ = client.get(f"{zk.path}/{name}")
                info = json.loads(data)
            except Exception:  # a master left between the listing and the read
                continue
            if isinstance(info, dict):
                info["znode"] = name
                out.append(info)
        return out
    finally:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


def master_address(info: dict[str, Any]) -> str:
    addr = info.get("address") if isinstance(info.get("address"), dict) else {}
    assert isinstance(addr, dict)
    host = addr.get("ip") if isinstance(addr.get("ip"), str) else None
    host = host or addr.get("hostname") or info.get("hostname") or "?"
    return f"{host}:{addr.get('port', info.get('port', '?'))}"


@dataclass
class Sources:
    """Where the UI's process finds the cluster: the masters (a ``zk://`` URL or an
    ``http://host:port`` of one master), the coordination service, and marathon."""

    master: str = ""
    zk: str = ""
    marathon: str = ""
    served_by: str = "marathon"
    extra_zk: list[str] = field(default_factory=list)

    def zk_urls(self) -> list[ZkUrl]:
        out: list[ZkUrl] = []
        for url in (self.zk, self.master, *self.extra_zk):
            parsed = parse_zk_url(url)
            if parsed is not None:
                out.append(parsed)
        return out


async def masters_status(sources: Sources, client: httpx.AsyncClient) -> dict[str, Any]:
    """Known masters, the leader, each one's own idea of being elected."""
    zk = parse_zk_url(sources.master)
    known: list[dict[str, Any]] = []
    errors: list[str] = []
    if zk is not None:
        try:
            infos = await asyncio.wait_for(
                asyncio.to_thread(_read_master_znodes, zk), ZK_TIMEOUT + 1
            )
        except Exception as exc:
            infos = []
            errors.append(f"reading {zk.path} in the coordination service: {_describe(exc)}")
        for i, info in enumerate(infos):
            known.append(
                {
                    "address": master_address(info),
                    "hostname": (info.get("address") or {}).get("hostname") or info.get("hostname"),
                    "id": info.get("id", ""),
                    "version": info.get("version", ""),
                    "leading": i == 0,
                }
            )
    elif sources.master:
        address = sources.master.removeprefix("http://").removeprefix("https://").rstrip("/")
        known.append({"address": address, "hostname": address, "id": "", "leading": True})

    async def snapshot(m: dict[str, Any]) -> None:
        try:
            r = await client.get(f"http://{m['address']}/metrics/snapshot", timeout=HTTP_TIMEOUT)
            r.raise_for_status()
            m["elected"] = bool(r.json().get("master/elected"))
            m["up"] = True
        except (httpx.HTTPError, ValueError) as exc:
            m["up"] = False
            m["error"] = _describe(exc)

    await asyncio.gather(*(snapshot(m) for m in known))
    leader = next((m["address"] for m in known if m["leading"]), None)
    return {"known": known, "leader": leader, "errors": errors}


async def master_state(leader: str, client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get(
        f"http://{leader}/master/state", timeout=HTTP_TIMEOUT, follow_redirects=True
    )
    r.raise_for_status()
    state = r.json()
    if not isinstance(state, dict):
        raise ValueError("/master/state is not a JSON object")
    return state


def summarize_state(state: dict[str, Any]) -> dict[str, Any]:
    """Agents and frameworks as the overview shows them (not the whole state)."""
    agents = [
        {
            "id": s.get("id"),
            "hostname": s.get("hostname"),
            "port": s.get("port"),
            "active": s.get("active"),
            "resources": s.get("resources", {}),
            "used_resources": s.get("used_resources", {}),
            "attributes": s.get("attributes", {}),
        }
        for s in state.get("slaves", [])
        if isinstance(s, dict)
    ]
    frameworks = [
        {
            "id": f.get("id"),
            "name": f.get("name"),
            "active": f.get("active"),
            "connected": f.get("connected"),
            "webui_url": f.get("webui_url", ""),
            "used_resources": f.get("used_resources", {}),
            "tasks": len(f.get("tasks", [])),
        }
        for f in state.get("frameworks", [])
        if isinstance(f, dict)
    ]
    flags = state.get("flags") if isinstance(state.get("flags"), dict) else {}
    assert isinstance(flags, dict)
    return {
        "agents": agents,
        "frameworks": frameworks,
        "quorum": flags.get("quorum"),
        "leader": state.get("leader"),
    }


async def cluster_overview(sources: Sources, client: httpx.AsyncClient) -> dict[str, Any]:
    started = time.monotonic()
    zk_urls = sources.zk_urls()
    hosts: list[str] = []
    for u in zk_urls:
        hosts += [h for h in u.hosts if h not in hosts]
    coord_task = (
        asyncio.ensure_future(coordination_status(ZkUrl(tuple(hosts), "/"))) if hosts else None
    )
    masters = await masters_status(sources, client)
    state: dict[str, Any] = {"agents": [], "frameworks": [], "quorum": None}
    errors = list(masters.pop("errors"))
    if masters["leader"]:
        try:
            state = summarize_state(await master_state(masters["leader"], client))
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(f"/master/state of {masters['leader']}: {_describe(exc)}")
    elif sources.master:
        errors.append("no master is leading")
    masters["quorum"] = state.pop("quorum", None)
    coordination = await coord_task if coord_task is not None else None
    return {
        "served_by": sources.served_by,
        "coordination": coordination,
        "masters": masters,
        "agents": state["agents"],
        "frameworks": state["frameworks"],
        "errors": errors,
        "took_ms": round((time.monotonic() - started) * 1000),
    }


def find_task(state: dict[str, Any], task_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(task, agent) of ``task_id`` in a master state, running or completed."""
    agents = {s.get("id"): s for s in state.get("slaves", []) if isinstance(s, dict)}
    for fw in state.get("frameworks", []) + state.get("completed_frameworks", []):
        if not isinstance(fw, dict):
            continue
        for t in list(fw.get("tasks", [])) + list(fw.get("completed_tasks", [])):
            if isinstance(t, dict) and t.get("id") == task_id:
                agent = agents.get(t.get("slave_id"))
                if agent is not None:
                    return t, agent
    return None


class TaskLogError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def task_log(
    sources: Sources,
    client: httpx.AsyncClient,
    task_id: str,
    file: str = "stdout",
    tail_bytes: int = 8192,
) -> dict[str, Any]:
    """The last ``tail_bytes`` of a task's sandbox ``stdout`` or ``stderr``."""
    if file not in LOG_FILES:
        raise TaskLogError(400, f"file must be one of {', '.join(LOG_FILES)}")
    if not task_id or len(task_id) > 512 or not re.fullmatch(r"[^/\x00]+", task_id):
        raise TaskLogError(400, "task must be a task id")
    tail_bytes = max(1, min(tail_bytes, 1024 * 1024))
    masters = await masters_status(sources, client)
    if not masters["leader"]:
        raise TaskLogError(503, "no master is leading: cannot find the task's agent")
    try:
        state = await master_state(masters["leader"], client)
    except (httpx.HTTPError, ValueError) as exc:
        raise TaskLogError(502, f"/master/state: {_describe(exc)}") from None
    found = find_task(state, task_id)
    if found is None:
        raise TaskLogError(404, f"task {task_id} is not known to the leading master")
    task, agent = found
    agent_addr = f"{agent.get('hostname')}:{agent.get('port')}"
    path = f"/frameworks/{task.get('framework_id')}/executors/{task_id}/runs/latest/{file}"
    url = f"http://{agent_addr}/files/read"
    try:
        r = await client.get(url, params={"path": path, "offset": -1}, timeout=HTTP_TIMEOUT)
        if r.status_code == 404:
            raise TaskLogError(404, f"agent {agent_addr}: {_agent_error(r)}")
        r.raise_for_status()
        size = int(r.json()["offset"])
        offset = max(0, size - tail_bytes)
        r = await client.get(
            url,
            params={"path": path, "offset": offset, "length": size - offset},
            timeout=HTTP_TIMEOUT,
        )
        r.raise_for_status()
        data = str(r.json().get("data", ""))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise TaskLogError(502, f"agent {agent_addr}: {_describe(exc)}") from None
    return {
        "task": task_id,
        "file": file,
        "agent": agent_addr,
        "agent_id": agent.get("id"),
        "state": task.get("state"),
        "size": size,
        "offset": offset,
        "truncated": offset > 0,
        "data": data,
    }


def _agent_error(r: httpx.Response) -> str:
    try:
        return str(r.json().get("error", r.text))
    except ValueError:
        return r.text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
