"""The terminal statuses every task runner reports (paddock.agent.task_outcome): the
strings and precedence frameworks see, pinned here."""

import pytest

from paddock.agent.task_outcome import (
    TaskEnd,
    agent_error_end,
    command_end,
    container_end,
    executor_exit_message,
    executor_task_end,
    health_kill_end,
)

UNKNOWN = TaskEnd("TASK_FAILED", "unknown", "REASON_EXECUTOR_TERMINATED", "SOURCE_AGENT")
MEMORY = {"limit_bytes": 64 << 20, "max_usage_bytes": 64 << 20, "stat": {"rss": 1}}


@pytest.mark.parametrize(
    ("rc", "killed", "expected"),
    [
        (0, False, TaskEnd("TASK_FINISHED", "Command exited with status 0")),
        (3, False, TaskEnd("TASK_FAILED", "Command exited with status 3")),
        (-9, False, TaskEnd("TASK_FAILED", "Command terminated with signal SIGKILL")),
        (-15, True, TaskEnd("TASK_KILLED", "Command terminated with signal SIGTERM")),
        (0, True, TaskEnd("TASK_KILLED", "Command exited with status 0")),
        (None, True, TaskEnd("TASK_KILLED", "Command terminated by a kill")),
        (None, False, UNKNOWN),
    ],
)
def test_command_end_by_exit_status_and_kill(rc, killed, expected):
    assert command_end(rc, killed=killed, oom=False, unknown=UNKNOWN) == expected


@pytest.mark.parametrize("rc", [-9, None, 137])
def test_command_end_memory_limit_wins_over_kill_and_status(rc):
    end = command_end(rc, killed=True, oom=True, unknown=UNKNOWN, memory=MEMORY)
    assert end.state == "TASK_FAILED"
    assert end.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert end.source == "SOURCE_AGENT"
    assert end.message is not None
    assert end.message.startswith("Memory limit exceeded: Requested: 64MB Maximum Used: 64MB")
    plain = command_end(rc, killed=False, oom=True, unknown=UNKNOWN)
    assert plain.message == "Memory limit exceeded: the task was killed by the OOM killer"


def test_container_end_precedence_and_messages():
    def end(code=0, killed=False, oom=False, vanished=False):
        return container_end(code, name="c1", killed=killed, oom=oom, vanished=vanished)

    assert end(vanished=True, killed=True, oom=True) == TaskEnd(
        "TASK_FAILED",
        "Container c1 disappeared: removed outside the agent",
        "REASON_EXECUTOR_TERMINATED",
        "SOURCE_AGENT",
    )
    assert end(137, killed=True, oom=True) == TaskEnd(
        "TASK_FAILED",
        "Memory limit exceeded: the container was killed by the OOM killer",
        "REASON_CONTAINER_LIMITATION_MEMORY",
        "SOURCE_AGENT",
    )
    assert end(143, killed=True) == TaskEnd(
        "TASK_KILLED", "Container stopped by a kill (status 143)"
    )
    assert end(0) == TaskEnd("TASK_FINISHED", "Container exited with status 0")
    assert end(2) == TaskEnd("TASK_FAILED", "Container exited with status 2")


def test_executor_task_end():
    exited = executor_exit_message(1, killed=False)
    assert exited == "Executor exited with status 1"
    assert executor_exit_message(-9, killed=True) == "Executor terminated with signal SIGKILL"
    assert executor_exit_message(None, killed=False) == (
        "Executor exited (exit status unknown after an agent restart)"
    )
    assert executor_task_end(None, exited, killed=False) == TaskEnd(
        "TASK_FAILED", exited, "REASON_EXECUTOR_TERMINATED", "SOURCE_AGENT"
    )
    assert executor_task_end(None, "", killed=True) == TaskEnd(
        "TASK_KILLED", "Executor terminated", "REASON_EXECUTOR_TERMINATED", "SOURCE_AGENT"
    )
    shut = ("TASK_FAILED", "REASON_EXECUTOR_TERMINATED", "Executor shut down: why")
    assert executor_task_end(shut, exited, killed=True) == TaskEnd(
        "TASK_KILLED",
        f"Executor shut down: why; {exited}",
        "REASON_EXECUTOR_TERMINATED",
        "SOURCE_AGENT",
    )
    lost = ("TASK_LOST", "REASON_EXECUTOR_REREGISTRATION_TIMEOUT", "gone")
    assert executor_task_end(lost, "", killed=True).state == "TASK_LOST"  # only FAILED turns KILLED


def test_health_kill_and_agent_error_ends():
    assert health_kill_end("3 failures") == TaskEnd(
        "TASK_KILLED",
        "Task killed after 3 failures",
        "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
        "SOURCE_EXECUTOR",
        False,
    )
    assert agent_error_end("running the task", ValueError("boom")) == TaskEnd(
        "TASK_FAILED",
        "agent error while running the task: boom",
        "REASON_EXECUTOR_TERMINATED",
        "SOURCE_AGENT",
    )
