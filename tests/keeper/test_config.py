"""zoo.cfg parsing: ZooKeeper's settings, clear errors naming the line."""

from __future__ import annotations

import pytest

from paddock.keeper.config import ConfigError, apply_environment, load_zoo_cfg, parse_zoo_cfg

ENSEMBLE = """\
# a comment
tickTime=100
initLimit=5
syncLimit=2
dataDir={data}
clientPort=2181
clientPortAddress=127.0.0.1
maxClientCnxns=10
4lw.commands.whitelist=ruok, srvr,mntr
jute.maxbuffer=2048
zookeeper.DigestAuthenticationProvider.superDigest=super:abc=
extendedTypesEnabled=true
autopurge.snapRetainCount=3
server.1=127.0.0.1:2888:3888
server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182
server.3=localhost:2890:3890;2183
"""


def test_full_ensemble_config(tmp_path):
    (tmp_path / "myid").write_text("2\n")
    cfg = parse_zoo_cfg(ENSEMBLE.format(data=tmp_path))
    assert cfg.my_id == 2
    assert cfg.tick_ms == 100
    assert (cfg.min_timeout, cfg.max_timeout) == (200, 2000)
    assert cfg.client_port == 2181 and cfg.client_host == "127.0.0.1"
    assert cfg.max_client_cnxns == 10
    assert cfg.four_letter_words == frozenset({"ruok", "srvr", "mntr"})
    assert cfg.jute_max_buffer == 2048
    assert cfg.super_digest == "super:abc="
    assert cfg.extended_types_enabled
    assert cfg.peers() == {1: ("127.0.0.1", 2888), 2: ("127.0.0.1", 2889), 3: ("localhost", 2890)}
    assert cfg.servers[2].client_port == 2182 and cfg.servers[3].client_port == 2183
    assert not cfg.standalone


def test_standalone_defaults(tmp_path):
    cfg = parse_zoo_cfg(f"dataDir={tmp_path}\nclientPort=3000\n")
    assert cfg.standalone and cfg.tick_ms == 2000 and cfg.max_client_cnxns == 60
    assert cfg.four_letter_words == frozenset({"srvr"})
    assert cfg.raft_tick <= 0.03  # failover well under a second


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tickTime=fast\n", "line 1: tickTime must be an integer"),
        ("clientPort=2181\nbogus=1\n", "line 2: unknown setting 'bogus'"),
        ("clientPort=99999\n", "line 1: clientPort: 99999 is not a port number"),
        ("server.1=host\n", "line 1: server.1 must be host:peerPort"),
        ("just some words\n", "line 1: expected key=value"),
        ("tickTime=1\ntickTime=2\n", "line 2: tickTime is already set on line 1"),
        ("4lw.commands.whitelist=ruok,nope\n", "unknown four-letter words"),
        ("admin.enableServer=maybe\n", "line 1: admin.enableServer must be true or false"),
    ],
)
def test_errors_name_the_line(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        parse_zoo_cfg(text)
    assert message in str(err.value)


def test_missing_myid_is_an_error(tmp_path):
    text = f"dataDir={tmp_path}\nserver.1=h:1:2\nserver.2=h:3:4\n"
    with pytest.raises(ConfigError, match="myid"):
        parse_zoo_cfg(text)
    (tmp_path / "myid").write_text("7")
    with pytest.raises(ConfigError, match=r"no server\.7 line"):
        parse_zoo_cfg(text)


def test_load_file_and_environment(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_text(f"dataDir={tmp_path}\nclientPort=2181\n4lw.commands.whitelist=*\n")
    cfg = load_zoo_cfg(path)
    assert "ruok" in cfg.four_letter_words and "mntr" in cfg.four_letter_words
    apply_environment(cfg, {"PADDOCK_KEEPER_TICK_MS": "50", "PADDOCK_KEEPER_SUPER_DIGEST": "s:x"})
    assert cfg.tick_ms == 50 and cfg.super_digest == "s:x"
    with pytest.raises(ConfigError, match="cannot read"):
        load_zoo_cfg(tmp_path / "absent.cfg")


def test_client_port_from_the_server_line(tmp_path):
    (tmp_path / "myid").write_text("2")
    cfg = parse_zoo_cfg(f"dataDir={tmp_path}\nserver.1=h:1:2;2181\nserver.2=h:3:4;127.0.0.2:2182\n")
    assert (cfg.client_host, cfg.client_port) == ("127.0.0.2", 2182)
