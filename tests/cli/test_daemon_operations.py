"""Operations on the real daemons: Prometheus metrics and JSON logs from each of keeper,
master, agent and marathon, each started as its own ``paddock`` process the way an
operator would (settings from a TOML file, the environment and flags at once).

Where each serves Prometheus text, as its users expect:
keeper on its own port (``--metrics-port``, ZooKeeper's ``metricsProvider.httpPort``)
at ``/metrics``; master and agent at ``/metrics`` (``/metrics/snapshot`` is Mesos' JSON);
marathon at ``/metrics/prometheus`` (``/metrics`` is Marathon's JSON, as in Marathon 1.7+).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from paddock.testing.ports import free_ports

pytestmark = pytest.mark.timeout(180)

PADDOCK = [sys.executable, "-m", "paddock.cli.main"]
LOG_KEYS = {"ts", "level", "logger", "msg"}


class Daemon:
    def __init__(self, name: str, argv: list[str], work: Path, env: dict[str, str]) -> None:
        self.name = name
        self.stderr_path = work / f"{name}.stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*PADDOCK, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, **env},
                cwd=work,
                start_new_session=True,  # the agent's tasks, if any, go with it
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def scrape(url: str) -> dict[str, float]:
    """Every sample of a Prometheus text page, parsed by prometheus_client."""
    r = httpx.get(url, timeout=5)
    r.raise_for_status()
    assert r.headers["content-type"].startswith("text/plain")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def wait_for_metric(daemon: Daemon, url: str, name: str, value: float, timeout: float = 90):
    """The scraped page once ``name`` reads ``value`` (the daemon is up and has formed)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            pytest.fail(f"{daemon.name} exited ({daemon.proc.returncode}):\n{daemon.stderr()}")
        try:
            metrics = scrape(url)
            if metrics.get(name) == value:
                return metrics
            last = metrics.get(name)
        except (httpx.HTTPError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    pytest.fail(f"{daemon.name}: {name} never became {value} at {url} (last: {last!r})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """keeper, master, agent, marathon; logs as JSON. The shared settings come from one
    paddock.toml (as on a host), some from PADDOCK_* variables, the rest from flags."""
    work = tmp_path_factory.mktemp("ops")
    keeper_port, keeper_metrics, master_port, master_registry, agent_port, marathon_port = (
        free_ports(6)
    )
    zk = f"zk://127.0.0.1:{keeper_port}"
    (work / "paddock.toml").write_text(
        f"""
[keeper]
id = 1
data_dir = "{work / "keeper"}"
client-port = {keeper_port}
log-format = "json"

[master]
zk = "{zk}/mesos"
quorum = 1
work-dir = "{work / "master"}"
log-format = "json"
allocation-interval = "0.2s"

[agent]
master = "{zk}/mesos"
work-dir = "{work / "agent"}"
resources = "cpus:2;mem:1024;disk:1000;ports:[31000-31010]"
no-cgroups = true
log-format = "json"

[marathon]
master = "{zk}/mesos"
zk = "{zk}/marathon"
hostname = "127.0.0.1"
bind = "127.0.0.1"
log-format = "json"
"""
    )
    config = ["--config", str(work / "paddock.toml")]
    daemons = {}
    try:
        daemons["keeper"] = Daemon(
            "keeper",
            ["keeper", *config],
            work,
            {"PADDOCK_KEEPER_METRICS_PORT": str(keeper_metrics)},
        )
        daemons["master"] = Daemon(
            "master",
            ["master", *config, "--registry-port", str(master_registry)],
            work,
            {"PADDOCK_MASTER_PORT": str(master_port)},
        )
        daemons["agent"] = Daemon("agent", ["agent", *config, "--port", str(agent_port)], work, {})
        daemons["marathon"] = Daemon(
            "marathon",
            ["marathon", *config, "--port", str(marathon_port)],
            work,
            {"PADDOCK_MARATHON_RECONCILIATION_INITIAL_DELAY": "1"},
        )
        yield {
            "daemons": daemons,
            "keeper": f"http://127.0.0.1:{keeper_metrics}/metrics",
            "master": f"http://127.0.0.1:{master_port}/metrics",
            "agent": f"http://127.0.0.1:{agent_port}/metrics",
            "marathon": f"http://127.0.0.1:{marathon_port}/metrics/prometheus",
        }
    finally:
        for name in ("marathon", "agent", "master", "keeper"):
            if name in daemons:
                daemons[name].stop()


def test_keeper_metrics(cluster):
    keeper = cluster["daemons"]["keeper"]
    metrics = wait_for_metric(keeper, cluster["keeper"], "paddock_keeper_serving", 1)
    # ZooKeeper's Prometheus names for mntr's figures.
    assert metrics["znode_count"] >= 4  # /, /zookeeper, /zookeeper/quota, /zookeeper/config
    assert metrics["paddock_keeper_leader"] == 0  # standalone: no leader, as ZooKeeper's
    for name in ("num_alive_connections", "outstanding_requests", "watch_count", "last_zxid"):
        assert metrics[name] >= 0, name
    assert httpx.get(cluster["keeper"].replace("/metrics", "/other"), timeout=5).status_code == 404


def test_master_metrics(cluster):
    master = cluster["daemons"]["master"]
    metrics = wait_for_metric(master, cluster["master"], "mesos_master_elected", 1)
    assert metrics["mesos_master_uptime_secs"] >= 0


def test_agent_metrics(cluster):
    agent = cluster["daemons"]["agent"]
    metrics = wait_for_metric(agent, cluster["agent"], "paddock_agent_registered", 1)
    assert metrics["paddock_agent_tasks_running"] >= 0
    assert metrics["paddock_agent_uptime_secs"] >= 0


def test_marathon_metrics(cluster):
    marathon = cluster["daemons"]["marathon"]
    url = cluster["marathon"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # the leader answers; a non-leader proxies to it
        try:
            if (
                httpx.get(url.replace("/metrics/prometheus", "/v2/info"), timeout=5)
                .json()
                .get("elected")
            ):
                break
        except (httpx.HTTPError, ValueError):
            pass
        if marathon.proc.poll() is not None:
            pytest.fail(f"marathon exited:\n{marathon.stderr()}")
        time.sleep(0.3)
    metrics = scrape(url)
    apps = [v for k, v in metrics.items() if k.startswith("marathon_apps_active")]
    assert apps and apps[0] >= 0, sorted(metrics)


def test_every_stderr_line_is_a_json_log_record(cluster):
    """After each daemon has done its start-up (and the metrics tests made them work),
    stop them all: everything each wrote to stderr, shutdown included, is JSON lines."""
    daemons = cluster["daemons"]
    for name in ("marathon", "agent", "master", "keeper"):
        daemons[name].stop()
    for name, daemon in daemons.items():
        lines = [line for line in daemon.stderr().splitlines() if line.strip()]
        assert len(lines) >= 2, f"{name} logged almost nothing: {lines}"
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line!r}")
            assert isinstance(record, dict) and set(record) >= LOG_KEYS, (name, line)
            assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def test_up_takes_its_settings_from_the_up_table(tmp_path):
    """`paddock up --config FILE`: the [up] table sizes the cluster (1 of each here, the
    defaults are 3/3/3/2) and detaches; PADDOCK_UP_* wins over it (no example app)."""
    from cluster_cli import paddock, stop_cluster

    work = tmp_path / "cluster"
    cfg = tmp_path / "paddock.toml"
    cfg.write_text(
        f'[up]\nwork-dir = "{work}"\nkeepers = 1\nmasters = 1\nagents = 1\nmarathons = 1\n'
        "detach = true\nexample = true\ntimeout = 150\n"
    )
    try:
        r = paddock("up", "--config", str(cfg), env={"PADDOCK_UP_EXAMPLE": "false"}, timeout=200)
        assert r.returncode == 0, r.stdout + r.stderr
        endpoints = json.loads((work / "cluster.json").read_text())
        kinds = ("keepers", "masters", "agents", "marathons")
        assert {k: len(endpoints[k]) for k in kinds} == dict.fromkeys(kinds, 1)
        assert "/hello" not in r.stdout  # `created /hello` when the example is deployed
    finally:
        stop_cluster(work)
