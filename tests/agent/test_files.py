"""Sandbox file access: reads, listings and refusal of paths outside the sandbox."""

from __future__ import annotations

import os

import pytest

from paddock.agent.files import Attached, FileAccessError, SandboxFiles


@pytest.fixture
def files(tmp_path):
    sandbox = tmp_path / "slaves/a1/frameworks/fw/executors/t1/runs/r1"
    sandbox.mkdir(parents=True)
    (sandbox / "stdout").write_text("0123456789")
    (sandbox / "sub").mkdir()
    (sandbox / "sub/x").write_text("x")
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", sandbox / "link-out")
    os.symlink(sandbox / "stdout", sandbox / "link-in")
    return SandboxFiles([Attached("fw", "t1", "r1", sandbox)]), sandbox


def test_read_by_real_and_virtual_path(files):
    sf, sandbox = files
    assert sf.read(f"{sandbox}/stdout", 2, 3) == {"data": "234", "offset": 2}
    assert sf.read(f"{sandbox}/stdout") == {"data": "", "offset": 10}
    for run in ("latest", "r1"):
        assert sf.read(f"/frameworks/fw/executors/t1/runs/{run}/stdout", 0)["data"] == "0123456789"
    assert sf.read(f"{sandbox}/link-in", 0)["data"] == "0123456789"
    names = [e["path"].rsplit("/", 1)[1] for e in sf.browse(str(sandbox))]
    assert names == ["link-in", "link-out", "stdout", "sub"]
    assert sf.download(f"{sandbox}/sub/x").read_text() == "x"


@pytest.mark.parametrize(
    "path",
    [
        "{sb}/../../../../../../../secret",
        "{sb}/sub/../../r1/../../../../../../secret",
        "/frameworks/fw/executors/t1/runs/latest/../../../../../../secret",
        "{sb}/link-out",
        "{tmp}/secret",
        "/etc/passwd",
        "",
        "/frameworks/other/executors/t1/runs/latest/stdout",
    ],
)
def test_paths_outside_the_sandbox_are_refused(files, tmp_path, path):
    sf, sandbox = files
    with pytest.raises(FileAccessError) as err:
        sf.read(path.format(sb=sandbox, tmp=tmp_path), 0)
    assert err.value.status in (400, 403, 404)


def test_missing_file_and_wrong_kinds(files):
    sf, sandbox = files
    with pytest.raises(FileAccessError) as err:
        sf.read(f"{sandbox}/nope", 0)
    assert err.value.status == 404
    with pytest.raises(FileAccessError):
        sf.read(f"{sandbox}/sub", 0)
    with pytest.raises(FileAccessError):
        sf.browse(f"{sandbox}/stdout")
