"""``ioc devices``: device identity on the broker."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

from devices.kinds import Kind
from devices.topics import Topics
from ioc.cli_common import clear_errors, load_settings
from ioc.secrets import DEFAULT_FOLDER as SECRETS_FOLDER

devices_app: typer.Typer = typer.Typer(help="Devices and their broker accounts.",
                                       no_args_is_help=True)  # fmt: skip
DEFAULT_FOLDER = Path("deploy/mosquitto")
EMQX_FOLDER = Path("deploy/emqx/broker")  # deploy/emqx/docker-compose.emqx.yml mounts it


def read_inventory(path: Path) -> list[tuple[Kind, str]]:
    """A CSV with the columns ``kind`` and ``device_id`` (other columns are ignored)."""
    if not path.is_file():
        raise ValueError(f"--devices: {path} does not exist")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"kind", "device_id"} <= set(reader.fieldnames or ()):
            raise ValueError(f"--devices: {path} needs the columns kind and device_id")
        found = []
        for line, row in enumerate(reader, start=2):
            try:
                found.append((Kind(row["kind"].strip()), row["device_id"].strip()))
            except ValueError:
                detail = f"{path}:{line}: unknown kind {row['kind']!r}"
                raise ValueError(f"--devices: {detail}") from None
    return found


def scenario_inventory() -> list[tuple[Kind, str]]:
    from simulators.fleet import province_devices

    return [(d.kind, d.device_id) for d in province_devices(load_settings().province)]


@devices_app.command("provision")
@clear_errors
def devices_provision(
    out: Annotated[
        Path | None,
        typer.Option(help="folder for the files; default: deploy/mosquitto, deploy/emqx/broker"),
    ] = None,
    broker: Annotated[
        str,
        typer.Option(help="mosquitto or emqx (passwd, users.csv, acl.conf: deploy/emqx)"),
    ] = "mosquitto",
    devices: Annotated[
        Path | None, typer.Option(help="CSV of kind,device_id; default: the scenario's devices")
    ] = None,
    mount: Annotated[
        str | None, typer.Option(help="where the broker sees --out (compose: /mosquitto/config)")
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="broker persistence folder; default: beside --mount/--out")
    ] = None,
    tls_port: Annotated[int, typer.Option(help="the TLS listener's port")] = 8883,
    bind: Annotated[str | None, typer.Option(help="listen address; default: all")] = None,
    ingesters: Annotated[
        int, typer.Option(help="ingester accounts ioc-ingest-1 … N, one per instance")
    ] = 2,
    simulator: Annotated[
        bool,
        typer.Option(
            help="also an account that may publish for every device (staging, one connection)"
        ),
    ] = False,
    rotate: Annotated[
        list[str] | None, typer.Option(help="give this account a new password (repeatable)")
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(help="the broker's user, to read passwd (compose: 1883; EMQX image: 1000)"),
    ] = None,
    secrets: Annotated[
        Path, typer.Option(help="the service accounts' password files (`ioc secrets init`)")
    ] = SECRETS_FOLDER,
) -> None:
    """Per-device broker accounts and ACL, service accounts, and the TLS broker config."""
    from devices.topics import TopicError
    from ioc.provision import BrokerLayout, provision
    from ioc.secrets import mqtt_secret, read_secret, write_secret

    if broker not in ("mosquitto", "emqx"):
        raise ValueError(f"--broker {broker!r}: mosquitto or emqx")
    emqx = broker == "emqx"
    out = out or (EMQX_FOLDER if emqx else DEFAULT_FOLDER)
    if not 1 <= tls_port <= 65535:
        raise ValueError(f"--tls-port {tls_port} is not a port number")
    inventory = read_inventory(devices) if devices else scenario_inventory()
    topics = Topics(load_settings().topic_root)
    for kind, device_id in inventory:
        try:
            topics.device_tree(kind, device_id)
        except (ValueError, TopicError) as err:
            raise ValueError(f"--devices: {err}") from None
    folder = mount or str(out.resolve())
    layout = BrokerLayout(
        folder=folder,
        data_dir=data_dir or (f"{Path(folder).parent}/data" if mount else f"{folder}/data"),
        tls_port=tls_port,
        bind_address=bind,
    )
    services = _service_names(topics, ingesters, simulator)
    chosen = {name: read_secret(secrets, mqtt_secret(name)) for name in services}
    done = provision(out, inventory, layout, topics=topics, ingesters=ingesters,
                     simulator=simulator, rotate=rotate or (), owner=owner,
                     passwords={k: v for k, v in chosen.items() if v},
                     mosquitto_config=not emqx)  # fmt: skip
    for name, password in done.service_passwords.items():  # one source: the secrets folder
        write_secret(secrets, mqtt_secret(name), password)
    typer.echo(f"{done.devices} devices and {done.services} services: {len(done.created)} new "
               f"passwords, {len(done.removed)} accounts removed")  # fmt: skip
    if done.service_passwords:
        typer.echo(f"new service passwords in {secrets}: {', '.join(done.service_passwords)}")
    if done.devices and len(done.created) > 0:
        typer.echo(f"device passwords: {done.credentials} (0600; hand each to its device)")
    if emqx:
        from ioc.provision_emqx import write_emqx

        users, acl = write_emqx(out, done.accounts, done.hashes, owner)
        typer.echo(f"EMQX: {users} (bootstrap users), {acl} (authorization)")
        return
    typer.echo(f"broker config: {done.config}")
    if not (out / "certs" / "server.crt").exists():
        typer.echo(
            f"no certificate in {out / 'certs'}: put ca.crt, server.crt, server.key "
            f"there, or run `ioc certs dev --out {out / 'certs'}` for a trial",
            err=True,
        )


def _service_names(topics: Topics, ingesters: int, simulator: bool) -> list[str]:
    from ioc.provision import service_accounts

    return [a.username for a in service_accounts(topics, ingesters=ingesters, simulator=simulator)]
