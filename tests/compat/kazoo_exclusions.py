"""kazoo tests known to fail against each target, with the reason (see docs/compatibility.md).

Keys are ``file::Class::test``. Filled from measured runs of
tests/compat/run_kazoo_suite.py; a test listed here that starts passing is
reported so its entry can be dropped.
"""

from __future__ import annotations

# Fails against real Apache ZooKeeper 3.8.0 under the paddock adapter.
ZOOKEEPER: dict[str, str] = {
    "test_client.py::TestSSLClient::test_create": (
        "needs a TLS client port and client certificates from the cluster object; "
        "the paddock adapter starts no secureClientPort (kazoo builds Java key stores "
        "with pyOpenSSL/pyjks for that)"
    ),
}

# Passed against Apache ZooKeeper 3.8.0 in the measured full run (see docs/compatibility.md).
ZOOKEEPER_BASELINE_PASSED = 311

# Additional failures expected from keeper (features it does not offer).
KEEPER_ONLY: dict[str, str] = {}


def known_failures(target: str) -> dict[str, str]:
    if target == "zookeeper":
        return dict(ZOOKEEPER)
    return {**ZOOKEEPER, **KEEPER_ONLY}
