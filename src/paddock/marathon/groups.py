"""The group tree: every app lives in a group (``/ocfweb/web`` in ``/ocfweb``), groups nest.

paddock keeps the tree *flat* — a map of app id -> app and group id -> group info — and
renders Marathon's nested JSON on demand. Flat maps make the operations the API needs
(put an app, remove a group with everything under it, find what a change touches) one
dictionary edit each, and let the store keep one znode per app instead of one huge tree.

A group exists when it was created explicitly or when an app lives under it (Marathon
creates missing ancestors). Group ``dependencies`` apply to every app inside the group:
each such app depends on every app under each dependency (an app id or a group id).

Everything here is pure: a :class:`RootGroup` is never changed in place; each edit
returns a new one, so a deployment plan can hold the original and target side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from paddock.marathon.models import (
    AppDefinition,
    InvalidJson,
    InvalidObject,
    Violation,
    canonical_app,
    canonical_path,
    group_violations,
    invalid_json_from,
    load_json,
    parent_path,
    parse_app,
    path_violations,
    prefix_violations,
)
from paddock.marathon.validation import validate_app


@dataclass(frozen=True)
class GroupInfo:
    """What a group holds besides its members."""

    id: str
    dependencies: tuple[str, ...] = ()
    version: str = ""
    enforce_role: bool = False


def ancestors(path: str) -> list[str]:
    """Every enclosing group of ``path``, outermost first, ending with its parent ("/" first)."""
    out = ["/"]
    parts = [p for p in path.split("/") if p]
    for i in range(1, len(parts)):
        out.append("/" + "/".join(parts[:i]))
    return out


def is_under(path: str, group_id: str) -> bool:
    """True when ``path`` lies inside ``group_id`` (at any depth)."""
    if group_id == "/":
        return path != "/"
    return path.startswith(group_id + "/")


@dataclass(frozen=True)
class RootGroup:
    """The whole desired state: apps and groups, flat, plus the root's version."""

    apps: dict[str, AppDefinition] = field(default_factory=dict)
    groups: dict[str, GroupInfo] = field(default_factory=lambda: {"/": GroupInfo("/")})
    version: str = ""

    # -- lookups -------------------------------------------------------------------

    @classmethod
    def empty(cls, version: str = "") -> RootGroup:
        return cls(apps={}, groups={"/": GroupInfo("/", version=version)}, version=version)

    def app(self, app_id: str) -> AppDefinition | None:
        return self.apps.get(app_id)

    def group(self, group_id: str) -> GroupInfo | None:
        return self.groups.get(group_id)

    def exists(self, path: str) -> bool:
        return path in self.apps or path in self.groups

    def apps_under(self, group_id: str) -> list[AppDefinition]:
        """Every app inside ``group_id`` at any depth, sorted by id."""
        return [self.apps[a] for a in sorted(self.apps) if is_under(a, group_id)]

    def child_groups(self, group_id: str) -> list[GroupInfo]:
        return [
            g
            for gid, g in sorted(self.groups.items())
            if gid != "/" and parent_path(gid) == group_id
        ]

    def child_apps(self, group_id: str) -> list[AppDefinition]:
        return [self.apps[a] for a in sorted(self.apps) if parent_path(a) == group_id]

    # -- edits (each returns a new RootGroup) --------------------------------------

    def with_app(self, app: AppDefinition, version: str) -> RootGroup:
        """Put ``app``, creating missing ancestor groups and bumping their versions."""
        apps = dict(self.apps)
        apps[app.id] = app
        groups = dict(self.groups)
        for gid in ancestors(app.id):
            info = groups.get(gid) or GroupInfo(gid)
            groups[gid] = replace(info, version=version)
        return RootGroup(apps=apps, groups=groups, version=version)

    def with_apps(self, new_apps: Iterable[AppDefinition], version: str) -> RootGroup:
        """Put many apps at once (one copy of the maps, not one per app)."""
        apps = dict(self.apps)
        groups = dict(self.groups)
        for app in new_apps:
            apps[app.id] = app
            for gid in ancestors(app.id):
                groups[gid] = replace(groups.get(gid) or GroupInfo(gid), version=version)
        return RootGroup(apps=apps, groups=groups, version=version)

    def without_app(self, app_id: str, version: str) -> RootGroup:
        apps = {k: v for k, v in self.apps.items() if k != app_id}
        groups = dict(self.groups)
        for gid in ancestors(app_id):
            groups[gid] = replace(groups.get(gid) or GroupInfo(gid), version=version)
        return RootGroup(apps=apps, groups=groups, version=version)

    def without_group(self, group_id: str, version: str) -> RootGroup:
        """Remove a group with every app and group inside it (the root empties instead)."""
        apps = {k: v for k, v in self.apps.items() if not is_under(k, group_id)}
        groups = {
            k: v
            for k, v in self.groups.items()
            if not is_under(k, group_id) and (k != group_id or k == "/")
        }
        for gid in ancestors(group_id) if group_id != "/" else ["/"]:
            groups[gid] = replace(groups.get(gid) or GroupInfo(gid), version=version)
        return RootGroup(apps=apps, groups=groups, version=version)

    def with_group(self, info: GroupInfo, version: str) -> RootGroup:
        groups = dict(self.groups)
        groups[info.id] = replace(info, version=version)
        for gid in ancestors(info.id) if info.id != "/" else []:
            groups[gid] = replace(groups.get(gid) or GroupInfo(gid), version=version)
        return RootGroup(apps=dict(self.apps), groups=groups, version=version)

    def scaled(self, group_id: str, factor: float, version: str) -> RootGroup:
        """Multiply the instances of every app under ``group_id`` (rounded up, as Marathon)."""
        changed = [
            app.model_copy(update={"instances": math.ceil(app.instances * factor)})
            for app in self.apps_under(group_id)
        ]
        return self.with_apps(changed, version)

    # -- dependencies --------------------------------------------------------------

    def dependency_map(self) -> dict[str, set[str]]:
        """app id -> ids of the apps it depends on (own and enclosing groups' dependencies)."""

        def resolve(dep: str) -> set[str]:
            if dep in self.apps:
                return {dep}
            return {a.id for a in self.apps_under(dep)}

        out: dict[str, set[str]] = {}
        for app_id, app in self.apps.items():
            deps: set[str] = set()
            for d in app.dependencies:
                deps |= resolve(d)
            for gid in ancestors(app_id):
                info = self.groups.get(gid)
                for d in info.dependencies if info else ():
                    deps |= resolve(d)
            deps.discard(app_id)
            out[app_id] = deps
        return out

    def dependency_cycle(self) -> list[str] | None:
        """One dependency cycle among the apps (as a list of ids), or None."""
        graph = self.dependency_map()
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(node: str) -> list[str] | None:
            state[node] = 1
            stack.append(node)
            for nxt in sorted(graph.get(node, ())):
                if state.get(nxt) == 1:
                    return [*stack[stack.index(nxt) :], nxt]
                if nxt not in state:
                    found = visit(nxt)
                    if found:
                        return found
            stack.pop()
            state[node] = 2
            return None

        for node in sorted(graph):
            if node not in state:
                found = visit(node)
                if found:
                    return found
        return None

    # -- rendering and snapshots ---------------------------------------------------

    def to_json(
        self,
        group_id: str = "/",
        *,
        embed_apps: bool = True,
        embed_groups: bool = True,
        render_app: Callable[[AppDefinition], dict[str, Any]] | None = None,
        depth: int | None = None,
    ) -> dict[str, Any]:
        """Marathon's nested group JSON (id, apps, groups, pods, dependencies, version)."""
        info = self.groups.get(group_id) or GroupInfo(group_id, version=self.version)
        render = render_app or (lambda a: a.to_json())
        out: dict[str, Any] = {"id": info.id}
        out["apps"] = [render(a) for a in self.child_apps(group_id)] if embed_apps else []
        if embed_groups and (depth is None or depth > 0):
            nxt = None if depth is None else depth - 1
            out["groups"] = [
                self.to_json(
                    g.id, embed_apps=embed_apps, embed_groups=True, render_app=render, depth=nxt
                )
                for g in self.child_groups(group_id)
            ]
        else:
            out["groups"] = []
        out["pods"] = []
        out["dependencies"] = list(info.dependencies)
        out["version"] = info.version or self.version
        return out

    def snapshot(self) -> dict[str, Any]:
        """A compact record of this root: groups in full, apps as (id -> version) references."""
        return {
            "version": self.version,
            "groups": [
                {
                    "id": g.id,
                    "dependencies": list(g.dependencies),
                    "version": g.version,
                    "enforceRole": g.enforce_role,
                }
                for _, g in sorted(self.groups.items())
            ],
            "apps": {a: app.version for a, app in sorted(self.apps.items())},
        }

    @classmethod
    def from_snapshot(
        cls, snap: dict[str, Any], load_app: Callable[[str, str], AppDefinition]
    ) -> RootGroup:
        """Rebuild a root from :meth:`snapshot` output, loading each app version."""
        groups = {
            g["id"]: GroupInfo(
                g["id"], tuple(g["dependencies"]), g["version"], bool(g.get("enforceRole"))
            )
            for g in snap["groups"]
        }
        groups.setdefault("/", GroupInfo("/", version=snap["version"]))
        apps = {a: load_app(a, v) for a, v in snap["apps"].items()}
        return cls(apps=apps, groups=groups, version=snap["version"])


# --------------------------------------------------------------------------- group bodies


class _GroupBodyTypes(BaseModel):
    """Types of a group body (POST/PUT /v2/groups); apps are checked one by one after."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    apps: list[dict[str, Any]] | None = None
    groups: list[dict[str, Any]] | None = None
    dependencies: list[str] | None = None
    scaleBy: float | None = None
    version: str | None = None
    enforceRole: bool | None = None


@dataclass
class GroupUpdate:
    """A checked group body: ids absolute, apps canonical."""

    id: str
    apps: list[AppDefinition] | None = None
    groups: list[GroupUpdate] | None = None
    dependencies: list[str] | None = None
    scale_by: float | None = None
    version: str | None = None
    enforce_role: bool | None = None

    def all_apps(self) -> list[AppDefinition]:
        out = list(self.apps or [])
        for g in self.groups or []:
            out += g.all_apps()
        return out


def parse_group_update(raw: bytes | str | dict[str, Any], group_id: str) -> GroupUpdate:
    """Check a group body for ``group_id``; raise InvalidJson (400) or InvalidObject (422)."""
    obj = load_json(raw) if isinstance(raw, bytes | str) else raw
    if not isinstance(obj, dict):
        raise InvalidJson([Violation(path="/", errors=["error.expected.jsobject"])])
    pairs: list[Violation] = []
    update = _parse_group(obj, group_id, "", pairs)
    if pairs:
        raise InvalidObject(group_violations((v.path, e) for v in pairs for e in v.errors))
    return update


def _parse_group(
    obj: dict[str, Any], group_id: str, where: str, out: list[Violation]
) -> GroupUpdate:
    try:
        body = _GroupBodyTypes.model_validate(obj, strict=True)
    except ValidationError as exc:
        err = invalid_json_from(exc)
        raise InvalidJson(prefix_violations(err.details, where) if where else err.details) from exc
    # The caller resolved this group's id (URL, or the parent for nested groups).
    gid = group_id
    if body.id is not None:
        bad = path_violations(body.id, "/id")
        out += prefix_violations([Violation(path=p, errors=[m]) for p, m in bad], where)
    if body.scaleBy is not None and body.scaleBy <= 0:
        out.append(Violation(path=f"{where}/scaleBy", errors=["must be positive"]))
    # version (rollback) and scaleBy act on the group addressed; inside a body's nested
    # groups they are echoes of a GET (marathon-python sends them back) and are ignored.
    if where:
        body.version = None
        body.scaleBy = None
    only_special = body.version is not None or body.scaleBy is not None
    if only_special and (body.apps or body.groups or body.dependencies):
        out.append(
            Violation(
                path=f"{where or '/'}",
                errors=["Either version or scaleBy may be given, but not with other changes"],
            )
        )
    apps: list[AppDefinition] | None = None
    if body.apps is not None:
        apps = []
        for i, raw_app in enumerate(body.apps):
            try:
                app = parse_app(raw_app)
            except InvalidJson as exc:
                raise InvalidJson(prefix_violations(exc.details, f"{where}/apps({i})")) from exc
            problems = validate_app(app, base=gid)
            if problems:
                out += prefix_violations(problems, f"{where}/apps({i})")
                continue
            canon = canonical_app(app, gid)
            if parent_path(canon.id) != gid:
                out.append(
                    Violation(
                        path=f"{where}/apps({i})/id",
                        errors=[f"identifier {canon.id} is not child of {gid}"],
                    )
                )
                continue
            apps.append(canon)
    groups: list[GroupUpdate] | None = None
    if body.groups is not None:
        groups = []
        for i, raw_group in enumerate(body.groups):
            child_where = f"{where}/groups({i})"
            if "id" not in raw_group:
                raise InvalidJson(
                    [Violation(path=f"{child_where}/id", errors=["error.path.missing"])]
                )
            child_id = canonical_path(str(raw_group["id"]), gid)
            child = _parse_group(raw_group, child_id, child_where, out)
            child.id = child_id
            if parent_path(child.id) != gid:
                out.append(
                    Violation(
                        path=f"{child_where}/id",
                        errors=[f"identifier {child.id} is not child of {gid}"],
                    )
                )
            groups.append(child)
    deps = None
    if body.dependencies is not None:
        deps = []
        for i, d in enumerate(body.dependencies):
            bad = path_violations(d, f"{where}/dependencies({i})")
            out += [Violation(path=p, errors=[m]) for p, m in bad]
            deps.append(canonical_path(d, parent_path(gid)))
    return GroupUpdate(
        id=gid,
        apps=apps,
        groups=groups,
        dependencies=deps,
        scale_by=body.scaleBy,
        version=body.version,
        enforce_role=body.enforceRole,
    )


def apply_group_update(
    root: RootGroup,
    update: GroupUpdate,
    version: str,
    stamp: Callable[[AppDefinition], AppDefinition],
) -> RootGroup:
    """The root after ``update`` replaced its group (Marathon's GroupUpdate.apply).

    Given ``apps`` replace the group's direct apps (apps not listed go away); given
    ``groups`` replace its direct subgroups the same way, recursively; what the body leaves
    out stays. ``stamp`` gives each new or changed app its version (and versionInfo).
    """
    current = root.group(update.id)
    deps = (
        tuple(update.dependencies)
        if update.dependencies is not None
        else (current.dependencies if current else ())
    )
    enforce = (
        update.enforce_role
        if update.enforce_role is not None
        else bool(current and current.enforce_role)
    )
    root = root.with_group(GroupInfo(update.id, deps, version, enforce), version)
    if update.apps is not None:
        wanted = {a.id for a in update.apps}
        for old in root.child_apps(update.id):
            if old.id not in wanted:
                root = root.without_app(old.id, version)
        changed = []
        for app in update.apps:
            existing = root.app(app.id)
            if existing is not None and existing.model_dump(
                exclude={"version", "version_info"}
            ) == app.model_dump(exclude={"version", "version_info"}):
                continue
            changed.append(stamp(app))
        root = root.with_apps(changed, version)
    if update.groups is not None:
        wanted_groups = {g.id for g in update.groups}
        for old_group in root.child_groups(update.id):
            if old_group.id not in wanted_groups:
                root = root.without_group(old_group.id, version)
        for child in update.groups:
            root = apply_group_update(root, child, version, stamp)
    return replace(root, version=version)
