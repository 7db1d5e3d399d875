"""``paddock status`` and ``paddock agent list``: the cluster as its parts see it.

Keepers are asked with the ``srvr`` four-letter word (mode: leader/follower), masters
through ``/master/state`` (a standby redirects to the leader), marathons through
``/v2/info``. Each part is probed on its own, so a half-broken cluster still reports
what does work.
"""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from paddock.cli.endpoints import (
    CliError,
    Endpoints,
    MarathonOpt,
    MasterOpt,
    OutputOpt,
    WorkDirOpt,
    ZkOpt,
    base_url,
    check_output,
    cli_errors,
    console,
    keeper_mode,
    master_state,
    print_json,
)


def collect_status(ep: Endpoints) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON; raises CliError only if nothing is known."""
    out: dict[str, Any] = {}
    data = ep.cluster_file() or {}
    try:
        keepers = ep.keepers()
    except CliError:
        keepers = []
    out["keepers"] = [{"address": k, "mode": keeper_mode(k) or "down"} for k in keepers]
    leaders = [k["address"] for k in out["keepers"] if k["mode"] in ("leader", "standalone")]
    out["keeper_leader"] = leaders[0] if leaders else None
    serving = sum(1 for k in out["keepers"] if k["mode"] != "down")
    out["keeper_quorum"] = bool(keepers) and serving > len(keepers) // 2

    masters = ep.master_urls()
    out["masters"] = []
    for m in masters:
        entry: dict[str, Any] = {"address": m.split("//", 1)[1], "up": False}
        try:
            r = httpx.get(m + "/metrics/snapshot", timeout=3)
            entry["up"] = r.status_code == 200
            entry["elected"] = bool(r.json().get("master/elected", 0)) if entry["up"] else False
        except (httpx.HTTPError, ValueError):
            pass
        out["masters"].append(entry)
    try:
        leader, state = master_state(masters)
        out["master_leader"] = leader.split("//", 1)[1]
        out["agents"] = [_agent_row(s) for s in state.get("slaves", [])]
        out["frameworks"] = [
            {
                "id": f.get("id"),
                "name": f.get("name"),
                "active": f.get("active"),
                "tasks": len(f.get("tasks", [])),
                "used": f.get("used_resources", {}),
            }
            for f in state.get("frameworks", [])
        ]
    except CliError as exc:
        out["master_leader"] = None
        out["master_error"] = str(exc)
        out["agents"] = []
        out["frameworks"] = []
    up_masters = sum(1 for m in out["masters"] if m["up"])
    out["master_quorum"] = up_masters > len(masters) // 2

    marathons = ep._candidates(ep.marathon, "PADDOCK_MARATHON", "marathons")
    out["marathons"] = []
    for m in marathons:
        named = marathon_leader(m)
        entry = {"address": m, "up": named is not None, "leader": named == m}
        out["marathons"].append(entry)
    if data.get("ui"):
        out["ui"] = data["ui"]
    return out


def marathon_leader(hostport: str) -> str | None:
    """The leader this marathon names ("" if none), None if it does not answer.

    ``/v2/leader`` is answered locally; ``/v2/info`` would be proxied to the leader."""
    try:
        r = httpx.get(base_url(hostport) + "/v2/leader", timeout=3)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return ""
    try:
        return str(r.json().get("leader", ""))
    except ValueError:
        return ""


def _agent_row(s: dict[str, Any]) -> dict[str, Any]:
    total = s.get("resources", {})
    used = s.get("used_resources", {})
    return {
        "id": s.get("id"),
        "hostname": s.get("hostname"),
        "port": s.get("port"),
        "active": s.get("active"),
        "attributes": s.get("attributes", {}),
        "resources": total,
        "used": used,
        "free": {
            k: round(float(total.get(k, 0)) - float(used.get(k, 0)), 3)
            for k in ("cpus", "mem", "disk")
            if isinstance(total.get(k, 0), int | float)
        },
    }


def _res(d: dict[str, Any]) -> str:
    return f"cpus {d.get('cpus', 0):g}  mem {d.get('mem', 0):g}  disk {d.get('disk', 0):g}"


def agents_table(agents: list[dict[str, Any]]) -> Table:
    t = Table("agent", "hostname:port", "active", "free", "used", "attributes", box=None)
    for a in agents:
        attrs = ",".join(f"{k}:{v}" for k, v in sorted(a["attributes"].items()))
        t.add_row(
            str(a["id"]),
            f"{a['hostname']}:{a['port']}",
            "yes" if a["active"] else "no",
            _res(a["free"]),
            _res(a["used"]),
            attrs,
        )
    return t


@cli_errors
def status(
    marathon: MarathonOpt = None,
    master: MasterOpt = None,
    zk: ZkOpt = None,
    work_dir: WorkDirOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Keeper and master quorum and leaders, agents with free/used resources, frameworks."""
    check_output(output)
    st = collect_status(Endpoints(marathon, master, zk, work_dir))
    if output == "json":
        print_json(st)
        return
    if not any(m["up"] for m in st["masters"]) and not any(
        k["mode"] != "down" for k in st["keepers"]
    ):
        raise CliError("the cluster is not running (no keeper or master answers)")
    c = console()
    k_ok = "[green]quorum[/]" if st["keeper_quorum"] else "[red]NO QUORUM[/]"
    c.print(f"[bold]keepers[/]  {k_ok}  leader {st['keeper_leader'] or '-'}")
    for k in st["keepers"]:
        c.print(f"  {k['address']:<22} {k['mode']}")
    m_ok = "[green]quorum[/]" if st["master_quorum"] else "[red]NO QUORUM[/]"
    c.print(f"[bold]masters[/]  {m_ok}  leader {st['master_leader'] or '-'}")
    for m in st["masters"]:
        role = "down" if not m["up"] else ("leader" if m.get("elected") else "standby")
        c.print(f"  {m['address']:<22} {role}")
    if st.get("master_error"):
        c.print(f"  [red]{st['master_error']}[/]")
    c.print(f"[bold]agents[/]  {sum(1 for a in st['agents'] if a['active'])} active")
    if st["agents"]:
        c.print(agents_table(st["agents"]))
    c.print(f"[bold]frameworks[/]  {len(st['frameworks'])}")
    for f in st["frameworks"]:
        state = "active" if f["active"] else "inactive"
        c.print(f"  {f['name']:<12} {f['id']}  {state}  {f['tasks']} tasks  {_res(f['used'])}")
    leader = [m["address"] for m in st["marathons"] if m["leader"]]
    c.print(f"[bold]marathon[/]  leader {leader[0] if leader else '-'}")
    for m in st["marathons"]:
        role = "down" if not m["up"] else ("leader" if m["leader"] else "standby")
        c.print(f"  {m['address']:<22} {role}")
    if st.get("ui"):
        c.print(f"[bold]ui[/]  {st['ui']}")


agent_app = typer.Typer(help="Agents as the leading master sees them.", no_args_is_help=True)


@agent_app.command("list")
@cli_errors
def agent_list(
    master: MasterOpt = None, work_dir: WorkDirOpt = None, output: OutputOpt = "table"
) -> None:
    """Agents with free/used resources and attributes."""
    check_output(output)
    _, state = master_state(Endpoints(master=master, work_dir=work_dir).master_urls())
    rows = [_agent_row(s) for s in state.get("slaves", [])]
    if output == "json":
        print_json(rows)
    else:
        console().print(agents_table(rows))
