"""The reference command-line clients against each server kind.

``zkCli.sh`` is Apache ZooKeeper's Java client (it takes one command on its
command line, or a session of commands on stdin); ``cli_mt`` is the C client
from ``zookeeper-bin`` (``cmd:...`` runs one command in batch mode, or it reads
commands from stdin). Outputs are the clients' own wording.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
import uuid

import pytest

from paddock.testing.zookeeper import CLI_MT, ZKCLI

pytestmark = pytest.mark.timeout(180)


def _zkcli(hosts: str, *command: str, stdin: str | None = None) -> str:
    if not ZKCLI.exists():
        pytest.skip(f"{ZKCLI} missing (apt-get install zookeeper)")
    proc = subprocess.run(
        [str(ZKCLI), "-server", hosts, *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    return "\n".join(line for line in lines if not line.startswith("SLF4J"))


def _cli_mt_batch(hosts: str, command: str) -> str:
    if not CLI_MT.exists():
        pytest.skip(f"{CLI_MT} missing (apt-get install zookeeper-bin)")
    proc = subprocess.run(
        [str(CLI_MT), hosts, f"cmd:{command}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout + proc.stderr


@pytest.fixture
def node(cluster) -> str:
    return f"/cli-{uuid.uuid4().hex[:10]}"


def test_zkcli_command_line_session(cluster, node):
    # One server for every invocation: each is a new session, and only the same
    # server guarantees that a new session sees the previous one's writes.
    hosts = cluster.address(1)
    assert f"Created {node}" in _zkcli(hosts, "create", node, "hello")
    assert "hello" in _zkcli(hosts, "get", node).splitlines()
    _zkcli(hosts, "set", node, "world")
    out = _zkcli(hosts, "get", "-s", node)
    assert "world" in out.splitlines()
    assert "dataVersion = 1" in out
    assert "dataLength = 5" in out
    assert "[]" in _zkcli(hosts, "ls", node).splitlines()
    assert f"Created {node}/kid" in _zkcli(hosts, "create", f"{node}/kid", "k")
    assert "[kid]" in _zkcli(hosts, "ls", node).splitlines()
    assert f"Node not empty: {node}" in _zkcli(hosts, "delete", node)
    _zkcli(hosts, "deleteall", node)
    assert f"Node does not exist: {node}" in _zkcli(hosts, "get", node)


def test_zkcli_stdin_session(cluster, node):
    script = "\n".join(
        [
            f"create {node} data1",
            f"create {node} again",
            f"get {node}/missing",
            f"set -v 5 {node} x",
            f"set -v 0 {node} data2",
            f"create -e {node}/eph e",
            f"create -s {node}/seq- q",
            f"create -s {node}/seq- q",
            f"ls {node}",
            f"stat {node}",
            f"delete {node}",
            f"delete {node}/missing",
            f"deleteall {node}",
            f"get {node}",
            "quit",
            "",
        ]
    )
    lines = _zkcli(cluster.hosts, stdin=script).splitlines()
    expected_in_order = [
        f"Created {node}",
        f"Node already exists: {node}",
        f"Node does not exist: {node}/missing",
        f"version No is not valid : {node}",
        f"Created {node}/eph",
        f"Created {node}/seq-0000000001",
        f"Created {node}/seq-0000000002",
        "[eph, seq-0000000001, seq-0000000002]",
        "cversion = 3",
        "dataVersion = 1",
        "ephemeralOwner = 0x0",
        "dataLength = 5",
        "numChildren = 3",
        f"Node not empty: {node}",
        f"Node does not exist: {node}/missing",
        f"Node does not exist: {node}",
    ]
    # stdout and stderr are captured apart, so check presence, then the order
    # of the lines that come from the same stream.
    for line in expected_in_order:
        assert line in lines, f"missing {line!r} in:\n" + "\n".join(lines)
    stat = [line for line in lines if " = " in line and not line.startswith("WatchedEvent")]
    assert stat.index("cversion = 3") < stat.index("numChildren = 3")


def test_cli_mt_batch_session(cluster, node):
    hosts = cluster.address(2)  # one server: see test_zkcli_command_line_session
    out = _cli_mt_batch(hosts, f"create {node}")
    assert f"[{node}]: rc = 0" in out and f"name = {node}" in out
    assert f"[{node}]: rc = -110" in _cli_mt_batch(hosts, f"create {node}")  # ZNODEEXISTS
    out = _cli_mt_batch(hosts, f"get {node}")
    assert f"{node}: rc = 0" in out and "value_len = 3" in out and "\nnew\n" in out
    out = _cli_mt_batch(hosts, f"set {node} there")
    assert f"{node}: rc = 0" in out and "version=1" in out
    out = _cli_mt_batch(hosts, f"get {node}")
    assert "value_len = 5" in out and "\nthere\n" in out
    assert f"[{node}/k]: rc = 0" in _cli_mt_batch(hosts, f"create {node}/k")
    out = _cli_mt_batch(hosts, f"ls {node}")
    assert f"{node}: rc = 0" in out and "\tk\n" in out
    assert f"{node}: rc = -111" in _cli_mt_batch(hosts, f"delete {node}")  # ZNOTEMPTY
    assert f"{node}/k: rc = 0" in _cli_mt_batch(hosts, f"delete {node}/k")
    assert f"{node}: rc = 0" in _cli_mt_batch(hosts, f"delete {node}")
    assert f"{node}: rc = -101" in _cli_mt_batch(hosts, f"get {node}")  # ZNONODE


class _Interactive:
    """cli_mt reading commands from stdin, one at a time after its session is up."""

    def __init__(self, hosts: str) -> None:
        if not CLI_MT.exists():
            pytest.skip(f"{CLI_MT} missing (apt-get install zookeeper-bin)")
        self.proc = subprocess.Popen(
            [str(CLI_MT), hosts],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.wait_for("CONNECTED_STATE")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"cli_mt never printed {text!r}; got {seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            seen.append(line)
            if text in line:
                return seen

    def run(self, command: str, until: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.wait_for(until)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_cli_mt_stdin_session(cluster, node):
    cli = _Interactive(cluster.hosts)
    try:
        cli.run(f"create +e {node}", f"[{node}]: rc = 0")
        seen = cli.run(f"get {node}", "ephemeralOwner")
        owner = seen[-1].split("=")[-1].strip()
        assert owner not in ("0", "0x0"), seen
        cli.run(f"set {node} v2", "version=1")
        cli.run(f"create +s {node}-seq-", f"[{node}-seq-]: rc = 0")
        seen = cli.run("ls /", "time = ")
        cli.run(f"delete {node}", f"{node}: rc = 0")
        cli.run(f"get {node}", f"{node}: rc = -101")
    finally:
        cli.close()
