"""Concurrent clients on every server of a 3-node keeper, with the leader stopped
midway: the history of writes and sync+reads must be linearizable."""

from __future__ import annotations

import random
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, OperationTimeoutError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry
from keeper_harness import Cluster, wait_until

from paddock.sim.linearizability import FAIL, INFO, INVOKE, OK, HistoryEvent, check_history

pytestmark = pytest.mark.timeout(120)

KEYS = ("/lin/a", "/lin/b")
UNKNOWN = (ConnectionLoss, OperationTimeoutError, KazooTimeoutError, SessionExpiredError)


def test_history_is_linearizable_across_leader_loss(tmp_path):
    with Cluster(tmp_path, size=3) as cluster:
        setup = KazooClient(hosts=cluster.hosts, timeout=5)
        setup.start(timeout=10)
        for key in KEYS:
            setup.ensure_path(key)
            setup.set(key, b"")  # register value "" stands for "never written"
        setup.stop()
        setup.close()

        history: list[HistoryEvent] = []
        lock = threading.Lock()
        stop = threading.Event()

        def record(event: HistoryEvent) -> None:
            with lock:
                history.append(event)

        def worker(process: int, address: str) -> None:
            rng = random.Random(process)
            client = KazooClient(
                hosts=address + "," + cluster.hosts,
                timeout=3,
                connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2),
            )
            client.start(timeout=15)
            n = 0
            try:
                while not stop.is_set():
                    key = rng.choice(KEYS)
                    if rng.random() < 0.5:
                        n += 1
                        value = f"{process}-{n}"
                        record(HistoryEvent(process, INVOKE, "write", value, key))
                        try:
                            client.set(key, value.encode())
                            record(HistoryEvent(process, OK, "write", value, key))
                        except UNKNOWN:
                            record(HistoryEvent(process, INFO, "write", value, key))
                            wait_until(lambda: client.connected or stop.is_set(), 15)
                    else:
                        record(HistoryEvent(process, INVOKE, "read", None, key))
                        try:
                            client.sync(key)
                            data = client.get(key)[0].decode()
                            record(HistoryEvent(process, OK, "read", data or None, key))
                        except UNKNOWN:
                            record(HistoryEvent(process, FAIL, "read", None, key))
                            wait_until(lambda: client.connected or stop.is_set(), 15)
            finally:
                client.stop()
                client.close()

        threads = [
            threading.Thread(target=worker, args=(p, cluster.members[p % 3].address))
            for p in range(6)
        ]
        for t in threads:
            t.start()
        time.sleep(1.0)
        cluster.leader().stop()  # the leader goes away mid-run
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)

    completed = [e for e in history if e.type == OK]
    assert len(completed) > 100, f"too few operations completed: {len(completed)}"
    result = check_history(history)
    assert result.ok, result.describe()
