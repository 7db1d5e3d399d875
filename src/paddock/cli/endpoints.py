"""Where the client commands find the cluster, and how they report failure.

Endpoints come, in this order, from command-line flags (``--marathon``, ``--master``,
``--zk``), ``PADDOCK_*`` environment variables, or the ``cluster.json`` that
``paddock up`` writes (``--work-dir``/``PADDOCK_WORK_DIR``, else ``./cluster.json``).
Every failure a user can cause or meet becomes :class:`CliError`: one line on stderr
and exit status 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import httpx
import typer
from rich.console import Console

DEFAULT_WORK_DIR = ".paddock"
P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A failure to report as one line, exit status 1."""


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn CliError and connection failures into one line on stderr and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            message = str(exc)
        except httpx.HTTPError as exc:
            where = ""
            with contextlib.suppress(RuntimeError):
                where = f" ({exc.request.url})"
            message = f"cannot reach the cluster{where}: {exc or type(exc).__name__}"
        except OSError as exc:
            message = str(exc)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1)

    return wrapper


# -- options shared by the client commands --------------------------------------------
MarathonOpt = Annotated[
    str | None, typer.Option("--marathon", help="host:port of marathon (env PADDOCK_MARATHON).")
]
MasterOpt = Annotated[
    str | None, typer.Option("--master", help="host:port of a master (env PADDOCK_MASTER).")
]
ZkOpt = Annotated[
    str | None, typer.Option("--zk", help="zk://host:port,.../path (env PADDOCK_ZK).")
]
WorkDirOpt = Annotated[
    Path | None,
    typer.Option("--work-dir", help="Cluster directory of `paddock up` (env PADDOCK_WORK_DIR)."),
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table or json.")]


@dataclass
class Endpoints:
    marathon: str | None = None
    master: str | None = None
    zk: str | None = None
    work_dir: Path | None = None

    def cluster_file(self) -> dict[str, Any] | None:
        """The cluster.json of --work-dir / PADDOCK_WORK_DIR / the current directory."""
        work_dir = self.work_dir or (
            Path(os.environ["PADDOCK_WORK_DIR"]) if os.environ.get("PADDOCK_WORK_DIR") else None
        )
        if work_dir is not None:
            path = work_dir / "cluster.json"
        else:
            path = Path("cluster.json")
            if not path.exists():
                path = Path(DEFAULT_WORK_DIR) / "cluster.json"
        if not path.exists():
            if work_dir is not None:
                raise CliError(f"no cluster in {work_dir} (no cluster.json; run `paddock up`)")
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"{path} is unreadable: {exc}") from None
        if not isinstance(data, dict):
            raise CliError(f"{path} is not a JSON object")
        return data

    def _candidates(self, flag: str | None, env: str, key: str) -> list[str]:
        if flag:
            return [flag]
        if os.environ.get(env):
            return [os.environ[env]]
        data = self.cluster_file()
        if data and isinstance(data.get(key), list):
            return [str(x) for x in data[key]]
        return []

    def marathon_url(self) -> str:
        cands = self._candidates(self.marathon, "PADDOCK_MARATHON", "marathons")
        if not cands:
            raise CliError(_nothing("marathon", "--marathon", "PADDOCK_MARATHON"))
        for c in cands:
            base = base_url(c)
            try:
                if httpx.get(base + "/ping", timeout=2).status_code < 500:
                    return base
            except httpx.HTTPError:
                continue
        raise CliError(f"no marathon answers at {', '.join(cands)}")

    def master_urls(self) -> list[str]:
        cands = self._candidates(self.master, "PADDOCK_MASTER", "masters")
        if not cands:
            raise CliError(_nothing("master", "--master", "PADDOCK_MASTER"))
        return [base_url(c) for c in cands]

    def zk_url(self) -> str:
        if self.zk:
            return self.zk
        if os.environ.get("PADDOCK_ZK"):
            return os.environ["PADDOCK_ZK"]
        data = self.cluster_file()
        if data and data.get("zk"):
            return str(data["zk"])
        raise CliError(_nothing("ZooKeeper/keeper", "--zk", "PADDOCK_ZK"))

    def keepers(self) -> list[str]:
        zk = self.zk or os.environ.get("PADDOCK_ZK")
        if zk:
            return zk_hosts(zk).split(",")
        data = self.cluster_file()
        if data and isinstance(data.get("keepers"), list):
            return [str(k) for k in data["keepers"]]
        return zk_hosts(self.zk_url()).split(",")


def _nothing(what: str, flag: str, env: str) -> str:
    return (
        f"no {what} to talk to: pass {flag}, set {env}, or run in (or pass --work-dir of) "
        "a cluster started by `paddock up`"
    )


def base_url(hostport: str) -> str:
    hostport = hostport.strip().rstrip("/")
    return hostport if hostport.startswith(("http://", "https://")) else f"http://{hostport}"


def zk_hosts(zk: str) -> str:
    """``host:port,...[/chroot]`` for kazoo from ``zk://...`` (or a bare host list)."""
    return zk[len("zk://") :] if zk.startswith("zk://") else zk


# -- probes ------------------------------------------------------------------------------
def four_letter_word(hostport: str, word: str, timeout: float = 1.0) -> str | None:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(word.encode())
            chunks = []
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except (OSError, ValueError):
        return None


def keeper_mode(hostport: str) -> str | None:
    """``leader``/``follower``/``standalone``..., "" if it answers without a mode, None if down."""
    text = four_letter_word(hostport, "srvr")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return ""


def master_state(masters: list[str], path: str = "/master/state") -> tuple[str, dict[str, Any]]:
    """(leader base URL, state JSON), following a standby's 307 to the leader."""
    errors = []
    for base in masters:
        try:
            r = httpx.get(base + path, timeout=5)
            if r.status_code == 307:
                loc = r.headers.get("location", "")
                netloc = urlsplit(loc if "//" in loc else "//" + loc).netloc
                base = f"http://{netloc}"
                r = httpx.get(base + path, timeout=5)
            if r.status_code == 200:
                return base, r.json()
            errors.append(f"{base}: HTTP {r.status_code} {r.text.strip()[:80]}")
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(f"{base}: {exc or type(exc).__name__}")
    raise CliError("no leading master: " + "; ".join(errors))


def check(r: httpx.Response) -> Any:
    """The JSON body of a successful response, or CliError with the server's message."""
    if r.status_code >= 400:
        msg = r.text.strip()
        try:
            body = r.json()
            if isinstance(body, dict):
                msg = str(body.get("message") or body.get("details") or body)
                if body.get("details") and body.get("message"):
                    msg = f"{body['message']}: {json.dumps(body['details'])[:300]}"
        except ValueError:
            pass
        raise CliError(f"{r.request.method} {r.request.url.path}: HTTP {r.status_code}: {msg}")
    if not r.content:
        return None
    try:
        return r.json()
    except ValueError:
        return r.text


def console() -> Console:
    """A rich console; piped output is not cut to 80 columns (ids must stay whole)."""
    c = Console()
    return c if c.is_terminal else Console(width=250)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def check_output(output: str) -> None:
    if output not in ("table", "json"):
        raise CliError(f"--output must be table or json, not {output!r}")
