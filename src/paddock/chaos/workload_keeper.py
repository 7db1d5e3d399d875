"""The keeper workload: kazoo clients recording a Jepsen-style history.

Why a separate process per host: each lab host is a network namespace, and a
client must sit on a host to be cut off with it. The runner starts one worker
per host (``ip netns exec hN python -m paddock.chaos.workload_keeper ...``);
its clients talk to the keeper on their own host (one client may also fail
over to the others). Times are ``time.monotonic_ns()``, one clock for every
process on the machine, so the runner can merge the workers' histories into
one real-time order.

Operations (on register znodes ``/chaos/r/g{G}-k{K}``; the generation G moves
on every ``key_period`` seconds so each register's history stays short enough
to check):

* ``read``: ``getData`` -> ``[version, value]`` (ZooKeeper reads are served
  locally: sequentially consistent, not linearizable);
* ``sync-read``: ``sync`` then ``getData``, timed from the sync's invocation;
* ``write``: ``setData(version=-1)`` -> the new version;
* ``cas``: ``setData(version=V)`` with V the last version this client saw ->
  the new version, or the error ``bad-version``;
* ``create``: a ``PERSISTENT_SEQUENTIAL`` child of ``/chaos/seq`` holding a
  unique value -> its sequence number.

Each event: ``{"p", "type", "f", "key", "value", "t", "session", "client",
"error"}``; ``type`` is invoke, ok, fail (certainly no effect) or info
(unknown). A process whose operation ended in ``info`` is retired and the
client continues under a new process id (one outstanding operation each).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

ROOT = "/chaos"
REGISTERS = f"{ROOT}/r"
SEQ = f"{ROOT}/seq"
INITIAL_VALUE = "init"


def register_path(gen: int, k: int) -> str:
    return f"{REGISTERS}/g{gen}-k{k}"


@dataclass
class WorkerSpec:
    """What one worker process does (passed as JSON on its command line)."""

    #: kazoo host strings, one per client.
    clients: list[str]
    #: First process id of each client; a retired process continues as p + stride.
    procs: list[int]
    stride: int
    seed: int
    start_ns: int  # the run's t=0 (monotonic_ns)
    duration: float
    keys: int
    key_period: float
    out: str
    op_timeout: float = 5.0
    session_timeout: float = 6.0
    pace: float = 0.02

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def _client(hosts: str, session_timeout: float) -> Any:
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    return KazooClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
        randomize_hosts=True,
    )


class _Recorder:
    def __init__(self, path: str) -> None:
        self._f = open(path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()

    def emit(self, ev: dict[str, Any]) -> None:
        line = json.dumps(ev)
        with self._lock:
            self._f.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._f.close()


def _classify(exc: BaseException, f: str) -> tuple[str, str]:
    """(type, error) for an exception from operation ``f``."""
    from kazoo import exceptions as ke

    name = type(exc).__name__
    if isinstance(exc, ke.BadVersionError):
        return "fail", "bad-version"
    definite = (
        ke.NoNodeError,
        ke.NodeExistsError,
        ke.NoAuthError,
        ke.BadArgumentsError,
        ke.NotReadOnlyCallError,
        ke.AuthFailedError,
    )
    if isinstance(exc, definite) or f in ("read", "sync-read"):
        return "fail", name
    return "info", name


def _run_client(spec: WorkerSpec, idx: int, rec: _Recorder, stop: threading.Event) -> None:
    rng = random.Random(spec.seed * 1000 + idx)
    proc = spec.procs[idx]
    deadline_ns = spec.start_ns + int(spec.duration * 1e9)
    client = _client(spec.clients[idx], spec.session_timeout)
    counter = 0
    versions: dict[str, int] = {}

    def now() -> int:
        return time.monotonic_ns()

    def left() -> float:
        return (deadline_ns - now()) / 1e9

    started = False
    try:
        while not stop.is_set() and left() > 0:
            if not started:
                try:
                    client.start(timeout=max(0.5, min(5.0, left())))
                    started = True
                except Exception:  # keep trying until the deadline
                    time.sleep(0.2)
                    continue
            if not client.connected:
                time.sleep(0.05)
                continue
            elapsed = (now() - spec.start_ns) / 1e9
            gen = max(0, int(elapsed // spec.key_period))
            key = register_path(gen, rng.randrange(spec.keys))
            r = rng.random()
            if r < 0.25:
                f = "read"
            elif r < 0.35:
                f = "sync-read"
            elif r < 0.6:
                f = "write"
            elif r < 0.9:
                f = "cas" if key in versions else "read"
            else:
                f = "create"
            counter += 1
            value: Any
            if f == "write":
                value = f"{proc}-{counter}"
            elif f == "cas":
                value = [versions[key], f"{proc}-{counter}"]
            elif f == "create":
                value = f"{proc}-{counter}"
                key = SEQ
            else:
                value = None
            session = client.client_id[0] if client.client_id else 0
            base = {"p": proc, "f": f, "key": key, "client": idx, "session": session}
            rec.emit({**base, "type": "invoke", "value": value, "t": now()})
            try:
                timeout = spec.op_timeout
                if f == "read":
                    data, stat = client.get_async(key).get(timeout=timeout)
                    out: Any = [stat.version, data.decode()]
                elif f == "sync-read":
                    client.sync_async(key).get(timeout=timeout)
                    data, stat = client.get_async(key).get(timeout=timeout)
                    out = [stat.version, data.decode()]
                elif f == "write":
                    stat = client.set_async(key, value.encode(), -1).get(timeout=timeout)
                    out = stat.version
                elif f == "cas":
                    stat = client.set_async(key, value[1].encode(), value[0]).get(timeout=timeout)
                    out = stat.version
                else:
                    path = client.create_async(f"{SEQ}/n-", value.encode(), sequence=True).get(
                        timeout=timeout
                    )
                    out = int(path.rsplit("-", 1)[1])
            except Exception as exc:  # every outcome is recorded
                kind, err = _classify(exc, f)
                rec.emit({**base, "type": kind, "value": value, "t": now(), "error": err})
                if kind == "info":
                    proc += spec.stride
                elif err == "bad-version":
                    versions.pop(key, None)
            else:
                rec.emit({**base, "type": "ok", "value": out, "t": now()})
                if f in ("read", "sync-read"):
                    versions[key] = out[0]
                elif f in ("write", "cas"):
                    versions[key] = out
            if spec.pace:
                time.sleep(rng.uniform(0, 2 * spec.pace))
    finally:
        try:
            client.stop()
            client.close()
        except Exception:  # shutting down a broken client
            pass


def run_worker(spec: WorkerSpec) -> None:
    rec = _Recorder(spec.out)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_run_client, args=(spec, i, rec, stop), daemon=True)
        for i in range(len(spec.clients))
    ]
    for t in threads:
        t.start()
    hard = spec.start_ns / 1e9 + spec.duration + spec.op_timeout * 2 + 5
    for t in threads:
        t.join(max(0.1, hard - time.monotonic()))
    stop.set()
    rec.close()


def _connect(hosts: str, timeout: float) -> Any:
    client = _client(hosts, 10.0)
    client.start(timeout=timeout)
    return client


def run_setup(hosts: str, gens: int, keys: int, timeout: float) -> None:
    """Create the registers (value ``init``, version 0) and the sequence parent."""
    from kazoo.exceptions import NodeExistsError

    client = _connect(hosts, timeout)
    try:
        for path in (ROOT, REGISTERS, SEQ):
            with contextlib.suppress(NodeExistsError):
                client.create(path, b"")
        trx = None
        n = 0
        for g in range(gens):
            for k in range(keys):
                if trx is None:
                    trx = client.transaction()
                trx.create(register_path(g, k), INITIAL_VALUE.encode())
                n += 1
                if n % 200 == 0:
                    trx.commit()
                    trx = None
        if trx is not None:
            trx.commit()
    finally:
        client.stop()
        client.close()


def run_verify(hosts: str, gens: int, keys: int, timeout: float, out: str) -> None:
    """Read back every register (after ``sync``) and every sequential node."""
    client = _connect(hosts, timeout)
    result: dict[str, Any] = {"registers": {}, "seq": {}}
    try:
        t0 = time.monotonic_ns()
        for g in range(gens):
            for k in range(keys):
                path = register_path(g, k)
                client.sync(path)
                data, stat = client.get(path)
                result["registers"][path] = [stat.version, data.decode()]
        for child in client.get_children(SEQ):
            data, _ = client.get(f"{SEQ}/{child}")
            result["seq"][child] = data.decode()
        result["t_start"] = t0
        result["t_end"] = time.monotonic_ns()
    finally:
        client.stop()
        client.close()
    with open(out, "w") as f:
        json.dump(result, f)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="paddock.chaos.workload_keeper")
    ap.add_argument("mode", choices=["work", "setup", "verify"])
    ap.add_argument("--spec", help="WorkerSpec JSON (work)")
    ap.add_argument("--hosts", help="kazoo hosts (setup, verify)")
    ap.add_argument("--gens", type=int, default=1)
    ap.add_argument("--keys", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    if a.mode == "work":
        run_worker(WorkerSpec(**json.loads(a.spec)))
    elif a.mode == "setup":
        run_setup(a.hosts, a.gens, a.keys, a.timeout)
    else:
        run_verify(a.hosts, a.gens, a.keys, a.timeout, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
