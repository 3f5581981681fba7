"""``python -m ioc.amqtt_broker PORT [--tls CERT KEY] [--named]``: a pure-Python broker (MQTT
3.1.1), for machines without Mosquitto and as a second implementation the ingester's wire code
is tested against. ``--tls``: TLS only. ``--named``: clients must give a user name (any
password); amqtt queues messages for an offline persistent session only when it has one."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from amqtt.broker import Broker


async def serve(port: int, tls: tuple[str, str] | None = None, named: bool = False) -> None:
    listener: dict[str, Any] = {"type": "tcp", "bind": f"127.0.0.1:{port}"}
    if tls:
        listener |= {"ssl": True, "certfile": tls[0], "keyfile": tls[1]}
    config = {
        "listeners": {"default": listener},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": not named}
        },
    }
    broker = Broker(config)
    await broker.start()
    try:
        await asyncio.Event().wait()
    finally:
        await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--named", action="store_true")
    args = parser.parse_args()
    asyncio.run(serve(args.port, tuple(args.tls) if args.tls else None, args.named))


if __name__ == "__main__":
    main()
