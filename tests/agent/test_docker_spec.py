"""The DOCKER TaskInfo -> container translation (pure, no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paddock.agent.docker_spec import (
    CONTAINER_SANDBOX,
    SpecError,
    container_name,
    container_spec,
)

SANDBOX = Path("/work/slaves/a1/frameworks/fw/executors/t1/runs/r1")


def info(docker: dict | None = None, command: dict | None = None, **extra) -> dict:
    out = {
        "task_id": {"value": "t1"},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 31000, "end": 31001}]},
            },
        ],
        "container": {"type": "DOCKER", "docker": {"image": "busybox", **(docker or {})}},
        **extra,
    }
    if command is not None:
        out["command"] = command
    return out


def spec_of(task_info: dict):
    return container_spec(
        info=task_info,
        agent_id="a1",
        framework_id="fw",
        run_id="r1",
        sandbox=SANDBOX,
        work_dir=Path("/work"),
        environment={"MESOS_TASK_ID": "t1", "MESOS_SANDBOX": str(SANDBOX), "PORT0": "31000"},
    )


def test_command_forms():
    shell = spec_of(info(command={"value": "echo $HOME", "shell": True}))
    assert (shell.entrypoint, shell.command) == (["/bin/sh", "-c"], ["echo $HOME"])
    args = spec_of(info(command={"shell": False, "arguments": ["httpd", "-f"]}))
    assert (args.entrypoint, args.command) == (None, ["httpd", "-f"])
    default = spec_of(info(command={"shell": False}))
    assert (default.entrypoint, default.command) == (None, None)
    assert spec_of(info()).command is None


def test_identity_limits_env_and_sandbox_mount():
    s = spec_of(info())
    assert s.name == "paddock-a1-t1"
    assert s.labels["paddock.agent_id"] == "a1"
    assert s.labels["paddock.task_id"] == "t1"
    assert s.labels["paddock.work_dir"] == "/work"
    assert s.mem_limit == 64 * 1024 * 1024
    assert s.nano_cpus == 500_000_000
    assert s.environment["MESOS_SANDBOX"] == CONTAINER_SANDBOX
    assert s.environment["PORT0"] == "31000"
    assert f"{SANDBOX}:{CONTAINER_SANDBOX}:rw" in s.binds
    assert s.network_mode == "host"  # Mesos's default network for DOCKER
    assert container_name("a/b", "web.1 x") == "paddock-a_b-web.1_x"


def test_bridge_port_mappings():
    s = spec_of(
        info(
            {
                "network": "BRIDGE",
                "port_mappings": [
                    {"host_port": 31001, "container_port": 80, "protocol": "tcp"},
                    {"container_port": 53, "protocol": "udp,tcp"},  # takes the next free port
                ],
            }
        )
    )
    assert s.network_mode == "bridge"
    assert s.port_bindings == {"80/tcp": 31001, "53/udp": 31000, "53/tcp": 31000}
    assert (80, "tcp") in s.exposed and (53, "udp") in s.exposed
    assert s.host_port_for == {80: 31001, 53: 31000}
    hc = s.host_config_kwargs()
    assert hc["port_bindings"] == s.port_bindings
    assert hc["mem_limit"] == 64 * 1024 * 1024


def test_volumes_and_parameters():
    task_info = info(
        {
            "parameters": [
                {"key": "label", "value": "team=ocf"},
                {"key": "env", "value": "A=b=c"},
                {"key": "add-host", "value": "db:10.0.0.2"},
                {"key": "workdir", "value": "/srv"},
            ]
        }
    )
    task_info["container"]["volumes"] = [
        {"container_path": "/data", "host_path": "/srv/data", "mode": "RO"},
        {"container_path": "cache", "host_path": "cache", "mode": "RW"},
        {"container_path": "/scratch", "mode": "RW"},
    ]
    s = spec_of(task_info)
    assert "/srv/data:/data:ro" in s.binds
    assert f"{SANDBOX}/cache:{CONTAINER_SANDBOX}/cache:rw" in s.binds
    assert s.anonymous_volumes == ["/scratch"]
    assert s.labels["team"] == "ocf"
    assert s.environment["A"] == "b=c"
    assert s.extra_hosts == {"db": "10.0.0.2"}
    assert s.working_dir == "/srv"


@pytest.mark.parametrize(
    ("task_info", "needle"),
    [
        ({"task_id": {"value": "t1"}, "container": {"type": "DOCKER"}}, "container.docker"),
        (info({"image": " "}), "image is required"),
        (info({"network": "WEIRD"}), "unknown docker network"),
        (info({"network": "USER"}), "network name"),
        (
            info(
                {"network": "BRIDGE", "port_mappings": [{"host_port": 40000, "container_port": 1}]}
            ),
            "not among the task's ports",
        ),
        (
            info({"network": "BRIDGE", "port_mappings": [{"container_port": 1, "protocol": "x"}]}),
            "unknown protocol",
        ),
        (info({"parameters": [{"key": "volume-driver", "value": "x"}]}), "unsupported docker"),
        (info({"parameters": [{"key": "label", "value": "paddock.task_id=x"}]}), "reserved"),
        (info(command={"shell": False, "arguments": "ls"}), "list of strings"),
    ],
)
def test_bad_task_infos_are_refused_clearly(task_info, needle):
    with pytest.raises(SpecError, match=needle):
        spec_of(task_info)


def test_image_names_split_into_repository_and_tag():
    from paddock.agent.docker_containerizer import _split_image

    assert _split_image("busybox") == ("busybox", "latest")
    assert _split_image("docker.ocf.berkeley.edu/ocfweb:1.2") == (
        "docker.ocf.berkeley.edu/ocfweb",
        "1.2",
    )
    assert _split_image("localhost:5000/web") == ("localhost:5000/web", "latest")
    assert _split_image("web@sha256:abc") == ("web@sha256:abc", None)
