"""A deployment's secrets as files, one secret a file (``deploy/secrets/NAME``), the form compose
``secrets:`` mounts at ``/run/secrets/NAME`` and ``IOC_*_FILE`` settings read.

The folder is the one source: the database logins and the broker's password file are made from
it (``ioc roles login --password-file``, ``ioc devices provision --secrets``), so a rotation is
one file renewed and the services that read it restarted. A file is never overwritten unless
named in ``rotate``: a stack already running on it keeps working.

Permissions: the folder is 0700, so on the host only its owner reaches the files. The files are
0644 because compose bind-mounts each into a container whose own user (postgres's uid 70, the
app's ``ioc``, root in Caddy) must read it, and file-based compose secrets ignore ``uid``/``mode``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devices.topics import Topics
from ioc.production import secret_problem
from ioc.provision import service_accounts

DEFAULT_FOLDER = Path("deploy/secrets")
# The database logins `ioc roles login SERVICE` makes, each from db_{SERVICE}_password.
DB_SERVICES = ("ingest", "processing", "coverage", "alerts", "dashboard")
WEBHOOK_SECRETS = "alert_webhook_secrets"  # {"name": "key"}, read as IOC_ALERT_WEBHOOK_SECRETS


def _token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits; URL-safe, so it can sit in a URL as it is


@dataclass(frozen=True, slots=True)
class Secret:
    name: str  # the file's name, and the compose secret's
    purpose: str
    make: Callable[[], str] = _token


def mqtt_secret(username: str) -> str:
    """``ioc-ingest-2`` → ``mqtt_ingest_2_password``: a broker service account's file."""
    return "mqtt_" + username.removeprefix("ioc-").replace("-", "_") + "_password"


def db_secret(service: str) -> str:
    return f"db_{service}_password"


def deployment_secrets(*, ingesters: int = 2, webhooks: Iterable[str] = ()) -> list[Secret]:
    """Every secret the compose stack reads, in the order the README lists them."""
    names = sorted(set(webhooks))
    made = [Secret("postgres_password", "the database owner (the image's superuser): migrate only")]
    made += [Secret(db_secret(s), f"database login ioc_{s}_svc") for s in DB_SERVICES]
    accounts = [a.username for a in service_accounts(Topics(), ingesters=ingesters)]
    made += [Secret(mqtt_secret(a), f"broker account {a}") for a in accounts]
    made += [
        Secret("ingest_share_group", "the ingesters' shared-subscription group"),
        Secret(
            WEBHOOK_SECRETS,
            "HMAC key per alert webhook (JSON)",
            lambda: json.dumps({n: _token() for n in names}),
        ),
        Secret("grafana_admin_password", "Grafana's admin (compose monitoring profile)"),
        # The EMQX variant (deploy/emqx): nodes with one cookie form the cluster, so it is a
        # key to every node; the dashboard's admin is set from the other at first start.
        Secret("emqx_cookie", "the EMQX cluster's Erlang cookie (deploy/emqx)"),
        Secret("emqx_dashboard_password", "EMQX's dashboard and API admin (deploy/emqx)"),
    ]
    return made


def read_secret(folder: Path, name: str) -> str | None:
    """The secret's text less one trailing newline, or None where its file does not exist."""
    path = folder / name
    if not path.exists():
        return None
    return path.read_text(encoding="utf-8").removesuffix("\n")


def write_secret(folder: Path, name: str, value: str) -> Path:
    """Written to a temporary and renamed: a reader sees the old secret or the new one."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    tmp = path.with_name(f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
    os.chmod(tmp, 0o644)  # not narrowed by the umask: the container's user reads it
    tmp.replace(path)
    return path


def init_secrets(
    folder: Path,
    *,
    ingesters: int = 2,
    webhooks: Iterable[str] = (),
    rotate: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """Make every missing secret; renew those in ``rotate``. Returns (made, kept) names.
    A webhook named anew joins the existing key file, keeping the other webhooks' keys."""
    wanted = deployment_secrets(ingesters=ingesters, webhooks=webhooks)
    renew = set(rotate)
    unknown = renew - {s.name for s in wanted} - {f"webhook:{w}" for w in webhooks}
    if unknown:
        raise ValueError(f"--rotate: no secret named {sorted(unknown)[0]!r}")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    made, kept = [], []
    for secret in wanted:
        old = read_secret(folder, secret.name)
        if secret.name == WEBHOOK_SECRETS and old is not None:
            keys = _webhook_keys(folder, old)
            every = secret.name in renew  # --rotate alert_webhook_secrets: all of them
            new = [n for n in {*keys, *webhooks}
                   if every or n not in keys or f"webhook:{n}" in renew]  # fmt: skip
            if new:
                write_secret(folder, secret.name, json.dumps(keys | {n: _token() for n in new}))
                made += [f"webhook:{n}" for n in sorted(new)]
            else:
                kept.append(secret.name)
        elif old is None or secret.name in renew:
            write_secret(folder, secret.name, secret.make())
            made.append(secret.name)
        else:
            if problem := secret_problem(old):
                raise ValueError(f"{folder / secret.name} {problem}: --rotate {secret.name}")
            kept.append(secret.name)
    return made, kept


def _webhook_keys(folder: Path, text: str) -> dict[str, str]:
    try:
        keys = json.loads(text)
    except json.JSONDecodeError:
        keys = None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ValueError(f"{folder / WEBHOOK_SECRETS} is not a JSON object of name → key")
    return keys
