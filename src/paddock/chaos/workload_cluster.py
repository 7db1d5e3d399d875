"""The cluster workload: Marathon apps deployed, scaled and restarted under faults.

Runs as one process in the lab's observer namespace (never faulted, like a Jepsen
control node), started by the runner::

    python -m paddock.chaos.workload_cluster work --spec JSON

Two threads:

* the client: every 0.5-1.5 s (seeded) one request to a marathon picked at random
  (standbys proxy to the leader) — deploy a new app, scale an app, or restart one
  — recorded as ``invoke`` then ``ok`` (2xx), ``fail`` (certainly no effect: a 4xx
  answer or a refused connection) or ``info`` (unknown: a timeout, a broken
  connection, a 5xx — the leader may have applied it), with the machine's
  monotonic clock so it merges with the runner's fault times;
* the sampler: every second, ``/v2/tasks`` (Marathon's view) and every agent's
  ``/state`` (what really runs), plus who leads (``/v2/leader``).

After ``duration`` the client stops; the sampler goes on until the apps converge to
an instance count the history allows (see :func:`allowed_final`), or ``settle``
seconds pass, and writes the last consistent snapshot as ``final``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import httpx

APP_PREFIX = "/chaos/a"
#: Upgrade strategies the apps get in turn: (minimumHealthCapacity, maximumOverCapacity).
STRATEGIES = [(0.5, 0.0), (1.0, 0.5), (0.0, 0.0), (1.0, 1.0)]
MAX_INSTANCES = 4


@dataclass
class ClusterSpec:
    marathons: list[str]
    agents: list[str]
    masters: list[str]
    seed: int
    start_ns: int
    duration: float
    settle: float
    out: str
    max_apps: int = 6
    op_interval: tuple[float, float] = (0.5, 1.5)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClusterSpec:
        d = json.loads(text)
        d["op_interval"] = tuple(d["op_interval"])
        return cls(**d)


def app_body(app_id: str, instances: int, index: int) -> dict[str, Any]:
    mh, mo = STRATEGIES[index % len(STRATEGIES)]
    return {
        "id": app_id,
        "cmd": "sleep 100000",
        "cpus": 0.01,
        "mem": 8,
        "instances": instances,
        "portDefinitions": [],
        "upgradeStrategy": {"minimumHealthCapacity": mh, "maximumOverCapacity": mo},
    }


class Recorder:
    """Appends events (one JSON object a line) with run-relative monotonic times."""

    def __init__(self, f: TextIO, start_ns: int) -> None:
        self.f = f
        self.start_ns = start_ns
        self.lock = threading.Lock()

    def now(self) -> int:
        return time.monotonic_ns()

    def write(self, ev: dict[str, Any]) -> None:
        with self.lock:
            self.f.write(json.dumps(ev) + "\n")
            self.f.flush()


def _classify(resp: httpx.Response | None, exc: BaseException | None) -> tuple[str, str]:
    if exc is not None:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return "fail", f"{type(exc).__name__}"
        return "info", f"{type(exc).__name__}: {exc}"[:200]
    assert resp is not None
    if 200 <= resp.status_code < 300:
        return "ok", str(resp.status_code)
    if 400 <= resp.status_code < 500:
        return "fail", f"{resp.status_code} {resp.text[:200]}"
    return "info", f"{resp.status_code} {resp.text[:200]}"


class Client:
    """The operations thread."""

    def __init__(self, spec: ClusterSpec, rec: Recorder, stop: threading.Event) -> None:
        self.spec = spec
        self.rec = rec
        self.stop = stop
        self.rng = random.Random(spec.seed)
        self.http = httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0))
        self.apps: list[str] = []
        self.acked_apps: set[str] = set()
        self.last_detail = ""
        self.next_app = 1
        self.op_id = 0

    def request(self, f: str, app: str, value: int | None, method: str, path: str,
                body: dict[str, Any] | None) -> str:  # fmt: skip
        """Try the marathons in a random order until one is reached (a refused
        connection is recorded as a failed request: it certainly had no effect)."""
        order = self.rng.sample(self.spec.marathons, len(self.spec.marathons))
        kind = "fail"
        for marathon in order:
            kind, reached = self._request_one(marathon, f, app, value, method, path, body)
            if reached or self.stop.is_set():
                break
        return kind

    def _request_one(self, marathon: str, f: str, app: str, value: int | None, method: str,
                     path: str, body: dict[str, Any] | None) -> tuple[str, bool]:  # fmt: skip
        self.op_id += 1
        base = {"op": self.op_id, "f": f, "app": app, "value": value, "marathon": marathon}
        self.rec.write({**base, "type": "invoke", "t": self.rec.now()})
        resp: httpx.Response | None = None
        exc: BaseException | None = None
        try:
            resp = self.http.request(method, f"http://{marathon}{path}", json=body)
        except httpx.HTTPError as e:
            exc = e
        kind, detail = _classify(resp, exc)
        ev = {**base, "type": kind, "t": self.rec.now(), "detail": detail}
        if resp is not None and kind == "ok":
            with contextlib.suppress(ValueError, AttributeError):
                ev["deployment"] = resp.json().get("deploymentId")
        self.rec.write(ev)
        self.last_detail = detail
        return kind, not (kind == "fail" and exc is not None)

    def step(self) -> None:
        r = self.rng.random()
        if not self.apps or (len(self.apps) < self.spec.max_apps and r < 0.15):
            index = self.next_app
            self.next_app += 1
            app = f"{APP_PREFIX}{index}"
            n = self.rng.randint(1, MAX_INSTANCES - 1)
            kind = self.request("deploy", app, n, "POST", "/v2/apps", app_body(app, n, index))
            if kind != "fail":  # refused: it does not exist; unknown: it may
                self.apps.append(app)
            if kind == "ok":
                self.acked_apps.add(app)
        elif r < 0.75:
            app = self.rng.choice(self.apps)
            n = self.rng.randint(0, MAX_INSTANCES)
            kind = self.request(
                "scale", app, n, "PUT", f"/v2/apps{app}?force=true", {"instances": n}
            )
            self._forget_if_missing(app, kind)
        else:
            app = self.rng.choice(self.apps)
            kind = self.request(
                "restart", app, None, "POST", f"/v2/apps{app}/restart?force=true", None
            )
            self._forget_if_missing(app, kind)

    def _forget_if_missing(self, app: str, kind: str) -> None:
        """An app whose deploy had an unknown outcome and that Marathon does not know
        (404; 422: a PUT would create it without a command) is not used again, so the
        requests go to apps that exist. (A 404 for an acknowledged app is kept: the
        checker reports what happened to it.)"""
        missing = self.last_detail.startswith(("404", "422"))
        if kind == "fail" and missing and app not in self.acked_apps and app in self.apps:
            self.apps.remove(app)

    def run(self) -> None:
        deadline = self.spec.start_ns + int(self.spec.duration * 1e9)
        try:
            while not self.stop.is_set() and time.monotonic_ns() < deadline:
                self.step()
                lo, hi = self.spec.op_interval
                left = (deadline - time.monotonic_ns()) / 1e9
                self.stop.wait(max(0.0, min(self.rng.uniform(lo, hi), left)))
        finally:
            self.http.close()


# ------------------------------------------------------------------ sampling


def allowed_final(history: list[dict[str, Any]]) -> dict[str, set[int]]:
    """Per app: the instance counts it may end with, given the history.

    The value of the last acknowledged deploy/scale (by completion), and of any
    deploy/scale that was not certainly refused and was invoked after that one was
    invoked (concurrent or unknown outcome: it may have been applied later). An app
    whose every deploy failed may not exist: then 0 is allowed too."""
    by_app: dict[str, list[dict[str, Any]]] = defaultdict(list)
    invoked: dict[int, dict[str, Any]] = {}
    for ev in history:
        if ev.get("f") not in ("deploy", "scale"):
            continue
        if ev["type"] == "invoke":
            invoked[ev["op"]] = ev
        else:
            by_app[ev["app"]].append({**ev, "t_inv": invoked[ev["op"]]["t"]})
    for op, inv in invoked.items():  # invoked, never completed: unknown
        if not any(o["op"] == op for o in by_app[inv["app"]]):
            by_app[inv["app"]].append({**inv, "type": "info", "t_inv": inv["t"]})
    out: dict[str, set[int]] = {}
    for app, ops in by_app.items():
        oks = [o for o in ops if o["type"] == "ok"]
        last_ok = max(oks, key=lambda o: o["t"]) if oks else None
        allowed: set[int] = set()
        if last_ok is None:
            allowed.add(0)
        else:
            allowed.add(int(last_ok["value"]))
        for o in ops:
            if o["type"] == "fail":
                continue
            if last_ok is None or o["t_inv"] > last_ok["t_inv"] or o["t"] > last_ok["t_inv"]:
                allowed.add(int(o["value"]))
        out[app] = allowed
    return out


def _get(http: httpx.Client, url: str, timeout: float = 2.0) -> Any:
    try:
        r = http.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        return r.json()
    except ValueError:
        return None


def agent_running(state: Any) -> list[dict[str, Any]]:
    """Tasks in state TASK_RUNNING in an agent's ``/state``."""
    out: list[dict[str, Any]] = []
    if not isinstance(state, dict):
        return out
    for fw in state.get("frameworks") or []:
        for ex in fw.get("executors") or []:
            for t in ex.get("tasks") or []:
                if t.get("state") == "TASK_RUNNING":
                    out.append({"id": t.get("id"), "name": t.get("name")})
    return out


class Sampler:
    def __init__(self, spec: ClusterSpec, rec: Recorder) -> None:
        self.spec = spec
        self.rec = rec
        self.http = httpx.Client()
        self.pool = ThreadPoolExecutor(max_workers=max(2, len(spec.agents)))
        self.round = 0

    def sample(self) -> dict[str, Any]:
        self.round += 1
        rnd = self.round
        futs = {a: self.pool.submit(_get, self.http, f"http://{a}/state") for a in self.spec.agents}
        tasks = None
        source = None
        for m in random.Random(rnd).sample(self.spec.marathons, len(self.spec.marathons)):
            got = _get(self.http, f"http://{m}/v2/tasks")
            if isinstance(got, dict) and "tasks" in got:
                tasks, source = got["tasks"], m
                break
        leader = None
        for m in self.spec.marathons:
            got = _get(self.http, f"http://{m}/v2/leader", 1.0)
            if isinstance(got, dict):
                leader = got.get("leader")
                break
        apps = None
        deployments = None
        if source is not None:
            got = _get(self.http, f"http://{source}/v2/apps")
            apps = got.get("apps") if isinstance(got, dict) else None
            deployments = _get(self.http, f"http://{source}/v2/deployments")
        agents = {}
        for a, f in futs.items():
            st = f.result()
            agents[a] = None if st is None else [t["id"] for t in agent_running(st)]
        snap: dict[str, Any] = {
            "type": "sample",
            "round": rnd,
            "t": self.rec.now(),
            "marathon": source,
            "marathon_leader": leader,
            "tasks": None
            if tasks is None
            else [
                {
                    "id": t.get("id"),
                    "app": t.get("appId"),
                    "state": t.get("state"),
                    "host": t.get("host"),
                }
                for t in tasks
            ],
            "apps": None
            if apps is None
            else {a["id"]: int(a.get("instances", 0)) for a in apps if "id" in a},
            "deployments": None if deployments is None else len(deployments),
            "agents": agents,
        }
        self.rec.write(snap)
        return snap

    def close(self) -> None:
        self.http.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def converged(snap: dict[str, Any], allowed: dict[str, set[int]]) -> bool:
    """Every app runs an allowed count, Marathon and the agents agree, nothing deploys."""
    if snap["tasks"] is None or snap["apps"] is None or snap["deployments"] != 0:
        return False
    if any(v is None for v in snap["agents"].values()):
        return False
    running_on_agents: dict[str, int] = defaultdict(int)
    for ids in snap["agents"].values():
        for tid in ids:
            running_on_agents[task_app(tid)] += 1
    marathon_running: dict[str, int] = defaultdict(int)
    for t in snap["tasks"]:
        if t["state"] == "TASK_RUNNING":
            marathon_running[t["app"]] += 1
    apps = set(allowed) | set(running_on_agents) | set(snap["apps"])
    for app in apps:
        ok = allowed.get(app, {0})
        n_agents = running_on_agents.get(app, 0)
        if n_agents not in ok or marathon_running.get(app, 0) != n_agents:
            return False
        if app in snap["apps"] and snap["apps"][app] != n_agents:
            return False
    return True


def task_app(task_id: str) -> str:
    """``chaos_a3.<uuid>`` -> ``/chaos/a3`` (Marathon task ids: path with '_', '.', uuid)."""
    head = task_id.split(".", 1)[0]
    return "/" + head.replace("_", "/")


def work(spec: ClusterSpec) -> int:
    stop = threading.Event()
    with open(spec.out, "a") as f:
        rec = Recorder(f, spec.start_ns)
        client = Client(spec, rec, stop)
        history: list[dict[str, Any]] = []
        sampler = Sampler(spec, rec)
        thread = threading.Thread(target=client.run, name="client", daemon=True)
        thread.start()
        try:
            end_ops = spec.start_ns + int(spec.duration * 1e9)
            while time.monotonic_ns() < end_ops:
                t0 = time.monotonic()
                sampler.sample()
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
            stop.set()
            thread.join(15)
            f.flush()
            with open(spec.out) as hf:
                history = [json.loads(line) for line in hf if '"f": ' in line]
            allowed = allowed_final(history)
            rec.write({"type": "ops-ended", "t": rec.now()})
            deadline = time.monotonic() + spec.settle
            streak: list[int] = []
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                snap = sampler.sample()
                streak = [*streak, snap["t"]] if converged(snap, allowed) else []
                if len(streak) >= 3:  # three consistent samples in a row: settled
                    rec.write({"type": "converged", "t": streak[0], "final": snap})
                    break
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
            else:
                rec.write({"type": "not-converged", "t": rec.now()})
        finally:
            stop.set()
            sampler.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="paddock.chaos.workload_cluster")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("work")
    w.add_argument("--spec", required=True)
    args = ap.parse_args(argv)
    return work(ClusterSpec.from_json(args.spec))


if __name__ == "__main__":
    sys.exit(main())
