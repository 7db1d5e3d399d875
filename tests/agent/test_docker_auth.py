"""Registry credentials for DOCKER pulls: which auth goes with which image (pure), and
the agent's ``--docker-config`` flag.

No registry is reachable from these machines (and podman has no ``registry:2`` image
to run one), so that the credentials reach the engine is tested at the level of the
pull arguments the containerizer hands to ``APIClient.pull``."""

from __future__ import annotations

import base64
import json

import pytest
import typer
from typer.testing import CliRunner

from paddock.agent.docker_auth import (
    DockerConfigError,
    auth_for_image,
    image_registry,
    load_docker_config,
    merge_auths,
    parse_docker_config,
    pull_arguments,
    sandbox_docker_auths,
)
from paddock.cli.agent_cmd import agent as agent_command


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIG = {
    "auths": {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hub:pass")},
        "registry.example.com:5000": {"username": "alice", "password": "s3cret"},
        "https://quay.io/v2/": {"auth": b64("q:w"), "email": "q@example.com"},
        "helper-only.example.com": {},
    },
    "credHelpers": {"gcr.io": "gcloud"},
}


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("busybox", "docker.io"),
        ("library/busybox:1.36", "docker.io"),
        ("user/app:tag", "docker.io"),
        ("docker.io/user/app", "docker.io"),
        ("index.docker.io/user/app", "docker.io"),
        ("registry.example.com:5000/team/app:1.2", "registry.example.com:5000"),
        ("localhost/paddock-busybox:latest", "localhost"),
        ("localhost:5000/app", "localhost:5000"),
        ("Quay.IO/org/app@sha256:" + "a" * 64, "quay.io"),
    ],
)
def test_image_registry(image, registry):
    assert image_registry(image) == registry


def test_config_json_auths_go_with_their_registry():
    auths = parse_docker_config(CONFIG)
    assert set(auths) == {"docker.io", "registry.example.com:5000", "quay.io"}
    assert auth_for_image("user/app", auths) == {
        "username": "hubuser",
        "password": "hub:pass",  # only the first ':' separates
        "serveraddress": "https://index.docker.io/v1/",
    }
    assert auth_for_image("registry.example.com:5000/team/app:1", auths) == {
        "username": "alice",
        "password": "s3cret",
        "serveraddress": "registry.example.com:5000",
    }
    assert auth_for_image("quay.io/org/app", auths)["email"] == "q@example.com"
    # another registry (or one only a credential helper knows): no credentials
    assert auth_for_image("gcr.io/p/app", auths) is None
    assert auth_for_image("helper-only.example.com/app", auths) is None
    assert auth_for_image("registry.example.com/app", auths) is None  # port differs


def test_pull_arguments_carry_the_auth_config():
    auths = parse_docker_config(CONFIG)
    repo, kwargs = pull_arguments("registry.example.com:5000/team/app:1.2", auths)
    assert repo == "registry.example.com:5000/team/app"
    assert kwargs["tag"] == "1.2"
    assert kwargs["auth_config"]["username"] == "alice"
    assert kwargs["stream"] is True and kwargs["decode"] is True
    repo, kwargs = pull_arguments("localhost/paddock-busybox", auths)
    assert (repo, kwargs["tag"]) == ("localhost/paddock-busybox", "latest")
    assert "auth_config" not in kwargs
    assert pull_arguments("x/y", None)[1].get("auth_config") is None


def test_old_dockercfg_format_and_sandbox_config(tmp_path):
    old = {"https://registry.example.com": {"auth": b64("bob:pw"), "email": "b@x"}}
    assert parse_docker_config(old)["registry.example.com"]["username"] == "bob"

    assert sandbox_docker_auths(tmp_path) == {}
    (tmp_path / ".dockercfg").write_text(json.dumps(old))
    assert sandbox_docker_auths(tmp_path)["registry.example.com"]["password"] == "pw"
    # .docker/config.json is preferred to .dockercfg
    (tmp_path / ".docker").mkdir()
    task_cfg = {"auths": {"registry.example.com": {"auth": b64("task:pw2")}}}
    (tmp_path / ".docker" / "config.json").write_text(json.dumps(task_cfg))
    task_auths = sandbox_docker_auths(tmp_path)
    assert task_auths["registry.example.com"]["username"] == "task"
    # the task's credentials win over the agent's for the registries it names
    agent_cfg = {"auths": {**CONFIG["auths"], "registry.example.com": {"auth": b64("agent:x")}}}
    merged = merge_auths(parse_docker_config(agent_cfg), task_auths)
    assert merged["registry.example.com"]["username"] == "task"
    assert merged["docker.io"]["username"] == "hubuser"

    (tmp_path / ".docker" / "config.json").write_text("{not json")
    with pytest.raises(DockerConfigError, match=r"\.docker/config\.json in the sandbox"):
        sandbox_docker_auths(tmp_path)


@pytest.mark.parametrize(
    ("obj", "needle"),
    [
        ([], "expected a JSON object"),
        ({"auths": []}, "'auths' must be an object"),
        ({"auths": {"r.io": {"auth": "!!!"}}}, "not base64"),
        ({"auths": {"r.io": {"auth": b64("nocolon")}}}, "has no ':'"),
        ({"auths": {"r.io": "x"}}, "not an object"),
        ({"auths": {"r.io": {"email": ""}}}, "no credentials"),
    ],
)
def test_bad_configs_are_refused_clearly(obj, needle):
    with pytest.raises(DockerConfigError, match=needle):
        parse_docker_config(obj)


def test_docker_config_flag_takes_a_path_or_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    assert "quay.io" in load_docker_config(str(path))
    assert "quay.io" in load_docker_config(f"file://{path}")
    assert "quay.io" in load_docker_config(json.dumps(CONFIG))
    with pytest.raises(DockerConfigError, match="cannot read it"):
        load_docker_config(str(tmp_path / "missing.json"))


def test_cli_refuses_a_bad_docker_config(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"auths": {"r.io": {"auth": "!!!"}}}')
    app = typer.Typer()
    app.command()(agent_command)
    args = ["--master", "m:5050", "--work-dir", str(tmp_path / "w"), "--docker-config", str(bad)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    [line] = [ln for ln in result.output.splitlines() if ln.strip()]
    assert line.startswith("error: --docker-config") and "not base64" in line
