"""The fetcher: ``command.uris`` into the sandbox before the command starts (Mesos's
``mesos-fetcher``, ``docs/fetcher.md``).

Each ``CommandInfo.URI`` is ``{"value", "executable"?, "extract"? (default true),
"cache"?, "output_file"?}``.  ``http``/``https`` are downloaded, ``file://`` URIs and
absolute paths copied.  The file lands in the sandbox under ``output_file`` or the URI's
base name; ``executable`` makes it mode 0755 (and is never extracted); otherwise archives
(``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``, ``.tar.xz``/``.txz``, ``.zip``)
are extracted into the sandbox.  Nothing may land outside the sandbox: ``..`` in
``output_file`` and archive members that escape are refused.  ``cache`` is accepted and
ignored (every fetch downloads).  Progress goes to the sandbox's ``stderr``, as Mesos's
fetcher writes there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

__all__ = ["FetchError", "fetch_uris"]

ARCHIVE_SUFFIXES = (
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tar.xz",
    ".txz",
    ".zip",
)


class FetchError(RuntimeError):
    """A URI could not be fetched; the message names it and why."""


def _inside(root: Path, relative: str, what: str) -> Path:
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or ".." in parts:
        raise FetchError(f"{what} {relative!r} would leave the sandbox")
    return root.joinpath(*parts)


def _log(sandbox: Path, line: str) -> None:
    with open(sandbox / "stderr", "a") as f:
        f.write(line + "\n")


async def fetch_uris(uris: Any, sandbox: Path, *, timeout: float = 300.0) -> list[Path]:
    """Fetch every URI into ``sandbox``; the paths written. Raises FetchError."""
    if not uris:
        return []
    if not isinstance(uris, list):
        raise FetchError("command.uris must be a list")
    sandbox.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
        for i, uri in enumerate(uris):
            if not isinstance(uri, dict) or not isinstance(uri.get("value"), str):
                raise FetchError(f"command.uris[{i}] needs a string 'value'")
            out.append(await _fetch_one(client, uri, sandbox))
    return out


async def _fetch_one(client: httpx.AsyncClient, uri: dict[str, Any], sandbox: Path) -> Path:
    value: str = uri["value"]
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    source_name = PurePosixPath(unquote(parts.path)).name
    name = uri.get("output_file") or source_name
    if not isinstance(name, str) or not name:
        raise FetchError(f"cannot name the file fetched from {value!r}: give output_file")
    dest = _inside(sandbox, name, "output_file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _log(sandbox, f"Fetching {value} to {dest}")
    if scheme in ("http", "https"):
        await _download(client, value, dest)
    elif scheme == "file" or (not scheme and value.startswith("/")):
        source = Path(unquote(parts.path) if scheme else value)
        try:
            await asyncio.to_thread(shutil.copyfile, source, dest)
        except OSError as exc:
            raise FetchError(f"cannot copy {value}: {exc.strerror or exc}") from None
    else:
        raise FetchError(f"unsupported URI {value!r} (http, https, file or an absolute path)")
    if uri.get("executable"):
        os.chmod(dest, 0o755)
    elif uri.get("extract", True) and dest.name.lower().endswith(ARCHIVE_SUFFIXES):
        await asyncio.to_thread(_extract, dest, sandbox)
        _log(sandbox, f"Extracted {dest.name} into {sandbox}")
    return dest


async def _download(client: httpx.AsyncClient, url: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".fetching")
    try:
        async with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise FetchError(f"GET {url}: HTTP {resp.status_code}")
            with open(tmp, "wb") as f:
                async for chunk in resp.aiter_bytes():
                    f.write(chunk)
        os.replace(tmp, dest)
    except httpx.HTTPError as exc:
        raise FetchError(f"GET {url}: {type(exc).__name__}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _extract(archive: Path, sandbox: Path) -> None:
    root = sandbox.resolve()
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    target = (root / member).resolve()
                    if target != root and root not in target.parents:
                        raise FetchError(f"{archive.name}: member {member!r} leaves the sandbox")
                z.extractall(root)
        else:
            with tarfile.open(archive) as t:
                # The "data" filter refuses absolute paths, "..", links out and devices.
                t.extractall(root, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"cannot extract {archive.name}: {exc}") from None
