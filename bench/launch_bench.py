"""Launch benchmark: how long real tasks take to start and to run, through the whole stack.

A real local cluster: a coordination service (keeper by default, ``--zk zookeeper`` for
Apache ZooKeeper), 3 ``paddock master`` processes (quorum 2) and 3 ``paddock agent``
processes, all on 127.0.0.1. The framework is this file's own small Mesos v1 scheduler
HTTP API client (httpx + RecordIO): it SUBSCRIBEs, ACCEPTs offers with LAUNCH
operations and ACKNOWLEDGEs every update that carries a uuid, as a real framework does
(the agent sends a task's next update only after the previous one was acknowledged).

Part A (latency): one task at a time, ``sleep 30`` (killed once RUNNING so the next
sample starts on an idle cluster); time from sending ACCEPT to receiving TASK_RUNNING.
Floor: the same ``/bin/sh -c 'sleep 30'`` spawned with ``asyncio.create_subprocess_exec``
(time until the process exists, which is what RUNNING means on the agent).

Part B (throughput): ``--tasks`` tasks of ``true``; the scheduler accepts every offer
with as many launches as fit (each task takes 1/``--slots-per-agent`` of an agent, so at
most ``3 * slots`` run at once); time from the first ACCEPT to the last TASK_FINISHED.
Floor, in the same run: the same count of ``/bin/sh -c true`` spawned directly with the
same parallelism (an asyncio semaphore of ``3 * slots``), waited for.

It prints the commit, the load average before and after (the machine is shared), and the
CPU seconds the masters and agents used in each part (``/proc/<pid>/stat``: their own
user+system, and that of their reaped children — task processes and supervisors).

    .venv/bin/python bench/launch_bench.py [--zk keeper|zookeeper] [--samples 200]
        [--tasks 1000] [--slots-per-agent 20] [--allocation-interval 1s] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "master"))

from clients import HOST, AgentProcess, MasterProcess, elected, wait_until  # noqa: E402

from _common import (  # noqa: E402
    commit,
    cpu_seconds,
    loadavg,
    print_log_tails,
    start_agent,
    stop_cluster,
)
from _common import main as bench_main  # noqa: E402
from paddock.recordio import RecordIODecoder  # noqa: E402
from paddock.testing import zk_ensemble  # noqa: E402

TASK_CPUS = 0.1
TASK_MEM = 16.0


# ---------------------------------------------------------------- a small v1 framework


class Framework:
    """A Mesos v1 scheduler HTTP API client that calls ``on_offers`` / ``on_update`` for
    each event and acknowledges every update that carries a uuid."""

    def __init__(self, name: str, retry_delay: float = 0.2) -> None:
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, read=None),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self.name = name
        self.retry_delay = retry_delay
        self.base = ""
        self.stream_id = ""
        self.framework_id = ""
        self.held: list[dict[str, Any]] = []  # offers that came while no part listened
        self.on_offers: Callable[[list[dict[str, Any]]], None] = self.held.extend
        self.on_update: Callable[[dict[str, Any]], None] = lambda status: None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._pending: set[asyncio.Task[Any]] = set()
        self.quiet_stream_end = False  # a failover bench expects the stream to break
        self.closing = False

    async def subscribe(self, base: str, timeout: float = 60.0) -> None:
        """SUBSCRIBE (again, with our id, after the first time) at ``base``, following
        307s and retrying 503s every ``retry_delay`` seconds."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self._subscribed.clear()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(base, started))
            status = await started
            if status == 200:
                await asyncio.wait_for(self._subscribed.wait(), end - time.monotonic())
                return
            if isinstance(status, str):  # 307 Location
                base = "http://" + status[2:].split("/", 1)[0]
                continue
            await asyncio.sleep(self.retry_delay)
        raise TimeoutError("could not subscribe")

    async def _read(self, base: str, started: asyncio.Future[Any]) -> None:
        info: dict[str, Any] = {"user": "root", "name": self.name, "failover_timeout": 600}
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
            body["framework_id"] = {"value": self.framework_id}
        try:
            async with self.http.stream("POST", base + "/api/v1/scheduler", json=body) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    loc = resp.headers.get("location")
                    started.set_result(loc if resp.status_code == 307 and loc else 0)
                    return
                self.base = base
                self.stream_id = resp.headers["Mesos-Stream-Id"]
                started.set_result(200)
                dec = RecordIODecoder()
                async for chunk in resp.aiter_raw():
                    for rec in dec.feed(chunk):
                        self._event(json.loads(rec))
        except Exception as exc:
            if not started.done():
                started.set_result(0)
            elif not self.quiet_stream_end:
                print(f"  event stream ended: {exc!r}", file=sys.stderr)

    def _event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("type")
        if kind == "SUBSCRIBED":
            self.framework_id = ev["subscribed"]["framework_id"]["value"]
            self._subscribed.set()
        elif kind == "OFFERS":
            self.on_offers(ev["offers"]["offers"])
        elif kind == "UPDATE":
            status = ev["update"]["status"]
            if "uuid" in status:
                self._spawn(
                    self.call(
                        "ACKNOWLEDGE",
                        acknowledge={
                            "agent_id": status["agent_id"],
                            "task_id": status["task_id"],
                            "uuid": status["uuid"],
                        },
                    )
                )
            self.on_update(status)
        elif kind == "ERROR":
            print(f"  ERROR event: {ev}", file=sys.stderr)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._pending.add(t)
        t.add_done_callback(self._pending.discard)

    async def call(self, kind: str, **body: Any) -> int:
        msg = {"type": kind, "framework_id": {"value": self.framework_id}, **body}
        for attempt in range(3):
            try:
                r = await self.http.post(
                    self.base + "/api/v1/scheduler",
                    json=msg,
                    headers={"Mesos-Stream-Id": self.stream_id},
                )
                break
            except httpx.TransportError as exc:
                # A keep-alive connection the master closed as we reused it: resend.
                if attempt == 2:
                    if not self.closing:
                        print(f"  {kind} failed: {exc!r}", file=sys.stderr)
                    return 0
        if r.status_code != 202 and not self.closing:
            print(f"  {kind} -> HTTP {r.status_code}: {r.text[:200]}", file=sys.stderr)
        return r.status_code

    def call_soon(self, kind: str, **body: Any) -> None:
        self._spawn(self.call(kind, **body))

    async def accept(self, offer: dict[str, Any], tasks: list[dict[str, Any]]) -> int:
        return await self.call(
            "ACCEPT",
            accept={
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
                "filters": {"refuse_seconds": 0},
            },
        )

    def decline(self, offers: list[dict[str, Any]], refuse: float = 0.0) -> None:
        if offers:
            self.call_soon(
                "DECLINE",
                decline={
                    "offer_ids": [o["id"] for o in offers],
                    "filters": {"refuse_seconds": refuse},
                },
            )

    async def close(self) -> None:
        self.closing = True  # calls still in flight may be refused: the stream is gone
        if self._reader is not None:  # first: no event may start another call
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        for t in list(self._pending):
            with contextlib.suppress(BaseException):
                await t
        await self.http.aclose()


def task_info(offer: dict[str, Any], task_id: str, command: str) -> dict[str, Any]:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": TASK_CPUS}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": TASK_MEM}},
        ],
        "command": {"value": command, "shell": True},
    }


def fits(offer: dict[str, Any]) -> int:
    res = {r["name"]: r.get("scalar", {}).get("value", 0.0) for r in offer["resources"]}
    return int(
        min(
            math.floor(res.get("cpus", 0.0) / TASK_CPUS + 1e-6),
            math.floor(res.get("mem", 0.0) / TASK_MEM + 1e-6),
        )
    )


# ---------------------------------------------------------------- measurements


def percentiles(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)

    def q(p: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]

    return {
        "n": len(s),
        "p50": q(0.50),
        "p90": q(0.90),
        "p99": q(0.99),
        "max": s[-1],
        "mean": statistics.fmean(s),
    }


def fmt_ms(p: dict[str, float]) -> str:
    return (
        f"p50 {p['p50'] * 1e3:.1f} ms, p90 {p['p90'] * 1e3:.1f} ms, "
        f"p99 {p['p99'] * 1e3:.1f} ms, max {p['max'] * 1e3:.1f} ms (n={p['n']})"
    )


class BenchAgent(AgentProcess):
    """``paddock agent`` with Mesos's defaults for status update retries (10 s, not the
    tests' 1 s: on a loaded machine a 1 s retry resends updates whose ACK is merely
    slow, and the duplicates add load) and registration backoff (1 s)."""

    def start(self) -> BenchAgent:
        start_agent(self, "--attributes", "rack:r1", "--no-cgroups", "--log-level", "WARNING")
        return self


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class AgentTreeCgroup:
    """A cgroup-v1 ``cpuacct`` group holding the agents and everything they start.

    Task supervisors are forked by a zygote that ignores SIGCHLD: the kernel reaps them
    without adding their CPU to anyone's ``cutime``, so only a cgroup sees the whole
    tree (agents, zygotes, supervisors, tasks). Needs root and cgroup v1 ``cpuacct``;
    without them the figure is left out."""

    def __init__(self) -> None:
        self.path: Path | None = CPUACCT / f"paddock-launch-bench-{os.getpid()}"
        try:
            self.path.mkdir()
        except OSError:
            self.path = None

    def add(self, pid: int) -> None:
        if self.path is not None:
            try:
                (self.path / "cgroup.procs").write_text(f"{pid}\n")
            except OSError:
                self.path = None

    def seconds(self) -> float | None:
        if self.path is None:
            return None
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        if self.path is None:
            return
        for _ in range(50):
            with contextlib.suppress(OSError):
                for pid in (self.path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (CPUACCT / "cgroup.procs").write_text(pid + "\n")
                self.path.rmdir()
                return
            time.sleep(0.1)


class CpuMeter:
    def __init__(
        self,
        masters: list[MasterProcess],
        agents: list[AgentProcess],
        tree: AgentTreeCgroup | None = None,
    ) -> None:
        self.masters = masters
        self.agents = agents
        self.tree = tree

    def read(self) -> dict[str, float]:
        out = {"masters": 0.0, "agents": 0.0, "agents_children": 0.0}
        tree = self.tree.seconds() if self.tree is not None else None
        if tree is not None:
            out["agents_whole_tree"] = tree
        for m in self.masters:
            if m.proc is not None:
                out["masters"] += cpu_seconds(m.proc.pid)[0]
        for a in self.agents:
            if a.proc is not None:
                own, children = cpu_seconds(a.proc.pid)
                out["agents"] += own
                out["agents_children"] += children
        return out

    @staticmethod
    def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
        return {k: round(after[k] - before[k], 2) for k in after}


# ---------------------------------------------------------------- part A: latency


async def latency_part(fw: Framework, samples: int) -> list[float]:
    offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    running: dict[str, asyncio.Future[float]] = {}
    gone: dict[str, asyncio.Future[None]] = {}

    def on_offers(items: list[dict[str, Any]]) -> None:
        for o in items:
            offers.put_nowait(o)

    def on_update(st: dict[str, Any]) -> None:
        tid = st["task_id"]["value"]
        if st["state"] == "TASK_RUNNING":
            f = running.get(tid)
            if f is not None and not f.done():
                f.set_result(time.perf_counter())
        elif st["state"] in ("TASK_KILLED", "TASK_FAILED", "TASK_FINISHED", "TASK_LOST"):
            g = gone.get(tid)
            if g is not None and not g.done():
                g.set_result(None)
            f = running.get(tid)
            if f is not None and not f.done():
                f.set_exception(RuntimeError(f"{tid} ended {st['state']}: {st.get('message')}"))

    fw.on_offers, fw.on_update = on_offers, on_update
    on_offers(fw.held)
    fw.held.clear()
    loop = asyncio.get_running_loop()
    out: list[float] = []
    for i in range(samples):
        # Take an offer that fits, give the others back; stale offers are refused.
        while True:
            offer = await asyncio.wait_for(offers.get(), 60)
            if fits(offer) >= 1:
                break
            fw.decline([offer])
        tid = f"lat-{i}"
        running[tid] = loop.create_future()
        gone[tid] = loop.create_future()
        t0 = time.perf_counter()
        code = await fw.accept(offer, [task_info(offer, tid, "sleep 30")])
        if code != 202:
            running.pop(tid)
            continue  # the offer was rescinded meanwhile: try another
        t1 = await asyncio.wait_for(running[tid], 60)
        out.append(t1 - t0)
        # Decline what we hold so the next sample gets fresh offers (with the killed
        # task's resources), then kill and wait: the next sample starts idle.
        held = []
        while not offers.empty():
            held.append(offers.get_nowait())
        fw.decline(held)
        await fw.call("KILL", kill={"task_id": {"value": tid}, "agent_id": offer["agent_id"]})
        await asyncio.wait_for(gone[tid], 60)
    fw.on_offers, fw.on_update = fw.held.extend, (lambda s: None)
    while not offers.empty():
        fw.held.append(offers.get_nowait())
    return out


async def latency_floor(samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        p = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", "sleep 30", start_new_session=True
        )
        out.append(time.perf_counter() - t0)
        p.kill()
        await p.wait()
    return out


# ---------------------------------------------------------------- part B: throughput


async def throughput_part(fw: Framework, count: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    launched = 0
    finished = 0
    failed: list[str] = []
    first_accept: list[float] = []
    accepts: list[asyncio.Task[int]] = []

    def on_offers(items: list[dict[str, Any]]) -> None:
        nonlocal launched
        spare = []
        for o in items:
            n = min(fits(o), count - launched)
            if n <= 0:
                spare.append(o)
                continue
            tasks = [task_info(o, f"run-{launched + k}", "true") for k in range(n)]
            launched += n
            if not first_accept:
                first_accept.append(time.perf_counter())
            accepts.append(loop.create_task(fw.accept(o, tasks)))
        # Everything launched: keep the leftovers away for a while.
        fw.decline(spare, refuse=0.0 if launched < count else 60.0)

    def on_update(st: dict[str, Any]) -> None:
        nonlocal finished
        if not st["task_id"]["value"].startswith("run-"):
            return
        state = st["state"]
        if state in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR"):
            finished += 1
            if state != "TASK_FINISHED":
                failed.append(f"{st['task_id']['value']}: {state} {st.get('message', '')}")
            if finished >= count and not done.done():
                done.set_result(time.perf_counter())

    fw.on_offers, fw.on_update = on_offers, on_update
    held = list(fw.held)
    fw.held.clear()
    on_offers(held)
    await fw.call("REVIVE")
    t_end = await asyncio.wait_for(done, 1800)
    codes = await asyncio.gather(*accepts)
    fw.on_offers, fw.on_update = fw.held.extend, (lambda s: None)
    if failed:
        print(f"  {len(failed)} tasks did not finish: {failed[:3]}", file=sys.stderr)
    return {
        "seconds": t_end - first_accept[0],
        "failed": float(len(failed)),
        "accepts": float(len(codes)),
        "accepts_not_202": float(sum(1 for c in codes if c != 202)),
    }


async def throughput_floor(count: int, parallel: int) -> float:
    sem = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with sem:
            p = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", "true", start_new_session=True
            )
            await p.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - t0


async def agent_update_counters(agents: list[AgentProcess]) -> dict[str, float]:
    """The agents' status update counters, summed: retries mean an ACK came late or not
    at all; invalid acknowledgements, an ACK for an update that was no longer the head."""
    keys = (
        "slave/status_updates_retried",
        "slave/valid_status_update_acknowledgements",
        "slave/invalid_status_update_acknowledgements",
    )
    out = dict.fromkeys(keys, 0.0)
    async with httpx.AsyncClient(timeout=10) as client:
        for a in agents:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                snap = (await client.get(f"http://{HOST}:{a.port}/metrics/snapshot")).json()
                for k in keys:
                    out[k] += float(snap.get(k, 0.0))
    return {k.split("/", 1)[1]: v for k, v in out.items()}


# ---------------------------------------------------------------- the run


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "commit": commit(),
        "zk": args.zk,
        "load_before": loadavg(),
        "cpus_online": os.cpu_count(),
    }
    print(f"commit {result['commit']}, coordination: {args.zk}, load {result['load_before']}")
    work = Path(tempfile.mkdtemp(prefix="paddock-launch-bench-"))
    ens = zk_ensemble(args.zk, args.zk_size)
    masters: list[MasterProcess] = []
    agents: list[AgentProcess] = []
    fw = Framework("launch-bench")
    tree = AgentTreeCgroup()
    try:
        zk_url = f"zk://{ens.hosts}/launch"
        for i in range(3):
            masters.append(
                MasterProcess(
                    zk_url, 2, work / f"m{i}",
                    "--allocation-interval", args.allocation_interval, "--log-level", "WARNING",
                ).start()
            )  # fmt: skip
        leader = wait_until(lambda: elected(masters), 120, "a leading master")[0]
        slots = args.slots_per_agent
        for i in range(3):
            a = BenchAgent(
                zk_url,
                work / f"a{i}",
                resources=f"cpus:{slots * TASK_CPUS:.2f};mem:{slots * TASK_MEM:.0f}",
            )
            agents.append(a.start())
            assert a.proc is not None
            tree.add(a.proc.pid)  # before its first launch starts the zygote

        def agents_active() -> bool:
            snap = leader.metrics() or {}
            return snap.get("master/agents_active") == 3.0

        wait_until(agents_active, 120, "3 agents registered")
        await fw.subscribe(leader.url)
        meter = CpuMeter(masters, agents, tree)
        if args.idle_seconds > 0:
            # What an idle cluster costs (registry heartbeats, ZooKeeper pings, pings to
            # agents), to set the parts' CPU figures against.
            c0 = meter.read()
            await asyncio.sleep(args.idle_seconds)
            result["idle_cpu"] = CpuMeter.diff(meter.read(), c0)
            result["idle_seconds"] = args.idle_seconds
            print(f"idle {args.idle_seconds:g} s: CPU s {result['idle_cpu']}")

        # Part A
        t_a = time.perf_counter()
        c0 = meter.read()
        lat = await latency_part(fw, args.samples)
        result["latency_cpu"] = CpuMeter.diff(meter.read(), c0)
        result["latency_wall_seconds"] = round(time.perf_counter() - t_a, 1)
        result["latency"] = percentiles(lat)
        floor = percentiles(await latency_floor(args.samples))
        result["latency_floor"] = floor
        print(f"A. ACCEPT -> TASK_RUNNING ('sleep 30'): {fmt_ms(result['latency'])}")
        print(f"   floor (asyncio spawn of /bin/sh -c 'sleep 30'): {fmt_ms(floor)}")
        print(
            f"   ratio p50 {result['latency']['p50'] / floor['p50']:.0f}x, "
            f"p99 {result['latency']['p99'] / floor['p99']:.0f}x; "
            f"CPU s over {result['latency_wall_seconds']} s: {result['latency_cpu']}"
        )

        # Part B
        parallel = 3 * slots
        c0 = meter.read()
        t_b = time.perf_counter()
        tp = await throughput_part(fw, args.tasks)
        result["throughput_wall_seconds"] = round(time.perf_counter() - t_b, 1)
        result["throughput_cpu"] = CpuMeter.diff(meter.read(), c0)
        result["throughput"] = tp
        result["agent_updates"] = await agent_update_counters(agents)
        print(f"   agents' status updates: {result['agent_updates']}")
        floor_s = await throughput_floor(args.tasks, parallel)
        result["throughput_floor_seconds"] = floor_s
        print(
            f"B. {args.tasks} x 'true' to TASK_FINISHED, at most {parallel} at once: "
            f"{tp['seconds']:.2f} s ({args.tasks / tp['seconds']:.0f} tasks/s, "
            f"{tp['accepts']:.0f} ACCEPTs, {tp['failed']:.0f} not FINISHED)"
        )
        print(
            f"   floor (asyncio spawn+wait, same count and parallelism): {floor_s:.2f} s; "
            f"ratio {tp['seconds'] / floor_s:.1f}x; CPU s {result['throughput_cpu']}"
        )
    except BaseException:
        print_log_tails([*masters, *agents], 20)
        raise
    finally:
        await stop_cluster(fw, masters, agents)
        tree.remove()
        ens.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    result["load_after"] = loadavg()
    print(f"load average after: {result['load_after']} ({os.cpu_count()} CPUs, shared machine)")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--zk", choices=("keeper", "zookeeper"), default="keeper")
    p.add_argument("--zk-size", type=int, default=1, help="coordination servers (default 1)")
    p.add_argument("--samples", type=int, default=200, help="part A samples")
    p.add_argument("--tasks", type=int, default=1000, help="part B tasks")
    p.add_argument("--slots-per-agent", type=int, default=20, help="tasks one agent fits")
    p.add_argument("--allocation-interval", default="1s", help="masters' flag (Mesos: 1s)")
    p.add_argument("--idle-seconds", type=float, default=10, help="idle CPU baseline window")
    bench_main(p, run, keep_help="keep the work directory")


if __name__ == "__main__":
    main()
