"""Bad input from the master never breaks the agent: malformed events are counted and
ignored, and the agent keeps working afterwards."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddock.agent.daemon import Agent

from .conftest import make_config

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
ids = st.one_of(
    st.none(), st.integers(), st.text(max_size=6), st.fixed_dictionaries({"value": json_values})
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "framework": st.one_of(json_values, st.fixed_dictionaries({"id": ids})),
        "task": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"task_id": ids},
                optional={
                    # Only harmless commands: the fuzzing is about shapes, not about what runs.
                    "command": st.one_of(json_values, st.just({"value": "true"})),
                    "resources": json_values,
                    "kill_policy": json_values,
                },
            ),
        ),
        "framework_id": ids,
        "task_id": ids,
        "uuid": json_values,
        "agent_id": ids,
        "tasks": json_values,
        "kill_policy": json_values,
        "ping_interval_seconds": json_values,
    },
)
event_types = st.sampled_from(
    ["REGISTERED", "RUN_TASK", "KILL_TASK", "ACKNOWLEDGE", "SHUTDOWN_FRAMEWORK", "RECONCILE",
     "PING", "ERROR", "NONSENSE"]
)  # fmt: skip
events = st.one_of(
    json_values,
    st.builds(lambda t, b: {"type": t, t.lower(): b}, event_types, bodies),
    st.builds(lambda t, b: {"type": t, t.lower(): b}, event_types, json_values),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(events, max_size=8))
def test_malformed_events_are_survived(tmp_path_factory, batch):
    async def run() -> None:
        agent = Agent(
            make_config(tmp_path_factory.mktemp("fuzz"), "127.0.0.1:1", cgroups_enabled=False)
        )
        await agent.recover()
        agent.on_registered({"agent_id": {"value": "a1"}})
        sent: list[dict] = []
        agent.send_call = sent.append
        for event in batch:
            assert agent.handle_event(event) in (True, False)
        # Still working: a proper task runs to completion.
        agent.handle_event(
            {
                "type": "RUN_TASK",
                "run_task": {
                    "framework": {"id": {"value": "fw"}},
                    "task": {"task_id": {"value": "ok-task"}, "command": {"value": "true"}},
                },
            }
        )
        task = agent.tasks[("fw", "ok-task")]
        assert task.runner is not None
        await asyncio.wait_for(task.runner, 10)
        assert task.state == "TASK_FINISHED"
        # Only the head went out: the rest waits for acknowledgements.
        assert [c["update"]["status"]["state"] for c in sent if c["type"] == "UPDATE"][-1:] == [
            "TASK_STARTING"
        ]
        await agent.kill_all(timeout=5)

    asyncio.run(run())
