"""Real containers for tests: podman's Docker-compatible API service and a local image.

No Docker engine runs on the test machines; ``podman system service`` serves the Docker
Engine REST API on a unix socket, so the agent's docker containerizer is tested for
real against it.  ``scripts/setup-podman.sh`` (run by ``scripts/setup.sh --system``)
configures podman for these machines; :func:`ensure_test_image` builds the test image
when it is missing.

Usage (pytest)::

    from paddock.testing.podman import (
        TEST_IMAGE, ensure_test_image, podman_service, podman_unavailable_reason,
    )

    @pytest.fixture(scope="module")
    def docker_socket():
        reason = podman_unavailable_reason()
        if reason:
            pytest.skip(f"podman: {reason}")
        ensure_test_image()
        with podman_service() as url:   # "unix:///tmp/.../podman.sock"
            yield url

then start agents with ``--containerizers docker,mesos --docker-socket <url>`` and give
DOCKER tasks the image :data:`TEST_IMAGE`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "TEST_IMAGE",
    "ensure_test_image",
    "podman_service",
    "podman_unavailable_reason",
    "remove_labelled_containers",
]

#: A busybox image built locally (no registry): sh, httpd, sleep, cat, echo, wget, env,
#: ls... with ``/www/index.html`` ("paddock-busybox") for ``httpd -f -h /www``.
TEST_IMAGE = "localhost/paddock-busybox:latest"
APPLETS = [
    "sh",
    "ash",
    "ls",
    "echo",
    "sleep",
    "cat",
    "httpd",
    "wget",
    "env",
    "printenv",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "touch",
    "test",
    "true",
    "false",
    "grep",
    "head",
    "tail",
    "ps",
    "kill",
    "id",
    "hostname",
    "printf",
    "seq",
    "yes",
    "dd",
    "nc",
    "ip",
    "ifconfig",
    "date",
    "pwd",
    "wc",
    "sort",
    "uname",
    "df",
    "du",
    "mount",
    "stat",
    "find",
    "xargs",
    "tr",
    "sed",
    "awk",
    "timeout",
]


def podman_unavailable_reason() -> str | None:
    """Why real containers cannot run here (None when they can)."""
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/setup.sh --system installs it)"
    if os.geteuid() != 0:
        return "rootful podman (configured by scripts/setup-podman.sh) needs root"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker Python package is not installed"
    return None


def _static_busybox() -> str | None:
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if not os.access(path, os.X_OK):
            continue
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if b"ld-linux" not in head:  # dynamically linked ones name their loader early
            return path
    return None


def ensure_test_image(image: str = TEST_IMAGE) -> str:
    """Build ``image`` from busybox-static with ``podman import`` unless podman has it."""
    exists = subprocess.run(["podman", "image", "exists", image], capture_output=True)
    if exists.returncode == 0:
        return image
    busybox = _static_busybox()
    if busybox is None:
        raise RuntimeError(f"no static busybox to build {image} (install busybox-static)")
    with tempfile.TemporaryDirectory(prefix="paddock-image-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        index = Path(tmp) / "index.html"
        index.write_text("paddock-busybox\n")
        passwd = Path(tmp) / "passwd"
        passwd.write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        with tarfile.open(tar_path, "w") as tar:
            for d in ("bin", "tmp", "etc", "www"):
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if d == "tmp" else 0o755
                tar.addfile(info)
            tar.add(busybox, arcname="bin/busybox")
            for name in APPLETS:
                link = tarfile.TarInfo(f"bin/{name}")
                link.type = tarfile.SYMTYPE
                link.linkname = "busybox"
                tar.addfile(link)
            tar.add(index, arcname="www/index.html")
            tar.add(passwd, arcname="etc/passwd")
        subprocess.run(
            [
                "podman", "import",
                "--change", 'CMD ["/bin/sh"]', "--change", "ENV PATH=/bin",
                str(tar_path), image,
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return image


@contextlib.contextmanager
def podman_service(startup_timeout: float = 60.0, socket_path: str | None = None) -> Iterator[str]:
    """Run ``podman system service`` on a fresh unix socket (or ``socket_path``, e.g. to
    restart a service where its clients expect it); yield its ``unix://`` URL once the
    Docker API answers a ping; stop it (and wait for it) on exit.  Stopping the service
    does not stop the containers it started."""
    import docker

    tmp = tempfile.mkdtemp(prefix="paddock-podman-")
    sock = socket_path or os.path.join(tmp, "podman.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)  # a stale socket of an earlier service
    url = f"unix://{sock}"
    log_path = os.path.join(tmp, "service.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        last: Exception | None = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"podman system service exited with {proc.returncode}: "
                    + Path(log_path).read_text(errors="replace")[-2000:]
                )
            if os.path.exists(sock):
                try:
                    client = docker.APIClient(base_url=url, version="1.41", timeout=5)
                    try:
                        if client.ping():
                            break
                    finally:
                        client.close()
                except Exception as exc:  # not answering yet
                    last = exc
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"podman system service did not answer within {startup_timeout:g} s: {last}"
                )
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


def remove_labelled_containers(url: str, label: str) -> int:
    """Force-remove every container carrying ``label`` (``key`` or ``key=value``);
    tests call it in their cleanup. Returns how many were removed."""
    import docker

    client = docker.APIClient(base_url=url, version="1.41", timeout=60)
    try:
        removed = 0
        for c in client.containers(all=True, filters={"label": label}):
            with contextlib.suppress(Exception):
                client.remove_container(c["Id"], v=True, force=True)
                removed += 1
        return removed
    finally:
        client.close()
