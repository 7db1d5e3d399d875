"""Registry credentials for DOCKER tasks' image pulls (pure: no engine, no network).

Mesos's Docker containerizer pulls with the credentials of a Docker client
configuration: the agent's ``--docker_config`` (a path, or the JSON itself), or a
``.docker/config.json`` / ``.dockercfg`` a task fetched into its sandbox through
``command.uris`` (Marathon's documented way for private registries: a
``docker.tar.gz`` holding ``.docker/config.json``).  The ``docker`` command line read
those; the Engine API wants the credentials of the image's registry with each pull
(``X-Registry-Auth``), so this module picks them:

* both formats: ``{"auths": {REGISTRY: {...}}}`` (``config.json``) and
  ``{REGISTRY: {...}}`` (the older ``.dockercfg``); an entry has ``auth`` (base64 of
  ``user:password``) or ``username`` and ``password``, or an ``identitytoken``;
* registry keys are matched on their host (and port): ``https://index.docker.io/v1/``,
  ``docker.io`` and ``registry-1.docker.io`` all mean Docker Hub; a scheme or path
  is ignored;
* an image's registry is its first path component when that has a ``.`` or ``:`` or
  is ``localhost`` (Docker's rule); else Docker Hub;
* a task's sandbox configuration wins over the agent's for the registries it names;
* ``credsStore`` / ``credHelpers`` (external helper programs) are not run: images of
  registries that only they know are pulled without credentials.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DOCKER_HUB",
    "DockerConfigError",
    "auth_for_image",
    "image_registry",
    "load_docker_config",
    "merge_auths",
    "parse_docker_config",
    "pull_arguments",
    "registry_key",
    "sandbox_docker_auths",
    "split_image",
]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
#: Where a task's fetched configuration may be, relative to its sandbox (first wins).
SANDBOX_CONFIGS = (".docker/config.json", ".dockercfg")


class DockerConfigError(ValueError):
    """A Docker configuration that cannot be used; the message says why."""


def registry_key(name: str) -> str:
    """A registry as a config key or image names it -> ``host[:port]`` (Hub: docker.io)."""
    text = name.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text in _HUB_ALIASES:
        return DOCKER_HUB
    return text


def image_registry(image: str) -> str:
    """The registry an image reference pulls from (Docker's rule for the first part)."""
    first, sep, _rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return registry_key(first)
    return DOCKER_HUB


def split_image(image: str) -> tuple[str, str | None]:
    """``repo[:tag][@digest]`` -> (repo, tag); a ``:`` in the registry host is not a tag."""
    if "@" in image:
        return image, None
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


def _entry_auth(registry: str, entry: Any, where: str) -> dict[str, str]:
    """One registry's entry -> docker-py ``auth_config``."""
    if not isinstance(entry, Mapping):
        raise DockerConfigError(f"{where}: the entry for {registry!r} is not an object")
    out: dict[str, str] = {}
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise DockerConfigError(
                f"{where}: the auth of {registry!r} is not base64 of user:password"
            ) from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise DockerConfigError(f"{where}: the auth of {registry!r} has no ':'")
        out["username"], out["password"] = user, password
    for key in ("username", "password", "email", "identitytoken"):
        value = entry.get(key)
        if isinstance(value, str) and value and key not in out:
            out[key] = value
    if not out:
        raise DockerConfigError(f"{where}: the entry for {registry!r} has no credentials")
    return out


def parse_docker_config(obj: Any, where: str = "docker config") -> dict[str, dict[str, str]]:
    """A parsed ``config.json`` or ``.dockercfg`` -> {registry key: auth_config}."""
    if not isinstance(obj, Mapping):
        raise DockerConfigError(f"{where}: expected a JSON object")
    if "auths" in obj:
        entries = obj["auths"]
        if not isinstance(entries, Mapping):
            raise DockerConfigError(f"{where}: 'auths' must be an object")
    elif any(k in obj for k in ("credsStore", "credHelpers", "HttpHeaders", "proxies")):
        entries = {}  # a config.json without auths
    else:
        entries = obj  # the older .dockercfg: registries at the top
    out: dict[str, dict[str, str]] = {}
    for registry, entry in entries.items():
        if not isinstance(registry, str) or not registry.strip():
            raise DockerConfigError(f"{where}: a registry name is empty")
        if isinstance(entry, Mapping) and not entry:
            continue  # {"auths": {"r": {}}}: the docker CLI's marker for a creds store
        auth = _entry_auth(registry, entry, where)
        auth["serveraddress"] = registry
        out[registry_key(registry)] = auth
    return out


def load_docker_config(value: str) -> dict[str, dict[str, str]]:
    """``--docker-config``: a path to the file, or the JSON itself (as Mesos's flag)."""
    text = value.strip()
    where = "--docker-config"
    if not text.startswith("{"):
        path = Path(text[len("file://") :] if text.startswith("file://") else text)
        where = f"--docker-config {path}"
        try:
            text = path.read_text()
        except OSError as exc:
            raise DockerConfigError(f"{where}: cannot read it: {exc.strerror}") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise DockerConfigError(f"{where}: not JSON: {exc}") from None
    return parse_docker_config(obj, where)


def sandbox_docker_auths(sandbox: Path) -> dict[str, dict[str, str]]:
    """Credentials a task fetched into its sandbox (empty when it fetched none);
    :class:`DockerConfigError` for one that is there but unusable."""
    for rel in SANDBOX_CONFIGS:
        path = sandbox / rel
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DockerConfigError(f"{rel} in the sandbox: {exc.strerror}") from None
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise DockerConfigError(f"{rel} in the sandbox is not JSON: {exc}") from None
        return parse_docker_config(obj, f"{rel} in the sandbox")
    return {}


def merge_auths(
    *configs: Mapping[str, dict[str, str]] | None,
) -> dict[str, dict[str, str]]:
    """Later configurations win for the registries they name."""
    out: dict[str, dict[str, str]] = {}
    for config in configs:
        out.update(config or {})
    return out


def auth_for_image(image: str, auths: Mapping[str, dict[str, str]] | None) -> dict[str, str] | None:
    """The ``auth_config`` for pulling ``image``, None without credentials for it."""
    if not auths:
        return None
    auth = auths.get(image_registry(image))
    return dict(auth) if auth is not None else None


def pull_arguments(
    image: str, auths: Mapping[str, dict[str, str]] | None
) -> tuple[str, dict[str, Any]]:
    """(repository, keyword arguments) for ``APIClient.pull``: the tag and, when the
    image's registry has credentials, ``auth_config``."""
    repo, tag = split_image(image)
    kwargs: dict[str, Any] = {"tag": tag, "stream": True, "decode": True}
    auth = auth_for_image(image, auths)
    if auth is not None:
        kwargs["auth_config"] = auth
    return repo, kwargs
