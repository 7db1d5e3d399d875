"""Pull credentials reach the registry: a real agent, real podman, and a tiny TLS
registry stand-in on 127.0.0.1 that answers every request 401 (Basic) and records the
``Authorization`` headers it was sent.

Podman pulls only over TLS, so the stand-in has a self-signed certificate that podman
is told to trust for its address only (``/etc/containers/certs.d/127.0.0.1:PORT/``,
created and removed by the test; podman tests run as root)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading

import pytest

from . import test_docker
from .test_docker import AgentProc, docker_task

pytestmark = pytest.mark.timeout(180)

docker_socket = test_docker.docker_socket


class AuthRecordingRegistry:
    """HTTPS on 127.0.0.1: ``/v2/`` and everything else answer 401 Basic."""

    def __init__(self, tmp) -> None:
        self.seen: list[tuple[str, str | None]] = []
        key, cert = tmp / "key.pem", tmp / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="paddock-test"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.trust_dir = f"/etc/containers/certs.d/{self.host}"
        os.makedirs(self.trust_dir)
        shutil.copy(cert, os.path.join(self.trust_dir, "ca.crt"))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def users(self) -> list[str]:
        out = []
        for _path, header in self.seen:
            if header and header.startswith("Basic "):
                out.append(base64.b64decode(header[6:]).decode())
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.trust_dir, ignore_errors=True)


@pytest.fixture
def registry(tmp_path, docker_socket):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    reg = AuthRecordingRegistry(tmp_path)
    yield reg
    reg.close()


class ConfiguredAgent(AgentProc):
    """The test_docker agent with extra flags."""

    extra: list[str]

    def start(self, recover: str = "reconnect", containerizers: str = "docker,mesos") -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "paddock.cli.main", "agent",
                "--master", self.master, "--work-dir", str(self.work), "--port", "0",
                "--ip", "127.0.0.1", "--hostname", "localhost",
                "--resources", "cpus:2;mem:1024;disk:100;ports:[31000-31001]",
                "--registration-backoff-factor", "0.05", "--default-kill-grace", "1",
                "--containerizers", containerizers, "--docker-socket", self.socket,
                *self.extra,
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def auth_entry(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_agent_and_task_credentials_reach_the_registry(
    tmp_path, fake_master, docker_socket, registry
):
    agent_cfg = tmp_path / "agent-config.json"
    agent_cfg.write_text(json.dumps({"auths": {registry.host: auth_entry("alice", "s3cret")}}))
    # Marathon's way: a tarball with .docker/config.json, fetched into the sandbox
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {f"https://{registry.host}/v2/": auth_entry("bob", "t4sk")}})
    )
    tarball = tmp_path / "docker.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(home / ".docker", arcname=".docker")

    agent = ConfiguredAgent(tmp_path / "agent", fake_master.address, docker_socket,
                            tmp_path / "agent.log")  # fmt: skip
    agent.extra = ["--docker-config", str(agent_cfg)]
    try:
        agent.start()
        await fake_master.wait_registrations(1, timeout=60)
        fake_master.auto_ack = True
        image = f"{registry.host}/private/app:1"
        fake_master.send(docker_task("agent-creds", cmd="true", image=image))
        failed = await fake_master.wait_update("agent-creds", "TASK_FAILED", timeout=60)
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert f"Failed to pull image {image}" in failed["message"]
        assert "alice:s3cret" in registry.users()

        with_uri = docker_task("task-creds", cmd="true", image=image)
        with_uri["run_task"]["task"]["command"]["uris"] = [{"value": str(tarball)}]
        fake_master.send(with_uri)
        await fake_master.wait_update("task-creds", "TASK_FAILED", timeout=60)
        assert registry.users()[-1] == "bob:t4sk"  # the task's own credentials win
    finally:
        rc = agent.stop()
        print(agent.tail())
    assert rc == 0
