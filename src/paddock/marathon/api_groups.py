"""``/v2/groups``: the group tree — read, create, update (scaleBy, rollback), delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from paddock.marathon.api_apps import render_app
from paddock.marathon.api_common import (
    COMMON_ERRORS,
    LOCKED,
    NOT_FOUND,
    DeploymentResult,
    GroupInfoDoc,
    VersionList,
    deployment_result,
    get_service,
    json_object,
    raw_body,
)
from paddock.marathon.groups import parse_group_update
from paddock.marathon.models import canonical_path
from paddock.marathon.planner import DeploymentPlan
from paddock.marathon.service import MarathonService, NotFound

router = APIRouter(tags=["groups"])
ServiceDep = Depends(get_service)
BodyDep = Depends(raw_body)

EMBED_DOC = "group.apps, group.groups, group.apps.tasks, ... (default: apps and groups)"
GROUP_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GroupInfoDoc"}}},
    }
}


def _group_json(service: MarathonService, group_id: str, request: Request) -> dict[str, Any]:
    gid = canonical_path(group_id)
    if gid not in service.root.groups:
        raise NotFound(f"Group '{gid}' does not exist")
    embed = set(request.query_params.getlist("embed"))
    embed_apps = not embed or "group.apps" in embed
    embed_groups = not embed or "group.groups" in embed
    app_embeds = {e.replace("group.apps.", "apps.") for e in embed if e.startswith("group.apps.")}
    return service.root.to_json(
        gid,
        embed_apps=embed_apps,
        embed_groups=embed_groups,
        render_app=lambda a: render_app(service, a, app_embeds),
    )


def _plan_response(plan: DeploymentPlan, dry_run: bool, status: int = 200) -> JSONResponse:
    if dry_run:
        return JSONResponse({"steps": [s.to_json() for s in plan.steps]})
    return deployment_result(plan, status)


@router.get("/v2/groups", responses={200: {"model": GroupInfoDoc}})
def root_group(
    request: Request,
    embed: list[str] = Query([], description=EMBED_DOC),
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """The root group with every app and group (``embed=group.apps|group.groups``)."""
    return JSONResponse(_group_json(service, "/", request))


@router.post(
    "/v2/groups",
    status_code=201,
    responses={201: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=GROUP_BODY_DOC,
)
def create_group(
    force: bool = False, raw: bytes = BodyDep, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Create a group (with its apps and subgroups) under the root."""
    body = json_object(raw)
    gid = canonical_path(str(body.get("id", "/")))
    update = parse_group_update(body, gid)
    return deployment_result(service.create_group(update, force=force), status=201)


def _put(
    group_id: str, raw: bytes, service: MarathonService, force: bool, dry_run: bool
) -> JSONResponse:
    gid = canonical_path(group_id)
    update = parse_group_update(json_object(raw), gid)
    created = gid not in service.root.groups and update.version is None and update.scale_by is None
    plan = service.update_group(update, force=force, dry_run=dry_run)
    return _plan_response(plan, dry_run, status=201 if created else 200)


@router.put(
    "/v2/groups",
    responses={200: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=GROUP_BODY_DOC,
)
def put_root(
    force: bool = False,
    dryRun: bool = False,
    raw: bytes = BodyDep,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Change the root group (``{"version": v}`` rolls back, ``{"scaleBy": f}`` scales)."""
    return _put("/", raw, service, force, dryRun)


@router.delete("/v2/groups", responses={200: {"model": DeploymentResult}, **LOCKED})
def delete_root(force: bool = False, service: MarathonService = ServiceDep) -> JSONResponse:
    """Remove every app and group."""
    return deployment_result(service.delete_group("/", force=force))


@router.get("/v2/groups/versions", responses={200: {"model": VersionList}})
def root_versions(service: MarathonService = ServiceDep) -> JSONResponse:
    return JSONResponse({"versions": service.store.root_versions()})


@router.get(
    "/v2/groups/{group_id:path}/versions", responses={200: {"model": VersionList}, **NOT_FOUND}
)
def group_versions(group_id: str, service: MarathonService = ServiceDep) -> JSONResponse:
    """Root versions (a group's version moves with every change under it)."""
    gid = canonical_path(group_id)
    if gid not in service.root.groups:
        raise NotFound(f"Group '{gid}' does not exist")
    return JSONResponse({"versions": service.store.root_versions()})


@router.put(
    "/v2/groups/{group_id:path}/versions/{version}",
    responses={200: {"model": DeploymentResult}, **NOT_FOUND, **LOCKED},
)
def rollback_group(
    group_id: str, version: str, force: bool = False, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Roll a group back to a stored version (what marathon-python's rollback_group calls)."""
    update = parse_group_update({"version": version}, canonical_path(group_id))
    return deployment_result(service.update_group(update, force=force))


@router.get("/v2/groups/{group_id:path}", responses={200: {"model": GroupInfoDoc}, **NOT_FOUND})
def get_group(
    group_id: str,
    request: Request,
    embed: list[str] = Query([], description=EMBED_DOC),
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """One group with its apps and subgroups."""
    return JSONResponse(_group_json(service, group_id, request))


@router.put(
    "/v2/groups/{group_id:path}",
    responses={200: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=GROUP_BODY_DOC,
)
def put_group(
    group_id: str,
    force: bool = False,
    dryRun: bool = False,
    raw: bytes = BodyDep,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Create or change a group; ``dryRun=true`` only returns the plan's steps."""
    return _put(group_id, raw, service, force, dryRun)


@router.patch(
    "/v2/groups/{group_id:path}",
    responses={200: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=GROUP_BODY_DOC,
)
def patch_group(
    group_id: str, force: bool = False, raw: bytes = BodyDep, service: MarathonService = ServiceDep
) -> JSONResponse:
    return _put(group_id, raw, service, force, False)


@router.post(
    "/v2/groups/{group_id:path}",
    status_code=201,
    responses={201: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=GROUP_BODY_DOC,
)
def create_subgroup(
    group_id: str, force: bool = False, raw: bytes = BodyDep, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Create a group inside ``group_id`` (the body's id is relative to it)."""
    body = json_object(raw)
    parent = canonical_path(group_id)
    gid = canonical_path(str(body.get("id", "")), parent) if body.get("id") else parent
    update = parse_group_update(body, gid)
    return deployment_result(service.create_group(update, force=force), status=201)


@router.delete(
    "/v2/groups/{group_id:path}",
    responses={200: {"model": DeploymentResult}, **NOT_FOUND, **LOCKED},
)
def delete_group(
    group_id: str, force: bool = False, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Remove a group with every app and group inside it."""
    return deployment_result(service.delete_group(group_id, force=force))
