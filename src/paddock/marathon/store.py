"""Marathon's state in the coordination service (ZooKeeper or paddock keeper) via kazoo.

Layout under the ``--zk`` path (``/marathon`` by default)::

    state/root                      {"version": V}  -- the current root; its znode version
                                                       is the compare-and-set token
    state/groups/<V>                zlib(JSON) snapshot of root version V: groups in full,
                                    apps as {id: app version} references
    state/app-versions/<app>/<v>    JSON of one app version (immutable)
    state/deployments/<id>          JSON: plan steps, original/target root versions, step
    state/instances/<app>/<task>    JSON of one task (written by the scheduler)
    state/task-failures/<app>       JSON of the app's last task failure
    state/framework-id              the Mesos framework id (UTF-8)

``<app>`` is the app id with "/" replaced by "_" (ids cannot contain "_", so this is
one-to-one); ``<V>``/``<v>`` are version timestamps.

Why this shape: no znode holds everything (ZooKeeper's default jute.maxbuffer is 1 MiB,
Marathon issue #2101), every version of an app is its own small znode, and the snapshot of
a root stores only references (compressed), so thousands of apps fit. Immutable znodes
(app versions, snapshots) are written first; the commit itself is one small multi-op
transaction that checks the root znode's version and creates/deletes deployment records,
so two marathons racing on the same state cannot both win: the loser gets
:class:`StoreConflict`, reloads and retries. Anything written before a lost commit is
unreferenced and harmless, and pruning removes it in time.

kazoo is synchronous; call this from worker threads, not from the event loop.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadArgumentsError, BadVersionError, NodeExistsError, NoNodeError

from paddock.marathon.groups import RootGroup
from paddock.marathon.models import AppDefinition, Task, TaskFailure, task_id_prefix
from paddock.marathon.planner import DeploymentAction, DeploymentPlan, DeploymentStep

ZNODE_LIMIT = 1024 * 1024  # ZooKeeper's default jute.maxbuffer


class StoreConflict(RuntimeError):
    """Another writer changed the root since it was loaded: reload and retry."""


class StoreCorrupt(RuntimeError):
    """A znode holds something this store never writes."""


def app_key(app_id: str) -> str:
    """One znode name per app id ("/ocfweb/web" -> "ocfweb_web")."""
    return task_id_prefix(app_id)


def _child_name(name: str) -> bool:
    """Whether a client-given name (a version from a URL or body) can name one child znode.

    An empty name would address the parent itself, one with "/" a deeper node, and kazoo
    refuses "." and ".." (ValueError); names the server refuses (control characters)
    raise BadArgumentsError, which the readers below turn into "not found" as well."""
    return bool(name) and "/" not in name and name not in (".", "..")


def key_app(key: str) -> str:
    return "/" + key.replace("_", "/")


@dataclass
class StoredDeployment:
    """A deployment as recorded: enough to rebuild the plan after a failover."""

    id: str
    version: str
    original_version: str
    target_version: str
    steps: list[list[dict[str, Any]]]
    current_step: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "original": self.original_version,
            "target": self.target_version,
            "steps": self.steps,
            "currentStep": self.current_step,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredDeployment:
        return cls(
            data["id"],
            data["version"],
            data["original"],
            data["target"],
            data["steps"],
            int(data.get("currentStep", 0)),
        )


class MarathonStore:
    """All of Marathon's persistent state, one kazoo client, no in-memory authority.

    Only immutable data is cached (app versions and root snapshots by version).
    """

    def __init__(self, client: KazooClient, base: str = "/marathon", max_versions: int = 50):
        self.client = client
        self.base = base.rstrip("/") or "/"
        self.state = f"{self.base.rstrip('/')}/state"
        self.max_versions = max_versions
        self._apps: dict[tuple[str, str], AppDefinition] = {}
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._app_dirs: set[str] = set()  # app-versions/<app> znodes known to exist

    # -- paths -----------------------------------------------------------------------

    def _p(self, *parts: str) -> str:
        return "/".join([self.state, *parts])

    def ensure_layout(self) -> None:
        for sub in ("groups", "app-versions", "deployments", "instances", "task-failures"):
            self.client.ensure_path(self._p(sub))
        with contextlib.suppress(NodeExistsError):
            self.client.create(self._p("root"), json.dumps({"version": ""}).encode())

    # -- roots -----------------------------------------------------------------------

    def load_root(self) -> tuple[RootGroup, int]:
        """The current root and its compare-and-set token."""
        data, stat = self.client.get(self._p("root"))
        version = json.loads(data.decode()).get("version", "")
        if not version:
            return RootGroup.empty(), stat.version
        return self.root_at(version), stat.version

    def root_at(self, version: str) -> RootGroup:
        """The root as it was at ``version`` (for rollbacks and deployments)."""
        snap = self._snapshot(version)
        self._prefetch_apps(snap["apps"].items())
        return RootGroup.from_snapshot(snap, self.app_version_or_fail)

    def root_versions(self) -> list[str]:
        """Stored root versions, newest first."""
        return sorted(self.client.get_children(self._p("groups")), reverse=True)

    def _snapshot(self, version: str) -> dict[str, Any]:
        if version not in self._snapshots:
            if not _child_name(version):
                raise KeyError(f"no root version {version}")
            try:
                data, _ = self.client.get(self._p("groups", version))
            except (NoNodeError, BadArgumentsError) as exc:
                raise KeyError(f"no root version {version}") from exc
            self._snapshots[version] = json.loads(zlib.decompress(data).decode())
        return self._snapshots[version]

    # -- app versions ----------------------------------------------------------------

    def app_versions(self, app_id: str) -> list[str]:
        """Stored versions of an app, newest first (empty if none)."""
        key = app_key(app_id)
        if not _child_name(key):
            return []
        try:
            children = self.client.get_children(self._p("app-versions", key))
        except (NoNodeError, BadArgumentsError):
            return []
        return sorted(children, reverse=True)

    def app_version(self, app_id: str, version: str) -> AppDefinition | None:
        key = (app_id, version)
        if key not in self._apps:
            if not (_child_name(version) and _child_name(app_key(app_id))):
                return None
            try:
                data, _ = self.client.get(self._p("app-versions", app_key(app_id), version))
            except (NoNodeError, BadArgumentsError):
                return None
            self._apps[key] = AppDefinition.model_validate(json.loads(data.decode()))
        return self._apps[key]

    def app_version_or_fail(self, app_id: str, version: str) -> AppDefinition:
        app = self.app_version(app_id, version)
        if app is None:
            raise StoreCorrupt(f"root references missing app version {app_id} {version}")
        return app

    def _prefetch_apps(self, refs: Iterable[tuple[str, str]]) -> None:
        """Read many app versions with pipelined requests (one round trip, not one per app)."""
        pending = []
        for app_id, version in refs:
            if (app_id, version) not in self._apps:
                path = self._p("app-versions", app_key(app_id), version)
                pending.append(((app_id, version), self.client.get_async(path)))
        for key, result in pending:
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            self._apps[key] = AppDefinition.model_validate(json.loads(data.decode()))

    # -- committing ------------------------------------------------------------------

    def commit(
        self,
        original: RootGroup,
        target: RootGroup,
        expected: int,
        *,
        deployment: DeploymentPlan | None = None,
        delete_deployments: Iterable[str] = (),
    ) -> int:
        """Make ``target`` current if the root is still at token ``expected``.

        Writes new app versions and the target snapshot first, then one transaction:
        check+set the root, create the deployment record, delete replaced records.
        Returns the new token; raises StoreConflict when another writer got there first.
        """
        if not target.version:
            raise ValueError("a committed root needs a version")
        self._write_app_versions(original, target)
        self._write_snapshot(target)
        if deployment is not None and deployment.original.version:
            self._write_snapshot(deployment.original)
        tx = self.client.transaction()
        tx.check(self._p("root"), expected)
        tx.set_data(self._p("root"), json.dumps({"version": target.version}).encode(), expected)
        for dep_id in delete_deployments:
            tx.delete(self._p("deployments", dep_id))
        if deployment is not None:
            record = StoredDeployment(
                deployment.id,
                deployment.version,
                deployment.original.version,
                deployment.target.version,
                [[a.to_record() for a in s.actions] for s in deployment.steps],
            )
            tx.create(self._p("deployments", deployment.id), _dump(record.to_json(), compress=True))
        results = tx.commit()
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            if any(isinstance(r, BadVersionError) for r in failures):
                raise StoreConflict("the root changed since it was loaded")
            if any(isinstance(r, NoNodeError) for r in failures):
                raise StoreConflict("a deployment record changed since it was loaded")
            raise failures[0]
        return expected + 1

    def _write_app_versions(self, original: RootGroup, target: RootGroup) -> None:
        """Create the znodes of new app versions, pipelined (a deploy of 1,000 apps is one
        round of requests, not 1,000 sequential round trips)."""
        new = []
        for app_id, app in sorted(target.apps.items()):
            old = original.app(app_id)
            if old is not None and old.version == app.version:
                continue
            if not app.version:
                raise ValueError(f"app {app_id} has no version")
            new.append(app)
        dirs = sorted({app_key(a.id) for a in new} - self._app_dirs)
        for result in [self.client.create_async(self._p("app-versions", d), b"") for d in dirs]:
            with contextlib.suppress(NodeExistsError):
                result.get()
        self._app_dirs.update(dirs)
        pending = [
            (
                app,
                self.client.create_async(
                    self._p("app-versions", app_key(app.id), app.version or ""),
                    _dump(app.to_json()),
                ),
            )
            for app in new
        ]
        for app, result in pending:
            try:
                result.get()
            except NodeExistsError:
                self._apps.pop((app.id, app.version or ""), None)
                if self.app_version(app.id, app.version or "") != app:
                    raise StoreConflict(
                        f"app version {app.id} {app.version} is already taken"
                    ) from None
            self._apps[(app.id, app.version or "")] = app

    def _write_snapshot(self, root: RootGroup) -> None:
        snap = root.snapshot()
        if self._snapshots.get(root.version) == snap:
            return
        data = zlib.compress(json.dumps(snap, separators=(",", ":")).encode(), 6)
        if len(data) >= ZNODE_LIMIT:
            raise ValueError(f"root snapshot of {len(data)} bytes exceeds the znode limit")
        try:
            self.client.create(self._p("groups", root.version), data)
        except NodeExistsError:
            # Versions are write-once: a different root under a used version means another
            # writer (or a lost attempt of ours) took it; the caller must pick a new one.
            self._snapshots.pop(root.version, None)
            if self._snapshot(root.version) != snap:
                raise StoreConflict(f"root version {root.version} is already taken") from None
        self._snapshots[root.version] = snap

    def prune(
        self,
        keep_roots: Iterable[str] = (),
        app_ids: Iterable[str] | None = None,
        known_deployments: Iterable[str] = (),
    ) -> int:
        """Delete root snapshots beyond the newest ``max_versions`` and app versions beyond
        each app's newest ``max_versions`` (all apps, or only ``app_ids``).

        Never deletes the current root, a kept root (running deployments), the roots of
        any deployment record in the store, or an app
        version that any retained root references (so every retained root can still be
        rolled back to). Returns how many znodes were deleted.
        """
        current, _ = self.load_root()
        # Also the roots of every stored deployment record, whoever wrote it: a record
        # whose removal failed (or a dead leader's) must stay loadable by the next leader.
        # (Records in ``known_deployments`` have their roots in ``keep_roots`` already and
        # are not read again: usually that is all of them.)
        stored = [
            (d.original_version, d.target_version) for d in self.deployments(skip=known_deployments)
        ]
        keep = {v for v in (current.version, *keep_roots, *(v for p in stored for v in p)) if v}
        roots = self.root_versions()
        retained = set(roots[: self.max_versions]) | keep
        deleted = 0
        for old in roots[self.max_versions :]:
            if old not in keep:
                self.client.delete(self._p("groups", old))
                self._snapshots.pop(old, None)
                deleted += 1
        referenced: set[tuple[str, str]] = set()
        for v in retained & set(roots):
            referenced |= set(self._snapshot(v)["apps"].items())
        if app_ids is None:
            keys = self.client.get_children(self._p("app-versions"))
        else:
            keys = sorted({app_key(a) for a in app_ids})
        for key in keys:
            app_id = key_app(key)
            for old in self.app_versions(app_id)[self.max_versions :]:
                if (app_id, old) not in referenced:
                    with contextlib.suppress(NoNodeError):
                        self.client.delete(self._p("app-versions", key, old))
                    self._apps.pop((app_id, old), None)
                    deleted += 1
        return deleted

    # -- deployments -----------------------------------------------------------------

    def deployments(self, skip: Iterable[str] = ()) -> list[StoredDeployment]:
        """The stored deployment records (but those in ``skip``), read pipelined."""
        known = set(skip)
        ids = [
            d for d in sorted(self.client.get_children(self._p("deployments"))) if d not in known
        ]
        pending = [self.client.get_async(self._p("deployments", d)) for d in ids]
        out = []
        for result in pending:
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            out.append(StoredDeployment.from_json(_load(data)))
        return out

    def plan_of(self, stored: StoredDeployment) -> DeploymentPlan:
        """Rebuild a stored deployment's plan (original and target roots included)."""
        original = (
            self.root_at(stored.original_version) if stored.original_version else RootGroup.empty()
        )
        target = self.root_at(stored.target_version)
        steps = tuple(
            DeploymentStep(tuple(DeploymentAction.from_record(a) for a in step))
            for step in stored.steps
        )
        return DeploymentPlan(stored.id, stored.version, original, target, steps)

    def set_deployment_step(self, dep_id: str, current_step: int) -> None:
        path = self._p("deployments", dep_id)
        data, stat = self.client.get(path)
        record = _load(data)
        record["currentStep"] = current_step
        self.client.set(path, _dump(record, compress=True), version=stat.version)

    def remove_deployment(self, dep_id: str) -> bool:
        try:
            self.client.delete(self._p("deployments", dep_id))
        except NoNodeError:
            return False
        return True

    # -- instances, failures, framework id -------------------------------------------

    def put_instance(self, task: Task) -> None:
        self.put_instances([task])

    def put_instances(self, tasks: Iterable[Task]) -> None:
        """Create or overwrite task records, pipelined (one round of requests for many).

        A task past TASK_STAGING was written when it was launched: its record is set
        at once (one request, not a create that fails and then a set); new ones are
        created, and whichever guess was wrong is corrected with the other request."""
        fresh: list[Task] = []
        records = []
        for t in tasks:
            if t.state == "TASK_STAGING":
                fresh.append(t)
            else:
                records.append((self._p("instances", app_key(t.app_id), t.id), t))
        sets = [(t, self.client.set_async(p, _dump(t.to_json()))) for p, t in records]
        for task, result in sets:
            try:
                result.get()
            except NoNodeError:
                fresh.append(task)
        if fresh:
            self._create_instances(fresh)

    def _create_instances(self, tasks: list[Task]) -> None:
        records = [
            (self._p("instances", app_key(t.app_id), t.id), _dump(t.to_json())) for t in tasks
        ]
        missing_dirs = []
        existing = []
        results = [(p, d, self.client.create_async(p, d)) for p, d in records]
        for path, data, result in results:
            try:
                result.get()
            except NodeExistsError:
                existing.append((path, data))
            except NoNodeError:  # the app's first task: its directory is missing
                missing_dirs.append((path, data))
        if missing_dirs:
            dirs = sorted({p.rsplit("/", 1)[0] for p, _ in missing_dirs})
            for result in [self.client.create_async(d, b"") for d in dirs]:
                with contextlib.suppress(NodeExistsError):
                    result.get()
            retry = [(p, d, self.client.create_async(p, d)) for p, d in missing_dirs]
            for path, data, result in retry:
                try:
                    result.get()
                except NodeExistsError:
                    existing.append((path, data))
        for result in [self.client.set_async(p, d) for p, d in existing]:
            result.get()

    def delete_instance(self, app_id: str, task_id: str) -> bool:
        try:
            self.client.delete(self._p("instances", app_key(app_id), task_id))
        except NoNodeError:
            return False
        return True

    def delete_instances(self, tasks: Iterable[Task]) -> None:
        """Delete many task records, pipelined; records already gone are fine."""
        results = [
            self.client.delete_async(self._p("instances", app_key(t.app_id), t.id)) for t in tasks
        ]
        for result in results:
            with contextlib.suppress(NoNodeError):
                result.get()

    def instances(self, app_id: str) -> list[Task]:
        return self.instances_of([app_id]).get(app_id, [])

    def instances_of(self, app_ids: Iterable[str]) -> dict[str, list[Task]]:
        """Task records of many apps with pipelined reads (apps without tasks map to [])."""
        ids = sorted(set(app_ids))
        listings = [
            (a, self.client.get_children_async(self._p("instances", app_key(a)))) for a in ids
        ]
        reads = []
        out: dict[str, list[Task]] = {}
        for app_id, listing in listings:
            out[app_id] = []
            try:
                names = sorted(listing.get())
            except NoNodeError:
                continue
            base = self._p("instances", app_key(app_id))
            reads += [(app_id, self.client.get_async(f"{base}/{n}")) for n in names]
        for app_id, result in reads:
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            out[app_id].append(Task.model_validate(json.loads(data.decode())))
        return out

    def all_instances(self) -> list[Task]:
        keys = sorted(self.client.get_children(self._p("instances")))
        by_app = self.instances_of(key_app(k) for k in keys)
        return [t for app_id in sorted(by_app) for t in by_app[app_id]]

    def set_task_failure(self, failure: TaskFailure) -> None:
        path = self._p("task-failures", app_key(failure.app_id))
        data = _dump(failure.to_json())
        try:
            self.client.set(path, data)
        except NoNodeError:
            self.client.create(path, data, makepath=True)

    def task_failure(self, app_id: str) -> TaskFailure | None:
        try:
            data, _ = self.client.get(self._p("task-failures", app_key(app_id)))
        except NoNodeError:
            return None
        return TaskFailure.model_validate(json.loads(data.decode()))

    def clear_task_failure(self, app_id: str) -> None:
        with contextlib.suppress(NoNodeError):
            self.client.delete(self._p("task-failures", app_key(app_id)))

    def framework_id(self) -> str | None:
        try:
            data, _ = self.client.get(self._p("framework-id"))
        except NoNodeError:
            return None
        return data.decode() or None

    def set_framework_id(self, framework_id: str) -> None:
        path = self._p("framework-id")
        try:
            self.client.set(path, framework_id.encode())
        except NoNodeError:
            self.client.create(path, framework_id.encode(), makepath=True)


COMPRESS_ABOVE = 64 * 1024


def _dump(obj: Any, *, compress: bool = False) -> bytes:
    """JSON bytes; with ``compress`` a large record is zlib-compressed (a deployment of
    thousands of apps lists every action). Raises ValueError past the znode limit."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    if compress and len(data) > COMPRESS_ABOVE:
        data = zlib.compress(data, 6)
    if len(data) >= ZNODE_LIMIT:
        raise ValueError(f"record of {len(data)} bytes exceeds the znode limit")
    return data


def _load(data: bytes) -> Any:
    """Read what _dump wrote: JSON text starts with "{", anything else is zlib."""
    if data[:1] != b"{":
        data = zlib.decompress(data)
    return json.loads(data.decode())
