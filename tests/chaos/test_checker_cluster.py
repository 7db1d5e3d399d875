"""The cluster checker catches each handcrafted violation and passes a clean history."""

from __future__ import annotations

from paddock.chaos.checker_cluster import Interval, check, intervals, log_edges, two_leaders
from paddock.chaos.workload_cluster import allowed_final, converged, task_app

S = 1_000_000_000


def op(n, f, app, value, t_inv, t_end, outcome):
    evs = [{"op": n, "f": f, "app": app, "value": value, "type": "invoke", "t": int(t_inv * S)}]
    if t_end is not None:
        evs.append(
            {"op": n, "f": f, "app": app, "value": value, "type": outcome, "t": int(t_end * S)}
        )
    return evs


def sample(t, tasks, agents, apps=None, deployments=0):
    return {
        "type": "sample",
        "t": int(t * S),
        "tasks": [
            {"id": i, "app": task_app(i), "state": "TASK_RUNNING", "host": h} for i, h in tasks
        ],
        "agents": agents,
        "apps": apps if apps is not None else {},
        "deployments": deployments,
    }


A = "/chaos/a4"  # strategy (0.5, 0.0): never more than the target running


def test_task_app_and_allowed_final():
    assert task_app("chaos_a3.1234-5678") == "/chaos/a3"
    h = op(1, "deploy", A, 2, 0, 1, "ok") + op(2, "scale", A, 3, 2, 3, "ok")
    assert allowed_final(h) == {A: {3}}
    h += op(3, "scale", A, 1, 4, None, "info")  # never answered: may have been applied
    assert allowed_final(h) == {A: {1, 3}}
    h += op(4, "scale", A, 4, 5, 6, "fail")  # certainly refused
    assert allowed_final(h) == {A: {1, 3}}
    h += op(5, "scale", A, 0, 7, 8, "ok")  # acknowledged after both
    assert allowed_final(h) == {A: {0}}


def clean():
    h = op(1, "deploy", A, 2, 0, 1, "ok")
    tasks = [("chaos_a4.x", "10.77.0.14"), ("chaos_a4.y", "10.77.0.15")]
    samples = [
        sample(
            t, tasks, {"10.77.0.14:5051": ["chaos_a4.x"], "10.77.0.15:5051": ["chaos_a4.y"]}, {A: 2}
        )
        for t in (2, 3, 4)
    ]
    return h, samples, samples[-1]


def test_clean_history_passes_and_converged():
    h, samples, final = clean()
    assert converged(final, allowed_final(h))
    res = check(h, samples, final, 4.0, [], [])
    assert res.ok, res.anomalies
    assert res.tasks_seen == 2


def test_task_on_two_agents_is_caught():
    h, samples, final = clean()
    samples[1]["agents"]["10.77.0.15:5051"].append("chaos_a4.x")
    kinds = {a.kind for a in check(h, samples, final, 4.0, [], []).anomalies}
    assert kinds == {"task-twice"}


def test_over_capacity_is_caught():
    h, samples, final = clean()
    samples[1]["tasks"].append({"id": "chaos_a4.z", "app": A, "state": "TASK_RUNNING"})
    samples[1]["agents"]["10.77.0.15:5051"].append("chaos_a4.z")
    res = check(h, samples, final, 4.0, [], [])
    assert "over-capacity" in {a.kind for a in res.anomalies}


def test_scale_down_within_grace_is_not_over_capacity():
    h, samples, final = clean()
    h += op(2, "scale", A, 1, 2.5, 2.6, "ok")
    final["agents"]["10.77.0.15:5051"] = []
    res = check(h, samples, final, 4.0, [], [])
    assert res.ok, res.anomalies  # 2 running just after the scale to 1: kills take a moment


def test_lost_task_and_wrong_count_are_caught():
    h, samples, final = clean()
    final = {**final, "agents": {"10.77.0.14:5051": ["chaos_a4.x"], "10.77.0.15:5051": []}}
    kinds = [a.kind for a in check(h, samples, final, 4.0, [], []).anomalies]
    assert sorted(kinds) == ["lost-task", "wrong-count"]


def test_restart_excuses_a_replaced_task():
    h, samples, final = clean()
    h += op(2, "restart", A, None, 3.5, 3.6, "ok")
    final = {
        **final,
        "agents": {"10.77.0.14:5051": ["chaos_a4.x"], "10.77.0.15:5051": ["chaos_a4.new"]},
    }
    assert check(h, samples, final, 4.0, [], []).ok


def test_not_converged_is_an_anomaly():
    h, samples, _final = clean()
    kinds = [a.kind for a in check(h, samples, None, None, [], []).anomalies]
    assert kinds == ["not-converged"]


def test_leadership_intervals_from_logs(tmp_path):
    log = tmp_path / "master.log"
    log.write_text(
        "2026-11-26 02:00:01,500 master:5050 INFO paddock.master.core: elected and recovered: 0\n"
        "2026-11-26 02:00:05,000 master:5050 WARNING paddock.master.core: stopped acting as "
        "leader: lost the registry quorum\n"
        "2026-11-26 02:00:07,000 master:5050 INFO paddock.master.core: registry quorum is back: "
        "acting as leader again\n"
    )
    import datetime as dt

    wall0 = dt.datetime(2026, 11, 26, 2, 0, 0).timestamp()
    edges = log_edges(log, "master", wall0)
    assert edges == [(1.5, "start"), (5.0, "stop"), (7.0, "start")]
    # killed at 9 s; paused 2-3 s: [1.5,2] [3,5] [7,9]
    ivs = intervals(edges, "master", 1, deaths=[9.0], pauses=[(2.0, 3.0)], end=20.0)
    assert [(i.start, i.end) for i in ivs] == [(1.5, 2.0), (3.0, 5.0), (7.0, 9.0)]


def test_two_leaders_is_caught_but_not_handover():
    a = Interval("master", 1, 0.0, 5.0)
    b = Interval("master", 2, 5.0, 9.0)  # takes over as the other stops: fine
    c = Interval("marathon", 3, 8.0, 12.0)
    d = Interval("marathon", 1, 11.5, 15.0)  # half a second of two marathons: not fine
    assert two_leaders([a, b]) == []
    found = two_leaders([a, b, c, d])
    assert len(found) == 1 and "marathons on h3" in found[0].detail


def test_fault_recovery_figures():
    from paddock.chaos.runner_cluster import fault_recovery

    faults = [{"start": 1.0, "end": 3.0}, {"start": 5.0, "end": 8.0}]
    got = fault_recovery(faults, [0.5, 4.0, 9.5], 10.0)
    assert got["after_fault_s"] == [1.0, 1.5]
    assert got["after_fault_max_s"] == 1.5
    assert got["longest_gap_s"] == 5.5


def test_client_stops_using_apps_marathon_does_not_know(tmp_path):
    import io
    import threading

    from paddock.chaos.workload_cluster import Client, ClusterSpec, Recorder

    spec = ClusterSpec(
        marathons=["10.77.0.11:8080"], agents=[], masters=[], seed=1, start_ns=0,
        duration=1, settle=1, out=str(tmp_path / "h.jsonl"),
    )  # fmt: skip
    c = Client(spec, Recorder(io.StringIO(), 0), threading.Event())
    c.apps = ["/chaos/a1", "/chaos/a2"]
    c.acked_apps = {"/chaos/a2"}
    c.last_detail = '404 {"message":"App does not exist"}'
    c._forget_if_missing("/chaos/a1", "fail")  # its deploy's outcome was unknown: forget
    c._forget_if_missing("/chaos/a2", "fail")  # acknowledged: keep (the checker judges)
    assert c.apps == ["/chaos/a2"]
    c.http.close()


def test_slow_kills_after_a_scale_down_are_not_over_capacity():
    h, samples, final = clean()
    h += op(2, "scale", A, 1, 2.5, 2.6, "ok")
    # both tasks (seen before the scale-down) still run 20 s later: kills are slow
    samples.append(
        sample(
            22.0,
            [("chaos_a4.x", "h"), ("chaos_a4.y", "h")],
            {"10.77.0.14:5051": ["chaos_a4.x"], "10.77.0.15:5051": ["chaos_a4.y"]},
        )
    )
    final = samples[-1] | {"agents": {"10.77.0.14:5051": ["chaos_a4.x"], "10.77.0.15:5051": []}}
    kinds = [a.kind for a in check(h, samples, final, 23.0, [], []).anomalies]
    assert "over-capacity" not in kinds


def test_restart_while_a_task_was_staging_excuses_its_replacement():
    # z is seen STAGING at 2 s, a restart is asked at 2.5 s, z is first reported
    # RUNNING only at 9 s (a slow sample), then the restart replaces it
    h, samples, final = clean()
    samples[0]["tasks"].append({"id": "chaos_a4.z", "app": A, "state": "TASK_STAGING"})
    h += op(2, "restart", A, None, 2.5, 3.0, "ok")
    late = sample(
        9.0,
        [("chaos_a4.x", "h"), ("chaos_a4.y", "h"), ("chaos_a4.z", "h")],
        {"10.77.0.14:5051": ["chaos_a4.x"], "10.77.0.15:5051": ["chaos_a4.y"]},
    )
    samples.append(late)
    final = samples[-1] | {"t": int(10 * S)}
    res = check(h, samples, final, 10.0, [], [])
    assert "lost-task" not in [a.kind for a in res.anomalies], res.anomalies


def test_an_edge_logged_by_a_dying_process_opens_no_interval():
    # kill -9 of all hosts recorded at 20.0; the leader's process, not yet reached,
    # logs a reconnect blip (stop, start) at 20.02-20.03 and dies: it led until the
    # kill, not until its next death (a 30-minute run reported two leaders for this).
    edges = [(10.0, "start"), (20.02, "stop"), (20.03, "start")]
    ivs = intervals(edges, "master", 3, [20.0, 50.0], [], 60.0)
    assert [(i.start, i.end) for i in ivs] == [(10.0, 20.0)]


def test_restart_of_a_full_one_instance_app_may_run_two():
    # Found by the 30-minute run of seed 1800: /chaos/a1 has strategy (1.0, 0.5), so
    # minHealthy = ceil(1 * 1.0) = 1 = maxCapacity = floor(1 * 1.5); Marathon's
    # computeRestartStrategy then allows one extra instance or the restart could never
    # start. Two running during the restart is Marathon's behaviour, not an anomaly.
    app = "/chaos/a1"
    h = op(1, "deploy", app, 1, 0, 1, "ok")
    one = sample(2, [("chaos_a1.old", "h")], {"10.77.0.14:5051": ["chaos_a1.old"]}, {app: 1})
    two = sample(
        4,
        [("chaos_a1.old", "h"), ("chaos_a1.new", "h")],
        {"10.77.0.14:5051": ["chaos_a1.old", "chaos_a1.new"]},
        {app: 1},
    )
    final = sample(6, [("chaos_a1.new", "h")], {"10.77.0.14:5051": ["chaos_a1.new"]}, {app: 1})
    restarted = h + op(2, "restart", app, None, 3, 3.1, "ok")
    res = check(restarted, [one, two, final], final, 6.0, [], [])
    assert "over-capacity" not in [a.kind for a in res.anomalies], res.anomalies
    # without a restart, a second task launched is one too many
    res = check(h + op(2, "scale", app, 1, 3, 3.1, "ok"), [one, two, final], final, 6.0, [], [])
    assert "over-capacity" in [a.kind for a in res.anomalies]
    # a refused restart starts nothing either
    refused = h + op(2, "restart", app, None, 3, 3.1, "fail")
    res = check(refused, [one, two, final], final, 6.0, [], [])
    assert "over-capacity" in [a.kind for a in res.anomalies]
