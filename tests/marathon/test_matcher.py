"""Offer matching: resources, ports, roles, constraints and the reject summary."""

from __future__ import annotations

import random

import pytest

from paddock.marathon.models import AppDefinition
from paddock.marathon.scheduler.matcher import (
    Match,
    Offer,
    OfferSummary,
    Placement,
    Rejection,
    constraint_met,
    consume,
    match_offer,
)


def offer(
    host: str = "h1",
    cpus: float = 4,
    mem: float = 1024,
    disk: float = 100,
    ports: tuple[tuple[int, int], ...] = ((31000, 31009),),
    attrs: dict[str, str] | None = None,
    role: str = "*",
) -> Offer:
    raw = {
        "id": {"value": f"o-{host}"},
        "agent_id": {"value": f"a-{host}"},
        "hostname": host,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": role},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": role},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": disk}, "role": role},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": b, "end": e} for b, e in ports]},
                "role": role,
            },
        ],
        "attributes": [
            {"name": k, "type": "TEXT", "text": {"value": v}} for k, v in (attrs or {}).items()
        ],
    }
    return Offer.from_json(raw)


def app(**kw) -> AppDefinition:
    base = {"id": "/web", "cmd": "sleep 100", "cpus": 1, "mem": 128, "instances": 3}
    base.update(kw)
    return AppDefinition.model_validate(base)


RNG = random.Random(1)


def test_resources_fit_and_are_consumed():
    o = offer(cpus=2.5, mem=300)
    a = app(cpus=1, mem=128)
    first = match_offer(a, o, [], RNG)
    assert isinstance(first, Match)
    consume(o, first)
    second = match_offer(a, o, [], RNG)
    assert isinstance(second, Match)
    consume(o, second)
    third = match_offer(a, o, [], RNG)
    assert isinstance(third, Rejection)
    assert third.reasons == ["InsufficientCpus", "InsufficientMemory"]


@pytest.mark.parametrize(
    "kw,reason",
    [
        ({"cpus": 8}, "InsufficientCpus"),
        ({"mem": 4096}, "InsufficientMemory"),
        ({"disk": 1000}, "InsufficientDisk"),
        ({"portDefinitions": [{"port": 0}] * 11}, "InsufficientPorts"),
        ({"portDefinitions": [{"port": 80}], "requirePorts": True}, "InsufficientPorts"),
    ],
)
def test_each_shortage_has_its_reason(kw, reason):
    result = match_offer(app(**kw), offer(), [], RNG)
    assert isinstance(result, Rejection)
    assert result.reasons == [reason]


def test_dynamic_ports_are_distinct_and_offered():
    a = app(portDefinitions=[{"port": 0}, {"port": 0}, {"port": 0}])
    o = offer(ports=((31000, 31001), (31005, 31005)))
    m = match_offer(a, o, [], random.Random(7))
    assert isinstance(m, Match)
    assert sorted(m.ports) == [31000, 31001, 31005]
    consume(o, m)
    assert o.ports == []


def test_require_ports_pins_exact_host_ports():
    a = app(portDefinitions=[{"port": 31003}, {"port": 31007}], requirePorts=True)
    o = offer()
    m = match_offer(a, o, [], RNG)
    assert isinstance(m, Match) and m.ports == [31003, 31007]
    consume(o, m)
    assert o.ports == [(31000, 31002), (31004, 31006), (31008, 31009)]
    again = match_offer(a, o, [], RNG)
    assert isinstance(again, Rejection) and again.reasons == ["InsufficientPorts"]


def test_bridge_port_mappings_take_host_ports():
    a = app(
        container={
            "type": "DOCKER",
            "docker": {"image": "nginx"},
            "portMappings": [
                {"containerPort": 80, "hostPort": 0},
                {"containerPort": 443, "hostPort": 31008},
            ],
        },
        networks=[{"mode": "container/bridge"}],
    )
    m = match_offer(a, offer(), [], RNG)
    assert isinstance(m, Match)
    assert len(m.ports) == 2 and m.ports[1] == 31008 and m.ports[0] != 31008


def test_roles():
    a = app(acceptedResourceRoles=["prod"])
    assert match_offer(a, offer(role="*"), [], RNG).reasons == ["UnfulfilledRole"]
    assert isinstance(match_offer(a, offer(role="prod"), [], RNG), Match)


def P(host, **attrs):
    return Placement(host, attrs)


def test_unique_hostname():
    c = ["hostname", "UNIQUE"]
    assert constraint_met(c, offer("h1"), [P("h2")])
    assert not constraint_met(c, offer("h1"), [P("h1")])


def test_cluster_with_value_and_pinned_to_first():
    assert constraint_met(["nfs", "CLUSTER", "true"], offer(attrs={"nfs": "true"}), [])
    assert not constraint_met(["nfs", "CLUSTER", "true"], offer(attrs={"nfs": "false"}), [])
    assert not constraint_met(["nfs", "CLUSTER", "true"], offer(attrs={}), [])
    # Without a value: the first instance's value pins the rest.
    assert constraint_met(["rack", "CLUSTER"], offer(attrs={"rack": "a"}), [])
    assert constraint_met(["rack", "CLUSTER"], offer(attrs={"rack": "a"}), [P("x", rack="a")])
    assert not constraint_met(["rack", "CLUSTER"], offer(attrs={"rack": "b"}), [P("x", rack="a")])


def test_group_by_spreads_evenly():
    c = ["rack", "GROUP_BY", "2"]
    placed = [P("x", rack="a")]
    assert constraint_met(c, offer(attrs={"rack": "b"}), placed)  # new value
    assert not constraint_met(c, offer(attrs={"rack": "a"}), placed)  # fewer groups than 2
    placed = [P("x", rack="a"), P("y", rack="b"), P("z", rack="a")]
    assert constraint_met(c, offer(attrs={"rack": "b"}), placed)
    assert not constraint_met(c, offer(attrs={"rack": "a"}), placed)


def test_like_unlike_regex_full_match():
    assert constraint_met(["rack", "LIKE", "r[12]"], offer(attrs={"rack": "r1"}), [])
    assert not constraint_met(["rack", "LIKE", "r[12]"], offer(attrs={"rack": "r12"}), [])
    assert not constraint_met(["rack", "LIKE", "r1"], offer(attrs={}), [])
    assert not constraint_met(["hostname", "UNLIKE", "h[0-9]"], offer("h1"), [])
    assert constraint_met(["hostname", "UNLIKE", "h[0-9]"], offer("db"), [])
    assert constraint_met(["rack", "UNLIKE", "r1"], offer(attrs={}), [])  # missing is fine


def test_max_per_and_is():
    c = ["rack", "MAX_PER", "2"]
    assert constraint_met(c, offer(attrs={"rack": "a"}), [P("x", rack="a")])
    assert not constraint_met(c, offer(attrs={"rack": "a"}), [P("x", rack="a"), P("y", rack="a")])
    assert constraint_met(["gen", "IS", "3"], offer(attrs={"gen": "3.0004"}), [])
    assert not constraint_met(["gen", "IS", "3"], offer(attrs={"gen": "3.01"}), [])
    assert constraint_met(["os", "IS", "linux"], offer(attrs={"os": "linux"}), [])


def test_constraint_rejection_and_summary():
    a = app(constraints=[["hostname", "UNIQUE"]])
    placed = [P("h1")]
    summary = OfferSummary()
    for o in (offer("h1"), offer("h2", cpus=0.5)):
        summary.record(o, match_offer(a, o, placed, RNG), "2020-01-01T00:00:00.000Z")
    ok = offer("h3")
    summary.record(ok, match_offer(a, ok, placed, RNG), "2020-01-01T00:00:01.000Z")
    js = summary.to_json()
    assert js["processedOffersCount"] == 3
    assert js["unusedOffersCount"] == 2
    assert js["lastUsedOfferAt"] == "2020-01-01T00:00:01.000Z"
    rows = {r["reason"]: r for r in js["rejectSummaryLastOffers"]}
    assert rows["UnfulfilledConstraint"]["declined"] == 1
    assert rows["InsufficientCpus"]["declined"] == 1
    assert rows["UnfulfilledRole"]["processed"] == 3
    assert len(summary.last_unused_offers) == 2
