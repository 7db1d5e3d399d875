"""The fetcher: files and archives from file:// and http:// into the sandbox, safely."""

from __future__ import annotations

import io
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from paddock.agent.fetcher import FetchError, fetch_uris

from .test_agent_integration import FW, run_task, running_agent


def make_tgz(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_copy_download_extract_and_executable(tmp_path, http_dir):
    www, base = http_dir
    (tmp_path / "plain.txt").write_text("plain")
    make_tgz(www / "app.tgz", {"app/run.sh": b"#!/bin/sh\necho app\n"})
    (www / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    with zipfile.ZipFile(www / "z.zip", "w") as z:
        z.writestr("zdir/a.txt", "from zip")
    sandbox = tmp_path / "sb"
    got = await fetch_uris(
        [
            {"value": str(tmp_path / "plain.txt")},
            {"value": f"file://{tmp_path}/plain.txt", "output_file": "sub/renamed.txt"},
            {"value": f"{base}/app.tgz"},
            {"value": f"{base}/tool", "executable": True},
            {"value": f"{base}/z.zip", "cache": True},
            {"value": f"{base}/app.tgz", "extract": False, "output_file": "kept.tgz"},
        ],
        sandbox,
    )
    assert (sandbox / "plain.txt").read_text() == "plain"
    assert (sandbox / "sub/renamed.txt").read_text() == "plain"
    assert (sandbox / "app/run.sh").read_bytes().startswith(b"#!/bin/sh")
    assert (sandbox / "tool").stat().st_mode & 0o777 == 0o755
    assert (sandbox / "zdir/a.txt").read_text() == "from zip"
    assert (sandbox / "kept.tgz").exists() and len(got) == 6
    assert "Fetching" in (sandbox / "stderr").read_text()


@pytest.mark.parametrize(
    ("uris", "needle"),
    [
        ([{"value": "/nonexistent/file"}], "cannot copy"),
        ([{"value": "ftp://x/y"}], "unsupported"),
        ([{"value": "/etc/hostname", "output_file": "../escape"}], "leave the sandbox"),
        ([{"nope": 1}], "value"),
        ("not-a-list", "list"),
    ],
)
async def test_bad_uris(tmp_path, uris, needle):
    with pytest.raises(FetchError, match=needle):
        await fetch_uris(uris, tmp_path / "sb")


async def test_http_errors_and_escaping_archives(tmp_path, http_dir):
    www, base = http_dir
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetch_uris([{"value": f"{base}/missing.bin"}], tmp_path / "sb")
    make_tgz(www / "evil.tar.gz", {"../../outside.txt": b"x"})
    with pytest.raises(FetchError, match="extract"):
        await fetch_uris([{"value": f"{base}/evil.tar.gz"}], tmp_path / "sb2")
    assert not (tmp_path / "outside.txt").exists()
    with zipfile.ZipFile(www / "evil.zip", "w") as z:
        z.writestr("../../outside2.txt", "x")
    with pytest.raises(FetchError, match="leaves the sandbox"):
        await fetch_uris([{"value": f"{base}/evil.zip"}], tmp_path / "sb3")
    assert not (tmp_path / "outside2.txt").exists()


async def test_task_with_uris_runs_the_fetched_program(tmp_path, fake_master, http_dir):
    www, base = http_dir
    make_tgz(www / "app.tgz", {"app/run.sh": b"#!/bin/sh\necho fetched-$PORT0\n"})
    async with running_agent(tmp_path, fake_master) as server:
        await fake_master.wait_registrations(1)
        fake_master.auto_ack = True
        msg = run_task("app", "./app/run.sh")
        msg["run_task"]["task"]["command"]["uris"] = [{"value": f"{base}/app.tgz"}]
        fake_master.send(msg)
        await fake_master.wait_update("app", "TASK_FINISHED")
        task = server.agent.tasks.get((FW, "app")) or server.agent.completed[-1]
        assert (task.sandbox / "stdout").read_text() == "fetched-31000\n"
        bad = run_task("bad", "true")
        bad["run_task"]["task"]["command"]["uris"] = [{"value": f"{base}/nothing.tgz"}]
        fake_master.send(bad)
        failed = await fake_master.wait_update("bad", "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "HTTP 404" in failed["message"]
