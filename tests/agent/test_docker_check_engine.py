"""COMMAND health checks of DOCKER tasks while the container engine is away (a check
that cannot be performed counts neither way, as in Mesos), and a check command's own
environment, in the container and on the host; against real podman."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import pytest

from paddock.agent.docker_checks import ContainerCommandCheck, engine_unreachable
from paddock.agent.healthcheck import (
    CheckNotRun,
    HealthCheck,
    HealthChecker,
    check_once,
    parse_health_check,
)

from . import test_docker, test_docker_checks

# the podman fixtures of test_docker / test_docker_checks
docker_socket = test_docker.docker_socket
docker_api = test_docker.docker_api
container = test_docker_checks.container

pytestmark = pytest.mark.timeout(240)


def unreachable_client():
    """A client of an engine socket that does not exist."""
    import docker

    sock = Path(tempfile.mkdtemp(prefix="paddock-noengine-")) / "gone.sock"
    return docker.APIClient(base_url=f"unix://{sock}", version="1.41", timeout=5)


async def test_a_check_the_engine_cannot_run_is_not_run(docker_api, container):
    check = HealthCheck("COMMAND", timeout=10, command=("true",))
    with pytest.raises(CheckNotRun, match="container engine is unreachable"):
        await check_once(
            check, {}, Path("/"), ContainerCommandCheck(unreachable_client(), container)
        )
    # the same container through a live engine: the check runs and passes
    assert (await check_once(check, {}, Path("/"), ContainerCommandCheck(docker_api, container)))[
        0
    ] is True


def test_which_engine_errors_mean_unreachable():
    import requests
    from docker.errors import APIError, NotFound

    class Resp:
        def __init__(self, status: int) -> None:
            self.status_code = status
            self.reason = "x"
            self.url = "http://engine/x"

    assert engine_unreachable(requests.ConnectionError("refused"))
    assert engine_unreachable(requests.ReadTimeout("slow"))
    assert engine_unreachable(FileNotFoundError(2, "no socket"))
    assert engine_unreachable(APIError("boom", response=Resp(500)))  # type: ignore[arg-type]
    assert engine_unreachable(APIError("boom"))  # no answer at all
    assert not engine_unreachable(NotFound("gone", response=Resp(404)))  # type: ignore[arg-type]
    assert not engine_unreachable(APIError("stopped", response=Resp(409)))  # type: ignore[arg-type]
    assert not engine_unreachable(ValueError("bad"))
    oci = APIError("x", response=Resp(500), explanation="OCI runtime error: exec failed")  # type: ignore[arg-type]
    assert not engine_unreachable(oci)  # an answer: the command cannot run in there


async def test_an_engine_that_does_not_answer_has_not_run_the_check(tmp_path, container):
    """A socket that accepts and never answers (a hung engine): the check is not run
    (within half its timeout), not timed out."""
    import docker

    held = []

    async def hold(reader, writer):
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_unix_server(hold, path=str(tmp_path / "hung.sock"))
    client = docker.APIClient(base_url=f"unix://{tmp_path}/hung.sock", version="1.41", timeout=30)
    try:
        check = HealthCheck("COMMAND", timeout=1.0, command=("true",))
        started = asyncio.get_running_loop().time()
        with pytest.raises(CheckNotRun, match=r"did not answer within 0\.5 s"):
            await check_once(check, {}, Path("/"), ContainerCommandCheck(client, container))
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()
        client.close()


async def test_checks_not_run_neither_count_nor_change_health(caplog):
    """Scripted results through the real checker: None = the engine is unreachable."""
    script = [True, None, None, None, None, None, False, None, None, True, False, None, False]
    seen: list[bool | None] = []

    async def run(hc: HealthCheck) -> tuple[bool, str]:
        result = script.pop(0)
        seen.append(result)
        if result is None:
            raise CheckNotRun("the container engine is unreachable (test)")
        return result, f"scripted {result}"

    changes: list[bool] = []
    killed: list[str] = []
    hc = HealthCheck("COMMAND", delay=0, interval=0.001, grace=0, consecutive_failures=2)
    checker = HealthChecker(
        hc, {}, Path("/"), lambda ok, d: changes.append(ok), killed.append, run, name="task t"
    )
    with caplog.at_level(logging.DEBUG, logger="paddock.agent.healthcheck"):
        await asyncio.wait_for(checker.run(), 30)
    assert not script  # it ran to the end of the script: ...
    assert killed == ["2 consecutive failed health checks (scripted False)"]
    # ... the failures before were never 2 in a row, the unrun checks between them
    # notwithstanding, and the unrun ones changed no health
    assert changes == [True, False, True, False]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # rate-limited: one WARNING for the first run of unrun checks (five in a row); the
    # next run, within NOT_RUN_LOG_INTERVAL of it, is logged at DEBUG only
    assert len(warnings) == 1
    assert "task t: health check could not be run (1 in a row" in warnings[0].getMessage()
    resumed = [r for r in caplog.records if "run again" in r.getMessage()]
    assert [(r.levelno, "(5 could" in r.getMessage()) for r in resumed[:1]] == [
        (logging.INFO, True)
    ]
    assert [r.levelno for r in resumed[1:]] == [logging.DEBUG, logging.DEBUG]


async def test_check_environment_in_the_container(docker_api, container):
    hc = parse_health_check(
        {
            "type": "COMMAND",
            "command": {
                "value": 'test "$CHECK_URL" = "http://x:1/a b" && test -n "$PATH"',
                "environment": {"variables": [{"name": "CHECK_URL", "value": "http://x:1/a b"}]},
            },
        }
    )
    assert hc is not None and hc.environment == (("CHECK_URL", "http://x:1/a b"),)
    run = ContainerCommandCheck(docker_api, container)
    ok, detail = await check_once(hc, {}, Path("/"), run)
    assert ok, detail
    # without it the same command fails: the variable came from the check's environment
    bare = HealthCheck("COMMAND", command=hc.command)
    assert (await check_once(bare, {}, Path("/"), run))[0] is False


async def test_check_environment_on_the_host(tmp_path):
    hc = parse_health_check(
        {
            "type": "COMMAND",
            "command": {
                "value": 'test "$FROM_CHECK" = yes && test "$SHARED" = check && test "$TASK" = t',
                "environment": {
                    "variables": [
                        {"name": "FROM_CHECK", "value": "yes"},
                        {"name": "SHARED", "value": "check", "type": "VALUE"},
                    ]
                },
            },
        }
    )
    assert hc is not None
    task_env = {"PATH": "/usr/bin:/bin", "TASK": "t", "SHARED": "task"}
    ok, detail = await check_once(hc, task_env, tmp_path)
    assert ok, detail  # the check's variables on top of the task's
    assert task_env["SHARED"] == "task"  # the task's environment is not changed
    assert (await check_once(hc, {**task_env, "TASK": "other"}, tmp_path))[0] is False


@pytest.mark.parametrize(
    ("environment", "error"),
    [
        ("FOO=1", "must be an object"),
        ({"variables": {"name": "A"}}, "must be a list"),
        ({"variables": [{"value": "1"}]}, r"variables\[0\] needs a name"),
        ({"variables": [{"name": "A=B", "value": "1"}]}, "needs a name"),
        ({"variables": [{"name": "A", "value": 1}]}, r"\(A\) needs a string value"),
        ({"variables": [{"name": "A", "type": "SECRET", "secret": {}}]}, "only VALUE"),
    ],
)
def test_bad_check_environment_is_a_clear_error(environment, error):
    with pytest.raises(ValueError, match=error):
        parse_health_check(
            {"type": "COMMAND", "command": {"value": "true", "environment": environment}}
        )


def test_no_environment_is_none():
    hc = parse_health_check({"type": "COMMAND", "command": {"value": "true"}})
    assert hc is not None and hc.environment == ()
