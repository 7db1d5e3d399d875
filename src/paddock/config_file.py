"""Daemon settings from flags, ``PADDOCK_*`` environment variables and a TOML file.

Every daemon (``paddock keeper``, ``master``, ``agent``, ``marathon``) and
``paddock up`` takes its settings three more ways than its flags, in this order of
precedence::

    --flag value  >  PADDOCK_<COMMAND>_<FLAG>=value  >  [command] table of --config FILE  >  default

e.g. ``--quorum 2`` beats ``PADDOCK_MASTER_QUORUM=2`` beats ``quorum = 2`` under
``[master]`` in ``paddock.toml``. One file can hold the tables of every daemon on a
host (``[keeper]``, ``[master]``, ``[marathon]`` on a master host; ``[agent]`` on an
agent host); each command reads only its own table. Keys are the long flag names,
with dashes or underscores (``client-port`` or ``client_port``); a flag that takes no
value (``--no-cgroups``, ``--detach``) is a TOML boolean. The file's path may also
come from ``PADDOCK_<COMMAND>_CONFIG``.

Why through typer/click's own value sources rather than by hand in each command: the
environment is each option's ``envvar`` and the file is the context's ``default_map``,
so click applies the precedence above, required options (``master --quorum``) may come
from any source, and each command's body stays as it was. The only thing a command
needs is its ``--config`` option and :func:`daemon_command` as its class.

Mistakes are refused before the daemon starts, as one line and exit status 2:
an unreadable or malformed file, an unknown table or key (a misspelt setting that is
silently ignored is worse than a refusal to start), a value of the wrong type, or an
environment variable that does not convert.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from typer.core import TyperCommand

#: The commands that read a table of the file, one table each.
TABLES = ("keeper", "master", "agent", "marathon", "up")

#: ``--config`` for the commands whose body does not use the path itself (the
#: command class reads the file before the body runs).
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file: the table named after this command holds its options, keyed by "
        "long flag name. Flags and PADDOCK_* variables win over it. See docs/operations.md.",
    ),
]


class ConfigFileError(Exception):
    """The file, a key in it, or an environment variable is not acceptable."""


def env_var(command: str, flag: str) -> str:
    """``PADDOCK_MASTER_QUORUM`` for ``master``'s ``--quorum``."""
    name = flag.lstrip("-").replace("-", "_").upper()
    return f"PADDOCK_{command.upper()}_{name}"


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The file's tables. Refuses unknown tables and settings outside a table."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{p}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{p}: not valid TOML: not UTF-8 text") from None
    for key, value in data.items():
        if key not in TABLES:
            raise ConfigFileError(
                f"{p}: unknown table or setting {key!r} (tables: {', '.join(TABLES)})"
            )
        if not isinstance(value, dict):
            raise ConfigFileError(f"{p}: {key!r} must be a table ([{key}]), not a value")
    return data


def _long_flag(param: Any) -> str | None:
    """The first ``--long`` name of an option (None for arguments / short-only)."""
    if getattr(param, "param_type_name", "") != "option":
        return None
    for opt in param.opts:
        if opt.startswith("--"):
            return opt[2:]
    return None


def _options(command: TyperCommand) -> dict[str, Any]:
    """Keys the table may use (flag names with dashes) -> the option."""
    out = {}
    for param in command.params:
        flag = _long_flag(param)
        if flag is not None and flag not in ("help", "config"):
            out[flag] = param
    return out


def _annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    return getattr(descriptor, "annotation", str)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number"}


def _check_type(param: Any, value: Any) -> str | None:
    """What is wrong with ``value`` for ``param`` (None if it fits)."""
    kind = _annotation(param)
    is_flag = bool(getattr(param, "is_flag", False))
    if is_flag or kind is bool:
        ok = isinstance(value, bool)
        wanted = _TYPE_NAMES[bool]
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        wanted = _TYPE_NAMES[int]
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        wanted = _TYPE_NAMES[float]
    else:  # str, Path, choices: a string in the file
        ok = isinstance(value, str)
        wanted = "a string"
    if ok:
        return None
    return f"expected {wanted}, got {type(value).__name__} {value!r}"


def table_defaults(
    command: TyperCommand, ctx: Any, table: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """The command's ``default_map`` from its table: option name -> value, each checked
    against the option's type (and converted the way the flag would be)."""
    options = _options(command)
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        flag = key.replace("_", "-")
        param = options.get(flag)
        if param is None or param.name is None:
            known = ", ".join(sorted(options))
            raise ConfigFileError(f"{where}: unknown setting {key!r} (known: {known})")
        problem = _check_type(param, value)
        if problem is None:
            problem = _convert_problem(param, ctx, value)
        if problem is not None:
            raise ConfigFileError(f"{where}: {key}: {problem}")
        defaults[param.name] = value
    return defaults


def _convert_problem(param: Any, ctx: Any, value: Any) -> str | None:
    """Run the value through the option's own conversion; the error text if it fails."""
    try:
        param.process_value(ctx, value)
    except Exception as exc:  # typer's BadParameter/UsageError, or a ValueError
        return str(getattr(exc, "message", "") or exc)
    return None


def _config_path_arg(args: Sequence[str]) -> str | None:
    """``--config X`` / ``--config=X`` from the raw arguments (the last one wins, as
    for any option), before click parses them: the file supplies defaults to that parse."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--config="):
            found = arg[len("--config=") :]
    return found


class DaemonCommand(TyperCommand):
    """A typer command whose options also come from ``PADDOCK_<TABLE>_<FLAG>`` and from
    the ``[<table>]`` table of ``--config FILE`` (see the module's docstring)."""

    #: The table of the file (and the middle of the environment variables' names).
    table: ClassVar[str] = ""
    #: Only read ``--config`` as TOML when it ends in ``.toml`` (keeper: any other file
    #: is a ZooKeeper zoo.cfg, which keeper's own body reads).
    toml_suffix_only: ClassVar[bool] = False

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        self._bind_environment()
        if not ctx.resilient_parsing and not any(a in ("--help",) for a in args):
            try:
                self._check_environment(ctx)
                defaults = self._file_defaults(ctx, args)
            except ConfigFileError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
            if defaults:
                ctx.default_map = {**(ctx.default_map or {}), **defaults}
        return super().parse_args(ctx, args)

    def _bind_environment(self) -> None:
        """Each option's environment variable: ``PADDOCK_<TABLE>_<FLAG>`` (shown in --help)."""
        for param in self.params:
            flag = _long_flag(param)
            if flag is None or flag == "help" or param.envvar:
                continue
            param.envvar = env_var(self.table, flag)
            setattr(param, "show_envvar", True)  # noqa: B010 - typer options only

    def _check_environment(self, ctx: Any) -> None:
        for param in self.params:
            name = param.envvar
            if not isinstance(name, str) or not os.environ.get(name):
                continue
            value = param.value_from_envvar(ctx)
            problem = _convert_problem(param, ctx, value)
            if problem is not None:
                raise ConfigFileError(f"{name}={os.environ[name]!r}: {problem}")

    def _file_defaults(self, ctx: Any, args: Sequence[str]) -> dict[str, Any]:
        path = _config_path_arg(args) or os.environ.get(env_var(self.table, "config"))
        if not path:
            return {}
        if self.toml_suffix_only and not path.endswith(".toml"):
            return {}
        tables = read_config_file(path)
        table = tables.get(self.table)
        if not table:
            return {}
        return table_defaults(self, ctx, table, f"{path} [{self.table}]")


def daemon_command(table: str, *, toml_suffix_only: bool = False) -> type[DaemonCommand]:
    """The command class for ``app.command(..., cls=daemon_command("master"))``."""
    if table not in TABLES:
        raise ValueError(f"no table {table!r} (tables: {TABLES})")
    attrs = {"table": table, "toml_suffix_only": toml_suffix_only}
    return type(f"{table.title()}Command", (DaemonCommand,), attrs)


def check_file_for(path: str | Path, command: Any) -> None:
    """Check ``path``'s table for ``command`` (built by :func:`daemon_command`) the way
    the daemon would at start, without starting it (used by the deploy/ examples' test
    and usable as a pre-flight check). Raises :class:`ConfigFileError`."""
    if not isinstance(command, DaemonCommand):
        raise TypeError(f"{command!r} does not read a config file")
    table = read_config_file(path).get(command.table)
    if table:
        with typer.Context(command, info_name=command.table, resilient_parsing=True) as ctx:
            table_defaults(command, ctx, table, f"{path} [{command.table}]")
