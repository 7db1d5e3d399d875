"""marathon-python 0.13.0 (the real PyPI client) against paddock's Marathon API.

One uvicorn server on loopback serves the API over real Apache ZooKeeper, with the
Mesos-less InstantCore standing in for the scheduler (deployments complete at once,
tasks are records). The client's models reject fields Marathon does not send, so every
call here also checks that responses carry Marathon's field names and no others.
"""

from __future__ import annotations

import collections
import collections.abc
import queue
import random
import threading
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

marathon = pytest.importorskip("marathon")

# marathon-python 0.13.0 still uses collections.Iterable (removed in Python 3.10) when it
# encodes constraints; give it the alias so the client itself works on Python 3.11.
if not hasattr(collections, "Iterable"):
    collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon.exceptions import ConflictError, MarathonHttpError, NotFoundError  # noqa: E402
from marathon.models import (  # noqa: E402
    MarathonApp,
    MarathonConstraint,
    MarathonDeployment,
    MarathonGroup,
    MarathonHealthCheck,
    MarathonInfo,
    MarathonQueueItem,
    MarathonTask,
)
from marathon.models.container import MarathonContainer, MarathonDockerContainer  # noqa: E402
from marathon.models.events import (  # noqa: E402
    MarathonApiPostEvent,
    MarathonDeploymentInfo,
    MarathonDeploymentSuccess,
    MarathonStatusUpdateEvent,
)

from marathon import MarathonClient  # noqa: E402
from paddock.marathon.api import ApiSettings, create_api, instant_service  # noqa: E402
from paddock.marathon.live_server import ServerThread  # noqa: E402
from paddock.marathon.models import TaskFailure  # noqa: E402
from paddock.marathon.scheduler_iface import InstantCore, QueueEntry  # noqa: E402
from paddock.testing import zk_ensemble, zookeeper_unavailable_reason  # noqa: E402


@pytest.fixture(scope="module")
def marathon_server() -> Iterator[tuple[str, InstantCore]]:
    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(f"zookeeper: {reason}")
    ensemble = zk_ensemble("zookeeper", 1)
    zk = KazooClient(hosts=ensemble.hosts, timeout=10)
    try:
        zk.start(timeout=20)
        server = ServerThread(None)  # placeholder to reserve the port first
        service, core = instant_service(
            zk, "/marathon-compat", advertised=server.address, rng=random.Random(3)
        )
        settings = ApiSettings(http_port=server.port, zk=f"zk://{ensemble.hosts}/marathon-compat")
        server = ServerThread(
            create_api(service, settings, sse_keepalive=0.5),
            port=server.port,
            before_stop=service.bus.close,
        )
        with server:
            yield server.url, core
    finally:
        zk.stop()
        zk.close()
        ensemble.stop()


@pytest.fixture
def client(marathon_server) -> MarathonClient:
    url, _ = marathon_server
    c = MarathonClient([url], timeout=10)
    yield c
    for app in c.list_apps():
        c.delete_app(app.id, force=True)
    for group in c.list_groups():
        c.delete_group(group.id, force=True)


def test_apps_create_list_get_update_scale_restart_delete(client):
    seed = MarathonApp(
        cpus=1,
        mem=1024,
        instances=3,
        container=MarathonContainer(
            type="DOCKER",
            docker=MarathonDockerContainer(image="docker.ocf.berkeley.edu/ocfweb-web:1"),
        ),
        health_checks=[MarathonHealthCheck(protocol="HTTP", path="/", grace_period_seconds=30)],
        constraints=[
            MarathonConstraint("hostname", "UNIQUE"),
            MarathonConstraint("nfs", "CLUSTER", "true"),
        ],
    )
    created = client.create_app("/ocfweb/web", seed)
    assert isinstance(created, MarathonApp) and created.id == "/ocfweb/web"
    assert created.health_checks[0].interval_seconds == 60
    assert [c.operator for c in created.constraints] == ["UNIQUE", "CLUSTER"]
    with pytest.raises(ConflictError):
        client.create_app("/ocfweb/web", seed)

    client.create_app("/tools/cron", MarathonApp(cmd="run-cron", labels={"owner": "ops"}))
    assert [a.id for a in client.list_apps()] == ["/ocfweb/web", "/tools/cron"]
    assert [a.id for a in client.list_apps(cmd="cron")] == ["/tools/cron"]
    assert [a.id for a in client.list_apps(label="owner==ops")] == ["/tools/cron"]
    listed = client.list_apps(embed_tasks=True, embed_counts=True, embed_last_task_failure=True)
    web = next(a for a in listed if a.id == "/ocfweb/web")
    assert len(web.tasks) == 3 and web.tasks_running == 3 and web.tasks_healthy == 3

    app = client.get_app("/ocfweb/web")
    assert app.instances == 3 and all(isinstance(t, MarathonTask) for t in app.tasks)
    assert app.container.docker.image.endswith("ocfweb-web:1")
    first_version = app.version

    result = client.scale_app("/ocfweb/web", instances=5)
    assert set(result) == {"deploymentId", "version"}
    assert client.get_app("/ocfweb/web").instances == 5
    client.scale_app("/ocfweb/web", delta=-1)
    assert client.get_app("/ocfweb/web").instances == 4

    app = client.get_app("/ocfweb/web")
    app.container.docker.image = "docker.ocf.berkeley.edu/ocfweb-web:2"
    client.update_app("/ocfweb/web", app)
    updated = client.get_app("/ocfweb/web")
    assert updated.container.docker.image.endswith(":2") and updated.instances == 4
    old_ids = {t.id for t in updated.tasks}
    client.restart_app("/ocfweb/web")
    assert not old_ids & {t.id for t in client.get_app("/ocfweb/web").tasks}

    versions = client.list_versions("/ocfweb/web")
    assert versions[-1] == first_version and len(versions) >= 4
    assert client.get_version("/ocfweb/web", first_version).instances == 3
    client.rollback_app("/ocfweb/web", first_version)
    rolled = client.get_app("/ocfweb/web")
    assert rolled.instances == 3 and rolled.container.docker.image.endswith(":1")

    client.delete_app("/tools/cron")
    with pytest.raises(NotFoundError):
        client.get_app("/tools/cron")
    with pytest.raises(MarathonHttpError) as info:
        client.create_app("/bad", MarathonApp(cmd="x", cpus=0.0001, mem=-1))
    assert info.value.status_code == 422
    assert {d["path"] for d in info.value.error_details} == {"/cpus", "/mem"}


def test_last_task_failure_and_embeds(client, marathon_server):
    _, core = marathon_server
    client.create_app("/flaky", MarathonApp(cmd="exit 1"))
    [task] = client.list_tasks("/flaky")
    core.store.set_task_failure(
        TaskFailure(
            app_id="/flaky",
            task_id=task.id,
            host=task.host,
            message="Command exited with status 1",
            state="TASK_FAILED",
            slave_id=task.slave_id,
            timestamp="2020-01-01T00:00:01.000Z",
            version=task.version,
        )
    )
    app = client.get_app("/flaky")
    assert app.last_task_failure.state == "TASK_FAILED"
    assert app.last_task_failure.timestamp.year == 2020
    [listed] = client.list_apps(
        app_id="/flaky",
        embed_last_task_failure=True,
        embed_readiness=True,
        embed_deployments=True,
        embed_task_stats=True,
    )
    assert listed.last_task_failure.task_id == task.id


def test_tasks_list_and_kill(client):
    client.create_app("/w", MarathonApp(cmd="serve", instances=4))
    tasks = client.list_tasks("/w")
    assert len(tasks) == 4 and all(t.app_id == "/w" for t in tasks)
    assert len(client.list_tasks()) == 4

    killed = client.kill_task("/w", tasks[0].id)
    assert isinstance(killed, MarathonTask) and killed.id == tasks[0].id
    assert len(client.list_tasks("/w")) == 4  # replaced: instances unchanged

    client.kill_task("/w", tasks[1].id, scale=True)
    assert client.get_app("/w").instances == 3
    remaining = client.list_tasks("/w")
    assert client.kill_given_tasks([remaining[0].id], scale=True) is True
    assert client.get_app("/w").instances == 2

    killed = client.kill_tasks("/w")
    assert len(killed) == 2 and len(client.list_tasks("/w")) == 2  # replaced again
    client.kill_tasks("/w", scale=True)
    assert client.get_app("/w").instances == 0 and client.list_tasks("/w") == []
    endpoints = client.list_endpoints()
    assert endpoints == []


def test_groups(client):
    group = MarathonGroup(
        id="/shop",
        apps=[MarathonApp(id="/shop/web", cmd="web", instances=2, dependencies=["/shop/db"])],
        groups=[MarathonGroup(id="/shop/db", apps=[MarathonApp(id="/shop/db/pg", cmd="postgres")])],
    )
    result = client.create_group(group)
    assert set(result) == {"deploymentId", "version"}
    groups = client.list_groups()
    assert [g.id for g in groups] == ["/shop"]
    shop = client.get_group("/shop")
    assert [a.id for a in shop.apps] == ["/shop/web"]
    assert shop.groups[0].apps[0].id == "/shop/db/pg"

    client.scale_group("/shop", 2)
    assert client.get_app("/shop/web").instances == 4
    shop = client.get_group("/shop")
    shop.apps[0].instances = 1
    client.update_group("/shop", shop)
    assert client.get_app("/shop/web").instances == 1

    client.delete_group("/shop")
    with pytest.raises(NotFoundError):
        client.get_group("/shop")


def test_deployments_lock_and_cancel(client, marathon_server):
    _, core = marathon_server
    core.auto_complete = False
    try:
        client.create_app("/slow", MarathonApp(cmd="x", instances=2))
        [dep] = client.list_deployments()
        assert isinstance(dep, MarathonDeployment) and dep.affected_apps == ["/slow"]
        assert dep.total_steps == 2 and dep.current_actions
        with pytest.raises(ConflictError):
            client.scale_app("/slow", instances=3)
        forced = client.scale_app("/slow", instances=3, force=True)
        assert [d.id for d in client.list_deployments()] == [forced["deploymentId"]]
        rollback = client.delete_deployment(forced["deploymentId"])
        assert set(rollback) == {"deploymentId", "version"}
        assert client.delete_deployment(rollback["deploymentId"], force=True) == {}
        assert client.list_deployments() == []
    finally:
        core.auto_complete = True
        for plan_id in core.pending():
            core.complete(plan_id)


def test_queue_info_leader_ping_metrics(client, marathon_server):
    url, core = marathon_server
    client.create_app("/waiting", MarathonApp(cmd="x"))
    core.queue_entries = [
        QueueEntry(
            "/waiting",
            1,
            "2020-01-01T00:00:00.000Z",
            12.0,
            False,
            {"processedOffersCount": 2, "unusedOffersCount": 2, "rejectSummaryLastOffers": []},
        )
    ]
    try:
        [item] = client.list_queue()
        assert isinstance(item, MarathonQueueItem) and item.app.id == "/waiting"
        assert item.delay.time_left_seconds == 12.0 and item.count == 1
        assert client.list_queue(embed_last_unused_offers=True)[0].last_unused_offers == []
        client.reset_delay("/waiting")
        assert client.list_queue()[0].delay.time_left_seconds == 0
    finally:
        core.queue_entries = []

    info = client.get_info()
    assert isinstance(info, MarathonInfo) and info.elected is True
    assert info.leader == url.removeprefix("http://")
    assert info.zookeeper_config.zk_max_versions == 50
    assert client.get_leader() == {"leader": url.removeprefix("http://")}
    assert client.delete_leader() == {"message": "Leadership abdicated"}
    assert client.ping() == b"pong"
    assert client.get_metrics()["gauges"]["marathon.apps.active.gauge"]["value"] == 1


def test_event_stream(client, marathon_server):
    url, _ = marathon_server
    events: queue.Queue[object] = queue.Queue()
    stream_client = MarathonClient([url], timeout=10)
    wanted = ["api_post_event", "deployment_info", "deployment_success", "status_update_event"]
    attached = threading.Event()

    def consume() -> None:
        try:
            for event in stream_client.event_stream(event_types=wanted):
                events.put(event)
        except Exception as exc:  # the server stopping ends the stream
            events.put(exc)

    original = stream_client._do_sse_request

    def sse_request(path, params=None):
        lines = original(path, params)
        attached.set()
        return lines

    stream_client._do_sse_request = sse_request
    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert attached.wait(10)
    # Give the subscription a moment to register before triggering events; events
    # published before it would be missed. Poll the gauge instead of sleeping blindly.
    for _ in range(100):
        if client.get_metrics()["gauges"]["marathon.http.event-streams.active.gauge"]["value"] >= 1:
            break
        threading.Event().wait(0.05)
    client.create_app("/evented", MarathonApp(cmd="x", instances=1))
    seen = []
    while not any(isinstance(e, MarathonDeploymentSuccess) for e in seen):
        event = events.get(timeout=10)
        assert not isinstance(event, Exception), event
        seen.append(event)
    kinds = [type(e) for e in seen]
    assert MarathonApiPostEvent in kinds and MarathonDeploymentInfo in kinds
    assert MarathonStatusUpdateEvent in kinds
    post = next(e for e in seen if isinstance(e, MarathonApiPostEvent))
    assert post.app_definition["id"] == "/evented" and post.uri == "/v2/apps"
    info = next(e for e in seen if isinstance(e, MarathonDeploymentInfo))
    assert info.plan.target.apps[0]["id"] == "/evented"
    update = next(e for e in seen if isinstance(e, MarathonStatusUpdateEvent))
    assert update.task_status == "TASK_RUNNING" and update.app_id == "/evented"
