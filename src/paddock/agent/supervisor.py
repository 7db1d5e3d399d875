"""Per-task supervisors that outlive the agent, forked by a small "zygote".

Why: a process task must survive a crash (kill -9) of its agent, and the agent that
starts next must still learn how the task ended.  So the task's parent is not the
agent: each task runs under its own **supervisor** process, in its own session, which
waits for the command and writes the outcome (exit code or signal, whether the memory
cgroup's OOM killer acted, peak memory) to a file, atomically (write a temp file, fsync,
rename), then exits.  The agent watches the supervisor through a pidfd and then reads
that file; an agent restarted in between does the same after checking the supervisor's
pid *and* start time (``recovery``), and a task that ended while no agent ran is found
through its file.

Why a zygote: a fresh interpreter per task costs ~19 ms of CPU (``python -I -S``), far
too much for hundreds of launches a second on two cores.  The agent starts this file
once as a script (``python -I -S supervisor.py FD``: stdlib only, no site-packages) and
sends it one JSON request per task over a ``SOCK_SEQPACKET`` socketpair.  For each
request the zygote forks the supervisor, which calls ``setsid`` (no terminal, no signal
meant for the agent's process group reaches it) and starts the command with
``posix_spawn`` (a vfork: no second copy of the interpreter) in a session and process
group of its own, inside the task's cgroups, with the sandbox as cwd, the ``stdout`` /
``stderr`` files and the task's environment; then it answers the agent on the inherited
socket (its pid and start time, the task's pid and start time, or the launch error).
The zygote ignores SIGCHLD, so the kernel reaps supervisors that end while it lives; when
it dies (the agent's end of the socket closed, or killed) its supervisors are reparented
to init and go on.  The agent starts another zygote when it needs one.  (One fork, not
the classic double fork: the second fork of a Python process cost ~1.5 ms of CPU per
launch, and nothing needs the supervisor to be init's child from the start.)

Launch cost, measured on the 2-core CI machine (``tests/agent/test_supervisor_bench.py``,
``pytest -m slow -s``; 300 launches of ``sh -c true``, 20 at a time, CPU of the whole
process tree from a ``cpuacct`` cgroup, under a load average of ~25 from other work):
spawning the command directly from the asyncio agent (``create_subprocess_exec``, as
before supervisors) costs ~1.3 ms of CPU per launch, ~0.45 ms of it in the agent's
event loop; through the zygote and a supervisor ~3.8 ms, ~0.27 ms of it in the agent
(a fresh ``python -I -S`` per task would add ~19 ms).  The extra CPU is mostly the
kernel's copy-on-write page faults of the forked interpreter (~450 per supervisor);
the agent's own loop, the bottleneck of a launch burst, does less than before.

Killing stays the agent's job (SIGTERM to the task's process group, grace period,
SIGKILL of the group and of whatever is left in its cgroups): it only needs the task's
pid, which is checkpointed, so it works the same after a restart.  When the command
exits the supervisor SIGKILLs what it left in its process group and cgroups, so a
finished task leaves nothing behind even while no agent runs.

The outcome file (``read_outcome`` never raises; a missing or torn file is a clear
``problem``)::

    {"version": 1, "task_pid": 123, "returncode": -9, "exit_code": null, "signal": 9,
     "oom_killed": true, "memory": {"limit_bytes": ..., "max_usage_bytes": ...,
     "stat": {...}}, "ended_at": 1700000000.0}
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OUTCOME_VERSION",
    "SupervisorOutcome",
    "memory_report",
    "proc_start_ticks",
    "read_outcome",
    "write_outcome",
]

OUTCOME_VERSION = 1
MAX_MESSAGE = 1 << 20
#: memory.stat keys quoted in a memory-limit message (v1 and v2 names).
STAT_KEYS = (
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "swap",
    "total_cache",
    "total_rss",
    "anon",
    "file",
    "kernel",
)


def proc_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks): tells a recorded pid
    from a reused one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat.rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- memory cgroup facts


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _read_keyed(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition(" ")
                with contextlib.suppress(ValueError):
                    out[key] = int(value)
    except OSError:
        pass
    return out


def memory_report(memory_cgroup: str | None) -> dict[str, Any]:
    """What the memory cgroup says about the task: ``oom_killed``, ``limit_bytes``,
    ``max_usage_bytes`` and a few ``stat`` counters.

    cgroup v1: ``memory.oom_control``'s ``oom_kill`` counter (kernel >= 4.13; before it,
    ``memory.failcnt`` > 0 with the peak at the limit), ``memory.max_usage_in_bytes``,
    ``memory.limit_in_bytes``.  cgroup v2 (not exercised by the tests here, which run on
    v1): ``memory.events``'s ``oom_kill``, ``memory.peak``, ``memory.max``.
    """
    if not memory_cgroup:
        return {"oom_killed": False}
    join = os.path.join
    events = join(memory_cgroup, "memory.events")
    if os.path.exists(events):  # cgroup v2
        limit = _read_int(join(memory_cgroup, "memory.max"))
        peak = _read_int(join(memory_cgroup, "memory.peak"))
        oom = _read_keyed(events).get("oom_kill", 0) > 0
    else:
        limit = _read_int(join(memory_cgroup, "memory.limit_in_bytes"))
        peak = _read_int(join(memory_cgroup, "memory.max_usage_in_bytes"))
        control = _read_keyed(join(memory_cgroup, "memory.oom_control"))
        if "oom_kill" in control:
            oom = control["oom_kill"] > 0
        else:
            failcnt = _read_int(join(memory_cgroup, "memory.failcnt")) or 0
            oom = failcnt > 0 and limit is not None and peak is not None and peak >= limit
    stat = _read_keyed(join(memory_cgroup, "memory.stat"))
    return {
        "oom_killed": oom,
        "limit_bytes": limit,
        "max_usage_bytes": peak,
        "stat": {k: stat[k] for k in STAT_KEYS if k in stat},
    }


# ---------------------------------------------------------------- the outcome file


def write_outcome(path: str, outcome: dict[str, Any]) -> None:
    """Atomically: a temp file, fsync, rename (a reader sees all of it or nothing)."""
    tmp = f"{path}.tmp"
    data = json.dumps(outcome, separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


@dataclass
class SupervisorOutcome:
    """How the supervisor saw the task end; ``problem`` says why it is unknown."""

    returncode: int | None = None
    oom_killed: bool = False
    memory: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


def read_outcome(path: str) -> SupervisorOutcome:
    """The outcome file's content; never raises (missing/torn/odd: ``problem`` set)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MESSAGE)
    except FileNotFoundError:
        return SupervisorOutcome(problem="its supervisor recorded no outcome")
    except OSError as exc:
        return SupervisorOutcome(problem=f"its outcome file is unreadable ({exc.strerror})")
    try:
        data = json.loads(raw)
    except ValueError:
        return SupervisorOutcome(problem="its outcome file is torn or not JSON")
    if not isinstance(data, dict) or data.get("version") != OUTCOME_VERSION:
        return SupervisorOutcome(problem="its outcome file has an unknown format")
    rc = data.get("returncode")
    if not isinstance(rc, int) or isinstance(rc, bool):
        return SupervisorOutcome(problem="its outcome file has no exit status")
    memory = data.get("memory")
    return SupervisorOutcome(
        returncode=rc,
        oom_killed=data.get("oom_killed") is True,
        memory=memory if isinstance(memory, dict) else {},
    )


# ---------------------------------------------------------------- the supervisor


def _resolve(prog: str, env: dict[str, str]) -> str:
    """``execvp``'s search, with the *task's* PATH (``posix_spawnp`` would use ours)."""
    if "/" in prog:
        return prog
    for d in (env.get("PATH") or os.defpath).split(os.pathsep):
        path = os.path.join(d or ".", prog)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(2, "No such file or directory", prog)


#: Signals the agent's processes ignore or handle, set back to default for the task.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGCHLD)


def _spawn_task(req: dict[str, Any]) -> int:
    """Start the task's command; its pid.  ``posix_spawn`` (a vfork, no copy of this
    interpreter) in its own session, with the sandbox as cwd, the output files, default
    signal dispositions and the task's environment.  It must be inside its cgroups
    before it runs anything (or what it forks escapes), so we join them first and the
    child inherits them; then we leave again, so that killing what is in the task's
    cgroups never kills its supervisor."""
    env = req["env"]
    argv = req["argv"]
    path = _resolve(req.get("executable") or argv[0], env)
    os.chdir(req["cwd"])
    procs_files = req.get("cgroup_procs") or []
    me = str(os.getpid())
    back = req.get("cgroup_home") or [] if procs_files else []
    for procs in procs_files:
        with contextlib.suppress(OSError), open(procs, "w") as f:
            f.write(me)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    try:
        user = req.get("user")
        if isinstance(user, dict):
            return _spawn_as_user(path, argv, env, req, user)
        return os.posix_spawn(
            path,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, req["stdout"], flags, 0o644),
                (os.POSIX_SPAWN_OPEN, 2, req["stderr"], flags, 0o644),
            ],
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
    finally:
        for procs in back:
            with contextlib.suppress(OSError), open(procs, "w") as f:
                f.write(me)


def _spawn_as_user(
    path: str, argv: list[str], env: dict[str, str], req: dict[str, Any], user: dict[str, Any]
) -> int:
    """Like the ``posix_spawn`` above, but the child drops to ``user`` (supplementary
    groups, gid, then uid) before it execs: ``posix_spawn`` cannot change user, so this
    forks (only tasks that name a user pay for it).  An exec or setuid failure comes back
    through a close-on-exec pipe as an OSError, as ``posix_spawn`` reports it."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe steps, then exec or _exit
        errno = 0
        try:
            os.close(r)
            os.setsid()
            for sig in _DEFAULT_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            for target, name, mode in (
                (0, os.devnull, os.O_RDONLY),
                (1, req["stdout"], flags),
                (2, req["stderr"], flags),
            ):
                fd = os.open(name, mode, 0o644)
                if fd != target:
                    os.dup2(fd, target)
                    os.close(fd)
            os.setgroups([int(g) for g in user.get("groups") or [user["gid"]]])
            os.setgid(int(user["gid"]))
            os.setuid(int(user["uid"]))
            os.execve(path, argv, env)
        except OSError as exc:
            errno = exc.errno or 1
        finally:
            with contextlib.suppress(OSError):
                os.write(w, str(errno or 1).encode())
            os._exit(127)
    os.close(w)
    try:
        data = os.read(r, 32)
    finally:
        os.close(r)
    if data:
        os.waitpid(pid, 0)
        code = int(data)
        raise OSError(code, os.strerror(code))
    return pid


def _kill_cgroup(procs_files: list[str]) -> None:
    for procs in procs_files:
        try:
            with open(procs) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _send(sock: socket.socket, msg: dict[str, Any]) -> bool:
    try:
        sock.send(json.dumps(msg).encode())
        return True
    except OSError:
        return False


def run_supervisor(sock: socket.socket, req: dict[str, Any]) -> int:
    """Spawn the task, answer the agent, wait, write the outcome; the exit status."""
    rid = req.get("id")
    errors_to = str(req.get("stderr") or os.devnull)
    with contextlib.suppress(OSError):  # own diagnostics go to the task's stderr file
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        err = os.open(errors_to, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(err, 2)
        os.close(err)
    try:
        pid = _spawn_task(req)
    except OSError as exc:
        prog = req.get("executable") or req["argv"][0]
        _send(sock, {"id": rid, "error": f"Failed to launch {prog!r}: {exc.strerror}"})
        return 0
    me = os.getpid()
    ok = _send(
        sock,
        {
            "id": rid,
            "supervisor_pid": me,
            "supervisor_ticks": proc_start_ticks(me),
            "task_pid": pid,
            "task_ticks": proc_start_ticks(pid),
        },
    )
    sock.close()
    if not ok:  # the agent is gone before it learnt of the task: nobody would own it
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return 1
    _, status = os.waitpid(pid, 0)
    returncode = os.waitstatus_to_exitcode(status)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)  # what it left in its process group
    memory = memory_report(req.get("memory_cgroup"))
    _kill_cgroup(req.get("cgroup_procs") or [])
    oom = bool(memory.pop("oom_killed", False))
    outcome = {
        "version": OUTCOME_VERSION,
        "task_pid": pid,
        "returncode": returncode,
        "exit_code": returncode if returncode >= 0 else None,
        "signal": -returncode if returncode < 0 else None,
        "oom_killed": oom,
        "memory": memory,
        "ended_at": time.time(),
    }
    try:
        write_outcome(req["outcome"], outcome)
    except OSError as exc:
        print(f"paddock supervisor: cannot write {req['outcome']}: {exc}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- the zygote


def serve_zygote(fd: int) -> None:
    """Fork a supervisor per request until the agent's end of the socket closes."""
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the agent
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    gc.freeze()  # forked children then share the interpreter's pages longer
    while True:
        try:
            data = sock.recv(MAX_MESSAGE)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data:
            return  # the agent closed its end (or died)
        try:
            req = json.loads(data)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            _send(sock, {"id": None, "error": f"bad request: {exc}"})
            continue
        if os.fork() == 0:
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setsid()
                code = run_supervisor(sock, req)
            except BaseException as exc:
                with contextlib.suppress(BaseException):
                    _send(sock, {"id": req.get("id"), "error": f"supervisor failed: {exc!r}"})
            finally:
                os._exit(code)


if __name__ == "__main__":
    serve_zygote(int(sys.argv[1]))
