"""The executor-exit race end to end (real master and agent processes): the agent's
calls to the master are held in a loopback TCP relay while the executor's run 1 exits,
so its ``EXITED_EXECUTOR`` reaches the master only after the master launched another
task on the same executor id, for which the agent started run 2.  The master must keep
counting the executor (run 2 runs), and free it when run 2 exits."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from .clients import HOST, AgentProcess, Scheduler, elected, wait_until
from .test_executor_resources_real_agent import _res, _used

pytestmark = pytest.mark.timeout(120)


class HeldRelay:
    """Relays TCP connections to ``target``; while ``hold`` is set, bytes from the
    client side (agent -> master) wait in the relay, the other direction flows."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.released = asyncio.Event()
        self.released.set()
        self.server: asyncio.Server | None = None
        self.pumps: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def hold(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers += [writer, up_writer]
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, held=True)),
            asyncio.create_task(self._pump(up_reader, writer, held=False)),
        ):
            self.pumps.add(task)
            task.add_done_callback(self.pumps.discard)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, held: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if held:
                    await self.released.wait()
                dst.write(data)
                await dst.drain()
        dst.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.pumps):
            task.cancel()
        for writer in self.writers:
            writer.close()


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


async def _until(pred, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_exit_of_run_1_after_a_launch_on_run_2_keeps_run_2_counted(zk, masters, tmp_path):
    m = masters.start(f"zk://{zk.hosts}/exrace", 1, "m1", "--allocation-interval", "0.1s")
    wait_until(lambda: elected([m]), 60, "a leader")
    relay = HeldRelay(int(m.url.rsplit(":", 1)[1]))
    relay_port = await relay.start()
    agent = AgentProcess(f"127.0.0.1:{relay_port}", tmp_path / "agent", "cpus:2;mem:1024")
    masters.cleanups.insert(0, agent.kill)
    agent.start()
    stop, pids = tmp_path / "stop-executor", tmp_path / "executor-pids"
    executor = {
        "executor_id": {"value": "racer"},
        "name": "runs until a file exists, never subscribes",
        "command": {"value": f"echo $$ >> {pids}; while [ ! -e {stop} ]; do sleep 0.05; done"},
        "resources": _res(0.5, 128),
    }

    def task(tid: str, offer: dict) -> dict:
        return {"name": tid, "task_id": {"value": tid}, "agent_id": offer["agent_id"],
                "resources": _res(0.1, 32), "executor": executor}  # fmt: skip

    async def launch(tid: str, offer: dict) -> int:
        ops = [{"type": "LAUNCH", "launch": {"task_infos": [task(tid, offer)]}}]
        return await sched.call(
            "ACCEPT", offer_ids=[offer["id"]], operations=ops, filters={"refuse_seconds": 0}
        )

    sched = Scheduler("executor-race")
    sched.auto_ack = True
    try:
        await sched.subscribe(m.url)
        offer = (await sched.next("OFFERS", timeout=30))["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        assert await launch("t1", offer) == 202
        await _until(lambda: len(_pids(pids)) == 1, 30, "run 1 of the executor")
        assert await _used(m, agent_id) == ((0.6, 160.0), (0.6, 160.0))
        offer = (await sched.next("OFFERS", timeout=30))["offers"]["offers"][0]

        # Run 1 exits while the agent's calls (t1's TASK_FAILED, EXITED_EXECUTOR) are held.
        relay.hold()
        stop.touch()
        (run1,) = _pids(pids)
        await _until(lambda: _gone(run1), 30, "run 1 to exit")
        for _ in range(300):  # the agent reaps it and reports (into the relay)
            if not await _runs_racer(agent):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the agent still lists run 1")
        stop.unlink()
        # The master still counts run 1: t2 is launched on it, paying only for itself;
        # the agent has no run any more and starts run 2 for t2.
        assert await launch("t2", offer) == 202
        assert await _used(m, agent_id) == ((0.7, 192.0), (0.7, 192.0))
        await _until(lambda: len(_pids(pids)) == 2, 30, "run 2 of the executor")

        relay.release()  # run 1's end reaches the master now
        failure = await sched.next("FAILURE", timeout=30)
        assert failure["failure"]["executor_id"] == {"value": "racer"}
        upd = await sched.next("UPDATE", timeout=30)
        assert (upd["update"]["status"]["task_id"], upd["update"]["status"]["state"]) == (
            {"value": "t1"},
            "TASK_FAILED",
        )
        # Run 2 runs t2: its executor is still counted, with t2 (0.5 + 0.1 / 128 + 32).
        # (The master handled the exit as a whole when it sent FAILURE.)
        assert await _runs_racer(agent)
        assert await _used(m, agent_id) == ((0.6, 160.0), (0.6, 160.0))

        stop.touch()  # run 2 exits: t2 fails, the executor's resources come back
        upd = await sched.next("UPDATE", timeout=30)
        assert upd["update"]["status"]["task_id"] == {"value": "t2"}
        await sched.next("FAILURE", timeout=30)
        await _until_used_zero(m, agent_id)
    finally:
        await sched.close()
        await relay.stop()
        print(agent.log_tail())


async def _runs_racer(agent: AgentProcess) -> bool:
    """The agent's /state lists a running executor "racer"."""
    async with httpx.AsyncClient() as c:
        state = (await c.get(f"http://{HOST}:{agent.port}/state")).json()
    return any(ex["id"] == "racer" for fw in state["frameworks"] for ex in fw["executors"])


async def _until_used_zero(m, agent_id: str) -> None:
    for _ in range(100):
        if await _used(m, agent_id) == ((0.0, 0.0), (0.0, 0.0)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still used: {await _used(m, agent_id)}")
