"""pytest plugin that runs kazoo's own test suite against our ensembles.

Loaded with ``-p paddock.testing.kazoo_plugin`` into a pytest run over
``kazoo/tests``. It replaces ``kazoo.testing.harness.get_global_cluster`` (which
would start Java ZooKeeper from ``ZOOKEEPER_PATH`` with fixed ports) by a
cluster adapter over :mod:`paddock.testing` ensembles: real Apache ZooKeeper
or paddock keeper, chosen by ``PADDOCK_KAZOO_TARGET``. The adapter offers the
interface of kazoo's ``ZookeeperCluster``/``ManagedZooKeeper`` that the tests
use: iteration and indexing over servers with ``address``, ``host``,
``client_port``, ``running``, ``run()``, ``stop()``; and ``start``, ``stop``,
``terminate``, ``reset``, ``get_logs``, ``get_ssl_client_configuration``.

Differences from kazoo's own cluster, chosen for speed: ports are free ports
rather than 20000+; ``terminate()`` (called by every test class's teardown)
only brings stopped members back instead of wiping and restarting three JVMs
(each test works under its own random chroot, so no state leaks between
classes); the ensemble is really stopped at the end of the session. TLS
(for ZooKeeper only) uses PEM files made with openssl instead of Java key
stores, so pyOpenSSL/pyjks are not needed.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import types
from collections.abc import Iterator
from typing import Any

from paddock.testing.ensemble import Ensemble
from paddock.testing.keeper import KeeperEnsemble
from paddock.testing.zookeeper import ZooKeeperEnsemble

TARGET_ENV = "PADDOCK_KAZOO_TARGET"
SIZE_ENV = "PADDOCK_KAZOO_CLUSTER_SIZE"
# kazoo's harness makes "super:test" the digest super user.
SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="


def _install_stub_modules() -> None:
    """Let kazoo.testing import without its optional heavy dependencies.

    ``kazoo.testing.common`` imports pyOpenSSL and pyjks only to build TLS key
    stores for its own Java cluster, which we replace; ``test_cache`` imports
    objgraph only for ``count`` (objects of a type name on the GC heap).
    """
    for name in ("OpenSSL", "jks"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    try:
        __import__("objgraph")
    except ImportError:
        objgraph = types.ModuleType("objgraph")

        def count(typename: str, objects: list[object] | None = None) -> int:
            pool = gc.get_objects() if objects is None else objects
            return sum(1 for o in pool if type(o).__name__ == typename)

        objgraph.count = count  # type: ignore[attr-defined]
        sys.modules["objgraph"] = objgraph


class AdapterServer:
    """One member, shaped like kazoo's ``ManagedZooKeeper``."""

    host = "127.0.0.1"

    def __init__(self, cluster: AdapterCluster, index: int) -> None:
        self._cluster = cluster
        self.index = index

    @property
    def _ensemble(self) -> Ensemble:
        return self._cluster.ensemble

    @property
    def client_port(self) -> int:
        return self._ensemble.members[self.index].client_port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def secure_client_port(self) -> int:
        ensemble = self._ensemble
        if isinstance(ensemble, ZooKeeperEnsemble) and ensemble.tls:
            return ensemble.secure_port(self.index)
        return self.client_port  # no TLS port: a TLS client here fails its handshake

    @property
    def secure_address(self) -> str:
        return f"{self.host}:{self.secure_client_port}"

    @property
    def running(self) -> bool:
        return self._ensemble.members[self.index].running

    def run(self) -> None:
        if not self.running:
            self._ensemble.start_member(self.index)

    def stop(self) -> None:
        self._ensemble.stop_member(self.index)

    def reset(self) -> None:
        self.stop()

    def destroy(self) -> None:
        self.stop()

    def get_logs(self, num_lines: int = 100) -> list[str]:
        return self._ensemble.log_tail(self.index, num_lines).splitlines(keepends=True)


class AdapterCluster:
    """Our ensemble, shaped like kazoo's ``ZookeeperCluster``."""

    def __init__(self, target: str, size: int, local_session_ro: bool) -> None:
        self.target = target
        self.size = size
        self.local_session_ro = local_session_ro
        self.ensemble = self._make_ensemble()
        self._started = False
        self._servers = [AdapterServer(self, i) for i in range(size)]

    def _make_ensemble(self) -> Ensemble:
        if self.target == "keeper":
            return KeeperEnsemble(size=self.size, super_digest=SUPER_DIGEST)
        flag = "true" if self.local_session_ro else "false"
        return ZooKeeperEnsemble(
            size=self.size,
            super_digest=SUPER_DIGEST,
            # What kazoo's harness configures for ZooKeeper >= 3.5.
            extra_config=[
                "reconfigEnabled=true",
                f"localSessionsEnabled={flag}",
                f"localSessionsUpgradingEnabled={flag}",
            ],
            jvm_options=["-Dreadonlymode.enabled=true"],
            tls=shutil.which("openssl") is not None,
        )

    def __getitem__(self, k: int) -> AdapterServer:
        return self._servers[k]

    def __iter__(self) -> Iterator[AdapterServer]:
        return iter(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    def start(self) -> None:
        if not self._started:
            self.ensemble.start()
            self._started = True
            return
        for server in self._servers:
            server.run()

    def stop(self) -> None:
        for server in self._servers:
            server.stop()

    def terminate(self) -> None:
        """Between test classes: bring back members a test left stopped."""
        if self._started:
            self.start()

    def shutdown(self) -> None:
        self.ensemble.stop()

    def reset(self) -> None:
        self.stop()

    def get_logs(self) -> list[str]:
        logs: list[str] = []
        for server in self._servers:
            logs += server.get_logs()
        return logs

    def get_ssl_client_configuration(self) -> dict[str, bytes]:
        ensemble = self.ensemble
        if not (isinstance(ensemble, ZooKeeperEnsemble) and ensemble.tls):
            raise NotImplementedError(f"no TLS client port on {self.target}")
        files = ensemble.tls_files
        return {
            "client_key": files["client_key"].read_bytes(),
            "client_cert": files["client_cert"].read_bytes(),
            "ca_cert": files["ca_cert"].read_bytes(),
        }


_CLUSTER: AdapterCluster | None = None


def get_global_cluster() -> AdapterCluster:
    """Replacement for ``kazoo.testing.harness.get_global_cluster``."""
    global _CLUSTER
    target = os.environ.get(TARGET_ENV, "zookeeper")
    size = int(os.environ.get(SIZE_ENV, "3"))
    local_ro = os.environ.get("ZOOKEEPER_LOCAL_SESSION_RO", "false") == "true"
    if target == "keeper":
        local_ro = False  # keeper has no local sessions; never rebuild for it
    if _CLUSTER is not None and (
        _CLUSTER.target,
        _CLUSTER.size,
        _CLUSTER.local_session_ro,
    ) != (target, size, local_ro):
        _CLUSTER.shutdown()
        _CLUSTER = None
    if _CLUSTER is None:
        _CLUSTER = AdapterCluster(target, size, local_ro)
    return _CLUSTER


def pytest_configure(config: Any) -> None:
    _install_stub_modules()
    from kazoo.testing import harness

    harness.get_global_cluster = get_global_cluster


def pytest_unconfigure(config: Any) -> None:
    if _CLUSTER is not None:
        _CLUSTER.shutdown()
