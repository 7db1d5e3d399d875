"""Mesos resource grammar, JSON form and arithmetic (facts: apache/mesos values.cpp,
resources.cpp, attributes.cpp, docs/attributes-resources.md)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddock.master.attributes import (
    Attribute,
    attributes_from_json,
    attributes_to_json,
    parse_attributes,
)
from paddock.master.resources import Resources, parse_resources, parse_value

R = Resources.parse


def test_parse_the_documented_example():
    r = R(
        "cpus:24;gpus:2;mem:24576;disk:409600;ports:[21000-24000,30000-34000];"
        "bugs(debug_role):{a,b,c}"
    )
    assert r.get_scalar("cpus") == 24
    assert r.get_scalar("mem") == 24576
    assert r.get_ranges("ports") == [(21000, 24000), (30000, 34000)]
    assert r.get_set("bugs") == ["a", "b", "c"]
    assert r.get_set("bugs", role="*") == []
    assert r.roles() == ["*", "debug_role"]
    assert str(r) == (
        "cpus:24; gpus:2; mem:24576; disk:409600; ports:[21000-24000,30000-34000]; "
        "bugs(debug_role):{a,b,c}"
    )


def test_documented_json_example_equals_string_form():
    text = (
        '[{"name":"cpus","type":"SCALAR","scalar":{"value":24}},'
        '{"name":"gpus","type":"SCALAR","scalar":{"value":2}},'
        '{"name":"mem","type":"SCALAR","scalar":{"value":24576}},'
        '{"name":"disk","type":"SCALAR","scalar":{"value":409600}},'
        '{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":21000,"end":24000},'
        '{"begin":30000,"end":34000}]}},'
        '{"name":"bugs","type":"SET","set":{"item":["a","b","c"]},"role":"debug_role"}]'
    )
    assert R(text) == R(
        "cpus:24;gpus:2;mem:24576;disk:409600;ports:[21000-24000,30000-34000];"
        "bugs(debug_role):{a,b,c}"
    )


def test_json_round_trip_both_reservation_formats():
    r = R("cpus:4;mem:4096;ports:[31000-32000];cpus(web):2;mem(web):512;bugs:{x}")
    legacy = r.to_json()
    assert legacy[0] == {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}, "role": "*"}
    assert {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "web"} in legacy
    refined = r.to_json(refined=True)
    assert refined[0] == {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}}
    assert refined[3]["reservations"] == [{"type": "STATIC", "role": "web"}]
    assert refined[2]["ranges"] == {"range": [{"begin": 31000, "end": 32000}]}
    for form in (legacy, refined):
        assert Resources.from_json(json.loads(json.dumps(form))) == r
    offer = r.to_json(allocation_role="web")
    assert all(o["allocation_info"] == {"role": "web"} for o in offer)


def test_default_role_applies_to_roleless_entries():
    r = parse_resources("cpus:2;mem(other):10", default_role="web")
    assert r.get_scalar("cpus", role="web") == 2
    assert r.get_scalar("mem", role="other") == 10


def test_fixed_point_three_decimals():
    assert R("cpus:1.5123").get_scalar("cpus") == 1.512
    assert R("cpus:1.5125") == R("cpus:1.513")  # llround: half away from zero
    assert R("cpus:0.1") + R("cpus:0.2") == R("cpus:0.3")
    total = R("cpus:0")
    for _ in range(10):
        total = total + R("cpus:0.1")
    assert total == R("cpus:1")
    assert str(R("cpus:0.5;mem:0.125")) == "cpus:0.5; mem:0.125"
    assert R("cpus:0").is_empty()  # zero is valid and holds nothing
    with pytest.raises(ValueError, match="rounds to zero"):
        R("cpus:0.0004")  # Mesos: "Invalid scalar resource: value <= 0"


def test_arithmetic_scalars_ranges_sets():
    a = R("cpus:4;mem:1024;ports:[31000-32000];s:{a,b,c}")
    b = R("cpus:1.5;mem:24;ports:[31000-31000,31500-31600];s:{b}")
    d = a - b
    assert d == R("cpus:2.5;mem:1000;ports:[31001-31499,31601-32000];s:{a,c}")
    assert d + b == a
    assert a.contains(b) and not b.contains(a)
    assert b <= a and a >= b
    assert not a.contains(R("ports:[30999-31000]"))
    assert not a.contains(R("cpus(web):1"))
    assert (b - a).is_empty()  # subtracting past zero leaves nothing
    assert (a - a).is_empty() and not a - a
    assert R("ports:[1-2]") + R("ports:[3-4]") == R("ports:[1-4]")
    assert R("ports:[1-10]") - R("ports:[3-4,6-6]") == R("ports:[1-2,5-5,7-10]")


def test_range_parsing_coalesces_and_validates():
    assert R("ports:[5-6,1-2,3-4]").get_ranges("ports") == [(1, 6)]
    assert R("ports:[ 1 - 2 , 10-20 ]").get_ranges("ports") == [(1, 2), (10, 20)]
    assert R("ports:[]").is_empty()


def test_quantities_and_role_filters():
    r = R("cpus:4;cpus(web):2;ports:[1-10];s:{a,b}")
    assert r.quantities() == {"cpus": 6.0, "ports": 10.0, "s": 2.0}
    assert r.unreserved() == R("cpus:4;ports:[1-10];s:{a,b}")
    assert r.reserved() == R("cpus(web):2")
    assert r.reserved("other").is_empty()
    assert r.allocatable_to("web") == r
    assert r.allocatable_to("db") == r.unreserved()
    assert r.allocatable_to("web/api") == r  # a parent's reservation serves its subroles
    assert r.allocatable_to("webx") == r.unreserved()
    assert R("cpus(web/api):1").allocatable_to("web").is_empty()
    assert r.unreserve() == R("cpus:6;ports:[1-10];s:{a,b}")
    assert list(R("cpus(web):2")) == [("cpus", "web", "SCALAR", 2.0)]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cpus", "'cpus'"),
        ("cpus:4;mem", "'mem'"),
        ("cpus:x", "'cpus:x'"),
        ("cpus:-1", "'cpus:-1'"),
        ("cpus:1e999", "'cpus:1e999'"),
        ("ports:[1-2", "'ports:[1-2'"),
        ("ports:[a-b]", "'a-b'"),
        ("ports:[5-3]", "begin > end"),
        ("ports:[1-2-3]", "'1-2-3'"),
        ("s:{a,a}", "duplicated"),
        ("cpus(web:1", "parentheses"),
        ("cpus(web)x:1", "after ')'"),
        ("cpus(/web):1", "slash"),
        ("cpus(a b):1", "whitespace"),
        ("cpus(.):1", "'.'"),
        ("(web):1", "empty resource name"),
        ("cpus:1;cpus:[1-2]", "different types"),
        ("cpus:1:2", "extra ':'"),
        ("cpus:{a}[1-2]", "'cpus:{a}[1-2]'"),
    ],
)
def test_bad_resource_strings_name_the_token(text, fragment):
    with pytest.raises(ValueError) as e:
        R(text)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"name": "cpus"}, "array"),
        ([{"type": "SCALAR", "scalar": {"value": 1}}], "name"),
        ([{"name": "cpus", "type": "TEXT", "text": {"value": "x"}}], "unsupported type"),
        ([{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}], "invalid scalar"),
        ([{"name": "cpus", "type": "SCALAR", "scalar": {"value": "one"}}], "must be a number"),
        ([{"name": "cpus", "type": "SCALAR", "ranges": {"range": []}}], "'scalar'"),
        (
            [{"name": "p", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 1}]}}],
            "begin > end",
        ),
        (
            [
                {
                    "name": "p",
                    "type": "RANGES",
                    "ranges": {"range": [{"begin": 1, "end": 5}, {"begin": 3, "end": 9}]},
                }
            ],
            "overlapping",
        ),
        ([{"name": "s", "type": "SET", "set": {"item": ["a", "a"]}}], "duplicated"),
        (
            [{"name": "c", "type": "SCALAR", "scalar": {"value": 1}, "role": "a//b"}],
            "adjacent slashes",
        ),
        (
            [
                {
                    "name": "c",
                    "type": "SCALAR",
                    "scalar": {"value": 1},
                    "role": "x",
                    "reservations": [{"type": "STATIC", "role": "y"}],
                }
            ],
            "disagrees",
        ),
        (
            [{"name": "c", "type": "SCALAR", "scalar": {"value": 1}, "revocable": {}}],
            "revocable",
        ),
    ],
)
def test_bad_json_resources(data, fragment):
    with pytest.raises(ValueError) as e:
        Resources.from_json(data)
    assert fragment in str(e.value)


def test_json_accepts_enum_numbers_and_string_uint64():
    r = Resources.from_json(
        [
            {"name": "cpus", "type": 0, "scalar": {"value": 2}},
            {"name": "ports", "type": 1, "ranges": {"range": [{"begin": "1", "end": "3"}]}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": "512.5"}},
        ]
    )
    assert r == R("cpus:2;ports:[1-3];mem:512.5")


def test_parse_value_kinds():
    assert parse_value("3") == ("SCALAR", 3.0)
    assert parse_value("[1-2]") == ("RANGES", ((1, 2),))
    assert parse_value("{a,b}") == ("SET", ("a", "b"))
    assert parse_value("true") == ("TEXT", "true")


def test_attributes():
    attrs = parse_attributes("nfs:true;rack:a;level:3;keys:[1000-1500];os:centos5")
    assert attrs == [
        Attribute("nfs", "TEXT", "true"),
        Attribute("rack", "TEXT", "a"),
        Attribute("level", "SCALAR", 3.0),
        Attribute("keys", "RANGES", ((1000, 1500),)),
        Attribute("os", "TEXT", "centos5"),
    ]
    as_json = attributes_to_json(attrs)
    assert as_json[2] == {"name": "level", "type": "SCALAR", "scalar": {"value": 3.0}}
    assert as_json[0] == {"name": "nfs", "type": "TEXT", "text": {"value": "true"}}
    assert attributes_from_json(as_json) == attrs
    assert [str(a) for a in attrs][:3] == ["nfs:true", "rack:a", "level:3"]


@pytest.mark.parametrize("text", ["rack", "rack:", ":a", "zone:{a,b}", "k:[1-2"])
def test_bad_attributes(text):
    with pytest.raises(ValueError, match="attribute"):
        parse_attributes(text)


# ---------------------------------------------------------------- properties

names = st.sampled_from(["cpus", "mem", "disk"])
roles = st.sampled_from(["*", "web", "db"])
scalar_res = st.builds(
    lambda n, r, v: Resources.scalar(n, v / 1000, r),
    names,
    roles,
    st.integers(min_value=0, max_value=50_000),
)
range_res = st.builds(
    lambda r, pairs: Resources.ranges("ports", [(b, b + w) for b, w in pairs], r),
    roles,
    st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 20)),
        max_size=5,
    ),
)
set_res = st.builds(
    lambda r, items: Resources.set("gpus_ids", items, r),
    roles,
    st.sets(st.sampled_from("abcdef"), max_size=4),
)
resources = st.lists(st.one_of(scalar_res, range_res, set_res), max_size=6).map(
    lambda parts: sum(parts, Resources())
)


def _ports(r):
    out = set()
    for name, role, kind, value in r:
        if kind == "RANGES" and name == "ports":
            for b, e in value:
                out |= {(role, p) for p in range(b, e + 1)}
    return out


@settings(max_examples=300, deadline=None)
@given(resources, resources)
def test_arithmetic_laws(a, b):
    assert (a + b).contains(a) and (a + b).contains(b)
    assert a + b == b + a
    assert a.contains(a - b)
    if a.contains(b):
        assert (a - b) + b == a
    assert (b - a).is_empty() == a.contains(b)
    assert _ports(a - b) == _ports(a) - _ports(b)
    assert _ports(a + b) == _ports(a) | _ports(b)
    if a:
        assert parse_resources(str(a)) == a
    assert Resources.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert Resources.from_json(a.to_json(refined=True)) == a
    assert hash(a + b) == hash(b + a)
