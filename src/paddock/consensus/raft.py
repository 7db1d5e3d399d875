"""The consensus core: a sans-IO Raft node (API skeleton; implementation follows).

Public API (stable; the shells and the simulator code against it):

    node = RaftNode(Config(id=1, peers=(1, 2, 3)), rng=random.Random(seed),
                    hard_state=..., snapshot=..., entries=[...])   # from storage
    node.tick()                      # one abstract clock tick
    node.step(msg)                   # a message from a peer
    node.propose(data) -> (index, term) | None
                                     # leader: appended at (index, term)
                                     # follower knowing a leader: forwarded, None
                                     # otherwise raises NotLeader
    node.read_index(request_id)      # linearizable read barrier -> ReadState in Ready
    node.campaign()                  # internal mode: start an election now;
                                     # external mode: the outside authority named us
    node.compact(index, data)        # app snapshot covering <= index; trims the log
    node.has_ready() / node.ready() / node.advance(ready)
    node.role, node.leader, node.term, node.commit, node.last_index, node.applied
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from paddock.consensus.types import Entry, HardState, Ready, Snapshot


@dataclass(frozen=True, slots=True)
class Config:
    id: int
    peers: tuple[int, ...]
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    external_election: bool = False
    pre_vote: bool = True
    check_quorum: bool = True
    max_append_entries: int = 1024
    max_inflight_appends: int = 64
    #: Test-only switch for proving the simulator catches bugs. Never set in production.
    bug: str = ""


class RaftNode:
    def __init__(
        self,
        config: Config,
        rng: random.Random,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
        applied: int = 0,
    ) -> None:
        raise NotImplementedError

    def has_ready(self) -> bool:
        raise NotImplementedError

    def ready(self) -> Ready:
        raise NotImplementedError

    def advance(self, ready: Ready) -> None:
        raise NotImplementedError
