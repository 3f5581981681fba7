"""The EMQX variant without an EMQX (no container engine on this machine kind): the users file
and acl.conf `ioc devices provision --broker emqx` writes for a small fleet, read with EMQX's
documented semantics (PBKDF2 hex of the password and the salt text; rules first-match, a
``$share/<group>/<filter>`` subscription checked as ``<filter>``); the printable salts those
files need, against the real Mosquitto; and deploy/emqx's compose override, config and balancer
as documents and through ``docker-compose config`` where it exists."""

from __future__ import annotations

import base64
import csv
import hashlib
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices.kinds import Kind
from devices.topics import Topics
from ioc.brokers import free_port, wait_for_port
from ioc.cli_certs import DEFAULT_FOLDER as CERTS_FOLDER
from ioc.cli_devices import EMQX_FOLDER
from ioc.provision import (
    HASH_ITERATIONS,
    BrokerLayout,
    hash_matches,
    mosquitto_hash,
    portable,
    provision,
    read_passwd,
)
from ioc.provision_emqx import ACL, USERS, write_emqx
from ioc.secrets import deployment_secrets, mqtt_secret
from tests.support.compose import COMPOSE, ROOT, SECRET_PATH
from tests.support.environment import clean_environ, inherited_environ

TOPICS = Topics()
FLEET = [(Kind.BTS, "BTS-A"), (Kind.BTS, "BTS-B"), (Kind.CAMERA, "CAM-1")]
OVERRIDE_PATH = ROOT / "deploy/emqx/docker-compose.emqx.yml"
OVERRIDE: dict[str, Any] = yaml.safe_load(OVERRIDE_PATH.read_text(encoding="utf-8"))
EMQX_CONF = (ROOT / "deploy/emqx/emqx.conf").read_text(encoding="utf-8")
HAPROXY = (ROOT / "deploy/emqx/haproxy.cfg").read_text(encoding="utf-8")
RULE = re.compile(r'^\{(allow|deny), \{username, "([^"]+)"\}, (publish|subscribe), \[(.*)\]\}\.$')


def ioc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ioc", *args], env=clean_environ(), cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ioc devices provision --broker emqx`` for FLEET: its folder (secrets beside it)."""
    folder = tmp_path_factory.mktemp("emqx")
    inventory = folder / "devices.csv"
    inventory.write_text("kind,device_id\n" + "".join(f"{k.value},{d}\n" for k, d in FLEET))
    done = ioc("devices", "provision", "--broker", "emqx", "--out", str(folder / "broker"),
               "--devices", str(inventory), "--secrets", str(folder / "secrets"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


def _users(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / USERS).open(encoding="utf-8", newline="") as f:
        return {row["user_id"]: row for row in csv.DictReader(f)}


def _emqx_checks(row: dict[str, str], password: str) -> bool:
    """What EMQX computes for ``pbkdf2``, mac_fun sha512: hex(PBKDF2(password, salt text))."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), row["salt"].encode(),
                                 HASH_ITERATIONS)  # fmt: skip
    return digest.hex() == row["password_hash"]


def test_every_account_is_an_emqx_user_whose_hash_checks_its_password(fleet: Path) -> None:
    broker = fleet / "broker"
    users = _users(broker)
    assert set(users) == set(read_passwd(broker / "passwd"))
    assert {d for _, d in FLEET} | {"ioc-ingest-1", "ioc-ingest-2", "ioc-alerts"} <= set(users)
    assert not (broker / "mosquitto.conf").exists() and not (broker / "acl").exists()
    assert oct((broker / USERS).stat().st_mode & 0o777) == "0o600"
    with (broker / "credentials.csv").open(encoding="utf-8", newline="") as f:
        handed_out = {r["username"]: r["password"] for r in csv.DictReader(f)}
    services = {u: (fleet / "secrets" / mqtt_secret(u)).read_text() for u in users if
                u.startswith("ioc-")}  # fmt: skip
    for name, password in (handed_out | services).items():
        assert _emqx_checks(users[name], password), name
        assert not _emqx_checks(users[name], password + "x"), name
        assert users[name]["is_superuser"] == "false"
    assert len({r["salt"] for r in users.values()}) == len(users)


def _rules(folder: Path) -> list[tuple[str, str, str, list[str]]]:
    lines = [ln for ln in (folder / ACL).read_text().splitlines() if ln and
             not ln.startswith("%%")]  # fmt: skip
    assert lines[-1] == "{deny, all}.", "the file must end denying what it did not grant"
    rules = []
    for line in lines[:-1]:
        match = RULE.match(line)
        assert match, f"not a rule for one username: {line}"
        topics = [t.strip().strip('"') for t in match[4].split(",")]
        rules.append((match[1], match[2], match[3], topics))
    return rules


def _matches(topic: str, topic_filter: str) -> bool:
    """emqx_topic:match(Name, Filter) as EMQX's authorization uses it: a subscribed filter's
    own ``+`` or ``#`` is matched only by the same word or a wildcard of the rule."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    words, rule = topic.split("/"), topic_filter.split("/")
    while rule != ["#"]:
        if not words or not rule:
            return not words and not rule
        if rule[0] not in (words[0], "+"):
            return False
        words, rule = words[1:], rule[1:]
    return True


def _allowed(rules: list[tuple[str, str, str, list[str]]], user: str, action: str,
             topic: str) -> bool:  # fmt: skip
    if action == "subscribe" and topic.startswith("$share/"):
        topic = topic.split("/", 2)[2]  # EMQX authorizes the filter after $share/<group>/
    for permission, who, act, topics in rules:
        if who == user and act == action and any(_matches(topic, t) for t in topics):
            return permission == "allow"
    return False  # the final {deny, all}


def test_each_device_publishes_under_its_own_id_only_and_ingesters_read_the_share(
    fleet: Path,
) -> None:
    rules = _rules(fleet / "broker")
    assert all(permission == "allow" for permission, *_ in rules)
    for kind, device in FLEET:
        own = [(act, topics) for _, who, act, topics in rules if who == device]
        assert own == [("publish", [TOPICS.device_tree(kind, device)]),
                       ("subscribe", [TOPICS.commands(kind, device)])]  # fmt: skip
        for topic in own[0][1] + own[1][1]:  # no wildcard but the end of its own subtree
            assert "+" not in topic and topic.count("#") == 1 and device in topic.split("/")
        telemetry = f"ioc/v1/{kind.value}/{device}/telemetry"
        assert _allowed(rules, device, "publish", telemetry)
        for other_kind, other in FLEET:
            if other != device:
                stolen = f"ioc/v1/{other_kind.value}/{other}/telemetry"
                assert not _allowed(rules, device, "publish", stolen)
        assert not _allowed(rules, device, "publish", f"ioc/v1/probe/{device}/measurements")
        assert not _allowed(rules, device, "subscribe", "ioc/v1/#")
        assert not _allowed(rules, device, "subscribe", "$share/ioc-ingest/ioc/v1/#")
        assert not _allowed(rules, device, "publish", "ioc/v1/alerts/x")
    for ingester in ("ioc-ingest-1", "ioc-ingest-2"):
        assert _allowed(rules, ingester, "subscribe", "$share/ioc-ingest/ioc/v1/#")
        assert not _allowed(rules, ingester, "publish", "ioc/v1/bts/BTS-A/telemetry")
        assert not _allowed(rules, ingester, "subscribe", "#")
    assert _allowed(rules, "ioc-alerts", "publish", "ioc/v1/alerts/coverage/x")
    assert not _allowed(rules, "ioc-healthcheck", "subscribe", "ioc/v1/#")
    assert not _allowed(rules, "somebody", "publish", "ioc/v1/bts/BTS-A/telemetry")


def test_older_binary_salts_get_printable_ones_where_the_password_is_known(
    tmp_path: Path,
) -> None:
    layout = BrokerLayout(folder=str(tmp_path), data_dir=str(tmp_path / "data"))
    chosen = secrets.token_urlsafe(32)
    first = provision(tmp_path, FLEET, layout, passwords={"ioc-alerts": chosen})
    with first.credentials.open(encoding="utf-8", newline="") as f:
        bts_a = next(r["password"] for r in csv.DictReader(f) if r["username"] == "BTS-A")
    salt = bytes(range(250, 256)) + b"\x00,\n\"'$"  # as mosquitto_passwd's: any 12 bytes
    old = read_passwd(first.passwd)
    old |= {"ioc-alerts": mosquitto_hash(chosen, salt=salt),
            "BTS-A": mosquitto_hash(bts_a, salt=salt),
            "CAM-1": mosquitto_hash("lost", salt=salt)}  # fmt: skip
    first.passwd.write_text("".join(f"{u}:{h}\n" for u, h in old.items()))
    again = provision(tmp_path, FLEET, layout, passwords={"ioc-alerts": chosen})
    new = read_passwd(again.passwd)
    assert portable(new["ioc-alerts"]) and hash_matches(new["ioc-alerts"], chosen)
    assert portable(new["BTS-A"]) and hash_matches(new["BTS-A"], bts_a)
    assert new["CAM-1"] == old["CAM-1"] and not portable(new["CAM-1"])  # no password here
    assert again.created == []  # nobody was handed a new password
    with pytest.raises(ValueError, match=r"1 accounts .*CAM-1.*--rotate"):
        write_emqx(tmp_path, again.accounts, again.hashes)


def test_mosquitto_takes_the_printable_salted_hashes() -> None:
    """The same passwd serves Mosquitto: a login with the password, and not without it."""
    encoded = mosquitto_hash("pa55-word")
    assert portable(encoded) and len(base64.b64decode(encoded.split("$")[3])) == 12
    # Not under pytest's 0700 tmp_path: a broker started as root drops to its own user.
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        folder.chmod(0o755)
        (folder / "passwd").write_text(f"dev1:{encoded}\n")
        (folder / "passwd").chmod(0o644)
        port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                        f"password_file {folder / 'passwd'}\n")  # fmt: skip
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            wait_for_port(port, proc=broker)

            def login(password: str) -> int:
                return subprocess.run(["mosquitto_sub", "-p", str(port), "-u", "dev1", "-P",
                                       password, "-t", "x", "-E"], capture_output=True,
                                      timeout=30, check=False).returncode  # fmt: skip

            assert login("pa55-word") == 0
            assert login("pa55-wordx") != 0
        finally:
            broker.terminate()
            broker.wait(timeout=10)


def _conf(key: str) -> str:
    found: list[str] = re.findall(rf"^\s*{re.escape(key)}\s*=\s*(.+?)\s*$", EMQX_CONF, re.M)
    assert len(found) == 1, f"{key}: {found}"
    return found[0].strip('"')


def test_emqx_conf_checks_the_hashes_and_reads_the_files_provision_writes() -> None:
    node = OVERRIDE["services"]["emqx1"]
    # source → where the node sees it
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in node["volumes"] if
                  v.startswith("./"))  # fmt: skip
    folder = mounts[f"./{EMQX_FOLDER}"]
    algorithm = (_conf("name"), _conf("mac_fun"), _conf("iterations"))
    assert algorithm == ("pbkdf2", "sha512", str(HASH_ITERATIONS))
    assert _conf("bootstrap_type") == "hash" and _conf("user_id_type") == "username"
    assert _conf("bootstrap_file") == f"{folder}/{USERS}"
    assert _conf("path") == f"{folder}/{ACL}" and _conf("no_match") == "deny"
    assert _conf("use_username_as_clientid") == "true"
    assert _conf("proxy_protocol") == "true" and "send-proxy-v2" in HAPROXY
    assert int(_conf("max_mqueue_len")) > 1000 and int(_conf("max_inflight")) >= 1000
    certs = mounts[f"./{CERTS_FOLDER}"]
    for name in ("cacertfile", "certfile", "keyfile"):
        assert _conf(name).startswith(f"{certs}/"), name
    assert mounts["./deploy/emqx/emqx.conf"] == "/opt/emqx/etc/emqx.conf"
    for plain in ("tcp", "ws", "wss"):  # TLS only, as the Mosquitto variant
        assert _conf(f"listeners.{plain}.default.enable") == "false"


def test_the_override_clusters_two_nodes_behind_the_balancer_the_stack_already_dials() -> None:
    services = OVERRIDE["services"]
    nodes = {n: s for n, s in services.items() if s["image"].startswith("emqx/emqx:5.")}
    assert len(nodes) == 2
    seeds = {s["environment"]["EMQX_CLUSTER__STATIC__SEEDS"] for s in nodes.values()}
    names = [s["environment"]["EMQX_NODE__NAME"] for s in nodes.values()]
    assert seeds == {f"[{','.join(names)}]"}
    for name, node in nodes.items():
        assert node["environment"]["EMQX_CLUSTER__DISCOVERY_STRATEGY"] == "static"
        assert names.count(node["environment"]["EMQX_NODE__NAME"]) == 1
        host = node["environment"]["EMQX_NODE__NAME"].split("@")[1]
        assert host in node["networks"]["default"]["aliases"] and "." in host
        assert f"server {name} {name}:8883" in HAPROXY
        assert "EMQX_NODE__COOKIE" not in node["environment"]  # from the secret, at start
    # The balancer takes the broker's service name: every URL and depends_on of the stack.
    balancer = services["mosquitto"]
    assert balancer["image"].startswith("haproxy:") and "ports" not in balancer
    assert set(balancer["depends_on"]) == set(nodes)
    assert COMPOSE["services"]["mosquitto"]["ports"] == ["8883:8883"]
    urls = [str(v) for s in COMPOSE["services"].values() for v in s.get("environment", {}).values()]
    dialled = {url for url in urls if url.startswith("mqtts://")}
    assert dialled and all("@mosquitto:8883" in url for url in dialled)


def test_every_secret_and_file_the_override_names_exists_or_is_made() -> None:
    made = {s.name for s in deployment_secrets()}
    for name, secret in OVERRIDE["secrets"].items():
        assert name in made and secret["file"] == f"./deploy/secrets/{name}", name
    for name, service in OVERRIDE["services"].items():
        if name.startswith("emqx"):
            text = yaml.safe_dump({k: service[k] for k in ("entrypoint", "healthcheck")})
            assert set(service["secrets"]) == set(SECRET_PATH.findall(text)), name
        image = service.get("image") or OVERRIDE["x-emqx"]["image"]
        assert ":" in image and not image.endswith(":latest"), name
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./deploy/emqx/") and not source.startswith(f"./{EMQX_FOLDER}"):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
            elif source.startswith("./"):  # made by ioc devices provision / ioc certs dev
                assert source in (f"./{EMQX_FOLDER}", f"./{CERTS_FOLDER}"), source
            else:
                assert source in OVERRIDE["volumes"], source


def test_docker_compose_config_accepts_the_two_files_together(tmp_path: Path) -> None:
    """Debian's docker-compose 1.29 (v1: shown the base file without its top-level ``name``)."""
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.skip("no `docker-compose` here; the document tests above stand in for it")
    base = dict(COMPOSE)
    base.pop("name")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(base), encoding="utf-8")
    (tmp_path / "deploy/emqx").mkdir(parents=True)
    shutil.copy(OVERRIDE_PATH, tmp_path / "deploy/emqx")
    for secret in [*COMPOSE["secrets"].values(), *OVERRIDE["secrets"].values()]:
        path = tmp_path / secret["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x" * 43)
    done = subprocess.run([legacy, "-f", "docker-compose.yml", "-f",
                           "deploy/emqx/docker-compose.emqx.yml", "config"], cwd=tmp_path,
                          env=inherited_environ(), capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    merged = yaml.safe_load(done.stdout)["services"]
    assert merged["mosquitto"]["image"].startswith("haproxy:")
    assert {"emqx1", "emqx2", "ingest-1", "ingest-2"} <= set(merged)
    assert merged["ingest-2"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


def test_haproxy_accepts_the_balancer_config_where_haproxy_exists() -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("no `haproxy` here; the document tests above read its config")
    done = subprocess.run([haproxy, "-c", "-f", str(ROOT / "deploy/emqx/haproxy.cfg")],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
