"""Keeper settings, from command-line options or a ZooKeeper ``zoo.cfg``.

Why zoo.cfg: operators (and kazoo's test harness) configure ZooKeeper with it,
so keeper reads the same file. Settings keeper has no use for but that are
legal ZooKeeper settings are accepted and ignored (listed in ``_IGNORED``);
anything else is an error naming the line, because a misspelt setting that is
silently ignored is worse than a refusal to start.

``server.N=host:peer:election[:role][;[clientAddr:]clientPort]``: the *peer*
port is keeper's consensus port; the election port is accepted and unused
(Raft elects over the same connection).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TICK_MS = 2000
DEFAULT_MAX_CLIENT_CNXNS = 60
DEFAULT_JUTE_MAXBUFFER = 0xFFFFF
DEFAULT_4LW_WHITELIST = frozenset({"srvr"})
ALL_4LW = frozenset(
    {
        "conf",
        "cons",
        "crst",
        "dirs",
        "dump",
        "envi",
        "gtmk",
        "ruok",
        "stmk",
        "srvr",
        "srst",
        "stat",
        "wchc",
        "wchp",
        "wchs",
        "mntr",
        "isro",
        "hash",
    }
)


class ConfigError(ValueError):
    """A setting is unknown, malformed or inconsistent."""


@dataclass(frozen=True)
class ServerSpec:
    """One ``server.N`` line."""

    id: int
    host: str
    peer_port: int
    election_port: int = 0
    role: str = "participant"
    client_host: str | None = None
    client_port: int | None = None


@dataclass
class KeeperConfig:
    my_id: int = 1
    tick_ms: int = DEFAULT_TICK_MS
    init_limit: int = 10
    sync_limit: int = 5
    data_dir: Path = Path("data")
    data_log_dir: Path | None = None
    client_port: int = 2181
    client_host: str = "0.0.0.0"
    max_client_cnxns: int = DEFAULT_MAX_CLIENT_CNXNS
    min_session_timeout: int = 0  # 0: 2 x tickTime
    max_session_timeout: int = 0  # 0: 20 x tickTime
    servers: dict[int, ServerSpec] = field(default_factory=dict)
    four_letter_words: frozenset[str] = DEFAULT_4LW_WHITELIST
    admin_enable_server: bool = False
    jute_max_buffer: int = DEFAULT_JUTE_MAXBUFFER
    super_digest: str | None = None
    extended_types_enabled: bool = False
    #: Log entries between state snapshots (zoo.cfg ``snapCount``).
    snapshot_every: int = 50_000
    #: Raft tick in seconds; default derived from tickTime (see ``raft_tick``).
    raft_tick_s: float | None = None
    #: Prometheus ``/metrics`` listener (zoo.cfg ``metricsProvider.httpPort``); 0: none.
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"
    #: Where the parsed settings came from (for ``conf`` and error messages).
    source: str = "command line"

    @property
    def min_timeout(self) -> int:
        return self.min_session_timeout or 2 * self.tick_ms

    @property
    def max_timeout(self) -> int:
        return self.max_session_timeout or 20 * self.tick_ms

    @property
    def standalone(self) -> bool:
        return len(self.servers) <= 1

    @property
    def raft_tick(self) -> float:
        """Raft tick: fast enough that failover (10-20 ticks) is well under a
        second, independent of the (much coarser) session tickTime."""
        if self.raft_tick_s is not None:
            return self.raft_tick_s
        return min(0.03, max(0.005, self.tick_ms / 1000.0 / 20))

    def peers(self) -> dict[int, tuple[str, int]]:
        return {sid: (s.host, s.peer_port) for sid, s in self.servers.items()}

    def validate(self) -> None:
        if self.tick_ms <= 0:
            raise ConfigError(f"tickTime must be positive, not {self.tick_ms}")
        if not 0 <= self.client_port <= 65535:
            raise ConfigError(f"clientPort {self.client_port} is not a port number")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics port {self.metrics_port} is not a port number")
        if self.max_client_cnxns < 0:
            raise ConfigError("maxClientCnxns must be >= 0 (0 = unlimited)")
        if self.jute_max_buffer <= 0:
            raise ConfigError("jute.maxbuffer must be positive")
        if self.min_timeout > self.max_timeout:
            raise ConfigError("minSessionTimeout is larger than maxSessionTimeout")
        if self.servers and self.my_id not in self.servers:
            raise ConfigError(
                f"this server's id {self.my_id} has no server.{self.my_id} line "
                f"(servers: {sorted(self.servers)})"
            )
        unknown = self.four_letter_words - ALL_4LW
        if unknown:
            raise ConfigError(f"unknown four-letter words in whitelist: {sorted(unknown)}")
        if self.super_digest is not None and ":" not in self.super_digest:
            raise ConfigError("superDigest must look like user:base64(sha1(user:password))")


#: Legal ZooKeeper settings that keeper accepts and ignores.
_IGNORED = frozenset(
    {
        "autopurge.snapRetainCount",
        "autopurge.purgeInterval",
        "standaloneEnabled",
        "reconfigEnabled",
        "dynamicConfigFile",
        "admin.serverPort",
        "admin.serverAddress",
        "admin.idleTimeout",
        "admin.commandURL",
        "preAllocSize",
        "snapSizeLimitInKb",
        "globalOutstandingLimit",
        "leaderServes",
        "electionAlg",
        "quorumListenOnAllIPs",
        "syncEnabled",
        "secureClientPort",
        "secureClientPortAddress",
        "serverCnxnFactory",
        "clientCnxnSocket",
        "authProvider.1",
        "authProvider.2",
        "authProvider.3",
        "metricsProvider.className",
        "metricsProvider.exportJvmInfo",
        "localSessionsEnabled",
        "localSessionsUpgradingEnabled",
        "forceSync",
        "fsync.warningthresholdms",
        "maxCnxns",
        "connectToLearnerMasterLimit",
        "cnxTimeout",
        "initLimit",
        "syncLimit",
        "peerType",
        "zookeeper.snapshot.trust.empty",
        "audit.enable",
        "sslQuorum",
        "portUnification",
        "skipACL",
        "requireClientAuthScheme",
        "enforce.auth.enabled",
        "enforce.auth.schemes",
        "ssl.keyStore.location",
        "ssl.keyStore.password",
        "ssl.trustStore.location",
        "ssl.trustStore.password",
        "ssl.quorum.keyStore.location",
        "ssl.quorum.keyStore.password",
        "ssl.quorum.trustStore.location",
        "ssl.quorum.trustStore.password",
        "ssl.clientAuth",
        "ssl.hostnameVerification",
        "jvm.flags",
        "quorum.auth.enableSasl",
        "quorum.auth.learnerRequireSasl",
        "quorum.auth.serverRequireSasl",
        "zookeeper.skipACL",
        "admin.portUnification",
        "multiAddress.enabled",
        "zookeeper.extendedTypesEnabled.ttl",
    }
)


def _int(key: str, value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{where}: {key} must be an integer, not {value!r}") from None


def _bool(key: str, value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")


def _port(key: str, value: str, where: str) -> int:
    p = _int(key, value, where)
    if not 0 < p <= 65535:
        raise ConfigError(f"{where}: {key}: {p} is not a port number")
    return p


def parse_server_line(sid: int, value: str, where: str) -> ServerSpec:
    """``host:peer:election[:role][;[clientAddr:]clientPort]``."""
    addr, _, client = value.partition(";")
    parts = addr.strip().split(":")
    if len(parts) < 2 or len(parts) > 4 or not parts[0]:
        raise ConfigError(
            f"{where}: server.{sid} must be host:peerPort:electionPort[:role][;clientPort], "
            f"not {value!r}"
        )
    host = parts[0]
    peer = _port(f"server.{sid} peer port", parts[1], where)
    election = _port(f"server.{sid} election port", parts[2], where) if len(parts) > 2 else 0
    role = parts[3] if len(parts) > 3 else "participant"
    if role not in ("participant", "observer"):
        raise ConfigError(f"{where}: server.{sid} role must be participant or observer")
    client_host: str | None = None
    client_port: int | None = None
    client = client.strip()
    if client:
        if ":" in client:
            client_host, _, cp = client.rpartition(":")
        else:
            cp = client
        client_port = _port(f"server.{sid} client port", cp, where)
    return ServerSpec(sid, host, peer, election, role, client_host, client_port)


def parse_zoo_cfg(text: str, source: str = "zoo.cfg") -> KeeperConfig:
    """Parse zoo.cfg text (Java properties: ``key=value``, ``#``/``!`` comments)."""
    cfg = KeeperConfig(source=source)
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        where = f"{source} line {lineno}"
        if "=" not in line:
            raise ConfigError(f"{where}: expected key=value, got {line!r}")
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key in seen:
            raise ConfigError(f"{where}: {key} is already set on line {seen[key]}")
        seen[key] = lineno
        if key == "tickTime":
            cfg.tick_ms = _int(key, value, where)
        elif key == "initLimit":
            cfg.init_limit = _int(key, value, where)
        elif key == "syncLimit":
            cfg.sync_limit = _int(key, value, where)
        elif key == "dataDir":
            cfg.data_dir = Path(value)
        elif key == "dataLogDir":
            cfg.data_log_dir = Path(value)
        elif key == "clientPort":
            cfg.client_port = _port(key, value, where)
        elif key == "clientPortAddress":
            cfg.client_host = value
        elif key == "maxClientCnxns":
            cfg.max_client_cnxns = _int(key, value, where)
        elif key == "minSessionTimeout":
            cfg.min_session_timeout = _int(key, value, where)
        elif key == "maxSessionTimeout":
            cfg.max_session_timeout = _int(key, value, where)
        elif key == "4lw.commands.whitelist":
            words = {w.strip() for w in value.split(",") if w.strip()}
            cfg.four_letter_words = frozenset(ALL_4LW if "*" in words else words)
        elif key == "admin.enableServer":
            cfg.admin_enable_server = _bool(key, value, where)
        elif key in ("jute.maxbuffer", "zookeeper.jute.maxbuffer"):
            cfg.jute_max_buffer = _int(key, value, where)
        elif key in ("superDigest", "zookeeper.DigestAuthenticationProvider.superDigest"):
            cfg.super_digest = value
        elif key in ("extendedTypesEnabled", "zookeeper.extendedTypesEnabled"):
            cfg.extended_types_enabled = _bool(key, value, where)
        elif key == "snapCount":
            cfg.snapshot_every = _int(key, value, where)
            if cfg.snapshot_every < 1:
                raise ConfigError(f"{where}: snapCount must be positive")
        elif key == "metricsProvider.httpPort":
            cfg.metrics_port = _port(key, value, where)
        elif key == "metricsProvider.httpHost":
            cfg.metrics_host = value
        elif key == "myid":
            cfg.my_id = _int(key, value, where)
        elif key.startswith("server."):
            sid = _int("server id", key[len("server.") :], where)
            if sid < 1:
                raise ConfigError(f"{where}: server ids start at 1")
            cfg.servers[sid] = parse_server_line(sid, value, where)
        elif key.startswith("group.") or key.startswith("weight."):
            raise ConfigError(f"{where}: hierarchical quorums ({key}) are not supported")
        elif key in _IGNORED or key.startswith(("ssl.", "zookeeper.ssl", "quorum.")):
            continue
        else:
            raise ConfigError(f"{where}: unknown setting {key!r}")
    if cfg.servers and "myid" not in seen:
        myid_file = cfg.data_dir / "myid"
        try:
            cfg.my_id = int(myid_file.read_text().strip())
        except FileNotFoundError:
            raise ConfigError(
                f"{source}: {len(cfg.servers)} servers are configured but {myid_file} is missing"
            ) from None
        except ValueError:
            raise ConfigError(f"{myid_file}: must hold this server's id as a number") from None
    elif len(cfg.servers) == 1:
        cfg.my_id = next(iter(cfg.servers))
    mine = cfg.servers.get(cfg.my_id)
    if mine is not None and mine.client_port and "clientPort" not in seen:
        # ZooKeeper 3.5+: the client address may be given on the server line only.
        cfg.client_port = mine.client_port
        if mine.client_host and "clientPortAddress" not in seen:
            cfg.client_host = mine.client_host
    cfg.validate()
    return cfg


def load_zoo_cfg(path: str | Path) -> KeeperConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
    return parse_zoo_cfg(text, str(p))


def apply_environment(cfg: KeeperConfig, env: dict[str, str] | None = None) -> None:
    """Optional settings the test harness passes as environment variables."""
    env = dict(os.environ) if env is None else env
    tick = env.get("PADDOCK_KEEPER_TICK_MS")
    if tick:
        cfg.tick_ms = _int("PADDOCK_KEEPER_TICK_MS", tick, "environment")
    digest = env.get("PADDOCK_KEEPER_SUPER_DIGEST")
    if digest:
        cfg.super_digest = digest
    words = env.get("PADDOCK_KEEPER_4LW")
    if words:
        cfg.four_letter_words = frozenset(w.strip() for w in words.split(",") if w.strip())
