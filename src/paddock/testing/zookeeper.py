"""Real Apache ZooKeeper (Debian's 3.8 package) as a standalone server or ensemble.

Servers run ``QuorumPeerMain`` directly on the JVM (no zkServer.sh wrapper, so
the process we signal is the server itself), with every four-letter word
enabled, the admin server off, and logs going to ``serverN/server.log``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from paddock.testing.ensemble import HOST, Ensemble, Member

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
SLF4J_SIMPLE_JAR = Path("/usr/share/java/slf4j-simple.jar")
# Debian's zookeeper.jar manifest omits what Netty's TLS handler needs.
NETTY_EXTRA_JARS = (
    Path("/usr/share/java/netty-codec.jar"),
    Path("/usr/share/java/netty-resolver.jar"),
)
ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
CLI_MT = Path("/usr/lib/zookeeper/bin/cli_mt")

# JVM flags that shorten start-up (tests); the benchmark turns them off.
FAST_START_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")


def zookeeper_unavailable_reason() -> str | None:
    """Why real ZooKeeper cannot run here, or None if it can."""
    if shutil.which("java") is None:
        return "no java on PATH (apt-get install zookeeper, see scripts/debian-packages.txt)"
    if not ZOOKEEPER_JAR.exists():
        return f"{ZOOKEEPER_JAR} missing (apt-get install zookeeper)"
    return None


def super_digest_property(super_digest: str) -> str:
    """JVM property enabling the digest super user, e.g. ``super:D/InIHSb7yEEbrWz8b9l71RjZJU=``."""
    return f"-Dzookeeper.DigestAuthenticationProvider.superDigest={super_digest}"


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A throw-away CA, a server key+cert and a client key+cert (PEM), via openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "ca_key": directory / "ca-key.pem",
        "ca_cert": directory / "ca.pem",
        "server_key": directory / "server-key.pem",
        "server_cert": directory / "server-cert.pem",
        "server_pem": directory / "server.pem",
        "client_key": directory / "client-key.pem",
        "client_cert": directory / "client-cert.pem",
    }

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=paddock-ca",
        "-keyout", str(files["ca_key"]), "-out", str(files["ca_cert"]),
    )  # fmt: skip
    for who, cn in (("server", "localhost"), ("client", "client")):
        csr = directory / f"{who}.csr"
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
            "-keyout", str(files[f"{who}_key"]), "-out", str(csr),
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(files["ca_cert"]),
            "-CAkey", str(files["ca_key"]), "-CAcreateserial", "-days", "2",
            "-out", str(files[f"{who}_cert"]),
        )  # fmt: skip
    files["server_pem"].write_bytes(
        files["server_key"].read_bytes() + files["server_cert"].read_bytes()
    )
    return files


class ZooKeeperEnsemble(Ensemble):
    """``size`` Apache ZooKeeper servers on loopback (size 1 = standalone mode).

    With ``tls=True`` each server also has a TLS client port (``secure_port(i)``)
    that requires a client certificate signed by ``tls_files["ca_cert"]``.
    """

    kind = "zookeeper"
    ports_per_member = 3  # client, quorum, election (+ secure client with tls)

    def __init__(
        self,
        size: int = 1,
        *,
        tick_ms: int = 2000,
        init_limit: int = 10,
        sync_limit: int = 5,
        super_digest: str | None = None,
        extra_config: Sequence[str] = (),
        jvm_options: Sequence[str] = (),
        fast_start: bool = True,
        heap: str = "512m",
        log_level: str = "info",
        base_dir: str | Path | None = None,
        ready_timeout: float = 90.0,
        tls: bool = False,
    ) -> None:
        self.tls = tls
        if tls:
            self.ports_per_member = 4
        super().__init__(size=size, base_dir=base_dir, ready_timeout=ready_timeout)
        self.tls_files = make_tls_files(self.directory / "tls") if tls else {}
        self.tick_ms = tick_ms
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.super_digest = super_digest
        self.extra_config = list(extra_config)
        self.jvm_options = list(jvm_options)
        self.fast_start = fast_start
        self.heap = heap
        self.log_level = log_level

    def secure_port(self, i: int) -> int:
        """The TLS client port of member ``i`` (only with ``tls=True``)."""
        if not self.tls:
            raise ValueError("this ensemble was started without tls=True")
        return self.members[i].peer_ports[2]

    def config_path(self, member: Member) -> Path:
        return member.directory / "zoo.cfg"

    def prepare(self, member: Member) -> None:
        data = member.directory / "data"
        data.mkdir(exist_ok=True)
        (data / "myid").write_text(f"{member.server_id}\n")
        lines = [
            f"tickTime={self.tick_ms}",
            f"initLimit={self.init_limit}",
            f"syncLimit={self.sync_limit}",
            f"dataDir={data}",
            f"clientPort={member.client_port}",
            f"clientPortAddress={HOST}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
        ]
        if self.tls:
            lines += [
                f"secureClientPort={self.secure_port(member.index)}",
                f"secureClientPortAddress={HOST}",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={self.tls_files['server_pem']}",
                "ssl.keyStore.type=PEM",
                f"ssl.trustStore.location={self.tls_files['ca_cert']}",
                "ssl.trustStore.type=PEM",
            ]
        if self.size > 1:
            for peer in self.members:
                quorum, election = peer.peer_ports[:2]
                lines.append(f"server.{peer.server_id}={HOST}:{quorum}:{election}")
        lines.extend(self.extra_config)
        self.config_path(member).write_text("\n".join(lines) + "\n")

    def command(self, member: Member) -> list[str]:
        classpath = [str(ZOOKEEPER_JAR)]
        if SLF4J_SIMPLE_JAR.exists():
            classpath.append(str(SLF4J_SIMPLE_JAR))
        if self.tls:
            classpath += [str(jar) for jar in NETTY_EXTRA_JARS if jar.exists()]
        argv = [
            shutil.which("java") or "java",
            f"-Xmx{self.heap}",
            "-Dfile.encoding=UTF-8",
            "-Djava.net.preferIPv4Stack=true",
            "-Djava.awt.headless=true",
            f"-Dorg.slf4j.simpleLogger.defaultLogLevel={self.log_level}",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            f"-Dzookeeper.log.dir={member.directory}",
        ]
        if self.fast_start:
            argv.extend(FAST_START_FLAGS)
        if self.super_digest:
            argv.append(super_digest_property(self.super_digest))
        argv.extend(self.jvm_options)
        argv += ["-cp", os.pathsep.join(classpath)]
        argv += ["org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.config_path(member))]
        return argv
