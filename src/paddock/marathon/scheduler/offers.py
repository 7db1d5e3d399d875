"""Offers: match the launch queue against each OFFERS event and launch.

Instances of one app are spread round-robin over the event's offers (one instance per
offer per round) rather than filling the first offer: with hundreds of instances and a
few large agents, first-fit put all of them on two or three agents, each of which then
spawned its share one after another while the others idled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from paddock.marathon.models import (
    AppDefinition,
)
from paddock.marathon.scheduler.core_base import CoreBase, log
from paddock.marathon.scheduler.instances import (
    Instance,
    TrackedTask,
)
from paddock.marathon.scheduler.matcher import Match, Offer, Placement, consume, match_offer
from paddock.marathon.scheduler.taskinfo import build_task_info, new_task_id


class OfferHandling(CoreBase):
    """The offer half of the scheduler core (see the module docstring)."""

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        now = self.monotonic()
        now_iso = self.clock()
        launches: list[tuple[dict[str, Any], list[dict[str, Any]], list[Instance]]] = []
        declines: list[dict[str, Any]] = []
        with self._lock:
            entries = self.queue_state.launchable(now) if self.acting else []
            # Where each app's instances are (for constraints), built once per event and
            # extended as instances are placed: not rebuilt for every launch.
            placements: dict[str, list[Placement]] = {}
            for entry in entries:
                entry.summary.new_round()
                placements[entry.app.id] = (
                    self._placements(entry.app.id) if entry.app.constraints else []
                )
            parsed: list[tuple[dict[str, Any], Offer, list[dict[str, Any]], list[Instance]]] = []
            for raw in offers:
                try:
                    parsed.append((raw, Offer.from_json(raw), [], []))
                except (KeyError, TypeError, ValueError):
                    log.warning("ignoring a malformed offer: %r", raw)
            for entry in entries:
                # Round-robin: one instance per offer per round, until the app has all
                # it wants or no offer fits another one.
                open_offers = list(parsed)
                while entry.count > 0 and open_offers:
                    for slot in list(open_offers):
                        if entry.count <= 0:
                            break
                        _raw, offer, infos, new = slot
                        placed = placements[entry.app.id]
                        result = match_offer(
                            entry.app, offer, placed, self.rng, default_role=self.role
                        )
                        entry.summary.record(offer, result, now_iso)
                        if not isinstance(result, Match):
                            open_offers.remove(slot)
                            continue
                        consume(offer, result)
                        inst = self._new_instance(entry.app, offer, result, now, now_iso)
                        infos.append(
                            build_task_info(
                                entry.app, inst.task.id, offer.agent_id, result.ports, result.role
                            )
                        )
                        new.append(inst)
                        entry.count -= 1
                        if entry.app.constraints:
                            placed.append(Placement(offer.hostname, dict(offer.attributes)))
            for raw, _offer, infos, new in parsed:
                if infos:
                    launches.append((raw["id"], infos, new))
                else:
                    declines.append(raw["id"])
            queued = bool(self.queue_state.entries) or bool(self._plans)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "offers from %s: launching %s, declining %d (wanted %s)",
                    sorted(str(o.get("hostname")) for o in offers),
                    [len(infos) for _, infos, _ in launches],
                    len(declines),
                    {e.app.id: e.count for e in entries},
                )
        if launches:
            # Write the instances before launching: a marathon that dies right after an
            # ACCEPT still knows these tasks when its successor reconciles (no orphans).
            # One batch for all offers, then the ACCEPTs (one per offer) concurrently.
            tasks = [i.task for _, _, new in launches for i in new]
            await asyncio.to_thread(self.store.put_instances, tasks)
            statuses = await asyncio.gather(
                *(self._accept(offer_id, infos) for offer_id, infos, _ in launches)
            )
            refused: list[Instance] = []
            for (_, _, new), status in zip(launches, statuses, strict=True):
                if status != 202:
                    log.warning("launch of %d tasks not accepted (HTTP %s)", len(new), status)
                    refused += new
                else:
                    for inst in new:
                        self._publish_status(inst, "TASK_STAGING", "")
            if refused:
                with self._lock:
                    for inst in refused:
                        self._remove(inst.task.id)
                await asyncio.to_thread(self.store.delete_instances, [i.task for i in refused])
        if declines:
            refuse = 1.0 if queued else 5.0
            await self._call(
                "DECLINE", {"offer_ids": declines, "filters": {"refuse_seconds": refuse}}
            )
        self.poke()

    async def _accept(self, offer_id: dict[str, Any], infos: list[dict[str, Any]]) -> int:
        """One ACCEPT with one LAUNCH of all of an offer's tasks; the HTTP status."""
        if not self.acting:
            return 0
        return await self._call(
            "ACCEPT",
            {
                "offer_ids": [offer_id],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}],
                "filters": {"refuse_seconds": 1.0},
            },
        )

    def _placements(self, app_id: str) -> list[Placement]:
        return [
            Placement(self._instances[t].task.host, self._instances[t].attributes)
            for t in self._by_app.get(app_id, ())
            if not self._instances[t].killing
        ]

    def _new_instance(
        self, app: AppDefinition, offer: Offer, match: Match, now: float, now_iso: str
    ) -> Instance:
        task_id = new_task_id(app.id, self.rng)
        service_ports = [p.port for p in app.port_definitions or []]
        if app.container and app.container.port_mappings:
            service_ports = [m.service_port for m in app.container.port_mappings]
        task = TrackedTask(
            id=task_id,
            app_id=app.id,
            host=offer.hostname,
            slave_id=offer.agent_id,
            ports=list(match.ports),
            service_ports=service_ports,
            staged_at=now_iso,
            version=app.version or "",
            state="TASK_STAGING",
            ip_addresses=[],
            role=match.role,
        )
        inst = Instance(task, offer.agent_id, dict(offer.attributes), launched_mono=now)
        self._add(inst)
        return inst
