"""``paddock zk ls|get|set|rm PATH`` with kazoo, against keeper or Apache ZooKeeper."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError, NotEmptyError

from paddock.cli.endpoints import (
    CliError,
    Endpoints,
    OutputOpt,
    WorkDirOpt,
    ZkOpt,
    check_output,
    cli_errors,
    print_json,
    zk_hosts,
)

app = typer.Typer(help="Read and change znodes (keeper or ZooKeeper).", no_args_is_help=True)
PathArg = Annotated[str, typer.Argument(metavar="PATH")]

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def client(zk: str | None, work_dir: Any) -> Iterator[KazooClient]:
    hosts = zk_hosts(Endpoints(zk=zk, work_dir=work_dir).zk_url())
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)  # failures are reported as one line
    kz = KazooClient(hosts=hosts, timeout=10)
    try:
        kz.start(timeout=5)
    except Exception as exc:  # kazoo raises a timeout or a socket error
        kz.close()
        raise CliError(f"cannot connect to {hosts}: {exc or type(exc).__name__}") from None
    try:
        yield kz
    finally:
        kz.stop()
        kz.close()


def zk_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except NoNodeError:
            raise CliError("no such znode") from None
        except NodeExistsError:
            raise CliError("the znode exists") from None
        except NotEmptyError:
            raise CliError("the znode has children (use --recursive)") from None
        except (KazooException, ValueError, TypeError) as exc:
            raise CliError(f"{type(exc).__name__}: {exc}") from None

    return wrapper


def _path(path: str) -> str:
    if not path.startswith("/"):
        raise CliError(f"a znode path starts with '/': {path!r}")
    return path


@app.command("ls")
@cli_errors
@zk_errors
def ls(
    path: PathArg = "/", zk: ZkOpt = None, work_dir: WorkDirOpt = None, output: OutputOpt = "table"
) -> None:
    """The children of a znode."""
    check_output(output)
    with client(zk, work_dir) as kz:
        children = sorted(kz.get_children(_path(path)))
    if output == "json":
        print_json(children)
    else:
        for c in children:
            typer.echo(c)


@app.command("get")
@cli_errors
@zk_errors
def get(
    path: PathArg, zk: ZkOpt = None, work_dir: WorkDirOpt = None, output: OutputOpt = "table"
) -> None:
    """A znode's data (and with -o json its stat)."""
    check_output(output)
    with client(zk, work_dir) as kz:
        data, stat = kz.get(_path(path))
    if output == "json":
        print_json(
            {
                "path": path,
                "data": (data or b"").decode("utf-8", errors="replace"),
                "version": stat.version,
                "numChildren": stat.numChildren,
                "ephemeralOwner": stat.ephemeralOwner,
                "mzxid": stat.mzxid,
            }
        )
    else:
        sys.stdout.buffer.write((data or b"") + b"\n")


@app.command("set")
@cli_errors
@zk_errors
def set_(path: PathArg, value: str, zk: ZkOpt = None, work_dir: WorkDirOpt = None) -> None:
    """Write a znode's data, creating it (and missing parents) if needed."""
    with client(zk, work_dir) as kz:
        if kz.exists(_path(path)):
            kz.set(path, value.encode())
        else:
            kz.create(path, value.encode(), makepath=True)


@app.command("rm")
@cli_errors
@zk_errors
def rm(
    path: PathArg,
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
    zk: ZkOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """Delete a znode (with --recursive, its children too)."""
    if _path(path) == "/":
        raise CliError("refusing to delete /")
    with client(zk, work_dir) as kz:
        kz.delete(path, recursive=recursive)
