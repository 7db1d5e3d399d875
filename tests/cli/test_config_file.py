"""Daemon settings from --config FILE.toml and PADDOCK_<CMD>_<FLAG> (paddock.config_file).

A small command built the way the daemons are shows the precedence (flag > environment >
file > default) with the values it received; the real daemons show that every mistake is
one line and exit status 2 before anything starts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from paddock.cli.main import app as paddock_app
from paddock.config_file import (
    ConfigFileError,
    ConfigOption,
    check_file_for,
    daemon_command,
    env_var,
    read_config_file,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

toy = typer.Typer()


@toy.command("master", cls=daemon_command("master"))
def show(
    quorum: int = typer.Option(..., "--quorum"),
    port: int = typer.Option(5050, "--port"),
    zk_session_timeout: str = typer.Option("10s", "--zk-session-timeout"),
    timeout: float = typer.Option(1.5, "--timeout"),
    no_cgroups: bool = typer.Option(False, "--no-cgroups"),
    example: bool = typer.Option(True, "--example/--no-example"),
    config: ConfigOption = None,
) -> None:
    typer.echo(f"{quorum} {port} {zk_session_timeout} {timeout} {no_cgroups} {example}")


@toy.command("other")
def other() -> None:  # a second command, so `master` is a sub-command as in paddock
    pass


def run(app, *args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def write(tmp_path: Path, text: str, name: str = "paddock.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_precedence_flag_over_environment_over_file_over_default(tmp_path):
    cfg = write(
        tmp_path,
        '[master]\nquorum = 2\nport = 6000\nzk_session_timeout = "20s"\n'
        "timeout = 3\nno-cgroups = true\nexample = false\n"
        "[agent]\nport = 1\n[keeper]\nid = 3\n",  # other tables are not this command's
    )
    out = run(toy, "master", "--config", str(cfg))
    assert out.exit_code == 0, out.output
    assert out.stdout.split() == ["2", "6000", "20s", "3.0", "True", "False"]

    env = {"PADDOCK_MASTER_PORT": "7000", "PADDOCK_MASTER_QUORUM": "3"}
    out = run(toy, "master", "--config", str(cfg), env=env)
    assert out.stdout.split()[:2] == ["3", "7000"]

    out = run(toy, "master", "--config", str(cfg), "--port", "8000", env=env)
    assert out.stdout.split()[:2] == ["3", "8000"]

    # The file's path may come from the environment too; without any, the defaults.
    out = run(toy, "master", env={"PADDOCK_MASTER_CONFIG": str(cfg)})
    assert out.stdout.split()[:2] == ["2", "6000"]
    out = run(toy, "master", "--quorum", "1")
    assert out.stdout.split() == ["1", "5050", "10s", "1.5", "False", "True"]


def test_required_option_from_environment_or_file(tmp_path):
    assert run(toy, "master").exit_code == 2  # --quorum missing
    assert run(toy, "master", env={"PADDOCK_MASTER_QUORUM": "5"}).stdout.split()[0] == "5"
    cfg = write(tmp_path, "[master]\nquorum = 4\n")
    assert run(toy, "master", "--config=" + str(cfg)).stdout.split()[0] == "4"


def test_boolean_flags_from_environment():
    env = {"PADDOCK_MASTER_NO_CGROUPS": "true", "PADDOCK_MASTER_EXAMPLE": "false"}
    out = run(toy, "master", "--quorum", "1", env=env)
    assert out.stdout.split()[-2:] == ["True", "False"]


def test_env_var_names():
    assert env_var("master", "--quorum") == "PADDOCK_MASTER_QUORUM"
    assert env_var("agent", "--registration-backoff-factor") == (
        "PADDOCK_AGENT_REGISTRATION_BACKOFF_FACTOR"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[master]\nquorm = 2\n", "unknown setting 'quorm'"),
        ('[master]\nquorum = "2"\n', "quorum: expected an integer, got str '2'"),
        ("[master]\nquorum = true\n", "quorum: expected an integer"),
        ("[master]\nport = 1.5\n", "port: expected an integer"),
        ("[master]\ntimeout = 'x'\n", "timeout: expected a number"),
        ("[master]\nno-cgroups = 1\n", "no-cgroups: expected true or false"),
        ("[master]\nzk-session-timeout = 10\n", "expected a string"),
        ("[master]\nconfig = 'other.toml'\n", "unknown setting 'config'"),
        ("[mastr]\nquorum = 2\n", "unknown table or setting 'mastr'"),
        ("quorum = 2\n", "unknown table or setting 'quorum'"),
        ("master = 2\n", "'master' must be a table"),
        ("[master\nquorum = 2\n", "not valid TOML"),
    ],
)
def test_mistakes_in_the_file_are_one_line_and_status_2(tmp_path, text, message):
    cfg = write(tmp_path, text)
    out = run(toy, "master", "--quorum", "1", "--config", str(cfg))
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.output


def test_unreadable_file_and_bad_environment(tmp_path):
    out = run(toy, "master", "--config", str(tmp_path / "missing.toml"))
    assert out.exit_code == 2
    assert out.stderr.strip() == f"error: cannot read {tmp_path / 'missing.toml'}: "\
        "No such file or directory"  # fmt: skip
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe[master]")
    assert "not valid TOML" in run(toy, "master", "--config", str(tmp_path / "bin.toml")).stderr
    out = run(toy, "master", env={"PADDOCK_MASTER_QUORUM": "three"})
    assert out.exit_code == 2
    assert out.stderr.startswith("error: PADDOCK_MASTER_QUORUM='three': ")
    assert len(out.stderr.strip().splitlines()) == 1


# -- the real commands ------------------------------------------------------------------
@pytest.mark.parametrize("command", ["keeper", "master", "agent", "marathon", "up"])
def test_every_daemon_refuses_a_bad_file_before_starting(tmp_path, command):
    cfg = write(tmp_path, f"[{command}]\nno-such-flag = 1\n")
    out = run(paddock_app, command, "--config", str(cfg))
    assert out.exit_code == 2, out.output
    assert out.stderr.startswith(f"error: {cfg} [{command}]: unknown setting 'no-such-flag'")
    out = run(paddock_app, command, "--config", str(tmp_path / "nope.toml"))
    assert out.exit_code == 2 and "cannot read" in out.stderr
    if command != "up":  # (up has no --log-format; it would start a cluster)
        out = run(paddock_app, command, env={env_var(command, "log-format"): "xml"})
        assert out.exit_code == 2  # the daemon's own check or a missing required flag
    assert "--help" in run(paddock_app, command, "--help").stdout


def test_real_master_reads_its_table_and_environment(tmp_path):
    cfg = write(
        tmp_path,
        f'[master]\nzk = "zk://127.0.0.1:1/mesos"\nquorum = 1\nwork-dir = "{tmp_path}"\n'
        "port = 70000\n",
    )
    out = run(paddock_app, "master", "--config", str(cfg))
    assert out.exit_code == 2
    assert out.stderr.strip() == "error: --port must be a TCP port (1-65535)"  # from the file
    out = run(paddock_app, "master", "--config", str(cfg), env={"PADDOCK_MASTER_IP": "x"})
    assert out.stderr.strip() == "error: --port must be a TCP port (1-65535)"
    out = run(paddock_app, "master", "--config", str(cfg), "--port", "5050", "--ip", "nope")
    assert out.stderr.strip() == "error: --ip must be an IPv4 address, got 'nope'"
    out = run(paddock_app, "master", "--help")
    assert "PADDOCK_MASTER_QUORUM" in out.stdout


def test_keeper_reads_zoo_cfg_through_config_or_zoo_cfg(tmp_path):
    zoo = write(tmp_path, "tickTime=2000\nbogus=1\n", "zoo.cfg")
    for args in (["--config", str(zoo)], ["--zoo-cfg", str(zoo)]):
        out = run(paddock_app, "keeper", *args)
        assert out.exit_code == 2
        assert "unknown setting 'bogus'" in out.stderr
    toml = write(tmp_path, f'[keeper]\nzoo-cfg = "{zoo}"\n')
    out = run(paddock_app, "keeper", "--config", str(toml))
    assert out.exit_code == 2 and "unknown setting 'bogus'" in out.stderr


# -- the deploy/ examples -----------------------------------------------------------------
def _commands():
    import typer.main

    group = typer.main.get_command(paddock_app)
    return {name: group.commands[name] for name in ("keeper", "master", "agent", "marathon")}


@pytest.mark.parametrize("host", ["master-host", "agent-host"])
def test_deploy_examples_are_accepted_by_each_daemon(host):
    path = DEPLOY / "etc" / f"paddock.{host}.toml"
    tables = read_config_file(path)
    expected = {"keeper", "master", "marathon"} if host == "master-host" else {"agent"}
    assert set(tables) == expected
    for command in _commands().values():
        check_file_for(path, command)  # raises ConfigFileError on any mistake


def test_check_file_for_reports_mistakes(tmp_path):
    cfg = write(tmp_path, "[agent]\nport = 'x'\n")
    with pytest.raises(ConfigFileError, match=r"\[agent\]: port: expected an integer"):
        check_file_for(cfg, _commands()["agent"])


def test_systemd_units_verify(tmp_path):
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {
        "paddock-keeper.service",
        "paddock-master.service",
        "paddock-marathon.service",
        "paddock-agent.service",
    }
    for unit in units:
        text = unit.read_text()
        assert "Restart=always" in text and "LimitNOFILE=" in text and "User=" in text
        assert "--config /etc/paddock/paddock.toml" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The units name /opt/paddock/.venv/bin/paddock; verify needs an executable there,
    # so check copies that point at this checkout's.
    paddock = shutil.which("paddock") or str(ROOT / ".venv" / "bin" / "paddock")
    copies = []
    for unit in units:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/paddock/.venv/bin/paddock", paddock))
        copies.append(str(copy))
    r = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_keeper_metrics_port_from_zoo_cfg():
    from paddock.keeper.config import ConfigError, parse_zoo_cfg

    cfg = parse_zoo_cfg(
        "dataDir=/tmp/x\nmetricsProvider.className=org.apache.zookeeper.metrics.prometheus."
        "PrometheusMetricsProvider\nmetricsProvider.httpPort=7000\n"
        "metricsProvider.httpHost=127.0.0.1\n"
    )
    assert (cfg.metrics_port, cfg.metrics_host) == (7000, "127.0.0.1")
    assert parse_zoo_cfg("dataDir=/tmp/x\n").metrics_port == 0  # none unless asked for
    with pytest.raises(ConfigError, match="httpPort"):
        parse_zoo_cfg("dataDir=/tmp/x\nmetricsProvider.httpPort=70000\n")
