"""paddock's own keeper server as a standalone server or ensemble.

The command-line contract the keeper server must honour (see
docs/compatibility.md):

    paddock keeper --id N --client-port PORT --data-dir DIR
                   [--peers 1=127.0.0.1:P1,2=127.0.0.1:P2,3=127.0.0.1:P3]

run in the foreground, stop cleanly on SIGTERM, keep its state in DIR across
restarts, and answer the ``ruok``/``srvr`` four-letter words (``srvr`` with a
``Mode: leader|follower|standalone`` line). Optional settings travel as
environment variables so an older keeper that does not know them still starts:
``PADDOCK_KEEPER_TICK_MS`` and ``PADDOCK_KEEPER_SUPER_DIGEST`` (``user:base64(sha1)``).
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from paddock.testing.ensemble import HOST, Ensemble, EnsembleError, Member


class KeeperUnavailable(EnsembleError):
    """``paddock keeper`` is not implemented yet (tests skip on this)."""


def keeper_argv() -> list[str]:
    """How to run the ``paddock`` command of this very installation."""
    return [sys.executable, "-m", "paddock.cli.main"]


@functools.cache
def keeper_unavailable_reason() -> str | None:
    """Why ``paddock keeper`` cannot serve yet, or None if its CLI looks complete."""
    try:
        result = subprocess.run(
            [*keeper_argv(), "keeper", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run `paddock keeper --help`: {exc}"
    text = result.stdout + result.stderr
    if "not yet implemented" in text:
        return "`paddock keeper` says it is not yet implemented"
    missing = [opt for opt in ("--client-port", "--data-dir", "--id", "--peers") if opt not in text]
    if result.returncode != 0 or missing:
        return (
            "`paddock keeper` is not implemented yet "
            f"(its --help lacks {', '.join(missing) or 'nothing'}; exit {result.returncode})"
        )
    return None


class KeeperEnsemble(Ensemble):
    """``size`` paddock keeper servers on loopback (size 1 = standalone, no --peers)."""

    kind = "keeper"
    ports_per_member = 2  # client, peer

    def __init__(
        self,
        size: int = 1,
        *,
        tick_ms: int | None = None,
        super_digest: str | None = None,
        extra_args: Sequence[str] = (),
        base_dir: str | Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        reason = keeper_unavailable_reason()
        if reason is not None:
            raise KeeperUnavailable(reason)
        super().__init__(size=size, base_dir=base_dir, ready_timeout=ready_timeout)
        self.tick_ms = tick_ms
        self.super_digest = super_digest
        self.extra_args = list(extra_args)

    def prepare(self, member: Member) -> None:
        (member.directory / "data").mkdir(exist_ok=True)

    def peers_spec(self) -> str:
        return ",".join(f"{m.server_id}={HOST}:{m.peer_ports[0]}" for m in self.members)

    def command(self, member: Member) -> list[str]:
        argv = [
            *keeper_argv(),
            "keeper",
            "--id",
            str(member.server_id),
            "--client-port",
            str(member.client_port),
            "--data-dir",
            str(member.directory / "data"),
        ]
        if self.size > 1:
            argv += ["--peers", self.peers_spec()]
        return argv + self.extra_args

    def environment(self, member: Member) -> dict[str, str]:
        env = super().environment(member)
        if self.tick_ms is not None:
            env["PADDOCK_KEEPER_TICK_MS"] = str(self.tick_ms)
        if self.super_digest is not None:
            env["PADDOCK_KEEPER_SUPER_DIGEST"] = self.super_digest
        return env

    def check_early_exit(self, member: Member, output: str) -> None:
        if "not yet implemented" in output or "No such option" in output:
            raise KeeperUnavailable(f"`paddock keeper` cannot run yet:\n{output}")
