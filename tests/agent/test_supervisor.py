"""Per-task supervisors with real processes: outcome files (written atomically, read
back without ever raising), launching through the zygote, killing, and what happens
when the zygote or a supervisor dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from paddock.agent.supervised import SupervisedTask
from paddock.agent.supervisor import (
    OUTCOME_VERSION,
    memory_report,
    proc_start_ticks,
    read_outcome,
    write_outcome,
)
from paddock.agent.tasks import (
    CommandSpec,
    LaunchError,
    describe_exit,
    memory_limit_message,
    mesos_bytes,
)
from paddock.agent.zygote import Zygote


@pytest.fixture
async def zygote():
    z = Zygote()
    z.start()
    yield z
    z.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def shell(tmp_path: Path, zygote: Zygote, cmd: str, name: str = "t") -> SupervisedTask:
    env = {"PATH": os.environ.get("PATH", os.defpath), "GREETING": "hello there"}
    sandbox = tmp_path / name
    return SupervisedTask(
        CommandSpec(["/bin/sh", "-c", cmd]),
        sandbox,
        env,
        tmp_path / f"{name}.outcome",
        None,
        zygote,
    )


# ---------------------------------------------------------------- outcome files


def test_outcome_round_trip_and_no_temp_file_left(tmp_path):
    path = tmp_path / "outcome.json"
    write_outcome(
        str(path),
        {"version": OUTCOME_VERSION, "returncode": -9, "oom_killed": True, "memory": {"x": 1}},
    )
    got = read_outcome(str(path))
    assert (got.returncode, got.oom_killed, got.memory, got.problem) == (-9, True, {"x": 1}, None)
    assert [p.name for p in tmp_path.iterdir()] == ["outcome.json"]


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "recorded no outcome"),
        (b"", "torn or not JSON"),
        (b'{"version": 1, "returncode": 3', "torn or not JSON"),
        (b"\xff\xfe", "torn or not JSON"),
        (b"[1, 2]", "unknown format"),
        (b'{"version": 99, "returncode": 0}', "unknown format"),
        (b'{"version": 1, "returncode": "3"}', "no exit status"),
        (b'{"version": 1, "returncode": true}', "no exit status"),
        (b'{"version": 1}', "no exit status"),
    ],
)
def test_missing_or_damaged_outcome_is_a_problem_not_a_crash(tmp_path, content, problem):
    path = tmp_path / "outcome.json"
    if content is not None:
        path.write_bytes(content)
    got = read_outcome(str(path))
    assert got.returncode is None
    assert problem in (got.problem or "")


def test_unreadable_outcome_is_a_problem(tmp_path):
    (tmp_path / "outcome.json").mkdir()  # a directory where the file should be
    got = read_outcome(str(tmp_path / "outcome.json"))
    assert got.returncode is None and "unreadable" in (got.problem or "")


def test_memory_report_without_a_cgroup_and_with_a_fake_v1_one(tmp_path):
    assert memory_report(None) == {"oom_killed": False}
    (tmp_path / "memory.limit_in_bytes").write_text("33554432\n")
    (tmp_path / "memory.max_usage_in_bytes").write_text("33554432\n")
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (tmp_path / "memory.stat").write_text("cache 4096\nrss 33000000\nunknown 5\n")
    report = memory_report(str(tmp_path))
    assert report == {
        "oom_killed": True,
        "limit_bytes": 33554432,
        "max_usage_bytes": 33554432,
        "stat": {"cache": 4096, "rss": 33000000},
    }


def test_memory_report_v2_files(tmp_path):
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (tmp_path / "memory.max").write_text("67108864\n")
    (tmp_path / "memory.peak").write_text("67100000\n")
    report = memory_report(str(tmp_path))
    assert report["oom_killed"] is True
    assert (report["limit_bytes"], report["max_usage_bytes"]) == (67108864, 67100000)


def test_memory_limit_message_like_mesos():
    assert [mesos_bytes(n) for n in (0, 1000, 4096, 64 << 20, 3 << 30)] == [
        "0B",
        "1000B",
        "4KB",
        "64MB",
        "3GB",
    ]
    msg = memory_limit_message(
        {"limit_bytes": 64 << 20, "max_usage_bytes": 64 << 20, "stat": {"rss": 1}}
    )
    assert msg == (
        "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB\n\nMEMORY STATISTICS: \nrss 1"
    )
    out = describe_exit(-9, killed=False, oom=True, memory=None)
    assert out.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert out.message.startswith("Memory limit exceeded")


# ---------------------------------------------------------------- real supervisors


async def test_exit_code_environment_and_output_files(tmp_path, zygote):
    t = shell(tmp_path, zygote, 'echo "$GREETING $(pwd)"; echo oops >&2; exit 3')
    await t.start()
    assert t.task_pid != t.supervisor_pid
    assert await asyncio.wait_for(t.wait(), 10) == 3
    assert (t.sandbox / "stdout").read_text() == f"hello there {t.sandbox}\n"
    assert (t.sandbox / "stderr").read_text() == "oops\n"
    assert describe_exit(3, killed=False).message == "Command exited with status 3"
    saved = json.loads(t.outcome_path.read_text())
    assert (saved["exit_code"], saved["signal"], saved["task_pid"]) == (3, None, t.task_pid)


async def test_task_runs_in_its_own_session_apart_from_its_supervisor(tmp_path, zygote):
    t = shell(tmp_path, zygote, "sleep 30")
    await t.start()
    try:
        assert os.getsid(t.task_pid) == t.task_pid == os.getpgid(t.task_pid)
        assert os.getsid(t.supervisor_pid) == t.supervisor_pid
        assert os.getsid(t.supervisor_pid) != os.getsid(0)  # not in the agent's session
        assert proc_start_ticks(t.supervisor_pid) == t.supervisor_ticks
        assert proc_start_ticks(t.task_pid) == t.task_ticks
    finally:
        await t.kill(0)
        assert await asyncio.wait_for(t.wait(), 10) in (-signal.SIGTERM, -signal.SIGKILL)


async def test_launch_errors_are_reported_not_raised_as_crashes(tmp_path, zygote):
    env = {"PATH": "/nowhere"}
    missing = SupervisedTask(
        CommandSpec(["definitely-not-a-program"], None, False),
        tmp_path / "a",
        env,
        tmp_path / "a.outcome",
        None,
        zygote,
    )
    with pytest.raises(LaunchError, match="Failed to launch 'definitely-not-a-program'"):
        await missing.start()
    empty = SupervisedTask(CommandSpec([]), tmp_path / "b", env, tmp_path / "b.out", None, zygote)
    with pytest.raises(LaunchError):
        await empty.start()
    # The zygote is still serving.
    ok = shell(tmp_path, zygote, "exit 0", "c")
    await ok.start()
    assert await asyncio.wait_for(ok.wait(), 10) == 0
    assert zygote.starts == 1


async def test_kill_waits_grace_then_sigkills_the_whole_group(tmp_path, zygote):
    t = shell(
        tmp_path, zygote, "trap '' TERM; sh -c 'echo $$ > child.pid; exec sleep 60' & wait; wait"
    )
    await t.start()
    pidfile = t.sandbox / "child.pid"
    await _until(lambda: pidfile.exists() and pidfile.read_text().strip())
    child = int(pidfile.read_text())
    waiter = asyncio.ensure_future(t.wait())
    started = time.monotonic()
    await t.kill(grace=0.5)
    rc = await asyncio.wait_for(waiter, 10)
    assert 0.45 <= time.monotonic() - started < 5
    assert rc == -signal.SIGKILL
    assert describe_exit(rc, killed=t.kill_requested).state == "TASK_KILLED"
    await _until(lambda: not _alive(child))


async def test_finished_task_leaves_nothing_in_its_group(tmp_path, zygote):
    t = shell(tmp_path, zygote, "sh -c 'echo $$ > bg.pid; exec sleep 60' & sleep 0.2; exit 0")
    await t.start()
    assert await asyncio.wait_for(t.wait(), 10) == 0
    bg = int((t.sandbox / "bg.pid").read_text())
    await _until(lambda: not _alive(bg))


async def test_supervisors_outlive_their_zygote_which_is_restarted(tmp_path, zygote):
    first = shell(tmp_path, zygote, "while [ ! -f go ]; do sleep 0.02; done; exit 4", "first")
    await first.start()
    old = zygote.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    await _until(lambda: not _alive(old))
    assert _alive(first.supervisor_pid) and _alive(first.task_pid)
    second = shell(tmp_path, zygote, "exit 0", "second")
    await second.start()  # a new zygote
    assert zygote.starts == 2 and zygote.pid not in (None, old)
    assert await asyncio.wait_for(second.wait(), 10) == 0
    (first.sandbox / "go").touch()
    assert await asyncio.wait_for(first.wait(), 10) == 4


async def test_a_reattached_task_reports_its_real_exit_code(tmp_path, zygote):
    t = shell(tmp_path, zygote, "while [ ! -f go ]; do sleep 0.02; done; exit 7")
    await t.start()
    record = t.checkpoint_fields()
    again = SupervisedTask.reattach(json.loads(json.dumps(record)), t.sandbox, None)
    assert again.supervisor_alive() and again.task_alive()
    (t.sandbox / "go").touch()
    assert await asyncio.wait_for(again.wait(), 10) == 7
    assert again.outcome is not None and again.outcome.problem is None


async def test_killed_supervisor_means_unknown_outcome_and_no_orphan(tmp_path, zygote):
    t = shell(tmp_path, zygote, "exec sleep 60")
    await t.start()
    os.kill(t.supervisor_pid, signal.SIGKILL)
    assert await asyncio.wait_for(t.wait(), 10) is None
    assert t.outcome is not None and "recorded no outcome" in (t.outcome.problem or "")
    await _until(lambda: not _alive(t.task_pid))  # the task does not run on unowned


async def test_a_burst_of_launches_with_big_environments_is_all_answered(tmp_path, zygote):
    # More requests than the socket queues at once: every sender must get through.
    env = {"PATH": os.environ.get("PATH", os.defpath), **{f"V{i}": "x" * 100 for i in range(80)}}
    tasks = [
        SupervisedTask(
            CommandSpec(["/bin/sh", "-c", f"exit {i % 3}"]),
            tmp_path / f"s{i}",
            env,
            tmp_path / f"o{i}",
            None,
            zygote,
        )
        for i in range(60)
    ]
    await asyncio.wait_for(asyncio.gather(*(t.start() for t in tasks)), 60)
    codes = await asyncio.wait_for(asyncio.gather(*(t.wait() for t in tasks)), 60)
    assert codes == [i % 3 for i in range(60)]


async def test_a_kill_in_progress_is_remembered_across_a_reattach(tmp_path, zygote):
    t = shell(tmp_path, zygote, "trap '' TERM; touch ready; while true; do sleep 0.05; done")
    await t.start()
    # SIGTERM before the shell has set its trap would end it at once (-SIGTERM): wait.
    await _until(lambda: (t.sandbox / "ready").exists())
    first = asyncio.ensure_future(t.kill(grace=60))  # SIGTERM is ignored: a long grace
    await _until(lambda: Path(f"{t.outcome_path}.kill").exists())
    first.cancel()  # "the agent died" mid-kill
    again = SupervisedTask.reattach(t.checkpoint_fields(), t.sandbox, None)
    assert again.kill_requested
    await again.kill(grace=0)
    rc = await asyncio.wait_for(again.wait(), 10)
    assert rc == -signal.SIGKILL
    assert describe_exit(rc, killed=again.kill_requested).state == "TASK_KILLED"
