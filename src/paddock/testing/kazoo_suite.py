"""Run kazoo's own test suite (python-zk/kazoo ``kazoo/tests``) against an ensemble.

kazoo's tests are not part of this repository: they are taken at run time from
the installed kazoo package if its wheel ships ``kazoo/tests``, or else from the
kazoo sdist of the installed version, downloaded once with pip into a cache
directory. The run is a child pytest process with
:mod:`paddock.testing.kazoo_plugin` loaded, and its JUnit XML report is read
back into per-test outcomes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

CACHE_DIR = Path(os.environ.get("PADDOCK_CACHE_DIR", Path.home() / ".cache" / "paddock"))


@dataclass(frozen=True)
class KazooTests:
    """Where kazoo's tests are and what must be on sys.path to import them."""

    tests_dir: Path
    pythonpath: Path | None  # None: the installed kazoo package itself
    version: str


@dataclass
class SuiteResult:
    """Outcome of one run: test id -> "passed" | "failed" | "error" | "skipped"."""

    target: str
    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    returncode: int = 0

    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    def failing(self) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o in ("failed", "error"))

    def summary(self) -> str:
        c = self.counts()
        return (
            f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
            f"{c['skipped']} skipped in {self.seconds:.0f}s against {self.target}"
        )


def kazoo_version() -> str:
    return metadata.version("kazoo")


def locate_kazoo_tests(cache_dir: Path = CACHE_DIR) -> KazooTests:
    """Find kazoo/tests in the installed package, else fetch the matching sdist."""
    import kazoo

    version = kazoo_version()
    installed = Path(kazoo.__file__).parent / "tests"
    if (installed / "test_client.py").exists():
        return KazooTests(installed, None, version)
    root = cache_dir / f"kazoo-sdist-{version}"
    tests_dir = root / f"kazoo-{version}" / "kazoo" / "tests"
    if not (tests_dir / "test_client.py").exists():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"kazoo=={version}",
                "-d",
                str(root),
            ],
            check=True,
        )
        (archive,) = root.glob("kazoo-*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    return KazooTests(tests_dir, tests_dir.parent.parent, version)


def run_kazoo_suite(
    target: str,
    selection: list[str] | None = None,
    extra_pytest_args: list[str] | None = None,
    per_test_timeout: int = 180,
    quiet: bool = False,
    deselect: list[str] | None = None,
) -> SuiteResult:
    """Run kazoo's tests (all, or ``selection`` like ``test_lock.py::TestLock``).

    ``deselect`` lists test ids (``file::Class::test``) to leave out.
    """
    found = locate_kazoo_tests()
    # Node ids are relative to the rootdir, which is the tests directory.
    deselect_args = [arg for test_id in deselect or [] for arg in ("--deselect", test_id)]
    with tempfile.TemporaryDirectory(prefix="paddock-kazoo-suite-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        # An empty config of our own: kazoo's tests must not inherit paddock's
        # addopts/markers, nor pick up a rootdir above site-packages.
        ini.write_text("[pytest]\n")
        junit = Path(tmp) / "junit.xml"
        targets = (
            [str(found.tests_dir / s) for s in selection] if selection else [str(found.tests_dir)]
        )
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ini),
            # rootdir = the tests directory, so JUnit class names are
            # "test_client.TestClient" whatever the selection.
            "--rootdir",
            str(found.tests_dir),
            "-p",
            "paddock.testing.kazoo_plugin",
            "-p",
            "no:cacheprovider",
            # schemathesis's plugin (our fuzz tests) keeps objects alive between
            # tests, which kazoo's TreeCache leak checks count as leaks.
            "-p",
            "no:schemathesis",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            f"--timeout={per_test_timeout}",
            f"--junitxml={junit}",
            "-q",
            "-rfE",
            *targets,
            *deselect_args,
            *(extra_pytest_args or []),
        ]
        env = dict(os.environ)
        env["PADDOCK_KAZOO_TARGET"] = target
        # kazoo's tests change behaviour when CI is set (extra sleeps, version
        # checks against ZOOKEEPER_VERSION); run them the same way everywhere.
        for name in ("CI", "ZOOKEEPER_VERSION", "ZOOKEEPER_LOCAL_SESSION_RO"):
            env.pop(name, None)
        if found.pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(found.pythonpath), *filter(None, [env.get("PYTHONPATH")])]
            )
        started = time.monotonic()
        proc = subprocess.run(
            argv,
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
            check=False,
        )
        result = SuiteResult(target, returncode=proc.returncode)
        result.seconds = time.monotonic() - started
        if junit.exists():
            _read_junit(junit, result)
        if proc.returncode not in (0, 1) or not result.outcomes:
            output = (proc.stdout or b"").decode(errors="replace")[-3000:]
            raise RuntimeError(
                f"kazoo suite run failed to run tests (pytest exit {proc.returncode}):\n{output}"
            )
    return result


def _read_junit(path: Path, result: SuiteResult) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        module, _, cls = classname.rpartition(".")
        if module.startswith("kazoo.tests."):
            module = module.removeprefix("kazoo.tests.")
        if cls.startswith("test_"):  # a module-level test function
            module, cls = f"{module}.{cls}" if module else cls, ""
        test_id = f"{module.rsplit('.', 1)[-1]}.py::" + (f"{cls}::" if cls else "")
        test_id += case.get("name", "")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (
                    (child.get("message") or "").splitlines()[0][:200]
                    if child.get("message")
                    else ""
                )
                break
        # A test that failed in its body and errored in teardown appears twice.
        if result.outcomes.get(test_id) in ("failed", "error") and outcome == "passed":
            continue
        result.outcomes[test_id] = outcome
        if message:
            result.messages[test_id] = message
