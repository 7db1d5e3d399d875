"""kazoo tests known to fail against each target, with the reason (see docs/compatibility.md).

Keys are ``file::Class::test``. Filled from measured runs of
tests/compat/run_kazoo_suite.py; a test listed here that starts passing is
reported so its entry can be dropped.
"""

from __future__ import annotations

# Fails against real Apache ZooKeeper 3.8.0 under the paddock adapter: none.
ZOOKEEPER: dict[str, str] = {}

# Passed against Apache ZooKeeper 3.8.0 in the measured full run (see docs/compatibility.md).
ZOOKEEPER_BASELINE_PASSED = 312

# Additional failures accepted from keeper, for features it deliberately lacks.
_NO_RECONFIG = (
    "keeper answers reconfig (opcode 16) with ReconfigDisabled: no dynamic membership "
    "(ZooKeeper does the same with reconfigEnabled=false)"
)
KEEPER_ONLY: dict[str, str] = {
    "test_client.py::TestSSLClient::test_create": (
        "keeper has no TLS client port (secureClientPort is accepted in zoo.cfg but ignored); "
        "the harness gives only ZooKeeper a TLS port"
    ),
    "test_client.py::TestReconfig::test_add_remove_observer": _NO_RECONFIG,
    "test_client.py::TestReconfig::test_bad_input": _NO_RECONFIG,
    "test_client.py::TestReconfig::test_no_super_auth": _NO_RECONFIG,
    "test_connection.py::TestReadOnlyMode::test_read_only": (
        "keeper has no read-only mode: with 2 of 3 servers stopped the survivor refuses "
        "sessions instead of serving reads as CONNECTED_RO (kazoo times out connecting)"
    ),
}


def known_failures(target: str) -> dict[str, str]:
    if target == "zookeeper":
        return dict(ZOOKEEPER)
    return {**ZOOKEEPER, **KEEPER_ONLY}
